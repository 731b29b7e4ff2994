// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package cache

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// fullCache returns a cache of 100,000 entries, none of which is due,
// closed when b ends.
func fullCache(b *testing.B) *Cache[int] {
	c := New[int](Config{Expiry: 5 * time.Minute, ExpiryUnused: 30 * time.Second}, nil)
	b.Cleanup(c.Close)
	load := func(context.Context, string) (int, error) { return 1, nil }
	for i := range 100_000 {
		if _, err := c.Load(context.Background(), "k-"+strconv.Itoa(i), load); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// BenchmarkEvictScan measures one pass of the eviction loop over 100,000
// entries, none of which is due: the work the loop does every second
// while the keys are in use.
func BenchmarkEvictScan(b *testing.B) {
	c := fullCache(b)
	b.ReportAllocs()
	for b.Loop() {
		c.evict(time.Now())
	}
}

// BenchmarkGetDuringEvict measures hits on one key while eviction passes
// over 100,000 entries run without pause, and reports the longest hit:
// how long a pass can hold up a request.
func BenchmarkGetDuringEvict(b *testing.B) {
	c := fullCache(b)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				c.evict(time.Now())
			}
		}
	}()
	var longest time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := c.Load(context.Background(), "k-1", func(context.Context, string) (int, error) { return 1, nil }); err != nil {
			b.Fatal(err)
		}
		longest = max(longest, time.Since(start))
	}
	close(stop)
	<-done
	b.ReportMetric(float64(longest.Microseconds()), "longest-µs")
}
