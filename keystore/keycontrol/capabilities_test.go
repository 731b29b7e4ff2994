// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/keystore"
)

// otherNode opens a second Store on the box of first, as another node
// would: same configuration, but its own Replace locks, which in a real
// deployment live in another process.
func otherNode(t *testing.T, first *Store) *Store {
	t.Helper()
	s := openStore(t, Config{
		Endpoint: first.endpoint, VaultID: first.vaultID, BoxID: first.boxID,
		Username: first.username, Password: first.password,
		RootCAs: first.transport.TLSClientConfig.RootCAs,
		Timeout: first.timeout, RetryDelay: first.retryDelay,
	})
	s.lockNS = "other node\x00" + s.lockNS
	return s
}

func TestCapabilities(t *testing.T) {
	s := openStore(t, configFor(startEmulator(t, emulator.Config{})))
	c := keystore.CapabilitiesOf(s)
	if c.MaxValueSize != MaxValueSize || c.LinearizableReplace {
		t.Fatalf("Capabilities = %+v", c)
	}
	// The base64 of the largest value and a generous envelope fit in
	// what Get reads.
	if enc := (MaxValueSize + 2) / 3 * 4; enc+checkoutEnvelope > limitCheckout {
		t.Fatalf("MaxValueSize %d encodes to %d bytes, above the checkout limit", MaxValueSize, enc)
	}
}

// A refused value never reaches KeyControl.
func TestValueTooLargeSendsNothing(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	creates, puts, checkouts := em.Count("CreateSecret"), em.Count("PutSecretValue"), em.Count("CheckoutSecret")
	over := make([]byte, MaxValueSize+1)
	if err := s.Create(ctx, "big", over); !errors.Is(err, keystore.ErrValueTooLarge) {
		t.Fatalf("Create: %v", err)
	}
	if err := s.Replace(ctx, "k", []byte("v1"), over); !errors.Is(err, keystore.ErrValueTooLarge) {
		t.Fatalf("Replace: %v", err)
	}
	if em.Count("CreateSecret") != creates || em.Count("PutSecretValue") != puts || em.Count("CheckoutSecret") != checkouts {
		t.Fatal("a refused value caused requests to KeyControl")
	}
}

// TestReplaceRaceAcrossNodes shows why the store does not declare
// LinearizableReplace: two nodes that Replace one key from the same old
// value can both succeed, and the first node's change is lost. The
// emulator's hook holds the requests in the one order that does it: both
// nodes check the old value out, then node 1 stores its version and
// re-checks it before node 2 stores its own.
func TestReplaceRaceAcrossNodes(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s1 := openStore(t, configFor(em))
	s2 := otherNode(t, s1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s1.Create(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}

	var (
		puts    atomic.Int32
		p1Held  = make(chan struct{}) // node 1 has checked v0 out and is about to store
		c2Done  = make(chan struct{}) // node 2 has checked v0 out
		r1Done  = make(chan struct{}) // node 1's Replace returned
		timeout = time.After(20 * time.Second)
	)
	wait := func(ch chan struct{}) {
		select {
		case <-ch:
		case <-timeout:
		}
	}
	em.SetHook(func(action string) {
		if action != "PutSecretValue" {
			return
		}
		switch puts.Add(1) {
		case 1: // node 1 waits until node 2 has read v0
			close(p1Held)
			wait(c2Done)
		case 2: // node 2's put: its check-out is done; let node 1 finish first
			close(c2Done)
			wait(r1Done)
		}
	})
	defer em.SetHook(nil)

	var (
		wg         sync.WaitGroup
		err1, err2 error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		err1 = s1.Replace(ctx, "k", []byte("v0"), []byte("from node 1"))
		close(r1Done)
	}()
	// Node 2 starts once node 1's put is held.
	wait(p1Held)
	go func() {
		defer wg.Done()
		err2 = s2.Replace(ctx, "k", []byte("v0"), []byte("from node 2"))
	}()
	wg.Wait()
	if err1 != nil || err2 != nil {
		t.Fatalf("the race did not happen as scheduled: node 1: %v, node 2: %v", err1, err2)
	}
	got, err := s1.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "from node 2" {
		t.Fatalf("Get = %q", got)
	}
	// Both Replaces from v0 succeeded: node 1's change is lost, which a
	// linearizable Replace never allows.
}

// Within one process the name lock orders the same two Replaces: the
// second sees the first's value and gets ErrConflict.
func TestReplaceRaceInOneProcess(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s1 := openStore(t, configFor(em))
	s2 := openStore(t, configFor(em))
	ctx := context.Background()
	if err := s1.Create(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		var (
			wg   sync.WaitGroup
			errs [2]error
		)
		old := []byte("v0")
		if round > 0 {
			cur, err := s1.Get(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			old = cur
		}
		for i, s := range []*Store{s1, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Replace(ctx, "k", old, []byte{byte('a' + i), byte(round)})
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, keystore.ErrConflict):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d Replaces won", round, won)
		}
	}
}
