// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/kesbridge/kes/keystore"
)

// Config controls how long entries stay cached. The zero value caches
// forever and has no offline mode.
type Config struct {
	// Expiry (cache.expiry.any) evicts an entry this long after it was
	// loaded, used or not. Zero means never.
	Expiry time.Duration

	// ExpiryUnused (cache.expiry.unused) evicts an entry that was not
	// used for this long. Zero means never.
	ExpiryUnused time.Duration

	// ExpiryOffline (cache.expiry.offline) enables offline mode: while the
	// keystore is unreachable, cached entries keep being served, expired
	// or not, until the keystore has been unreachable for this long. Zero
	// disables offline mode: entries expire as usual during an outage.
	ExpiryOffline time.Duration

	// LoadTimeout bounds one load. A load is shared by every caller that
	// asks for the same name meanwhile, so it is not tied to the context
	// of the caller that started it. Zero means 15 s.
	LoadTimeout time.Duration

	// IsUnreachable reports whether a load error means that the keystore
	// is unreachable (which switches the cache to offline). Nil means
	// keystore.IsUnreachable.
	IsUnreachable func(error) bool

	// Counters, if not nil, receive the cache's hits, misses, evictions,
	// offline serves and size.
	Counters *Counters
}

// Cache maps names to values with single-flight loading: N concurrent Gets
// of a missing name cause one load. Values that leave the cache are handed
// to the release function (which wipes key material). It is safe for
// concurrent use.
type Cache[V any] struct {
	cfg     Config
	release func(V)
	group   singleflight.Group

	mu      sync.RWMutex
	entries map[string]*entry[V]
	gen     uint64 // bumped by Delete so that loads racing with it are dropped

	offline      atomic.Bool
	offlineSince atomic.Int64 // unix nanoseconds

	stop chan struct{}
	done chan struct{}
}

type entry[V any] struct {
	value    V
	loadedAt time.Time
	lastUsed atomic.Int64 // unix nanoseconds
}

// New returns a cache and starts its eviction loop; Close stops it.
// release may be nil.
func New[V any](cfg Config, release func(V)) *Cache[V] {
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = 15 * time.Second
	}
	if cfg.IsUnreachable == nil {
		cfg.IsUnreachable = keystore.IsUnreachable
	}
	if release == nil {
		release = func(V) {}
	}
	c := &Cache[V]{
		cfg:     cfg,
		release: release,
		entries: map[string]*entry[V]{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go c.evictLoop()
	return c
}

// Get returns the cached value for name, loading it with load on a miss.
// While the cache is offline (see SetOffline) it serves what it holds
// without loading; a load that fails because the keystore is unreachable
// switches it offline and serves the stale entry, if offline mode is on.
func (c *Cache[V]) Get(ctx context.Context, name string, load func(context.Context) (V, error)) (V, error) {
	return c.Load(ctx, name, func(ctx context.Context, _ string) (V, error) { return load(ctx) })
}

// Load is Get with a load function that is told the name. One function
// made once serves every name, so that a hit allocates nothing: a
// closure over the name would escape to the load, and be made on every
// call.
func (c *Cache[V]) Load(ctx context.Context, name string, load func(ctx context.Context, name string) (V, error)) (V, error) {
	now := time.Now()
	c.mu.RLock()
	e, ok := c.entries[name]
	c.mu.RUnlock()
	if ok && c.fresh(e, now) {
		e.lastUsed.Store(now.UnixNano())
		c.cfg.Counters.hit()
		return e.value, nil
	}
	if ok && c.servingOffline(now) {
		e.lastUsed.Store(now.UnixNano())
		c.cfg.Counters.offlineServe()
		return e.value, nil
	}
	c.cfg.Counters.miss()

	ch := c.group.DoChan(name, func() (any, error) {
		c.mu.RLock()
		gen := c.gen
		cur, ok := c.entries[name]
		c.mu.RUnlock()
		// A load that finished between this caller's miss and DoChan
		// has left its entry: take it. Without this, callers racing
		// for a cold key would read it from the keystore twice.
		if ok && cur != e && c.fresh(cur, time.Now()) {
			return cur, nil
		}

		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LoadTimeout)
		defer cancel()
		v, err := load(lctx, name)
		if err != nil {
			if c.cfg.IsUnreachable(err) {
				c.SetOffline(true)
			}
			return nil, err
		}
		if c.offline.Load() {
			c.SetOffline(false) // a successful load proves the keystore is back
		}
		n := &entry[V]{value: v, loadedAt: time.Now()}
		n.lastUsed.Store(n.loadedAt.UnixNano())

		c.mu.Lock()
		if c.gen != gen || c.entries == nil {
			// Deleted or closed meanwhile: hand the value to the callers
			// waiting for it, but do not cache it. Release it once they
			// are done with it; a straggler gets an error and retries.
			c.mu.Unlock()
			time.AfterFunc(c.cfg.LoadTimeout, func() { c.release(v) })
			return n, nil
		}
		old, hadOld := c.entries[name]
		c.entries[name] = n
		c.mu.Unlock()
		if hadOld {
			c.release(old.value)
		} else {
			c.cfg.Counters.resize(1)
		}
		return n, nil
	})

	var zero V
	select {
	case <-ctx.Done():
		return zero, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			if ok && c.servingOffline(time.Now()) {
				e.lastUsed.Store(time.Now().UnixNano())
				c.cfg.Counters.offlineServe()
				return e.value, nil
			}
			return zero, r.Err
		}
		return r.Val.(*entry[V]).value, nil
	}
}

// Delete evicts name and releases its value.
func (c *Cache[V]) Delete(name string) {
	c.mu.Lock()
	c.gen++
	e, ok := c.entries[name]
	delete(c.entries, name)
	c.mu.Unlock()
	if ok {
		c.cfg.Counters.resize(-1)
		c.release(e.value)
	}
}

// Clear evicts every entry.
func (c *Cache[V]) Clear() {
	c.mu.Lock()
	c.gen++
	entries := c.entries
	c.entries = map[string]*entry[V]{}
	c.mu.Unlock()
	c.cfg.Counters.resize(-len(entries))
	for _, e := range entries {
		c.release(e.value)
	}
}

// Len returns the number of cached entries.
func (c *Cache[V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// SetOffline records whether the keystore is reachable. The service's
// health check calls it; failed and successful loads call it too.
func (c *Cache[V]) SetOffline(offline bool) {
	if offline {
		if c.offline.CompareAndSwap(false, true) {
			c.offlineSince.Store(time.Now().UnixNano())
		}
		return
	}
	c.offline.Store(false)
}

// Offline reports whether the keystore was last seen unreachable.
func (c *Cache[V]) Offline() bool { return c.offline.Load() }

// Close stops the eviction loop and releases every entry.
func (c *Cache[V]) Close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	<-c.done
	c.mu.Lock()
	entries := c.entries
	c.entries = nil
	c.gen++
	c.mu.Unlock()
	c.cfg.Counters.resize(-len(entries))
	for _, e := range entries {
		c.release(e.value)
	}
}

func (c *Cache[V]) fresh(e *entry[V], now time.Time) bool {
	return now.Before(c.staleAt(e))
}

// staleAt is when e stops being fresh: Expiry after it was loaded or
// ExpiryUnused after it was last used, whichever comes first.
func (c *Cache[V]) staleAt(e *entry[V]) time.Time {
	at := time.Unix(1<<62, 0)
	if c.cfg.Expiry > 0 {
		at = e.loadedAt.Add(c.cfg.Expiry)
	}
	if c.cfg.ExpiryUnused > 0 {
		if u := time.Unix(0, e.lastUsed.Load()).Add(c.cfg.ExpiryUnused); u.Before(at) {
			at = u
		}
	}
	return at
}

// keep reports whether the eviction loop keeps e. With offline mode on, a
// stale entry stays for ExpiryOffline: if the keystore turns out to be
// unreachable when it is next needed, it is what the cache serves.
func (c *Cache[V]) keep(e *entry[V], now time.Time) bool {
	return now.Before(c.staleAt(e).Add(c.cfg.ExpiryOffline))
}

// servingOffline reports whether stale entries may be served now.
func (c *Cache[V]) servingOffline(now time.Time) bool {
	return c.cfg.ExpiryOffline > 0 && c.offline.Load() &&
		now.UnixNano()-c.offlineSince.Load() < int64(c.cfg.ExpiryOffline)
}

// evictLoop releases entries that can no longer be served, so that key
// material does not linger in memory past its expiry.
func (c *Cache[V]) evictLoop() {
	defer close(c.done)
	interval := time.Second
	for _, d := range []time.Duration{c.cfg.Expiry, c.cfg.ExpiryUnused, c.cfg.ExpiryOffline} {
		if d > 0 && d/4 < interval {
			interval = max(d/4, 10*time.Millisecond)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			if c.servingOffline(now) {
				continue
			}
			c.evict(now)
		}
	}
}

// evictBatch is how many entries evict checks per hold of the read lock.
const evictBatch = 1024

// evict releases the entries that can no longer be served at now. It
// looks for them under the read lock, given up after every evictBatch
// entries, and takes the write lock only to remove the ones it found:
// a pass over 100,000 entries takes tens of milliseconds, and under the
// write lock every Get would wait for it, once a second.
func (c *Cache[V]) evict(now time.Time) {
	type due struct {
		name string
		e    *entry[V]
	}
	var found []due
	c.mu.RLock()
	n := 0
	// The map is read once: Clear and Close replace it, and what this
	// pass found in the old one is checked against the current one below.
	// Entries added or removed while the lock is given up may or may not
	// be seen, as in any range over a map that changes; the next pass
	// sees them.
	for name, e := range c.entries {
		if !c.keep(e, now) {
			found = append(found, due{name, e})
		}
		if n++; n%evictBatch == 0 {
			c.mu.RUnlock()
			c.mu.RLock()
		}
	}
	c.mu.RUnlock()
	if len(found) == 0 {
		return
	}
	var dead []V
	c.mu.Lock()
	for _, d := range found {
		// Still the entry this pass found, and still due: a Get may have
		// used it meanwhile, and a load replaced it.
		if cur, ok := c.entries[d.name]; ok && cur == d.e && !c.keep(cur, now) {
			dead = append(dead, cur.value)
			delete(c.entries, d.name)
		}
	}
	c.mu.Unlock()
	c.cfg.Counters.resize(-len(dead))
	c.cfg.Counters.evict(len(dead))
	for _, v := range dead {
		c.release(v)
	}
}
