// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
)

// The generic primitives below serve the KMIP Encrypt, Decrypt, MAC and
// MAC Verify operations: the caller chooses the mode, IV and tag length,
// unlike the KES formats above, which fix all of them. They take the raw
// key for one call and keep no copy of it.

// Errors of the generic primitives. A failed authentication or a bad
// padding is ErrDecrypt, as for the KES formats, so that a caller cannot
// tell the two apart (CBC padding errors are a decryption oracle).
var (
	// ErrInvalidIV: the IV or nonce has a length the mode does not take.
	ErrInvalidIV = errors.New("invalid IV length")
	// ErrInvalidTagLength: the requested or given authentication tag
	// length is not supported.
	ErrInvalidTagLength = errors.New("invalid authentication tag length")
	// ErrInvalidKeyLength: the key length does not fit the algorithm.
	ErrInvalidKeyLength = errors.New("invalid key length")
	// ErrInvalidLength: the input length does not fit the mode (a CBC
	// ciphertext that is not a positive multiple of the block size).
	ErrInvalidLength = errors.New("invalid data length")
)

// Bounds of the AES-GCM parameters. The 96-bit nonce is what SP 800-38D
// recommends and what every KMIP client sends; longer nonces (up to
// 128 bytes) are hashed into the counter block by GCM and accepted, so
// that clients choosing 16-byte IVs work. Tags shorter than 96 bits are
// refused: SP 800-38D allows 32- and 64-bit tags only under usage limits
// the server cannot enforce.
const (
	GCMStandardIVSize = 12
	GCMMaxIVSize      = 128
	GCMMinIVSize      = 12
	GCMMinTagSize     = 12
	GCMMaxTagSize     = 16
)

func aesBlock(key []byte) (cipher.Block, error) {
	switch len(key) {
	case 16, 24, 32:
		return aes.NewCipher(key)
	default:
		return nil, ErrInvalidKeyLength
	}
}

func gcm(key []byte, ivLen, tagLen int) (cipher.AEAD, error) {
	if ivLen < GCMMinIVSize || ivLen > GCMMaxIVSize {
		return nil, ErrInvalidIV
	}
	if tagLen < GCMMinTagSize || tagLen > GCMMaxTagSize {
		return nil, ErrInvalidTagLength
	}
	block, err := aesBlock(key)
	if err != nil {
		return nil, err
	}
	switch {
	case tagLen == GCMMaxTagSize:
		return cipher.NewGCMWithNonceSize(block, ivLen)
	case ivLen == GCMStandardIVSize:
		return cipher.NewGCMWithTagSize(block, tagLen)
	default:
		// The standard library has no GCM with both a non-standard
		// nonce and a short tag.
		return nil, fmt.Errorf("%w: a tag shorter than 16 bytes needs a 12-byte IV", ErrInvalidTagLength)
	}
}

// GCMSeal encrypts plaintext with AES-GCM (SP 800-38D) under key (16, 24
// or 32 bytes) with the given IV and additional data, and returns the
// ciphertext (as long as the plaintext) and a tag of tagLen bytes.
func GCMSeal(key, iv, plaintext, aad []byte, tagLen int) (ciphertext, tag []byte, err error) {
	aead, err := gcm(key, len(iv), tagLen)
	if err != nil {
		return nil, nil, err
	}
	out := aead.Seal(make([]byte, 0, len(plaintext)+tagLen), iv, plaintext, aad)
	return out[:len(plaintext)], out[len(plaintext):], nil
}

// GCMOpen decrypts and authenticates an AES-GCM ciphertext with its tag.
// A tag that does not verify is ErrDecrypt.
func GCMOpen(key, iv, ciphertext, tag, aad []byte) ([]byte, error) {
	aead, err := gcm(key, len(iv), len(tag))
	if err != nil {
		return nil, err
	}
	sealed := make([]byte, 0, len(ciphertext)+len(tag))
	sealed = append(append(sealed, ciphertext...), tag...)
	plaintext, err := aead.Open(sealed[:0], iv, sealed, aad)
	if err != nil {
		clear(sealed)
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// CBCEncrypt encrypts plaintext with AES-CBC (SP 800-38A) under key and
// the 16-byte iv, after PKCS#5 padding (RFC 8018 §6.1.1, extended to the
// 16-byte block as PKCS#7 does): the output is always at least one block
// longer than a block-aligned input.
func CBCEncrypt(key, iv, plaintext []byte) ([]byte, error) {
	block, err := aesBlock(key)
	if err != nil {
		return nil, err
	}
	if len(iv) != aes.BlockSize {
		return nil, ErrInvalidIV
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	out := make([]byte, len(plaintext)+pad)
	copy(out, plaintext)
	for i := len(plaintext); i < len(out); i++ {
		out[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, out)
	return out, nil
}

// CBCDecrypt decrypts an AES-CBC ciphertext and removes its PKCS#5
// padding. A malformed padding is ErrDecrypt. CBC is not authenticated:
// a modified ciphertext may decrypt to other plaintext without error.
func CBCDecrypt(key, iv, ciphertext []byte) ([]byte, error) {
	block, err := aesBlock(key)
	if err != nil {
		return nil, err
	}
	if len(iv) != aes.BlockSize {
		return nil, ErrInvalidIV
	}
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, ErrInvalidLength
	}
	out := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ciphertext)
	// Checked in constant time over the last block, so that the time
	// taken does not say where the padding went wrong.
	pad := int(out[len(out)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, pad)
		match := subtle.ConstantTimeByteEq(out[len(out)-i], byte(pad))
		good &= subtle.ConstantTimeSelect(inPad, match, 1)
	}
	if good != 1 {
		clear(out)
		return nil, ErrDecrypt
	}
	return out[:len(out)-pad], nil
}

// MACHash is the hash function of an HMAC.
type MACHash int

// The HMAC hash functions of KMIP's HMAC-SHA256, -384 and -512.
const (
	MACSHA256 MACHash = iota + 1
	MACSHA384
	MACSHA512
)

// String returns the KMIP name of the HMAC algorithm.
func (h MACHash) String() string {
	switch h {
	case MACSHA256:
		return "HMAC-SHA256"
	case MACSHA384:
		return "HMAC-SHA384"
	case MACSHA512:
		return "HMAC-SHA512"
	default:
		return fmt.Sprintf("HMAC(%d)", int(h))
	}
}

func (h MACHash) new() (func() hash.Hash, error) {
	switch h {
	case MACSHA256:
		return sha256.New, nil
	case MACSHA384:
		return sha512.New384, nil
	case MACSHA512:
		return sha512.New, nil
	default:
		return nil, fmt.Errorf("crypto: unknown HMAC hash %d", int(h))
	}
}

// MACSum returns the HMAC (RFC 2104) of msg under key with hash h. Any
// key length is valid, as in RFC 2104; the caller decides the minimum.
func MACSum(h MACHash, key, msg []byte) ([]byte, error) {
	fn, err := h.new()
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, ErrInvalidKeyLength
	}
	m := hmac.New(fn, key)
	m.Write(msg)
	return m.Sum(nil), nil
}

// MACVerify reports whether mac is the HMAC of msg under key, comparing
// in constant time. A mac of the wrong length does not verify.
func MACVerify(h MACHash, key, msg, mac []byte) (bool, error) {
	sum, err := MACSum(h, key, msg)
	if err != nil {
		return false, err
	}
	return hmac.Equal(sum, mac), nil
}

// UseHMAC calls fn with the raw bytes of the HMAC key, for the KMIP MAC
// operations on KES keys, whose HMAC-SHA256 is the one the KES API's
// /v1/key/hmac computes. fn must not retain the slice.
func (k *HMACKey) UseHMAC(fn func(key []byte) error) error {
	var err error
	if uerr := k.use(func(b []byte) { err = fn(b) }); uerr != nil {
		return uerr
	}
	return err
}
