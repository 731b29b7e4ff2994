// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kesbridge/kes/internal/crypto"
)

func material(t *testing.T, s *Service, name string) []byte {
	t.Helper()
	var out []byte
	err := s.With(context.Background(), name, func(o *Object) error {
		use := func(b []byte) error { out = bytes.Clone(b); return nil }
		if o.Version.Key != nil {
			return o.Version.Key.Use(use)
		}
		return o.Version.Material.Use(use)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func raw(_ *Object, m []byte) ([]byte, error) { return bytes.Clone(m), nil }

// TestWrapKMIP wraps with every mode and unwraps independently with the
// wrapping key's material, then back through UnwrapKMIP.
func TestWrapKMIP(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	kek := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageWrapKey | UsageUnwrapKey, Sensitive: new(true)})
	target := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 128, Mask: UsageEncrypt | UsageDecrypt, Sensitive: new(true)})
	kekRaw, want := material(t, s, kek), material(t, s, target)
	for _, mode := range []WrapMode{WrapKW, WrapKWP, WrapGCM} {
		w, err := s.WrapKMIP(ctx, target, kek, mode, raw)
		if err != nil {
			t.Fatalf("mode %d: %v", mode, err)
		}
		var got []byte
		switch mode {
		case WrapKW:
			got, err = crypto.KeyUnwrap(kekRaw, w.Blob)
		case WrapKWP:
			got, err = crypto.KeyUnwrapPad(kekRaw, w.Blob)
		case WrapGCM:
			n := len(w.Blob) - 16
			got, err = crypto.GCMOpen(kekRaw, w.IV, w.Blob[:n], w.Blob[n:], nil)
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("mode %d: independent unwrap: %v", mode, err)
		}
		back, err := s.UnwrapKMIP(ctx, kek, mode, w.Blob, w.IV)
		if err != nil || !bytes.Equal(back, want) {
			t.Fatalf("mode %d: UnwrapKMIP: %v", mode, err)
		}
		bad := bytes.Clone(w.Blob)
		bad[len(bad)-1] ^= 1
		if _, err := s.UnwrapKMIP(ctx, kek, mode, bad, w.IV); !errors.Is(err, crypto.ErrUnwrap) && !errors.Is(err, crypto.ErrDecrypt) {
			t.Fatalf("mode %d: tampered blob: %v", mode, err)
		}
	}
	// A blob above what any mode wraps is refused before it is opened,
	// in every mode.
	for _, mode := range []WrapMode{WrapKW, WrapKWP, WrapGCM} {
		huge := make([]byte, crypto.KeyWrapMaxSize+24)
		if _, err := s.UnwrapKMIP(ctx, kek, mode, huge, make([]byte, 12)); !errors.Is(err, crypto.ErrInvalidLength) {
			t.Fatalf("mode %d: a blob of %d bytes: %v", mode, len(huge), err)
		}
	}
	// A sensitive key leaves wrapped, never in the clear, and stays
	// Always Sensitive.
	if err := s.Export(ctx, target, func(*Object) error { return nil }); !errors.Is(err, ErrNotExtractable) {
		t.Fatalf("clear export of a sensitive key: %v", err)
	}
	var u Usage
	s.With(ctx, target, func(o *Object) error { u = s.UsageOf(o); return nil })
	if !u.AlwaysSensitive || !u.Sensitive {
		t.Fatalf("usage after wrapped export: %+v", u)
	}
}

// TestWrapKMIPRefuses: the rules of the wrapping key and of the key.
func TestWrapKMIPRefuses(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	kek := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageWrapKey | UsageUnwrapKey})
	noWrap := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageEncrypt | UsageDecrypt})
	hmacKey := newKMIP(t, s, NewObject{Algorithm: AlgorithmHMACSHA256, Bits: 256, Mask: UsageWrapKey | UsageUnwrapKey})
	both := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageWrapKey | UsageUnwrapKey | UsageDecrypt})
	target := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 128, Mask: UsageEncrypt})
	locked := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 128, Mask: UsageEncrypt, Extractable: new(false)})
	secret := newKMIP(t, s, NewObject{Material: []byte("seven b")})
	if err := s.Create(ctx, "kes-key", "test"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key, kek string
		mode           WrapMode
		want           error
	}{
		{"wrapping key without Wrap Key", target, noWrap, WrapKW, ErrUsageNotAllowed},
		{"wrapping key is the key", kek, kek, WrapKW, ErrWrapSelf},
		{"wrapping key is another version of the key", kek, VersionRef(kek, 2), WrapKW, ErrWrapSelf},
		{"HMAC wrapping key", target, hmacKey, WrapKW, ErrAlgorithm},
		{"KES key as wrapping key", target, "kes-key", WrapKW, ErrUsageNotAllowed},
		{"not extractable", locked, kek, WrapKW, ErrNotExtractable},
		{"KES key", "kes-key", kek, WrapKWP, ErrNotExtractable},
		{"odd length with KW", secret, kek, WrapKW, ErrWrapLength},
		{"GCM with a key that also decrypts", target, both, WrapGCM, ErrWrapSeparation},
		{"KW with a key that also decrypts", target, both, WrapKW, ErrWrapSeparation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := s.WrapKMIP(ctx, tc.key, tc.kek, tc.mode, raw)
			if !errors.Is(err, tc.want) || w.Blob != nil {
				t.Fatalf("WrapKMIP = %x, %v; want %v", w.Blob, err, tc.want)
			}
		})
	}
	// A KES key leaves wrapped once the admin allows export.
	if err := s.AllowExport(ctx, "kes-key", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WrapKMIP(ctx, "kes-key", kek, WrapKW, raw); err != nil {
		t.Fatalf("KES key allowed for export: %v", err)
	}
	// A wrapping key that is not Active wraps nothing; one that is
	// Deactivated still unwraps.
	w, err := s.WrapKMIP(ctx, target, kek, WrapKW, raw)
	if err != nil {
		t.Fatal(err)
	}
	setState(t, s, kek, StateDeactivated)
	if _, err := s.WrapKMIP(ctx, target, kek, WrapKW, raw); !errors.Is(err, ErrNotActive) {
		t.Fatalf("wrap with a deactivated key: %v", err)
	}
	if _, err := s.UnwrapKMIP(ctx, kek, WrapKW, w.Blob, nil); err != nil {
		t.Fatalf("unwrap with a deactivated key: %v", err)
	}
	setState(t, s, kek, StatePreActive)
	if _, err := s.UnwrapKMIP(ctx, kek, WrapKW, w.Blob, nil); !errors.Is(err, ErrNotActive) {
		t.Fatalf("unwrap with a pre-active key: %v", err)
	}
	if _, err := s.UnwrapKMIP(ctx, noWrap, WrapKW, w.Blob, nil); !errors.Is(err, ErrUsageNotAllowed) {
		t.Fatalf("unwrap with a key without Unwrap Key: %v", err)
	}
	// Not with KW either: AES-CBC Decrypt with chosen IVs inverts single
	// AES blocks, which is all that unwrapping needs.
	if _, err := s.WrapKMIP(ctx, target, both, WrapKW, raw); !errors.Is(err, ErrWrapSeparation) {
		t.Fatalf("KW with a key that also decrypts: %v", err)
	}
	if _, err := s.UnwrapKMIP(ctx, both, WrapKW, w.Blob, nil); !errors.Is(err, ErrWrapSeparation) {
		t.Fatalf("unwrap with a key that also decrypts: %v", err)
	}
	if _, err := s.UnwrapKMIP(ctx, "no-such-key", WrapKW, w.Blob, nil); !errors.Is(err, ErrWrappingKeyNotFound) {
		t.Fatalf("unwrap with a missing key: %v", err)
	}
}

// TestUnwrapKMIPStates: a wrapping key unwraps while Active or
// Deactivated, not once Compromised (ErrUnwrapCompromised, an
// ErrNotActive), nor Pre-Active.
func TestUnwrapKMIPStates(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	kek := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageWrapKey | UsageUnwrapKey, Sensitive: new(true)})
	target := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 128, Mask: UsageEncrypt})
	setState(t, s, kek, StateActive)
	w, err := s.WrapKMIP(ctx, target, kek, WrapKW, raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		state State
		want  error
	}{
		{StateActive, nil},
		{StateDeactivated, nil},
		{StateCompromised, ErrUnwrapCompromised},
	} {
		setState(t, s, kek, tc.state)
		_, err := s.UnwrapKMIP(ctx, kek, WrapKW, w.Blob, nil)
		if !errors.Is(err, tc.want) || tc.want != nil && !errors.Is(err, ErrNotActive) {
			t.Fatalf("unwrap with a %s wrapping key: %v, want %v", tc.state, err, tc.want)
		}
	}
	setState(t, s, kek, StatePreActive)
	if _, err := s.UnwrapKMIP(ctx, kek, WrapKW, w.Blob, nil); !errors.Is(err, ErrNotActive) {
		t.Fatalf("unwrap with a Pre-Active wrapping key: %v", err)
	}
}
