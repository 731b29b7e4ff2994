// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package cache

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/keystore"
)

type value struct {
	name     string
	released atomic.Bool
}

func newCache(t *testing.T, cfg Config) *Cache[*value] {
	t.Helper()
	c := New(cfg, func(v *value) { v.released.Store(true) })
	t.Cleanup(c.Close)
	return c
}

// eventually waits until cond holds, failing the test after a few
// seconds: background work (the eviction loop, a release timer) runs on
// its own schedule, which a busy machine stretches.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSingleFlight(t *testing.T) {
	c := newCache(t, Config{})
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (*value, error) {
		loads.Add(1)
		<-release
		return &value{name: "k"}, nil
	}
	const n = 50
	var wg sync.WaitGroup
	results := make([]*value, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get(context.Background(), "k", load)
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}()
	}
	// Let the goroutines pile up on the one load, then finish it.
	for loads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if got := loads.Load(); got != 1 {
		t.Fatalf("%d concurrent Gets caused %d loads, want 1", n, got)
	}
	for _, v := range results {
		if v != results[0] {
			t.Fatal("concurrent Gets returned different values")
		}
	}
	if _, err := c.Get(context.Background(), "k", load); err != nil || loads.Load() != 1 {
		t.Fatalf("cached Get loaded again (loads=%d, err=%v)", loads.Load(), err)
	}
}

func TestLoadErrorNotCached(t *testing.T) {
	c := newCache(t, Config{})
	boom := errors.New("boom")
	if _, err := c.Get(context.Background(), "k", func(context.Context) (*value, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	v, err := c.Get(context.Background(), "k", func(context.Context) (*value, error) { return &value{}, nil })
	if err != nil || v == nil {
		t.Fatalf("Get after a failed load: %v", err)
	}
}

func TestExpiryAny(t *testing.T) {
	c := newCache(t, Config{Expiry: 50 * time.Millisecond})
	var loads atomic.Int32
	load := func(context.Context) (*value, error) { loads.Add(1); return &value{}, nil }
	first, _ := c.Get(context.Background(), "k", load)
	eventually(t, "expired entry was not released by the eviction loop", first.released.Load)
	second, _ := c.Get(context.Background(), "k", load)
	if second == first || loads.Load() != 2 {
		t.Fatalf("Get after expiry did not reload (loads=%d)", loads.Load())
	}
}

func TestExpiryUnused(t *testing.T) {
	c := newCache(t, Config{ExpiryUnused: 300 * time.Millisecond})
	load := func(context.Context) (*value, error) { return &value{}, nil }
	used, _ := c.Get(context.Background(), "used", load)
	idle, _ := c.Get(context.Background(), "idle", load)
	deadline := time.Now().Add(900 * time.Millisecond)
	for time.Now().Before(deadline) {
		if v, _ := c.Get(context.Background(), "used", load); v != used {
			t.Fatal("an entry in use was evicted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !idle.released.Load() {
		t.Fatal("an unused entry was not evicted")
	}
	if used.released.Load() {
		t.Fatal("an entry in use was released")
	}
}

func TestOffline(t *testing.T) {
	c := newCache(t, Config{Expiry: 50 * time.Millisecond, ExpiryOffline: 400 * time.Millisecond})
	down := &keystore.UnreachableError{Store: "test", Err: errors.New("connection refused")}
	var failing atomic.Bool
	var loads atomic.Int32
	load := func(context.Context) (*value, error) {
		loads.Add(1)
		if failing.Load() {
			return nil, down
		}
		return &value{}, nil
	}
	cached, err := c.Get(context.Background(), "k", load)
	if err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	time.Sleep(60 * time.Millisecond) // past Expiry, but the loop may not have run yet

	// The first stale Get tries the keystore, sees it down and serves the
	// cached value; later Gets serve it without trying.
	for range 5 {
		v, err := c.Get(context.Background(), "k", load)
		if err != nil || v != cached {
			t.Fatalf("offline Get: %v (same value: %v)", err, v == cached)
		}
	}
	if !c.Offline() {
		t.Fatal("cache did not switch to offline")
	}
	if _, err := c.Get(context.Background(), "uncached", load); !keystore.IsUnreachable(err) {
		t.Fatalf("offline Get of an uncached key: %v, want unreachable", err)
	}
	time.Sleep(100 * time.Millisecond)
	if cached.released.Load() {
		t.Fatal("entry released while offline mode serves it")
	}
	// After ExpiryOffline the entry goes.
	time.Sleep(500 * time.Millisecond)
	if _, err := c.Get(context.Background(), "k", load); err == nil {
		t.Fatal("stale entry served after the offline expiry")
	}
	// Recovery: the keystore comes back and loads work again by themselves.
	failing.Store(false)
	if _, err := c.Get(context.Background(), "k", load); err != nil {
		t.Fatalf("Get after recovery: %v", err)
	}
	if c.Offline() {
		t.Fatal("cache still offline after a successful load")
	}
}

func TestOfflineDisabled(t *testing.T) {
	c := newCache(t, Config{Expiry: 30 * time.Millisecond})
	var failing atomic.Bool
	load := func(context.Context) (*value, error) {
		if failing.Load() {
			return nil, &keystore.UnreachableError{Store: "test"}
		}
		return &value{}, nil
	}
	c.Get(context.Background(), "k", load)
	failing.Store(true)
	time.Sleep(50 * time.Millisecond)
	if _, err := c.Get(context.Background(), "k", load); err == nil {
		t.Fatal("expired entry served without offline mode")
	}
}

func TestDeleteRacingLoad(t *testing.T) {
	c := newCache(t, Config{LoadTimeout: 100 * time.Millisecond})
	started, finish := make(chan struct{}), make(chan struct{})
	stale := &value{name: "stale"}
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		c.Get(context.Background(), "k", func(context.Context) (*value, error) {
			close(started)
			<-finish
			return stale, nil
		})
	}()
	<-started
	c.Delete("k") // the key was deleted while its old value was loading
	close(finish)
	<-loaded // else the next Get could join the racing load
	v, _ := c.Get(context.Background(), "k", func(context.Context) (*value, error) { return &value{name: "fresh"}, nil })
	if v.name != "fresh" {
		t.Fatal("a load that raced with Delete was cached")
	}
	eventually(t, "the uncached value of a racing load was never released", stale.released.Load)
}

func TestCallerContext(t *testing.T) {
	c := newCache(t, Config{})
	block := make(chan struct{})
	defer close(block)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err := c.Get(ctx, "k", func(context.Context) (*value, error) { <-block; return &value{}, nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
}

func TestClose(t *testing.T) {
	c := New(Config{}, func(v *value) { v.released.Store(true) })
	v, _ := c.Get(context.Background(), "k", func(context.Context) (*value, error) { return &value{}, nil })
	c.Close()
	c.Close() // idempotent
	if !v.released.Load() {
		t.Fatal("Close did not release entries")
	}
}

// TestOneLoadPerExpiry checks that however many Gets race for a name,
// the cache loads it once per expiry: a Get that missed while another
// one's load was finishing must take the new entry, not load again.
func TestOneLoadPerExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			keys    = 200
			callers = 16
			expiry  = time.Minute
		)
		c := New[*value](Config{Expiry: expiry}, nil)
		defer c.Close()
		var loads [keys]atomic.Int32
		round := func() {
			var wg sync.WaitGroup
			for k := range keys {
				name := "k" + strconv.Itoa(k)
				for range callers {
					wg.Go(func() {
						_, err := c.Get(context.Background(), name, func(context.Context) (*value, error) {
							loads[k].Add(1)
							runtime.Gosched() // let the other callers pile up behind
							return &value{name: name}, nil
						})
						if err != nil {
							t.Error(err)
						}
					})
				}
			}
			wg.Wait()
		}
		for want := int32(1); want <= 3; want++ {
			round()
			for k := range keys {
				if n := loads[k].Load(); n != want {
					t.Fatalf("key %d: %d loads after %d expiries, want %d", k, n, want-1, want)
				}
			}
			time.Sleep(expiry) // the bubble's clock: the entries expire
		}
	})
}

// TestLoadHit checks that Load tells the load function its name, and
// that a hit with a load function made once allocates nothing.
func TestLoadHit(t *testing.T) {
	c := New[string](Config{}, nil)
	defer c.Close()
	ctx := context.Background()
	load := func(_ context.Context, name string) (string, error) { return "value of " + name, nil }
	v, err := c.Load(ctx, "k", load)
	if err != nil || v != "value of k" {
		t.Fatalf("Load: %q %v", v, err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if v, _ := c.Load(ctx, "k", load); v != "value of k" {
			t.Fatalf("hit: %q", v)
		}
	}); n != 0 {
		t.Errorf("a hit allocates %v times; want 0", n)
	}
}

// TestEvictPass runs eviction passes by hand over more entries than one
// hold of the read lock checks: every due entry is removed and released
// once, and an entry loaded again after it was due is kept.
func TestEvictPass(t *testing.T) {
	c := newCache(t, Config{Expiry: time.Hour, ExpiryUnused: 10 * time.Minute})
	ctx := context.Background()
	const n = 3*evictBatch + 7
	vals := make([]*value, n)
	for i := range vals {
		name := "k-" + strconv.Itoa(i)
		v, err := c.Get(ctx, name, func(context.Context) (*value, error) { return &value{name: name}, nil })
		if err != nil {
			t.Fatal(err)
		}
		vals[i] = v
	}
	c.evict(time.Now())
	if c.Len() != n {
		t.Fatalf("a pass before any expiry left %d of %d entries", c.Len(), n)
	}
	// Half of the entries are used in 20 minutes, when the others are
	// unused for too long.
	later := time.Now().Add(20 * time.Minute)
	c.mu.RLock()
	for i := 0; i < n; i += 2 {
		c.entries["k-"+strconv.Itoa(i)].lastUsed.Store(later.UnixNano())
	}
	c.mu.RUnlock()
	c.evict(later)
	if c.Len() != (n+1)/2 {
		t.Fatalf("%d entries left; want %d", c.Len(), (n+1)/2)
	}
	for i, v := range vals {
		if v.released.Load() != (i%2 == 1) {
			t.Fatalf("entry %d: released %v", i, v.released.Load())
		}
	}
	c.evict(later.Add(time.Hour))
	if c.Len() != 0 {
		t.Fatalf("%d entries left after they all expired", c.Len())
	}
	for i, v := range vals {
		if !v.released.Load() {
			t.Fatalf("entry %d was not released", i)
		}
	}
}
