// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kesbridge/kes/internal/crypto"
)

// Key wrapping for KMIP: Get with a Key Wrapping Specification
// (WrapKMIP) and Register of a wrapped key (UnwrapKMIP). The wrapping
// key is an AES key of the keystore; its material never leaves the
// server.

// Errors of key wrapping. Their messages contain no key material.
var (
	// ErrWrapSelf: a key named as its own wrapping key (any version of
	// it). Wrapping a key under itself protects nothing: whoever can
	// unwrap it already holds it.
	ErrWrapSelf = errors.New("a key cannot be wrapped by itself")

	// ErrWrapSeparation: a wrapping key that may also Encrypt or
	// Decrypt. KMIP Encrypt and Decrypt use the same raw AES key: AES-CBC
	// with chosen IVs is an oracle of single AES blocks (for Decrypt after
	// a few hundred tries for a second block that pads correctly), which
	// runs the rounds of AES Key Wrap forwards or backwards, and a
	// GCM-wrapped key is a ciphertext Decrypt opens. Whoever may Decrypt with the key
	// would read every key it wrapped, Sensitive ones included; whoever
	// may Encrypt could make blobs that Register unwraps.
	ErrWrapSeparation = errors.New("a wrapping key must not also have the Encrypt or Decrypt usage: use a key for wrapping only")

	// ErrWrapWeak: a Sensitive key named with a wrapping key whose
	// material a client may hold (see sealedKEK). Whoever holds the
	// wrapping key's bytes unwraps the blob offline, so the wrap would be
	// a clear export.
	ErrWrapWeak = errors.New("a sensitive key can be wrapped only by a wrapping key the server created and that never left it in the clear: create the wrapping key with KMIP Create and Sensitive true or Extractable false")

	// ErrUnwrapCompromised: a Compromised wrapping key named for an
	// unwrap. It matches ErrNotActive, so that the front doors answer it
	// as a key in the wrong state.
	ErrUnwrapCompromised = fmt.Errorf("%w: a compromised wrapping key does not unwrap: a blob under it may carry key material an attacker chose", ErrNotActive)

	// ErrWrappingKeyNotFound: the wrapping key does not exist.
	ErrWrappingKeyNotFound = errors.New("wrapping key not found")

	// ErrWrapLength: the material does not fit the wrap mode (AES Key
	// Wrap takes multiples of 8 bytes, at least 16).
	ErrWrapLength = errors.New("key material length does not fit the wrap mode: AES Key Wrap needs a multiple of 8 bytes, at least 16; use AES Key Wrap with Padding")
)

// WrapMode is the block cipher mode of a wrapping key.
type WrapMode int

// The wrap modes.
const (
	// WrapKW is AES Key Wrap (RFC 3394, KMIP NIST Key Wrap).
	WrapKW WrapMode = iota + 1
	// WrapKWP is AES Key Wrap with Padding (RFC 5649).
	WrapKWP
	// WrapGCM is AES-GCM with a 12-byte IV the server draws, no
	// additional data, and the 16-byte tag after the ciphertext.
	WrapGCM
)

// gcmWrapTag is the tag length of WrapGCM.
const gcmWrapTag = crypto.GCMMaxTagSize

// Wrapped is the result of WrapKMIP.
type Wrapped struct {
	// Blob is the wrapped value (for WrapGCM ciphertext and tag).
	Blob []byte
	// IV is the GCM IV; nil for the key wrap modes.
	IV []byte
}

// wrapRefusal is exportRefusal for a wrapped export: a Sensitive key may
// leave wrapped, a key that is not Extractable may not leave at all
// (KMIP 1.4 §3.48, §3.50).
func wrapRefusal(u Usage) error {
	switch {
	case u.Extractable:
		return nil
	case u.Origin == OriginKES:
		return exportRefusal(u)
	default:
		return &ExportError{Reason: "its Extractable attribute is false, so it does not leave the server even wrapped"}
	}
}

// sealedKEK reports whether the wrapping key's material never left the
// server in the clear, so that a blob it wraps is no export in the
// clear: the server generated it (KMIP Create, not Register: Generated,
// OriginKMIP), it may not leave in the clear now (Sensitive, or not
// Extractable; u has the export patterns applied) and it never has
// (Always Sensitive, or Never Extractable). The rule holds by induction:
// an Always Sensitive wrapping key leaves only wrapped, and then only by
// a key of this kind, since it is Sensitive itself.
func sealedKEK(u Usage) bool {
	return u.Origin == OriginKMIP && u.Generated && !u.Public &&
		(u.Sensitive || !u.Extractable) && (u.AlwaysSensitive || u.NeverExtractable)
}

// sameKey reports whether two names (or version references) name one
// key.
func sameKey(a, b string) bool {
	if k, _, ok := ParseVersionRef(a); ok {
		a = k
	}
	if k, _, ok := ParseVersionRef(b); ok {
		b = k
	}
	return a == b
}

// WrapKMIP exports the named key wrapped by the AES key wrapping: encode
// returns the bytes to wrap (the raw material or an encoding of it,
// given the object and its material, which it must not keep). The
// wrapping key must be Active with the Wrap Key usage bit and without
// Encrypt and Decrypt (ErrWrapSeparation), and must not be the key
// itself (ErrWrapSelf); the key must be Extractable (Sensitive
// keys leave only this way). A Sensitive key needs a wrapping key that
// never left the server in the clear (sealedKEK), or ErrWrapWeak. The first export of a Never Extractable key
// records that it is no longer, as Export does.
func (s *Service) WrapKMIP(ctx context.Context, name, wrapping string, mode WrapMode, encode func(o *Object, material []byte) ([]byte, error)) (Wrapped, error) {
	if sameKey(name, wrapping) {
		return Wrapped{}, ErrWrapSelf
	}
	if mode != WrapKW && mode != WrapKWP && mode != WrapGCM {
		return Wrapped{}, fmt.Errorf("%w: unknown wrap mode", ErrAlgorithm)
	}
	// The wrapping key is checked first, so that a wrap that cannot
	// happen does not mark the key exported.
	sealed, err := s.checkWrapping(ctx, wrapping, UsageWrapKey, "wrap key")
	if err != nil {
		return Wrapped{}, err
	}
	// Checked before export, so that a refused wrap does not mark the
	// key exported; again below, on the object export hands over.
	var sensitive bool
	err = s.With(ctx, name, func(o *Object) error {
		u := s.UsageOf(o)
		sensitive = u.Sensitive
		return wrapRefusal(u)
	})
	if err != nil {
		return Wrapped{}, err
	}
	if sensitive && !sealed {
		return Wrapped{}, ErrWrapWeak
	}
	var plain []byte
	defer func() { clear(plain) }()
	err = s.export(ctx, name, true, func(o *Object) error {
		if s.UsageOf(o).Sensitive && !sealed {
			return ErrWrapWeak
		}
		var material []byte
		var err error
		switch {
		case o.Version.Key != nil:
			err = o.Version.Key.Use(func(b []byte) error { material = append([]byte(nil), b...); return nil })
		case o.Version.Material != nil:
			err = o.Version.Material.Use(func(b []byte) error { material = append([]byte(nil), b...); return nil })
		default:
			err = ErrNotEncryptionKey
		}
		defer clear(material)
		if err != nil {
			return err
		}
		clear(plain) // fn runs again if the cache evicted the key meanwhile
		plain, err = encode(o, material)
		return err
	})
	if err != nil {
		return Wrapped{}, err
	}
	if mode == WrapKW && (len(plain) < 16 || len(plain)%8 != 0) {
		return Wrapped{}, ErrWrapLength
	}
	var out Wrapped
	if mode == WrapGCM {
		out.IV = make([]byte, crypto.GCMStandardIVSize)
		if _, err := io.ReadFull(s.rand, out.IV); err != nil {
			return Wrapped{}, fmt.Errorf("keys: failed to generate IV: %w", err)
		}
	}
	err = s.withAES(ctx, wrapping, UsageWrapKey, "wrap key", func(kek []byte) error {
		var err error
		switch mode {
		case WrapKW:
			out.Blob, err = crypto.KeyWrap(kek, plain)
		case WrapKWP:
			out.Blob, err = crypto.KeyWrapPad(kek, plain)
		case WrapGCM:
			var ct, tag []byte
			ct, tag, err = crypto.GCMSeal(kek, out.IV, plain, nil, gcmWrapTag)
			out.Blob = append(ct, tag...)
		}
		return err
	})
	if err != nil {
		return Wrapped{}, wrappingErr(err)
	}
	return out, nil
}

// checkWrapping checks the wrapping key's state, usage bit and
// algorithm, and that it can neither Encrypt nor Decrypt
// (ErrWrapSeparation). It reports whether the wrapping key never left
// the server in the clear (sealedKEK).
func (s *Service) checkWrapping(ctx context.Context, wrapping string, bit UsageMask, op string) (sealed bool, _ error) {
	err := s.withAES(ctx, wrapping, bit, op, func([]byte) error { return nil })
	if err == nil {
		err = s.With(ctx, wrapping, func(o *Object) error {
			if UsageOf(o).Mask&(UsageEncrypt|UsageDecrypt) != 0 {
				return ErrWrapSeparation
			}
			sealed = sealedKEK(s.UsageOf(o))
			return nil
		})
	}
	return sealed, wrappingErr(err)
}

// wrappingErr tells a missing wrapping key from a missing key.
func wrappingErr(err error) error {
	if errors.Is(err, ErrKeyNotFound) {
		return ErrWrappingKeyNotFound
	}
	return err
}

// UnwrapKMIP unwraps blob with the AES key wrapping, for Register of a
// wrapped key. The wrapping key must have the Unwrap Key usage bit and
// be Active or Deactivated (a Compromised one is ErrUnwrapCompromised:
// whoever holds its material could choose what the blob unwraps to), and
// without Encrypt and Decrypt. A blob whose integrity check or tag fails is
// crypto.ErrUnwrap or crypto.ErrDecrypt; one of a length the mode never
// makes is crypto.ErrInvalidLength. The caller owns (and wipes) the
// result.
func (s *Service) UnwrapKMIP(ctx context.Context, wrapping string, mode WrapMode, blob, iv []byte) ([]byte, error) {
	if _, err := s.checkWrapping(ctx, wrapping, UsageUnwrapKey, "unwrap key"); err != nil {
		return nil, err
	}
	var plain []byte
	err := s.withAES(ctx, wrapping, UsageUnwrapKey, "unwrap key", func(kek []byte) error {
		var err error
		switch mode {
		case WrapKW:
			plain, err = crypto.KeyUnwrap(kek, blob)
		case WrapKWP:
			plain, err = crypto.KeyUnwrapPad(kek, blob)
		case WrapGCM:
			if len(iv) == 0 {
				return fmt.Errorf("%w: missing IV", crypto.ErrInvalidIV)
			}
			// The same bounds as the Key Wrap modes' blobs.
			if len(blob) < gcmWrapTag || len(blob) > crypto.KeyWrapMaxSize+gcmWrapTag {
				return crypto.ErrInvalidLength
			}
			n := len(blob) - gcmWrapTag
			plain, err = crypto.GCMOpen(kek, iv, blob[:n], blob[n:], nil)
		default:
			err = fmt.Errorf("%w: unknown wrap mode", ErrAlgorithm)
		}
		return err
	})
	if err != nil {
		return nil, wrappingErr(err)
	}
	return plain, nil
}
