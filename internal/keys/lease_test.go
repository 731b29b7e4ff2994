// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
)

// capStore declares the Capabilities the test wants, whatever the
// wrapped store declares, and lets one node's Close leave the shared
// store open for the other.
type capStore struct {
	keystore.Store
	linearizable bool
	onCreate     func(name string) // called before Create, if set
	leaseCreates atomic.Int32
}

func (s *capStore) Capabilities() keystore.Capabilities {
	return keystore.Capabilities{LinearizableReplace: s.linearizable}
}

func (s *capStore) Create(ctx context.Context, name string, value []byte) error {
	if IsReserved(name) {
		s.leaseCreates.Add(1)
	}
	if s.onCreate != nil {
		s.onCreate(name)
	}
	return s.Store.Create(ctx, name, value)
}

func (s *capStore) Close() error { return nil }

// twoNodes returns two services on one in-memory store that is declared
// not linearizable, so that Update takes leases.
func twoNodes(t *testing.T) (a, b *Service, store *capStore) {
	t.Helper()
	store = &capStore{Store: keystore.NewMem()}
	a, b = New(Config{Store: store}), New(Config{Store: store})
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b, store
}

// leaseNames returns the lease records and markers in store.
func leaseNames(t *testing.T, store keystore.Store) []string {
	t.Helper()
	names, err := store.List(context.Background(), LeasePrefix)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// setEntry is an Update that records who wrote last.
func setEntry(who string) func(o *Object) error {
	return func(o *Object) error {
		o.Meta.KMIP, _ = json.Marshal(who)
		return nil
	}
}

func lastWriter(t *testing.T, s *Service, name string) string {
	t.Helper()
	value, err := s.store.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	o, err := decode(name, value)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Version.Destroy()
	var who string
	json.Unmarshal(o.Meta.KMIP, &who)
	return who
}

// A node that died holding a lease (and never released it) blocks the
// key until the lease expires; then another node takes it over.
func TestLeaseTakeoverAfterExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		a, b, store := twoNodes(t)
		if err := a.Create(ctx, "k", "me"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.leases.acquire(ctx, "k"); err != nil { // and a dies
			t.Fatal(err)
		}
		start := time.Now()
		if err := b.Update(ctx, "k", setEntry("b")); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < defaultLeaseTTL {
			t.Fatalf("b changed the key after %v, while a's lease was live", waited)
		}
		if waited := time.Since(start); waited > defaultLeaseTTL+2*leaseMaxBackoff {
			t.Fatalf("b waited %v for a lease of %v", waited, defaultLeaseTTL)
		}
		if got := lastWriter(t, b, "k"); got != "b" {
			t.Fatalf("last writer %q", got)
		}
		base := leaseBase("k")
		if names := leaseNames(t, store); !slices.Equal(names, []string{base + "0", base + "1", base + "1-done"}) {
			t.Fatalf("lease records: %v", names)
		}
	})
}

// A holder that stalls past its lease (a long GC pause, a hung request)
// cannot write once another node may have taken the lease over: its
// change fails and the other node's change stays.
func TestLeaseExpiredHolderCannotWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		a, b, _ := twoNodes(t)
		if err := a.Create(ctx, "k", "me"); err != nil {
			t.Fatal(err)
		}
		var errA, errB error
		var wg sync.WaitGroup
		wg.Go(func() {
			errA = a.Update(ctx, "k", func(o *Object) error {
				time.Sleep(defaultLeaseTTL + 5*time.Second) // stalls past the expiry
				return setEntry("a")(o)
			})
		})
		wg.Go(func() {
			time.Sleep(time.Second) // a holds the lease by now
			errB = b.Update(ctx, "k", setEntry("b"))
		})
		wg.Wait()
		if errB != nil {
			t.Fatal(errB)
		}
		if !errors.Is(errA, errLeaseEnding) || !errors.Is(errA, ErrKeyBusy) {
			t.Fatalf("the stalled holder's update returned %v", errA)
		}
		if got := lastWriter(t, b, "k"); got != "b" {
			t.Fatalf("last writer %q: the stalled holder wrote after the takeover", got)
		}
	})
}

// Waiting for a busy key ends with the caller's context, with ErrKeyBusy.
func TestLeaseBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, _ := twoNodes(t)
		if err := a.Create(context.Background(), "k", "me"); err != nil {
			t.Fatal(err)
		}
		_, release, err := a.leases.acquire(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		defer release(true)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = b.Update(ctx, "k", setEntry("b"))
		if !errors.Is(err, ErrKeyBusy) {
			t.Fatalf("update of a busy key: %v", err)
		}
		if got := lastWriter(t, b, "k"); got != "" {
			t.Fatalf("a busy key was changed by %q", got)
		}
	})
}

// A node that listed long ago creates a record of a higher epoch while a
// fresh node creates epoch 0: the fresh node sees the other record when
// it checks and does not take the lease, and only takes it once the
// other record expires.
func TestLeaseStaleCreatorIsSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		a, _, store := twoNodes(t)
		if err := a.Create(ctx, "k", "me"); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		stale := leaseBase("k") + "7"
		store.onCreate = func(name string) {
			if IsReserved(name) && name != stale {
				once.Do(func() {
					v, _ := json.Marshal(leaseValue{Key: "k", Holder: "stale", Expires: time.Now().Add(defaultLeaseTTL)})
					if err := store.Store.Create(ctx, stale, v); err != nil {
						t.Error(err)
					}
				})
			}
		}
		start := time.Now()
		if err := a.Update(ctx, "k", setEntry("a")); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < defaultLeaseTTL {
			t.Fatalf("the lease was taken after %v, while another node's record was live", waited)
		}
	})
}

// On a store with a linearizable Replace, Update takes no lease.
func TestNoLeaseWhenLinearizable(t *testing.T) {
	ctx := context.Background()
	store := &capStore{Store: keystore.NewMem(), linearizable: true}
	s := New(Config{Store: store})
	defer s.Close()
	if err := s.Create(ctx, "k", "me"); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, "k", setEntry("a")); err != nil {
		t.Fatal(err)
	}
	if n := store.leaseCreates.Load(); n != 0 {
		t.Fatalf("%d lease records created on a linearizable store", n)
	}

	store.linearizable = false
	s2 := New(Config{Store: store})
	defer s2.Close()
	if err := s2.Update(ctx, "k", setEntry("b")); err != nil {
		t.Fatal(err)
	}
	if n := store.leaseCreates.Load(); n != 2 {
		t.Fatalf("%d lease records created for one update on a store that is not linearizable, want a record and its marker", n)
	}
}

// A lease record under a valid key name would be a key: none is. Every
// name is one that every driver accepts: at most 86 characters (HPCS
// aliases) of [0-9a-z-], no dot (fs, PKCS#11 directory).
func TestLeaseNamesAreReserved(t *testing.T) {
	for _, key := range []string{"k", "my-key", string(make([]byte, 80))} {
		base := leaseBase(key)
		for _, name := range []string{recordName(base, 0), recordName(base, math.MaxUint64), markerName(base, math.MaxUint64)} {
			if !IsReserved(name) || policy.ValidName(name) || len(name) > 86 || strings.Trim(name, "0123456789abcdefghijklmnopqrstuvwxyz-") != "" {
				t.Fatalf("lease name %q for key %q", name, key)
			}
		}
	}
	names, _ := withoutReserved([]string{"a", LeasePrefix + "x-0", "b"}, nil)
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("withoutReserved: %v", names)
	}
}

// stuckStore answers a Get of a key only when the caller's context ends,
// as a driver whose request timed out does.
type stuckStore struct{ *capStore }

func (s stuckStore) Get(ctx context.Context, name string) ([]byte, error) {
	if IsReserved(name) {
		return s.capStore.Get(ctx, name)
	}
	<-ctx.Done()
	return nil, &keystore.UnreachableError{Store: "test", Err: ctx.Err()}
}

// An Update or Delete whose lease runs out (a slow keystore) reports
// ErrKeyBusy, which the front doors answer with "try again", not an
// internal error.
func TestLeaseRunsOutIsBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &capStore{Store: keystore.NewMem()}
		setup := New(Config{Store: store})
		defer setup.Close()
		if err := setup.Create(ctx, "k", "me"); err != nil {
			t.Fatal(err)
		}
		s := New(Config{Store: stuckStore{store}})
		defer s.Close()
		err := s.Update(ctx, "k", setEntry("a"))
		if !errors.Is(err, ErrKeyBusy) {
			t.Fatalf("update whose lease ran out: %v", err)
		}
		// The caller's own deadline stays a timeout.
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := s.Update(tctx, "k", setEntry("a")); errors.Is(err, ErrKeyBusy) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("update whose caller's context ended: %v", err)
		}
	})
}

// Delete takes the key's lease: while another node holds it, the key is
// not deleted and the caller hears ErrKeyBusy.
func TestDeleteTakesLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, store := twoNodes(t)
		if err := a.Create(context.Background(), "k", "me"); err != nil {
			t.Fatal(err)
		}
		_, release, err := a.leases.acquire(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Delete(ctx, "k"); !errors.Is(err, ErrKeyBusy) {
			t.Fatalf("delete of a key whose lease another node holds: %v", err)
		}
		if _, err := store.Get(context.Background(), "k"); err != nil {
			t.Fatalf("the key is gone: %v", err)
		}
		release(true)
		if err := b.Delete(context.Background(), "k"); err != nil {
			t.Fatalf("delete once the lease is released: %v", err)
		}
	})
}

// Each release collects the names of older epochs: however many changes
// a key sees, it keeps the records and markers of its newest two epochs.
func TestLeaseCollects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		a, b, store := twoNodes(t)
		if err := a.Create(ctx, "k", "me"); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			s := a
			if i%2 == 1 {
				s = b
			}
			if err := s.Update(ctx, "k", setEntry(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		base := leaseBase("k")
		want := []string{recordName(base, 18), markerName(base, 18), recordName(base, 19), markerName(base, 19)}
		slices.Sort(want)
		if names := leaseNames(t, store); !slices.Equal(names, want) {
			t.Fatalf("lease names after 20 changes: %v, want %v", names, want)
		}
	})
}
