// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/cpu"
)

// KeySize is the size of every secret and HMAC key in bytes.
const KeySize = 32

// randSize is the per-ciphertext randomness: a 16-byte KDF input (iv)
// followed by a 12-byte AEAD nonce.
const randSize = 28

// Overhead is how much longer a ciphertext is than its plaintext.
const Overhead = 16 + randSize

// ErrDecrypt is returned for every ciphertext that does not decrypt:
// malformed, truncated, tampered, wrong key or wrong context. The text is
// the one KES clients match.
var ErrDecrypt = errors.New("decryption failed: ciphertext is not authentic")

// ErrKeyDestroyed is returned by operations on a key whose memory was
// wiped, e.g. after it was evicted from the cache. Callers fetch the key
// again.
var ErrKeyDestroyed = errors.New("crypto: key has been destroyed")

// KeyType is the algorithm of a secret key. Its values are the ones the
// stored-value protobuf uses.
type KeyType uint32

const (
	AES256   KeyType = 1 // AES-256-GCM with an HMAC-SHA256 key derivation
	ChaCha20 KeyType = 2 // ChaCha20-Poly1305 with an HChaCha20 key derivation
)

// String returns "AES256" or "ChaCha20", the names the KES API uses.
func (t KeyType) String() string {
	switch t {
	case AES256:
		return "AES256"
	case ChaCha20:
		return "ChaCha20"
	default:
		return fmt.Sprintf("KeyType(%d)", uint32(t))
	}
}

// ParseKeyType parses the names the KES API and stored values use for a
// key type, including the legacy ones.
func ParseKeyType(s string) (KeyType, error) {
	switch s {
	case "AES256", "AES256-GCM_SHA256":
		return AES256, nil
	case "ChaCha20", "XCHACHA20-POLY1305":
		return ChaCha20, nil
	default:
		return 0, fmt.Errorf("algorithm '%s' is not supported", s)
	}
}

// DefaultKeyType returns AES256 where the CPU has AES-GCM instructions and
// ChaCha20 otherwise, as minio/kes does.
func DefaultKeyType() KeyType {
	switch {
	case cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ,
		cpu.ARM64.HasAES && cpu.ARM64.HasPMULL,
		cpu.S390X.HasAES && cpu.S390X.HasAESGCM,
		cpu.PPC64.IsPOWER8:
		return AES256
	default:
		return ChaCha20
	}
}

// SecretKey is a 256-bit encryption key held in locked memory. It is safe
// for concurrent use; after Destroy every operation fails with
// ErrKeyDestroyed.
type SecretKey struct {
	typ KeyType

	mu   sync.RWMutex
	mem  *slot
	dead bool
}

// NewSecretKey copies key into locked memory. The caller should wipe its
// copy.
func NewSecretKey(t KeyType, key []byte) (*SecretKey, error) {
	if t != AES256 && t != ChaCha20 {
		return nil, fmt.Errorf("crypto: invalid key type %d", uint32(t))
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("invalid key size for '%s'", t)
	}
	k := &SecretKey{typ: t, mem: allocSlot()}
	copy(k.mem.bytes(), key)
	return k, nil
}

// GenerateSecretKey returns a new random key of type t. A nil rand means
// crypto/rand.
func GenerateSecretKey(t KeyType, random io.Reader) (*SecretKey, error) {
	if random == nil {
		random = rand.Reader
	}
	var b [KeySize]byte
	defer clear(b[:])
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return nil, fmt.Errorf("crypto: failed to generate key: %w", err)
	}
	return NewSecretKey(t, b[:])
}

// Type returns the key's algorithm.
func (k *SecretKey) Type() KeyType { return k.typ }

// Destroy wipes the key. It waits for operations in progress.
func (k *SecretKey) Destroy() {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mem.release()
	k.dead = true
}

// Use calls fn with the raw key bytes while holding the key alive. fn must
// not retain or leak the slice. It is how key material leaves the process
// on purpose (KMIP Get, migration).
func (k *SecretKey) Use(fn func(key []byte) error) error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.dead {
		return ErrKeyDestroyed
	}
	return fn(k.mem.bytes()[:KeySize])
}

// aead returns the AEAD for one ciphertext, keyed by the key derived from
// the key and iv. The caller holds k.mu.
func (k *SecretKey) aead(iv []byte) (cipher.AEAD, error) {
	key := k.mem.bytes()[:KeySize]
	switch k.typ {
	case AES256:
		mac := hmac.New(sha256.New, key)
		mac.Write(iv)
		var derived [32]byte
		defer clear(derived[:])
		mac.Sum(derived[:0])
		block, err := aes.NewCipher(derived[:])
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	case ChaCha20:
		derived, err := chacha20.HChaCha20(key, iv)
		if err != nil {
			return nil, err
		}
		defer clear(derived)
		return chacha20poly1305.New(derived)
	default:
		return nil, fmt.Errorf("crypto: invalid key type %d", uint32(k.typ))
	}
}

// Encrypt seals plaintext with associatedData and returns a ciphertext in
// the current binary format: sealed ‖ iv (16) ‖ nonce (12).
func (k *SecretKey) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	var random [randSize]byte
	if _, err := io.ReadFull(rand.Reader, random[:]); err != nil {
		return nil, fmt.Errorf("crypto: failed to read randomness: %w", err)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.dead {
		return nil, ErrKeyDestroyed
	}
	aead, err := k.aead(random[:16])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(plaintext)+Overhead)
	out = aead.Seal(out, random[16:], plaintext, associatedData)
	return append(out, random[:]...), nil
}

// Decrypt opens a ciphertext in any of the three formats KES produced
// (binary, MessagePack, JSON). Every failure is ErrDecrypt, except
// ErrKeyDestroyed.
func (k *SecretKey) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	sealed, iv, nonce, err := parseCiphertext(ciphertext)
	if err != nil {
		return nil, ErrDecrypt
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.dead {
		return nil, ErrKeyDestroyed
	}
	aead, err := k.aead(iv)
	if err != nil {
		return nil, ErrDecrypt
	}
	plaintext, err := aead.Open(nil, nonce, sealed, associatedData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// HMACKey is a 256-bit HMAC-SHA256 key held in locked memory.
type HMACKey struct {
	mu   sync.RWMutex
	mem  *slot
	dead bool
}

// NewHMACKey copies key into locked memory.
func NewHMACKey(key []byte) (*HMACKey, error) {
	if len(key) != KeySize {
		return nil, errors.New("crypto: invalid HMAC key size")
	}
	k := &HMACKey{mem: allocSlot()}
	copy(k.mem.bytes(), key)
	return k, nil
}

// GenerateHMACKey returns a new random HMAC key. A nil rand means
// crypto/rand.
func GenerateHMACKey(random io.Reader) (*HMACKey, error) {
	if random == nil {
		random = rand.Reader
	}
	var b [KeySize]byte
	defer clear(b[:])
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return nil, fmt.Errorf("crypto: failed to generate HMAC key: %w", err)
	}
	return NewHMACKey(b[:])
}

// Sum returns HMAC-SHA256(key, msg).
func (k *HMACKey) Sum(msg []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.dead {
		return nil, ErrKeyDestroyed
	}
	mac := hmac.New(sha256.New, k.mem.bytes()[:KeySize])
	mac.Write(msg)
	return mac.Sum(nil), nil
}

// Destroy wipes the key. It waits for operations in progress.
func (k *HMACKey) Destroy() {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mem.release()
	k.dead = true
}

func (k *HMACKey) use(fn func([]byte)) error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.dead {
		return ErrKeyDestroyed
	}
	fn(k.mem.bytes()[:KeySize])
	return nil
}
