// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"time"

	"golang.org/x/sync/semaphore"
)

// Handling a request message takes a multiple of its size: its buffer,
// the decoded request, the TTLV tree of a KMIP 2.x message (up to about
// 13 times the message for one of many tiny items) and the answer.
// Without a bound across connections, every connection could hold the
// largest message at once. Messages of largeMessage bytes or more
// therefore share a budget of maxInflight bytes; a message waits for its
// share until its read deadline and is refused after it. Smaller
// messages, nearly all of them, are not counted and cost nothing.
const (
	largeMessage = 64 << 10
	maxInflight  = 32 << 20
)

// inflight is the budget of large messages being read or handled.
type inflight struct {
	sem   *semaphore.Weighted
	large int   // the size from which a message counts
	max   int64 // the budget; a message is charged at most this
}

func newInflight() inflight {
	return inflight{sem: semaphore.NewWeighted(maxInflight), large: largeMessage, max: maxInflight}
}

// hold charges a message of n bytes to the budget, waiting for it until
// deadline, and returns what to give back with release (0 for a small
// message).
func (b *inflight) hold(n int, deadline time.Time) (int64, error) {
	if n < b.large {
		return 0, nil
	}
	w := min(int64(n), b.max)
	if b.sem.TryAcquire(w) {
		return w, nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := b.sem.Acquire(ctx, w); err != nil {
		return 0, err
	}
	return w, nil
}

// release gives back what hold charged.
func (b *inflight) release(w int64) {
	if w > 0 {
		b.sem.Release(w)
	}
}
