// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"sync"
	"time"
)

// opContext returns the context of one operation's keystore calls: ctx
// ended at the latest ReadTimeout from now. The returned function
// releases it and must be called when the operation is done.
//
// The deadline's timer is made only when something waits for it (Done,
// Err, a context derived from it, context.Cause): an operation served
// from the key cache never does, and a Get from the cache then costs no
// timer. Deadline reports the deadline without one.
func (s *Server) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	c := new(opCtx)
	s.initOpCtx(c, ctx)
	return c, c.end
}

// initOpCtx makes c, a zero opCtx, what opContext returns, for a caller
// that holds it in memory of its own and calls c.end when done: the
// hottest operation (Get) then allocates neither it nor a CancelFunc.
func (s *Server) initOpCtx(c *opCtx, ctx context.Context) {
	c.parent, c.deadline = ctx, time.Now().Add(s.readTO)
}

// opCtx is the context opContext returns.
type opCtx struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex
	real   context.Context // parent with the deadline, once made
	cancel context.CancelFunc
	ended  bool
}

// ctx returns the context with the deadline, making it on first use; one
// first asked for after end is already canceled.
func (c *opCtx) ctx() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real == nil {
		c.real, c.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.ended {
			c.cancel()
		}
	}
	return c.real
}

// Deadline is the earlier of the parent's deadline and the operation's.
func (c *opCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// Done makes the deadline's timer.
func (c *opCtx) Done() <-chan struct{} { return c.ctx().Done() }

// Err makes the deadline's timer, so that it reports the deadline once
// passed.
func (c *opCtx) Err() error { return c.ctx().Err() }

// Value answers the bridge's own keys from the parent: they carry no
// cancellation. Any other key goes to the context with the deadline, so
// that context.Cause and contexts derived from this one see it.
func (c *opCtx) Value(key any) any {
	switch key.(type) {
	case messageKey, sessionKey, userKey:
		return c.parent.Value(key)
	}
	return c.ctx().Value(key)
}

// end releases the deadline's timer, if one was made, and cancels the
// context.
func (c *opCtx) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	if c.cancel != nil {
		c.cancel()
	}
}
