// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package gcpace

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// MinHeadroom is the least room a heap gets before its next collection.
const MinHeadroom = 32 << 20

// defaultPercent is the runtime's GOGC default and the least Percent
// returns.
const defaultPercent = 100

// maxPercent bounds Percent for a nearly empty heap.
const maxPercent = 1000

// Interval is how often Run adjusts GOGC to the live heap.
const Interval = time.Second

// Percent returns the GOGC value that gives a heap of live bytes at least
// MinHeadroom of room before its next collection: never less than 100,
// the runtime's default, nor more than 1000.
func Percent(live uint64) int {
	if live == 0 {
		return maxPercent
	}
	p := (uint64(MinHeadroom)*100 + live - 1) / live
	return int(min(max(p, defaultPercent), maxPercent))
}

// Run adjusts GOGC to the live heap every Interval until ctx ends, then
// restores the value it found. If GOGC or GOMEMLIMIT is set in the
// environment, it returns at once and changes nothing.
func Run(ctx context.Context) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	run(ctx, Interval, liveHeap, debug.SetGCPercent)
}

// run is Run with its clock interval, its reading of the live heap and its
// setting of GOGC given, for tests.
func run(ctx context.Context, every time.Duration, live func() uint64, set func(int) int) {
	current := Percent(live())
	prev := set(current)
	defer set(prev)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Setting GOGC takes the heap lock: only on a change.
			if p := Percent(live()); p != current {
				set(p)
				current = p
			}
		}
	}
}

// liveHeap is the heap the last collection found live, or 0 before the
// first.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
