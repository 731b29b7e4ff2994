// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// AES Key Wrap (RFC 3394, NIST SP 800-38F KW) and AES Key Wrap with
// Padding (RFC 5649, SP 800-38F KWP), for the KMIP bridge's wrapped Get
// and Register. They take the raw key-encryption key for one call and
// keep no copy of it. The standard library has neither.

// ErrUnwrap: a wrapped key whose integrity check fails (wrong key-
// encryption key, modified or truncated blob). It is one error for every
// cause, so that a caller cannot tell which check failed.
var ErrUnwrap = errors.New("key unwrap failed: integrity check failed")

// KeyWrapMaxSize bounds what KeyWrap and KeyWrapPad take (and so what
// the unwrap functions return). Wrapped keys are small (a PKCS#8
// RSA-8192 private key is about 5 KiB); the bound keeps one call at
// most 6 × 8,192 AES block operations.
const KeyWrapMaxSize = 64 << 10

// kwIV is the default initial value of RFC 3394 §2.2.3.1.
var kwIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// kwpICV is the alternative initial value prefix of RFC 5649 §3.
var kwpICV = [4]byte{0xA6, 0x59, 0x59, 0xA6}

// wrapRounds is W of RFC 3394 §2.2.1 (index based): 6n rounds over the
// 64-bit registers r, starting from a; it returns the final a.
func wrapRounds(kek []byte, a [8]byte, r []byte) ([8]byte, error) {
	block, err := aesBlock(kek)
	if err != nil {
		return a, err
	}
	n := len(r) / 8
	var b [16]byte
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(b[:8], a[:])
			copy(b[8:], r[8*i:8*i+8])
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(b[:8])^t)
			copy(r[8*i:8*i+8], b[8:])
		}
	}
	clear(b[:])
	return a, nil
}

// unwrapRounds is W⁻¹ of RFC 3394 §2.2.2: it turns the blob a|r back in
// place and returns the recovered initial value.
func unwrapRounds(kek []byte, a [8]byte, r []byte) ([8]byte, error) {
	block, err := aesBlock(kek)
	if err != nil {
		return a, err
	}
	n := len(r) / 8
	var b [16]byte
	for j := 5; j >= 0; j-- {
		for i := n - 1; i >= 0; i-- {
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(b[8:], r[8*i:8*i+8])
			block.Decrypt(b[:], b[:])
			copy(a[:], b[:8])
			copy(r[8*i:8*i+8], b[8:])
		}
	}
	clear(b[:])
	return a, nil
}

// KeyWrap wraps key under kek (16, 24 or 32 bytes) with AES Key Wrap
// (RFC 3394). The key must be a multiple of 8 bytes, at least 16 and at
// most KeyWrapMaxSize; the result is 8 bytes longer.
func KeyWrap(kek, key []byte) ([]byte, error) {
	if len(key) < 16 || len(key)%8 != 0 || len(key) > KeyWrapMaxSize {
		return nil, ErrInvalidLength
	}
	out := make([]byte, 8+len(key))
	copy(out[8:], key)
	a, err := wrapRounds(kek, kwIV, out[8:])
	if err != nil {
		clear(out) // it holds the key
		return nil, err
	}
	copy(out, a[:])
	return out, nil
}

// KeyUnwrap reverses KeyWrap. A blob that is not a multiple of 8 bytes,
// or shorter than 24, is ErrInvalidLength; one whose integrity check
// fails is ErrUnwrap, and nothing of it is returned.
func KeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 || len(wrapped) > KeyWrapMaxSize+8 {
		return nil, ErrInvalidLength
	}
	out := make([]byte, len(wrapped)-8)
	copy(out, wrapped[8:])
	a, err := unwrapRounds(kek, [8]byte(wrapped[:8]), out)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(a[:], kwIV[:]) != 1 {
		clear(out)
		return nil, ErrUnwrap
	}
	return out, nil
}

// KeyWrapPad wraps key under kek with AES Key Wrap with Padding (RFC
// 5649): any length from 1 byte to KeyWrapMaxSize. The result is the
// key's length rounded up to 8, plus 8.
func KeyWrapPad(kek, key []byte) ([]byte, error) {
	if len(key) == 0 || len(key) > KeyWrapMaxSize {
		return nil, ErrInvalidLength
	}
	var a [8]byte
	copy(a[:4], kwpICV[:])
	binary.BigEndian.PutUint32(a[4:], uint32(len(key)))
	padded := (len(key) + 7) / 8 * 8
	out := make([]byte, 8+padded)
	copy(out[8:], key)
	if padded == 8 {
		// RFC 5649 §4.1: one 64-bit block is encrypted with AES in
		// ECB mode together with the initial value.
		block, err := aesBlock(kek)
		if err != nil {
			clear(out) // it holds the key
			return nil, err
		}
		copy(out, a[:])
		block.Encrypt(out, out)
		return out, nil
	}
	a, err := wrapRounds(kek, a, out[8:])
	if err != nil {
		clear(out)
		return nil, err
	}
	copy(out, a[:])
	return out, nil
}

// KeyUnwrapPad reverses KeyWrapPad. A blob that is not a multiple of 8
// bytes, or shorter than 16, is ErrInvalidLength; one whose integrity
// check (initial value, length, zero padding) fails is ErrUnwrap.
func KeyUnwrapPad(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 16 || len(wrapped)%8 != 0 || len(wrapped) > KeyWrapMaxSize+8 {
		return nil, ErrInvalidLength
	}
	var (
		a   [8]byte
		out []byte
	)
	if len(wrapped) == 16 {
		block, err := aesBlock(kek)
		if err != nil {
			return nil, err
		}
		var b [aes.BlockSize]byte
		block.Decrypt(b[:], wrapped)
		copy(a[:], b[:8])
		out = make([]byte, 8)
		copy(out, b[8:])
		clear(b[:])
	} else {
		out = make([]byte, len(wrapped)-8)
		copy(out, wrapped[8:])
		var err error
		if a, err = unwrapRounds(kek, [8]byte(wrapped[:8]), out); err != nil {
			return nil, err
		}
	}
	// RFC 5649 §3: the prefix, 8(n-1) < MLI <= 8n, and zero padding.
	// A modified blob turns the whole initial value pseudo-random, so
	// which check fails says nothing useful; all run anyway.
	n := len(out)
	mli := int(binary.BigEndian.Uint32(a[4:]))
	lengthOK := 1
	if mli <= n-8 || mli > n {
		lengthOK, mli = 0, n
	}
	var pad byte
	for _, b := range out[mli:] {
		pad |= b
	}
	good := subtle.ConstantTimeCompare(a[:4], kwpICV[:]) & lengthOK & subtle.ConstantTimeByteEq(pad, 0)
	if good != 1 {
		clear(out)
		return nil, ErrUnwrap
	}
	return out[:mli], nil
}
