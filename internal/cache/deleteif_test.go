// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package cache

import (
	"context"
	"testing"
)

// TestDeleteIfSize: an entry that DeleteIf evicts leaves the Size
// counter, as one that Delete evicts does. Otherwise every reload of a
// stale key (keys.Service.refresh, which a request for a version above
// the cached ones causes) adds one to the cache size the metrics show.
func TestDeleteIfSize(t *testing.T) {
	m := &Counters{}
	c := New[int](Config{Counters: m}, nil)
	defer c.Close()
	load := func(context.Context) (int, error) { return 1, nil }
	for i := range 3 {
		if _, err := c.Get(context.Background(), "k", load); err != nil {
			t.Fatal(err)
		}
		if !c.DeleteIf("k", func(int) bool { return true }) {
			t.Fatal("DeleteIf evicted nothing")
		}
		if m.Size() != 0 || c.Len() != 0 {
			t.Fatalf("round %d: Size %d, Len %d after DeleteIf; want 0", i, m.Size(), c.Len())
		}
	}
}
