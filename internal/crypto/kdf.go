// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// Key derivation functions of the KMIP Derive Key operation: PBKDF2
// (RFC 8018 §5.2) and the SP 800-108 KDF in counter mode with HMAC as
// PRF. They take the base secret for one call and keep no copy of it.

// KDFHash is the hash function of an HMAC-based key derivation.
type KDFHash int

// The hash functions a derivation may use. SHA-1 is allowed only as the
// hash of HMAC (PBKDF2-HMAC-SHA1 is RFC 6070's), where its collision
// weakness does not apply.
const (
	KDFSHA1 KDFHash = iota + 1
	KDFSHA224
	KDFSHA256
	KDFSHA384
	KDFSHA512
)

// New returns the hash constructor, or nil for an unknown KDFHash.
func (h KDFHash) New() func() hash.Hash {
	switch h {
	case KDFSHA1:
		return sha1.New
	case KDFSHA224:
		return sha256.New224
	case KDFSHA256:
		return sha256.New
	case KDFSHA384:
		return sha512.New384
	case KDFSHA512:
		return sha512.New
	}
	return nil
}

// Size returns the output size of the hash in bytes (0 if unknown).
func (h KDFHash) Size() int {
	switch h {
	case KDFSHA1:
		return sha1.Size
	case KDFSHA224:
		return sha256.Size224
	case KDFSHA256:
		return sha256.Size
	case KDFSHA384:
		return sha512.Size384
	case KDFSHA512:
		return sha512.Size
	}
	return 0
}

// ErrUnknownHash: a KDFHash the package does not implement.
var ErrUnknownHash = errors.New("unknown hash function")

// pbkdf2Check is how many iterations run between two checks of the
// context: a few milliseconds of work.
const pbkdf2Check = 4096

// PBKDF2 derives keyLen bytes from password and salt with PBKDF2 (RFC
// 8018 §5.2) and HMAC with hash h as PRF, in iter iterations. It stops
// with ctx's error when ctx ends, so that a deadline bounds the work of
// a large iteration count; the caller still caps iter. iter and keyLen
// must be positive.
func PBKDF2(ctx context.Context, h KDFHash, password, salt []byte, iter, keyLen int) ([]byte, error) {
	fn := h.New()
	if fn == nil {
		return nil, ErrUnknownHash
	}
	if iter < 1 || keyLen < 1 {
		return nil, fmt.Errorf("%w: PBKDF2 needs a positive iteration count and key length", ErrInvalidLength)
	}
	prf := hmac.New(fn, password)
	size := prf.Size()
	blocks := (keyLen + size - 1) / size
	out := make([]byte, 0, blocks*size)
	u := make([]byte, 0, size)
	t := make([]byte, size)
	var idx [4]byte
	for i := 1; i <= blocks; i++ {
		// T_i = U_1 ^ ... ^ U_c, U_1 = PRF(P, S || INT(i)),
		// U_j = PRF(P, U_{j-1}).
		prf.Reset()
		prf.Write(salt)
		binary.BigEndian.PutUint32(idx[:], uint32(i))
		prf.Write(idx[:])
		u = prf.Sum(u[:0])
		copy(t, u)
		for j := 2; j <= iter; j++ {
			if j%pbkdf2Check == 0 {
				if err := ctx.Err(); err != nil {
					clear(out)
					clear(t)
					clear(u)
					return nil, err
				}
			}
			prf.Reset()
			prf.Write(u)
			u = prf.Sum(u[:0])
			for k := range t {
				t[k] ^= u[k]
			}
		}
		out = append(out, t...)
	}
	clear(t)
	clear(u)
	clear(out[keyLen:])
	return out[:keyLen], nil
}

// CounterKDF derives keyLen bytes from key with the KDF in counter mode
// of NIST SP 800-108 (§4.1), HMAC with hash h as PRF, a 32-bit counter
// placed before the fixed input data: K(i) = HMAC(key, [i]₃₂ || fixed).
// The fixed input data (label, separator, context and length, if the
// caller wants them) is the caller's; it is used as given, as the NIST
// CAVP counter-mode vectors use it. keyLen must be positive.
func CounterKDF(h KDFHash, key, fixed []byte, keyLen int) ([]byte, error) {
	fn := h.New()
	if fn == nil {
		return nil, ErrUnknownHash
	}
	if keyLen < 1 {
		return nil, fmt.Errorf("%w: the derived key length must be positive", ErrInvalidLength)
	}
	prf := hmac.New(fn, key)
	size := prf.Size()
	blocks := (keyLen + size - 1) / size
	out := make([]byte, 0, blocks*size)
	var ctr [4]byte
	for i := 1; i <= blocks; i++ {
		prf.Reset()
		binary.BigEndian.PutUint32(ctr[:], uint32(i))
		prf.Write(ctr[:])
		prf.Write(fixed)
		out = prf.Sum(out)
	}
	clear(out[keyLen:])
	return out[:keyLen], nil
}

// HMACKDF returns the first keyLen bytes of HMAC(key, data) with hash
// h: the HMAC derivation method of KMIP. keyLen must be positive and at
// most the hash's size.
func HMACKDF(h KDFHash, key, data []byte, keyLen int) ([]byte, error) {
	fn := h.New()
	if fn == nil {
		return nil, ErrUnknownHash
	}
	if keyLen < 1 || keyLen > h.Size() {
		return nil, fmt.Errorf("%w: an HMAC derivation yields 1 to %d bytes with this hash", ErrInvalidLength, h.Size())
	}
	m := hmac.New(fn, key)
	m.Write(data)
	sum := m.Sum(nil)
	clear(sum[keyLen:])
	return sum[:keyLen], nil
}
