// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package cache

import "sync/atomic"

// Counters count what caches do, for metrics. Several caches may share
// one (the server hands the same Counters to the cache of every config
// it loads, so that a reload does not reset them). A nil *Counters
// counts nothing. All methods are safe for concurrent use.
type Counters struct {
	hits, misses, evictions, offline atomic.Uint64
	size                             atomic.Int64
}

// Hits is the number of Gets answered with a fresh cached value.
func (c *Counters) Hits() uint64 { return c.hits.Load() }

// Misses is the number of Gets that had to load the value.
func (c *Counters) Misses() uint64 { return c.misses.Load() }

// Evictions is the number of entries the eviction loop removed because
// they expired.
func (c *Counters) Evictions() uint64 { return c.evictions.Load() }

// OfflineServes is the number of Gets answered with an expired value
// because the keystore was unreachable (offline mode).
func (c *Counters) OfflineServes() uint64 { return c.offline.Load() }

// Size is the number of entries cached right now, over all caches.
func (c *Counters) Size() int64 { return c.size.Load() }

// The recorders below do nothing on a nil *Counters.

func (c *Counters) hit() {
	if c != nil {
		c.hits.Add(1)
	}
}

func (c *Counters) miss() {
	if c != nil {
		c.misses.Add(1)
	}
}

func (c *Counters) offlineServe() {
	if c != nil {
		c.offline.Add(1)
	}
}

func (c *Counters) evict(n int) {
	if c != nil && n > 0 {
		c.evictions.Add(uint64(n))
	}
}

func (c *Counters) resize(d int) {
	if c != nil && d != 0 {
		c.size.Add(int64(d))
	}
}
