// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package cache

// DeleteIf evicts name and releases its value if stale reports true for
// the cached value. It reports whether it evicted. Unlike Delete it
// leaves a value alone that another caller has loaded meanwhile, so that
// callers that all saw one stale value evict it once, not every fresh
// value that replaces it.
func (c *Cache[V]) DeleteIf(name string, stale func(V) bool) bool {
	c.mu.Lock()
	e, ok := c.entries[name]
	if !ok || !stale(e.value) {
		c.mu.Unlock()
		return false
	}
	c.gen++
	delete(c.entries, name)
	c.mu.Unlock()
	c.cfg.Counters.resize(-1)
	c.release(e.value)
	return true
}
