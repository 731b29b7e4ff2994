// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package gcpace

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 1000},
		{1 << 20, 1000},        // 32 MB of room would be 3200 %
		{4 << 20, 800},         // the runtime's smallest heap goal
		{8 << 20, 400},         // collected at 40 MB, not 16 MB
		{10 << 20, 320},        // rounded up: never less room than MinHeadroom
		{32 << 20, 100},        // as much room as live: the default
		{200 << 20, 100},       // a large heap grows as by default
		{MinHeadroom - 1, 101}, // just below: rounded up
	} {
		if got := Percent(c.live); got != c.want {
			t.Errorf("Percent(%d) = %d; want %d", c.live, got, c.want)
		}
	}
}

// run follows the live heap, sets GOGC only when the value changes, and
// restores the previous value when it ends.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var live atomic.Uint64
		live.Store(8 << 20)
		var sets []int
		gogc := 100
		set := func(p int) int {
			sets = append(sets, p)
			prev := gogc
			gogc = p
			return prev
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			run(ctx, time.Second, live.Load, set)
		}()
		synctest.Wait()
		if gogc != 400 {
			t.Fatalf("GOGC %d at the start; want 400", gogc)
		}
		time.Sleep(time.Second) // same heap: no change
		synctest.Wait()
		live.Store(64 << 20)
		time.Sleep(time.Second)
		synctest.Wait()
		if gogc != 100 {
			t.Fatalf("GOGC %d for a heap of 64 MB; want 100", gogc)
		}
		cancel()
		<-done
		if want := []int{400, 100, 100}; len(sets) != len(want) || sets[0] != want[0] || sets[1] != want[1] || sets[2] != want[2] {
			t.Fatalf("GOGC set to %v; want %v (start, change, restore)", sets, want)
		}
	})
}

// An operator's GOGC or GOMEMLIMIT is left alone: Run returns at once.
func TestRunLeavesOperatorSettings(t *testing.T) {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, "200")
			if env == "GOMEMLIMIT" {
				t.Setenv(env, "1GiB")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			Run(ctx) // would block until ctx ends if it paced
		})
	}
}
