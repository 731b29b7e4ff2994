// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package cache

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// TestCounters checks each counter against what the cache did: misses
// load, hits do not, expired entries are evicted, offline mode serves
// expired entries, and Size follows the entries of every cache that
// shares the Counters.
func TestCounters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Counters{}
		c := New[int](Config{Expiry: time.Minute, ExpiryOffline: time.Hour, Counters: m}, nil)
		other := New[int](Config{Counters: m}, nil)
		ctx := context.Background()
		loads := 0
		load := func(context.Context) (int, error) { loads++; return loads, nil }
		down := func(context.Context) (int, error) { return 0, &keystore.UnreachableError{Store: "test"} }

		c.Get(ctx, "a", load) // miss
		c.Get(ctx, "a", load) // hit
		c.Get(ctx, "b", load) // miss
		other.Get(ctx, "x", load)
		if m.Misses() != 3 || m.Hits() != 1 || m.Size() != 3 || loads != 3 {
			t.Fatalf("after gets: misses %d hits %d size %d loads %d", m.Misses(), m.Hits(), m.Size(), loads)
		}
		c.Delete("b")
		if m.Size() != 2 {
			t.Fatalf("size after delete: %d", m.Size())
		}

		// Expired, and the keystore is down: offline mode serves it.
		time.Sleep(2 * time.Minute)
		if _, err := c.Get(ctx, "a", down); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, "a", down); err != nil {
			t.Fatal(err)
		}
		if m.OfflineServes() != 2 || m.Evictions() != 0 {
			t.Fatalf("offline: serves %d evictions %d", m.OfflineServes(), m.Evictions())
		}

		// Back online, the expired entry is evicted.
		c.SetOffline(false)
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if m.Evictions() != 1 || m.Size() != 1 {
			t.Fatalf("after expiry: evictions %d size %d", m.Evictions(), m.Size())
		}
		c.Close()
		other.Close()
		if m.Size() != 0 {
			t.Fatalf("size after close: %d", m.Size())
		}
	})
}
