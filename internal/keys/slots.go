// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"runtime"
	"sync/atomic"
)

// workSlots bound how many CPU-heavy operations of one kind (key-pair
// generation, PBKDF2) run at once: half the cores, at least one, so that
// clients cannot take all of them with one batch. At most twice that
// many wait for a slot (a few seconds' work behind each); the next is
// refused at once with busy rather than queued until its deadline.
type workSlots struct {
	ch         chan struct{}
	waiting    atomic.Int32
	maxWaiting int32
	busy       error
}

func newWorkSlots(busy error) *workSlots {
	n := max(1, runtime.GOMAXPROCS(0)/2)
	return &workSlots{ch: make(chan struct{}, n), maxWaiting: int32(2 * n), busy: busy}
}

// acquire takes a slot: at once if one is free, otherwise as one of at
// most maxWaiting waiters, until ctx ends. Every nil return is paired
// with a release.
func (w *workSlots) acquire(ctx context.Context) error {
	select {
	case w.ch <- struct{}{}:
		return nil
	default:
	}
	if w.waiting.Add(1) > w.maxWaiting {
		w.waiting.Add(-1)
		return w.busy
	}
	defer w.waiting.Add(-1)
	select {
	case w.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives back a slot acquire took.
func (w *workSlots) release() { <-w.ch }
