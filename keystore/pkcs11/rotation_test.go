// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestRootKeyRotation rotates the root key the PKCS#11 way: a new key on
// the token becomes the root key and the old one a previous root key.
// Values sealed under the old key still open, Unseal hands them back
// resealed, Reseal re-encrypts exactly those, and afterwards the new key
// alone opens everything.
func TestRootKeyRotation(t *testing.T) {
	ctx := context.Background()
	cfg := newToken(t)
	old := newSealer(t, cfg)
	sealedA, err := old.Seal(ctx, "a", []byte("value a"))
	if err != nil {
		t.Fatal(err)
	}
	sealedB, err := old.Seal(ctx, "b", []byte("value b"))
	if err != nil {
		t.Fatal(err)
	}

	rotated := cfg
	rotated.RootKeyLabel = "kes-root-2"
	rotated.PreviousRootKeyLabels = []string{"kes-gone", testRootKey}
	s := newSealer(t, rotated)
	newOnly := cfg
	newOnly.RootKeyLabel, newOnly.CreateRootKey = "kes-root-2", false
	fresh := newSealer(t, newOnly)

	if _, _, err := fresh.Unseal(ctx, "a", sealedA); !errors.Is(err, ErrNotAuthentic) {
		t.Fatalf("new root key alone: Unseal of an old value: %v, want ErrNotAuthentic", err)
	}

	// Reseal moves an old value to the new root key...
	resealedA, err := s.Reseal(ctx, "a", sealedA)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(resealedA, sealedA) {
		t.Fatal("Reseal returned a value sealed under a previous root key unchanged")
	}
	if p, _, err := fresh.Unseal(ctx, "a", resealedA); err != nil || string(p) != "value a" {
		t.Fatalf("resealed value: Unseal = %q, %v", p, err)
	}
	// ...and leaves a current one alone.
	again, err := s.Reseal(ctx, "a", resealedA)
	if err != nil || !bytes.Equal(again, resealedA) {
		t.Fatalf("Reseal of a current value changed it (err %v)", err)
	}
	// A value bound to another name opens with no key.
	if _, err := s.Reseal(ctx, "b", sealedA); !errors.Is(err, ErrNotAuthentic) {
		t.Fatalf("Reseal under another name: %v, want ErrNotAuthentic", err)
	}

	// Unseal opens an old value and returns it resealed.
	p, resealedB, err := s.Unseal(ctx, "b", sealedB)
	if err != nil || string(p) != "value b" {
		t.Fatalf("Unseal of an old value = %q, %v", p, err)
	}
	if resealedB == nil {
		t.Fatal("Unseal of an old value returned no resealed value")
	}
	if p, _, err := fresh.Unseal(ctx, "b", resealedB); err != nil || string(p) != "value b" {
		t.Fatalf("resealed value: Unseal = %q, %v", p, err)
	}
	if _, r, err := s.Unseal(ctx, "b", resealedB); err != nil || r != nil {
		t.Fatalf("Unseal of a current value: resealed %v, err %v; want nil, nil", r != nil, err)
	}
}

func TestPreviousRootKeyValidation(t *testing.T) {
	cfg := newToken(t)
	for _, prev := range [][]string{{""}, {testRootKey}} {
		c := cfg
		c.PreviousRootKeyLabels = prev
		if _, err := NewSealer(context.Background(), c); err == nil {
			t.Errorf("NewSealer with previous root keys %q succeeded", prev)
		}
	}
}
