// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// Every version has its own lifecycle state: revoking, re-activating or
// destroying one version leaves the others as they are, and each KES
// operation uses the state of the version it uses.
func TestPerVersionState(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	uid := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageEncrypt | UsageDecrypt,
		Meta: func(string, *crypto.KeyVersion) (Metadata, error) {
			return Metadata{KMIP: json.RawMessage(`{"v":1,"n":"one"}`)}, nil
		}})
	setState := func(n uint32, st State) {
		t.Helper()
		if err := s.UpdateVersion(ctx, uid, n, func(o *Object) error { o.Meta.State = st; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	_, ct1, err := s.Generate(ctx, uid, nil)
	if err != nil {
		t.Fatal(err)
	}
	setState(1, StateCompromised)
	if _, _, err := s.Generate(ctx, uid, nil); !errors.Is(err, ErrNotActive) {
		t.Fatalf("generate with a compromised key: %v", err)
	}
	// Re-keying a compromised key gives an Active version; the old one
	// stays compromised and keeps its own KMIP record.
	if n, err := s.RekeyKMIP(ctx, uid, "me"); err != nil || n != 2 {
		t.Fatalf("rotate: %d %v", n, err)
	}
	dek2, ct2, err := s.Generate(ctx, uid, nil)
	if err != nil || CiphertextVersion(ct2) != 2 {
		t.Fatalf("generate after rotate: %v", err)
	}
	if err := s.UpdateVersion(ctx, uid, 2, func(o *Object) error {
		o.Meta.KMIP = json.RawMessage(`{"v":1,"n":"two"}`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.With(ctx, VersionRef(uid, 1), func(o *Object) error {
		if o.Meta.State != StateCompromised || string(o.Meta.KMIP) != `{"v":1,"n":"one"}` {
			t.Errorf("version 1: %q %s", o.Meta.State, o.Meta.KMIP)
		}
		return nil
	})
	s.With(ctx, uid, func(o *Object) error {
		if o.Meta.State != StateActive || string(o.Meta.KMIP) != `{"v":1,"n":"two"}` {
			t.Errorf("version 2: %q %s", o.Meta.State, o.Meta.KMIP)
		}
		return nil
	})
	if _, err := s.Encrypt(ctx, VersionRef(uid, 1), []byte("x"), nil); !errors.Is(err, ErrNotActive) {
		t.Fatalf("encrypt with the compromised version: %v", err)
	}
	if _, err := s.Decrypt(ctx, uid, ct1, nil); err != nil {
		t.Fatalf("decrypt with the compromised version: %v", err)
	}
	// A pre-active version does not decrypt; the others still do.
	setState(1, StatePreActive)
	// (ct1 is format 1, tried with every version that may decrypt.)
	if _, err := s.Decrypt(ctx, uid, ct1, nil); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("decrypt with a pre-active version: %v", err)
	}
	if _, err := s.Decrypt(ctx, VersionRef(uid, 1), ct1, nil); !errors.Is(err, ErrNotActive) {
		t.Fatalf("decrypt with the pre-active version named: %v", err)
	}
	if p, err := s.Decrypt(ctx, uid, ct2, nil); err != nil || !bytes.Equal(p, dek2) {
		t.Fatalf("decrypt with version 2: %v", err)
	}
	vs, _ := s.Versions(ctx, uid)
	if len(vs) != 2 || vs[0].State != VersionPreActive || vs[1].State != VersionActive {
		t.Fatalf("versions: %+v", vs)
	}

	// Destroy: an Active version is refused; the newest only as the
	// last version; an older one is shredded alone.
	if err := s.DestroyKMIPVersion(ctx, uid, 2); !errors.Is(err, ErrDestroyActive) {
		t.Fatalf("destroy of the active newest version: %v", err)
	}
	setState(2, StateDeactivated)
	if err := s.DestroyKMIPVersion(ctx, uid, 2); !errors.Is(err, ErrVersionIsCurrent) {
		t.Fatalf("destroy of the newest version while version 1 exists: %v", err)
	}
	if err := s.DestroyKMIPVersion(ctx, uid, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decrypt(ctx, uid, ct1, nil); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("decrypt with a destroyed version: %v", err)
	}
	if p, err := s.Decrypt(ctx, uid, ct2, nil); err != nil || !bytes.Equal(p, dek2) {
		t.Fatalf("decrypt with version 2 after version 1 was destroyed: %v", err)
	}
	if err := s.DestroyKMIPVersion(ctx, uid, 1); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("second destroy of version 1: %v", err)
	}
	if err := s.DestroyKMIPVersion(ctx, uid, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Describe(ctx, uid); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("the key survived the destroy of its last version: %v", err)
	}
}

// KES keys: KMIP cannot destroy a version, and the usage mask of the KES
// API stays the derived one; a KMIP key's mask holds on the KES API.
func TestKESUsageMask(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	if err := s.Create(ctx, "k", "me"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HMAC(ctx, "k", []byte("m")); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyKMIPVersion(ctx, "k", 1); !errors.Is(err, ErrKESManaged) {
		t.Fatalf("KMIP destroy of a KES key: %v", err)
	}
	uid := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageDecrypt, CreatedAt: time.Now()})
	if _, err := s.HMAC(ctx, uid, []byte("m")); !errors.Is(err, ErrUsageNotAllowed) {
		t.Fatalf("hmac with a decrypt-only key: %v", err)
	}
	if _, _, err := s.Generate(ctx, uid, nil); !errors.Is(err, ErrUsageNotAllowed) {
		t.Fatalf("generate with a decrypt-only key: %v", err)
	}
}

// TestRotateKeepsRevocation: neither the KES API's rotation nor the
// schedule gives a key whose newest version is not Active a working
// version, which would undo a KMIP Revoke; KMIP Re-key does, as KMIP
// asks.
func TestRotateKeepsRevocation(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	for _, st := range []State{StateDeactivated, StateCompromised, StatePreActive} {
		uid := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageEncrypt | UsageDecrypt})
		if err := s.Update(ctx, uid, func(o *Object) error { o.Meta.State = st; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rotate(ctx, uid, "me"); !errors.Is(err, ErrNotActive) {
			t.Fatalf("%s: rotate: %v", st, err)
		}
		if n, rotated, err := s.RotateIfOlder(ctx, uid, "sched", time.Nanosecond); err != nil || rotated {
			t.Fatalf("%s: scheduled rotation: %d %v %v", st, n, rotated, err)
		}
		s.With(ctx, uid, func(o *Object) error {
			if o.Meta.State != st || len(o.Versions()) != 1 {
				t.Errorf("%s: after refused rotations: state %s, %d versions", st, o.Meta.State, len(o.Versions()))
			}
			return nil
		})
		n, err := s.RekeyKMIP(ctx, uid, "me")
		if err != nil || n != 2 {
			t.Fatalf("%s: re-key: %d %v", st, n, err)
		}
		want := StateActive
		if st == StatePreActive {
			want = StatePreActive
		}
		s.With(ctx, uid, func(o *Object) error {
			if o.Meta.State != want {
				t.Errorf("%s: after re-key: state %s, want %s", st, o.Meta.State, want)
			}
			return nil
		})
	}
}

// TestRotateOnlyGeneratedMaterial: a rotation never replaces material a
// client stored (secret data, opaque objects, keys of algorithms the
// server does not implement) with random bytes: Rotate and Re-key refuse
// it, the schedule skips it. AES and HMAC keys rotate.
func TestRotateOnlyGeneratedMaterial(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	active := func(string, *crypto.KeyVersion) (Metadata, error) { return Metadata{State: StateActive}, nil }
	secret := newKMIP(t, s, NewObject{Material: []byte("hunter2hunter2"), Meta: active})
	if _, err := s.Rotate(ctx, secret, "me"); !errors.Is(err, ErrNotRotatable) {
		t.Fatalf("rotate of secret data: %v", err)
	}
	if _, err := s.RekeyKMIP(ctx, secret, "me"); !errors.Is(err, ErrNotRotatable) {
		t.Fatalf("re-key of secret data: %v", err)
	}
	if _, rotated, err := s.RotateIfOlder(ctx, secret, "sched", time.Nanosecond); err != nil || rotated {
		t.Fatalf("scheduled rotation of secret data: %v %v", rotated, err)
	}
	err := s.With(ctx, secret, func(o *Object) error {
		if len(o.Versions()) != 1 {
			t.Errorf("secret data has %d versions", len(o.Versions()))
		}
		return o.Version.Material.Use(func(b []byte) error {
			if string(b) != "hunter2hunter2" {
				t.Error("secret data material changed")
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []NewObject{
		{Algorithm: AlgorithmAES, Bits: 128},
		{Algorithm: AlgorithmAES, Bits: 192},
		{Algorithm: AlgorithmAES, Bits: 256},
		{Algorithm: AlgorithmHMACSHA384, Bits: 384},
	} {
		spec.Meta = active
		uid := newKMIP(t, s, spec)
		if n, err := s.Rotate(ctx, uid, "me"); err != nil || n != 2 {
			t.Fatalf("%s-%d: rotate: %d %v", spec.Algorithm, spec.Bits, n, err)
		}
		if _, rotated, err := s.RotateIfOlder(ctx, uid, "sched", time.Nanosecond); err != nil || !rotated {
			t.Fatalf("%s-%d: scheduled rotation: %v %v", spec.Algorithm, spec.Bits, rotated, err)
		}
	}
}
