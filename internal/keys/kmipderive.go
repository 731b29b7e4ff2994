// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// Key derivation for KMIP Derive Key (DeriveKMIP). The derived key is
// stored like any key a KMIP client registers; the base key's material
// never leaves the server.

// DeriveMethod is a KMIP Derivation Method the server implements.
type DeriveMethod int

// The derivation methods.
const (
	// DerivePBKDF2: PBKDF2 (RFC 8018) with HMAC as PRF; the base is the
	// password, Salt and Iterations are required.
	DerivePBKDF2 DeriveMethod = iota + 1
	// DeriveHMAC: HMAC(base, Data), cut to the length (at most the
	// hash's size).
	DeriveHMAC
	// DeriveCounter: the SP 800-108 KDF in counter mode with HMAC as
	// PRF, a 32-bit counter before Data (the fixed input data).
	DeriveCounter
	// DeriveEncrypt: Data encrypted with the AES base key in CBC mode
	// with the IV given, the first Length bytes of the ciphertext.
	DeriveEncrypt
	// DeriveHash: the hash of the base material, cut to the length (at
	// most the hash's size); no Data (OASIS TC-DERIVEKEY-1-10).
	DeriveHash
)

// Bounds of a derivation, checked before any work is done.
const (
	// MaxDeriveIterations is the largest PBKDF2 iteration count.
	MaxDeriveIterations = 10_000_000
	// MaxDeriveWork bounds iterations × output blocks of one PBKDF2:
	// what a large derived length would multiply.
	MaxDeriveWork = 10_000_000
	// MaxDeriveLength is the largest derived key, in bytes (4096 bits).
	MaxDeriveLength = 512
	// MaxDeriveData bounds the derivation data and the salt.
	MaxDeriveData = 64 << 10
	// DeriveTimeLimit bounds the CPU time of one PBKDF2: 10,000,000
	// iterations of HMAC-SHA256 take about 10 s on one core of a small
	// server, HMAC-SHA512 three times that, so the iteration cap alone
	// would let one request hold a core for half a minute. A derivation
	// that does not finish in time fails (ErrDeriveTooCostly) and its
	// partial work is wiped.
	DeriveTimeLimit = 5 * time.Second
)

// pbkdf2Slots limits how many PBKDF2 derivations run at once, so that
// derivations cannot starve the key service.
var pbkdf2Slots = newWorkSlots(ErrDeriveBusy)

// deriveTimeLimit is DeriveTimeLimit; tests shorten it.
var deriveTimeLimit = DeriveTimeLimit

// Errors of key derivation. Their messages contain no key material.
var (
	// ErrDeriveParams: the derivation parameters are missing, out of
	// bounds or do not fit the method.
	ErrDeriveParams = errors.New("invalid derivation parameters")
	// ErrDeriveTooCostly: a PBKDF2 that did not finish within
	// DeriveTimeLimit.
	ErrDeriveTooCostly = errors.New("the derivation did not finish within the server's time limit: use fewer iterations")
	// ErrDeriveBusy: more PBKDF2 derivations are waiting for a slot
	// than pbkdf2Slots lets wait.
	ErrDeriveBusy = errors.New("key derivation is busy: too many derivations are running, try again later")
	// ErrDeriveSeparation: a base key whose usage mask also allows the
	// operations the method would be an oracle for.
	ErrDeriveSeparation = errors.New("the base key's usage mask allows other operations with the same material")
)

// Derivation describes one KMIP Derive Key.
type Derivation struct {
	Method DeriveMethod
	// Hash is the HMAC hash of PBKDF2, HMAC and counter mode.
	Hash crypto.KDFHash
	// Data is the derivation data: the HMAC message, the fixed input
	// data of counter mode, the plaintext of Encrypt.
	Data []byte
	// Salt and Iterations are PBKDF2's.
	Salt       []byte
	Iterations int
	// IV and Padding (PKCS#5, else none) are Encrypt's.
	IV      []byte
	Padding bool
	// Length of the derived key in bytes.
	Length int
}

// Work is the PBKDF2 work of d (iterations times output blocks), the
// measure of MaxDeriveWork; 0 for the other methods, whose cost is that
// of a few HMACs or AES blocks.
func (d *Derivation) Work() int {
	if d.Method != DerivePBKDF2 || d.Hash.Size() == 0 || d.Iterations < 1 {
		return 0
	}
	return d.Iterations * ((d.Length + d.Hash.Size() - 1) / d.Hash.Size())
}

// Check validates d against the method and the bounds (DeriveKMIP calls
// it too); its errors are ErrDeriveParams.
func (d *Derivation) Check() error {
	if d.Length < 1 || d.Length > MaxDeriveLength {
		return fmt.Errorf("%w: the derived key is 1 to %d bytes long", ErrDeriveParams, MaxDeriveLength)
	}
	if len(d.Data) > MaxDeriveData || len(d.Salt) > MaxDeriveData {
		return fmt.Errorf("%w: derivation data and salt are at most %d bytes", ErrDeriveParams, MaxDeriveData)
	}
	hashed := d.Method == DerivePBKDF2 || d.Method == DeriveHMAC || d.Method == DeriveCounter || d.Method == DeriveHash
	if hashed && d.Hash.New() == nil {
		return fmt.Errorf("%w: missing or unsupported hashing algorithm (SHA-1, SHA-224, SHA-256, SHA-384 or SHA-512)", ErrDeriveParams)
	}
	switch d.Method {
	case DerivePBKDF2:
		if len(d.Salt) == 0 {
			return fmt.Errorf("%w: PBKDF2 needs a salt", ErrDeriveParams)
		}
		if d.Iterations < 1 || d.Iterations > MaxDeriveIterations {
			return fmt.Errorf("%w: the iteration count is 1 to %d", ErrDeriveParams, MaxDeriveIterations)
		}
		if d.Work() > MaxDeriveWork {
			return fmt.Errorf("%w: iteration count times output blocks is at most %d", ErrDeriveParams, MaxDeriveWork)
		}
	case DeriveHMAC:
		if len(d.Data) == 0 {
			return fmt.Errorf("%w: HMAC derivation needs derivation data", ErrDeriveParams)
		}
		if d.Length > d.Hash.Size() {
			return fmt.Errorf("%w: an HMAC derivation yields at most %d bytes with this hash", ErrDeriveParams, d.Hash.Size())
		}
	case DeriveCounter:
		if len(d.Data) == 0 {
			return fmt.Errorf("%w: counter mode derivation needs derivation data", ErrDeriveParams)
		}
	case DeriveHash:
		if len(d.Data) != 0 {
			return fmt.Errorf("%w: hash derivation hashes the base object and takes no derivation data", ErrDeriveParams)
		}
		if d.Length > d.Hash.Size() {
			return fmt.Errorf("%w: a hash derivation yields at most %d bytes with this hash", ErrDeriveParams, d.Hash.Size())
		}
	case DeriveEncrypt:
		if len(d.Data) == 0 {
			return fmt.Errorf("%w: encryption derivation needs derivation data", ErrDeriveParams)
		}
		if len(d.IV) != 16 {
			return fmt.Errorf("%w: encryption derivation uses AES-CBC and needs a 16-byte IV", ErrDeriveParams)
		}
		if !d.Padding && len(d.Data)%16 != 0 {
			return fmt.Errorf("%w: without padding the derivation data is a multiple of 16 bytes", ErrDeriveParams)
		}
		if n := (len(d.Data)/16 + 1) * 16; d.Padding && n < d.Length || !d.Padding && len(d.Data) < d.Length {
			return fmt.Errorf("%w: the derivation data is shorter than the derived key", ErrDeriveParams)
		}
	default:
		return fmt.Errorf("%w: unsupported derivation method", ErrDeriveParams)
	}
	return nil
}

// separation returns the usage bits a base key must not have for the
// method: each method with client-chosen input makes Derive Key an
// oracle of the base material. Encrypt returns raw AES-CBC encryptions
// of chosen blocks (with a chosen IV, single AES block encryptions),
// which open and forge the key's GCM and CBC ciphertexts and wrapped
// keys; the HMAC-based methods return HMACs of chosen messages, which
// forge the key's MACs and, for a 256-bit AES key (stored as a KES key,
// so that it serves the KES API), are the keys of its KES ciphertexts:
// each is HMAC-SHA256(key, iv) with the ciphertext's iv. Hash takes no
// input: nothing. This is also why keys made over the KES API never get
// the Derive Key bit.
func (m DeriveMethod) separation() UsageMask {
	switch m {
	case DeriveEncrypt:
		return UsageEncrypt | UsageDecrypt | UsageWrapKey | UsageUnwrapKey
	case DeriveHash:
		return 0
	}
	return UsageEncrypt | UsageDecrypt | UsageMACGenerate | UsageMACVerify
}

// DeriveKMIP derives a key from the named base key as d describes and
// stores it as CreateKMIP does with spec (whose Material it sets). The
// base must be Active with the Derive Key usage bit and without the
// usage bits of d.Method.separation (ErrDeriveSeparation); Encrypt needs
// an AES base. Keys made over the KES API have no Derive Key bit and are
// never a base.
func (s *Service) DeriveKMIP(ctx context.Context, base string, d Derivation, spec NewObject) (string, error) {
	if err := d.Check(); err != nil {
		return "", err
	}
	var derived []byte
	defer func() { clear(derived) }()
	err := s.With(ctx, base, func(o *Object) error {
		if err := s.check(o, UsageDeriveKey, "derive key"); err != nil {
			return err
		}
		u := UsageOf(o)
		if u.Mask&d.Method.separation() != 0 {
			return ErrDeriveSeparation
		}
		use := func(material []byte) error {
			var err error
			clear(derived)
			derived, err = d.derive(ctx, material)
			return err
		}
		if d.Method == DeriveEncrypt && u.Algorithm != AlgorithmAES {
			return fmt.Errorf("%w: encryption derivation needs an AES base key", ErrAlgorithm)
		}
		if d.Method == DerivePBKDF2 {
			// Only a derivation that may run waits for a slot.
			if err := pbkdf2Slots.acquire(ctx); err != nil {
				return err
			}
			defer pbkdf2Slots.release()
		}
		switch {
		case o.Version.Key != nil:
			return o.Version.Key.Use(use)
		case o.Version.Material != nil:
			return o.Version.Material.Use(use)
		default:
			return ErrNotEncryptionKey
		}
	})
	if err != nil {
		return "", err
	}
	spec.Material = derived
	return s.CreateKMIP(ctx, spec)
}

// derive runs the derivation with the base material.
func (d *Derivation) derive(ctx context.Context, material []byte) ([]byte, error) {
	switch d.Method {
	case DerivePBKDF2:
		tctx, cancel := context.WithTimeout(ctx, deriveTimeLimit)
		defer cancel()
		out, err := crypto.PBKDF2(tctx, d.Hash, material, d.Salt, d.Iterations, d.Length)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, ErrDeriveTooCostly
		}
		return out, err
	case DeriveHMAC:
		return crypto.HMACKDF(d.Hash, material, d.Data, d.Length)
	case DeriveHash:
		h := d.Hash.New()()
		h.Write(material)
		sum := h.Sum(nil)
		clear(sum[d.Length:])
		return sum[:d.Length], nil
	case DeriveCounter:
		return crypto.CounterKDF(d.Hash, material, d.Data, d.Length)
	case DeriveEncrypt:
		if len(material) != 16 && len(material) != 24 && len(material) != 32 {
			return nil, crypto.ErrInvalidKeyLength
		}
		var (
			ct  []byte
			err error
		)
		if d.Padding {
			ct, err = crypto.CBCEncrypt(material, d.IV, d.Data)
		} else {
			ct, err = cbcNoPad(material, d.IV, d.Data)
		}
		if err != nil {
			return nil, err
		}
		clear(ct[d.Length:])
		return ct[:d.Length], nil
	}
	return nil, fmt.Errorf("%w: unsupported derivation method", ErrDeriveParams)
}

// cbcNoPad is AES-CBC of block-aligned data without padding: CBCEncrypt
// with its padding block dropped, which is the same ciphertext.
func cbcNoPad(key, iv, data []byte) ([]byte, error) {
	ct, err := crypto.CBCEncrypt(key, iv, data)
	if err != nil {
		return nil, err
	}
	clear(ct[len(data):])
	return ct[:len(data)], nil
}
