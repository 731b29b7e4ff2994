// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// TestDeriveKMIP derives with every method and compares with the
// primitives of internal/crypto on the base material.
func TestDeriveKMIP(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	hmacBase := newKMIP(t, s, NewObject{Material: []byte("a password"), Mask: UsageDeriveKey})
	aesBase := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 128, Mask: UsageDeriveKey})
	iv := bytes.Repeat([]byte{7}, 16)
	data := bytes.Repeat([]byte("derivation data!"), 2)
	for _, tc := range []struct {
		name string
		base string
		d    Derivation
		want func(base []byte) []byte
	}{
		{"PBKDF2", hmacBase, Derivation{Method: DerivePBKDF2, Hash: crypto.KDFSHA256, Salt: []byte("salt"), Iterations: 1000, Length: 32},
			func(b []byte) []byte {
				k, _ := crypto.PBKDF2(ctx, crypto.KDFSHA256, b, []byte("salt"), 1000, 32)
				return k
			}},
		{"HMAC", hmacBase, Derivation{Method: DeriveHMAC, Hash: crypto.KDFSHA512, Data: data, Length: 32},
			func(b []byte) []byte { k, _ := crypto.HMACKDF(crypto.KDFSHA512, b, data, 32); return k }},
		{"counter", hmacBase, Derivation{Method: DeriveCounter, Hash: crypto.KDFSHA256, Data: data, Length: 48},
			func(b []byte) []byte { k, _ := crypto.CounterKDF(crypto.KDFSHA256, b, data, 48); return k }},
		{"hash", aesBase, Derivation{Method: DeriveHash, Hash: crypto.KDFSHA384, Length: 16},
			func(b []byte) []byte { h := crypto.KDFSHA384.New()(); h.Write(b); return h.Sum(nil)[:16] }},
		{"encrypt", aesBase, Derivation{Method: DeriveEncrypt, Data: data, IV: iv, Length: 32},
			func(b []byte) []byte { k, _ := crypto.CBCEncrypt(b, iv, data); return k[:32] }},
		{"encrypt padded", aesBase, Derivation{Method: DeriveEncrypt, Data: data[:20], IV: iv, Padding: true, Length: 32},
			func(b []byte) []byte { k, _ := crypto.CBCEncrypt(b, iv, data[:20]); return k }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := NewObject{Algorithm: AlgorithmAES, Mask: UsageEncrypt | UsageDecrypt, Meta: func(string, *crypto.KeyVersion) (Metadata, error) {
				return Metadata{State: StatePreActive, KMIP: []byte(`{"v":1}`)}, nil
			}}
			if tc.d.Length != 32 {
				spec.Algorithm = ""
			}
			uid, err := s.DeriveKMIP(ctx, tc.base, tc.d, spec)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want(material(t, s, tc.base))
			if got := material(t, s, uid); !bytes.Equal(got, want) {
				t.Fatalf("derived %x, want %x", got, want)
			}
		})
	}
}

// TestDeriveKMIPRefuses: bounds, usage, state, key separation and KES
// keys.
func TestDeriveKMIPRefuses(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	base := newKMIP(t, s, NewObject{Material: []byte("a password"), Mask: UsageDeriveKey})
	noDerive := newKMIP(t, s, NewObject{Material: []byte("a password"), Mask: UsageEncrypt})
	macToo := newKMIP(t, s, NewObject{Algorithm: AlgorithmHMACSHA256, Bits: 256, Mask: UsageDeriveKey | UsageMACGenerate})
	aesToo := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 128, Mask: UsageDeriveKey | UsageDecrypt})
	aes256 := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageDeriveKey | UsageEncrypt | UsageDecrypt})
	if err := s.Create(ctx, "kes-key", "test"); err != nil {
		t.Fatal(err)
	}
	pbkdf2 := func(iter, n int) Derivation {
		return Derivation{Method: DerivePBKDF2, Hash: crypto.KDFSHA256, Salt: []byte("salt"), Iterations: iter, Length: n}
	}
	big := make([]byte, MaxDeriveData+1)
	iv := make([]byte, 16)
	for _, tc := range []struct {
		name string
		base string
		d    Derivation
		want error
	}{
		{"iteration count 2^31", base, pbkdf2(1<<31, 32), ErrDeriveParams},
		{"iteration count 0", base, pbkdf2(0, 32), ErrDeriveParams},
		{"iteration count over the cap", base, pbkdf2(MaxDeriveIterations+1, 32), ErrDeriveParams},
		{"work over the cap", base, pbkdf2(MaxDeriveIterations, 64), ErrDeriveParams},
		{"no salt", base, Derivation{Method: DerivePBKDF2, Hash: crypto.KDFSHA256, Iterations: 1, Length: 32}, ErrDeriveParams},
		{"no hash", base, Derivation{Method: DeriveHMAC, Data: []byte("x"), Length: 32}, ErrDeriveParams},
		{"huge derivation data", base, Derivation{Method: DeriveCounter, Hash: crypto.KDFSHA256, Data: big, Length: 32}, ErrDeriveParams},
		{"huge salt", base, Derivation{Method: DerivePBKDF2, Hash: crypto.KDFSHA256, Salt: big, Iterations: 1, Length: 32}, ErrDeriveParams},
		{"length 0", base, Derivation{Method: DeriveCounter, Hash: crypto.KDFSHA256, Data: []byte("x")}, ErrDeriveParams},
		{"length over the cap", base, Derivation{Method: DeriveCounter, Hash: crypto.KDFSHA256, Data: []byte("x"), Length: MaxDeriveLength + 1}, ErrDeriveParams},
		{"HMAC longer than the hash", base, Derivation{Method: DeriveHMAC, Hash: crypto.KDFSHA256, Data: []byte("x"), Length: 33}, ErrDeriveParams},
		{"encrypt without IV", aesToo, Derivation{Method: DeriveEncrypt, Data: make([]byte, 32), Length: 32}, ErrDeriveParams},
		{"unknown method", base, Derivation{Method: 99, Length: 32}, ErrDeriveParams},
		{"base without Derive Key", noDerive, pbkdf2(1, 32), ErrUsageNotAllowed},
		{"KES key", "kes-key", pbkdf2(1, 32), ErrUsageNotAllowed},
		{"KES-type AES key that decrypts as HMAC base", aes256, Derivation{Method: DeriveHMAC, Hash: crypto.KDFSHA256, Data: make([]byte, 16), Length: 32}, ErrDeriveSeparation},
		{"KES-type AES key that decrypts as PBKDF2 base", aes256, pbkdf2(1, 32), ErrDeriveSeparation},
		{"MAC key as HMAC base", macToo, Derivation{Method: DeriveHMAC, Hash: crypto.KDFSHA256, Data: []byte("x"), Length: 32}, ErrDeriveSeparation},
		{"decryption key as encryption base", aesToo, Derivation{Method: DeriveEncrypt, Data: make([]byte, 32), IV: iv, Length: 32}, ErrDeriveSeparation},
		{"secret data as encryption base", base, Derivation{Method: DeriveEncrypt, Data: make([]byte, 32), IV: iv, Length: 32}, ErrAlgorithm},
		{"missing base", "no-such-key", pbkdf2(1, 32), ErrKeyNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, err := s.DeriveKMIP(ctx, tc.base, tc.d, NewObject{Meta: func(string, *crypto.KeyVersion) (Metadata, error) { return Metadata{KMIP: []byte(`{"v":1}`)}, nil }})
			if !errors.Is(err, tc.want) || uid != "" {
				t.Fatalf("DeriveKMIP = %q, %v; want %v", uid, err, tc.want)
			}
		})
	}
	setState(t, s, base, StateDeactivated)
	if _, err := s.DeriveKMIP(ctx, base, pbkdf2(1, 32), NewObject{}); !errors.Is(err, ErrNotActive) {
		t.Fatalf("derive from a deactivated base: %v", err)
	}
}

// TestDeriveTimeLimit: a PBKDF2 within the caps that runs past the time
// limit (shortened here: the CPU is shared) is stopped and reported as
// too costly, and one whose caller gave up reports the caller's error.
func TestDeriveTimeLimit(t *testing.T) {
	defer func(d time.Duration) { deriveTimeLimit = d }(deriveTimeLimit)
	deriveTimeLimit = 200 * time.Millisecond
	s, _ := newService(t, Config{})
	base := newKMIP(t, s, NewObject{Material: []byte("a password"), Mask: UsageDeriveKey})
	d := Derivation{Method: DerivePBKDF2, Hash: crypto.KDFSHA512, Salt: []byte("salt"), Iterations: MaxDeriveIterations, Length: 64}
	start := time.Now()
	_, err := s.DeriveKMIP(context.Background(), base, d, NewObject{})
	if !errors.Is(err, ErrDeriveTooCostly) {
		t.Fatalf("10M iterations of PBKDF2-HMAC-SHA512: %v", err)
	}
	if el := time.Since(start); el > deriveTimeLimit+2*time.Second {
		t.Fatalf("the derivation ran %v", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.DeriveKMIP(ctx, base, d, NewObject{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("derive with a canceled context: %v", err)
	}
}
