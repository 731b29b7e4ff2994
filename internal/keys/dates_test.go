// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
)

// manualClock is a clock the test moves.
type manualClock struct{ unix atomic.Int64 }

func (c *manualClock) now() time.Time          { return time.Unix(c.unix.Load(), 0).UTC() }
func (c *manualClock) advance(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

// createDated stores a KMIP key (a 256-bit AES key, which the KES API
// uses too) that is Pre-Active with the given dates.
func createDated(t *testing.T, svc *keys.Service, d keys.Dates) string {
	t.Helper()
	uid, err := svc.CreateKMIP(t.Context(), keys.NewObject{
		Algorithm: keys.AlgorithmAES, Bits: 256, Mask: keys.UsageEncrypt | keys.UsageDecrypt,
		Meta: func(string, *crypto.KeyVersion) (keys.Metadata, error) {
			return keys.Metadata{State: keys.StatePreActive, KMIP: json.RawMessage(`{"v":1}`), Dates: &d}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// Two nodes on one keystore: a future Activation Date makes the key
// Active on both when it comes, and the Deactivation Date Deactivated,
// with no operation and no timer in between, and the KES API agrees
// (generate works exactly while Active; decrypt keeps working). Node b
// holds the key in its cache all along: the cached copy changes state
// too.
func TestDatesTwoNodes(t *testing.T) {
	clock := &manualClock{}
	clock.unix.Store(time.Now().Unix())
	store := keystore.NewMem()
	cc := cache.Config{Expiry: time.Hour}
	a := keys.New(keys.Config{Store: store, Now: clock.now, Cache: cc})
	b := keys.New(keys.Config{Store: nopClose{store}, Now: clock.now, Cache: cc})
	t.Cleanup(func() { b.Close(); a.Close() })

	start := clock.now()
	uid := createDated(t, a, keys.Dates{Activation: start.Add(time.Hour), Deactivation: start.Add(2 * time.Hour)})
	state := func(svc *keys.Service) keys.State {
		t.Helper()
		info, err := svc.Describe(t.Context(), uid)
		if err != nil {
			t.Fatal(err)
		}
		return info.State
	}
	for _, n := range []*keys.Service{a, b} {
		if s := state(n); s != keys.StatePreActive {
			t.Fatalf("state %v before the activation date", s)
		}
		if _, _, err := n.Generate(t.Context(), uid, nil); !errors.Is(err, keys.ErrNotActive) {
			t.Fatalf("generate before the activation date: %v", err)
		}
	}

	clock.advance(time.Hour)
	var ct []byte
	for _, n := range []*keys.Service{a, b} {
		if s := state(n); s != keys.StateActive {
			t.Fatalf("state %v at the activation date", s)
		}
		_, c, err := n.Generate(t.Context(), uid, nil)
		if err != nil {
			t.Fatalf("generate at the activation date: %v", err)
		}
		ct = c
	}

	clock.advance(time.Hour)
	for _, n := range []*keys.Service{a, b} {
		if s := state(n); s != keys.StateDeactivated {
			t.Fatalf("state %v at the deactivation date", s)
		}
		if _, _, err := n.Generate(t.Context(), uid, nil); !errors.Is(err, keys.ErrNotActive) {
			t.Fatalf("generate after the deactivation date: %v", err)
		}
		if _, err := n.Decrypt(t.Context(), uid, ct, nil); err != nil {
			t.Fatalf("decrypt after the deactivation date: %v", err)
		}
	}

	// The next change stores the state the dates brought (lazily), and
	// the clock going back does not undo it.
	if err := a.Update(t.Context(), uid, func(*keys.Object) error { return nil }); err != nil {
		t.Fatal(err)
	}
	clock.advance(-90 * time.Minute)
	if s := state(a); s != keys.StateDeactivated {
		t.Fatalf("state %v after the deactivation was stored", s)
	}
}

// The usage period: before the Process Start Date nothing decrypts, from
// the Protect Stop Date on nothing encrypts, over the KES API too.
func TestDatesUsagePeriodKES(t *testing.T) {
	clock := &manualClock{}
	clock.unix.Store(time.Now().Unix())
	svc := keys.New(keys.Config{Store: keystore.NewMem(), Now: clock.now})
	t.Cleanup(func() { svc.Close() })
	now := clock.now()
	uid := createDated(t, svc, keys.Dates{Activation: now.Add(-time.Hour), ProcessStart: now.Add(time.Hour), ProtectStop: now.Add(2 * time.Hour)})
	ct, err := svc.Encrypt(t.Context(), uid, []byte("data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Decrypt(t.Context(), uid, ct, nil); !errors.Is(err, keys.ErrNotActive) {
		t.Fatalf("decrypt before the process start date: %v", err)
	}
	clock.advance(time.Hour)
	if _, err := svc.Decrypt(t.Context(), uid, ct, nil); err != nil {
		t.Fatalf("decrypt in the period: %v", err)
	}
	clock.advance(time.Hour)
	if _, err := svc.Encrypt(t.Context(), uid, []byte("data"), nil); !errors.Is(err, keys.ErrNotActive) {
		t.Fatalf("encrypt after the protect stop date: %v", err)
	}
	if _, err := svc.HMAC(t.Context(), uid, []byte("data")); !errors.Is(err, keys.ErrNotActive) {
		t.Fatalf("HMAC after the protect stop date: %v", err)
	}
}

// Dates never reach a KES key, and dates that cannot be stored are
// refused.
func TestDatesRefusedKES(t *testing.T) {
	svc := keys.New(keys.Config{Store: keystore.NewMem()})
	t.Cleanup(func() { svc.Close() })
	if err := svc.Create(t.Context(), "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	err := svc.Update(t.Context(), "minio", func(o *keys.Object) error {
		o.Meta.Dates = &keys.Dates{Deactivation: time.Now().Add(-time.Hour)}
		return nil
	})
	if !errors.Is(err, keys.ErrKESManaged) {
		t.Fatalf("dates on a KES key: %v", err)
	}
	for _, d := range []keys.Dates{
		{Activation: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Activation: time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)},
		{Activation: time.Now(), Deactivation: time.Now().Add(-time.Second)},
	} {
		if err := d.Check(); !errors.Is(err, keys.ErrInvalidDate) {
			t.Errorf("%+v: %v", d, err)
		}
		_, err := svc.CreateKMIP(t.Context(), keys.NewObject{Algorithm: keys.AlgorithmAES, Bits: 256,
			Meta: func(string, *crypto.KeyVersion) (keys.Metadata, error) {
				return keys.Metadata{State: keys.StatePreActive, KMIP: json.RawMessage(`{"v":1}`), Dates: &d}, nil
			}})
		if !errors.Is(err, keys.ErrInvalidDate) {
			t.Errorf("create with %+v: %v", d, err)
		}
	}
}

// A rotation keeps the dates: the old version keeps its own, and the new
// one the key's, so that a key given a Deactivation Date keeps it over
// every rotation the KES API or its schedule makes.
func TestDatesRotation(t *testing.T) {
	clock := &manualClock{}
	clock.unix.Store(time.Now().Unix())
	svc := keys.New(keys.Config{Store: keystore.NewMem(), Now: clock.now})
	t.Cleanup(func() { svc.Close() })
	now := clock.now()
	uid := createDated(t, svc, keys.Dates{Activation: now.Add(-time.Minute), Deactivation: now.Add(time.Hour)})
	if _, err := svc.Rotate(t.Context(), uid, "admin"); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Hour)
	for _, name := range []string{uid, keys.VersionRef(uid, 1), keys.VersionRef(uid, 2)} {
		info, err := svc.Describe(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if info.State != keys.StateDeactivated {
			t.Errorf("%s: state %v after the deactivation date", name, info.State)
		}
	}
}

// A KMIP key stored before usage was (no Metadata.Usage, a generated
// identifier) takes dates like any KMIP key, and they act.
func TestDatesPreUsageKMIPKey(t *testing.T) {
	svc := keys.New(keys.Config{Store: keystore.NewMem()})
	t.Cleanup(func() { svc.Close() })
	const uid = "0b0e5a3c-8f5e-4c1a-9d2b-3e4f5a6b7c8d"
	v := &crypto.KeyVersion{Material: crypto.NewSecretBytes(make([]byte, 16)), CreatedAt: time.Now()}
	if err := svc.CreateObject(t.Context(), uid, v, keys.Metadata{State: keys.StatePreActive, KMIP: json.RawMessage(`{"v":1}`)}); err != nil {
		t.Fatal(err)
	}
	err := svc.Update(t.Context(), uid, func(o *keys.Object) error {
		o.Meta.Dates = &keys.Dates{Activation: time.Now().Add(-time.Minute)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := svc.Describe(t.Context(), uid); err != nil || info.State != keys.StateActive {
		t.Fatalf("state %v (%v) after a past activation date", info.State, err)
	}
}
