// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystoretest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/kesbridge/kes/keystore"
)

// RunSealer checks the Sealer contract: round trips, the name binding, and
// tamper detection. It then runs the Store suite on a MemStore sealed by s.
func RunSealer(t *testing.T, s keystore.Sealer) {
	t.Helper()
	ctx := context.Background()
	t.Run("RoundTrip", func(t *testing.T) {
		for _, pt := range [][]byte{[]byte("k"), bytes.Repeat([]byte{0xA5}, 208), make([]byte, 4096)} {
			sealed, err := s.Seal(ctx, "my-key", pt)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if bytes.Contains(sealed, pt) && len(pt) > 8 {
				t.Fatal("sealed value contains the plaintext")
			}
			got, resealed, err := s.Unseal(ctx, "my-key", sealed)
			if err != nil {
				t.Fatalf("Unseal: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("Unseal returned %d bytes that differ from the %d sealed", len(got), len(pt))
			}
			if resealed != nil {
				t.Fatal("Unseal of a value sealed under the newest root key returned a resealed value")
			}
			again, err := s.Reseal(ctx, "my-key", sealed)
			if err != nil {
				t.Fatalf("Reseal: %v", err)
			}
			if got, _, err := s.Unseal(ctx, "my-key", again); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Unseal after Reseal: %v", err)
			}
		}
	})
	t.Run("NameBinding", func(t *testing.T) {
		sealed, err := s.Seal(ctx, "key-a", []byte("secret of a"))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if _, _, err := s.Unseal(ctx, "key-b", sealed); err == nil {
			t.Fatal("a value sealed for key-a unsealed as key-b: blobs can be swapped")
		}
	})
	t.Run("Tamper", func(t *testing.T) {
		sealed, err := s.Seal(ctx, "my-key", []byte("secret value"))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		for i := range sealed {
			bad := bytes.Clone(sealed)
			bad[i] ^= 0x01
			if got, _, err := s.Unseal(ctx, "my-key", bad); err == nil && bytes.Equal(got, []byte("secret value")) {
				t.Fatalf("flipping bit 0 of byte %d went unnoticed", i)
			}
		}
		for _, bad := range [][]byte{nil, {}, sealed[:len(sealed)/2]} {
			if _, _, err := s.Unseal(ctx, "my-key", bad); err == nil {
				t.Fatalf("Unseal of a %d-byte truncated value succeeded", len(bad))
			}
		}
	})
	t.Run("Status", func(t *testing.T) {
		if _, err := s.Status(ctx); err != nil {
			t.Fatalf("Status: %v", err)
		}
	})
	t.Run("SealedStore", func(t *testing.T) {
		Run(t, func(t *testing.T) keystore.Store {
			return keystore.Seal(keystore.NewMem(), nopCloser{s}, nil)
		}, Options{})
	})
}

// nopCloser keeps the SealedStore suite from closing the sealer under test.
type nopCloser struct{ keystore.Sealer }

func (nopCloser) Close() error { return nil }

// MaxSealOverhead forwards the wrapped sealer's, so that the SealedStore
// suite runs at the real limit.
func (n nopCloser) MaxSealOverhead() int {
	if o, ok := n.Sealer.(keystore.SealOverhead); ok {
		return o.MaxSealOverhead()
	}
	return keystore.DefaultSealOverhead
}

// SoftSealer is a Sealer with a software AES-256-GCM key. It stands in for
// an HSM in tests of code that takes any Sealer; it protects nothing.
type SoftSealer struct{ aead cipher.AEAD }

// NewSoftSealer returns a SoftSealer with a random key.
func NewSoftSealer() *SoftSealer {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	return &SoftSealer{aead: aead}
}

func (s *SoftSealer) Seal(_ context.Context, name string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, []byte(name)), nil
}

func (s *SoftSealer) Unseal(_ context.Context, name string, sealed []byte) ([]byte, []byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, nil, errors.New("soft sealer: sealed value is too short")
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(name))
	if err != nil {
		return nil, nil, errors.New("soft sealer: sealed value is not authentic")
	}
	return pt, nil, nil
}

// MaxSealOverhead is the nonce and the GCM tag.
func (s *SoftSealer) MaxSealOverhead() int { return s.aead.NonceSize() + s.aead.Overhead() }

func (s *SoftSealer) Reseal(_ context.Context, _ string, sealed []byte) ([]byte, error) {
	return sealed, nil
}

func (s *SoftSealer) Status(context.Context) (keystore.State, error) { return keystore.State{}, nil }
func (s *SoftSealer) Close() error                                   { return nil }
func (s *SoftSealer) String() string                                 { return "software sealer (tests only)" }
