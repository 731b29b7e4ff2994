// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
)

// reqCtx is the context of a request: the one net/http gave it, ended
// early by the route's deadline, and holding chi's route context. It
// exists so that a request costs one context and no timer: the timer of
// the deadline is made only when somebody waits for it (Done, Err or a
// context derived from it), which requests served from the cache never
// do. Deadline reports it without a timer.
type reqCtx struct {
	parent   context.Context
	x        *request
	deadline time.Time // set by the route's middleware before any use; zero: none

	mu     sync.Mutex
	real   context.Context // parent with the deadline, once made
	cancel context.CancelFunc
}

// ctx returns the context with the deadline, making it on first use.
func (c *reqCtx) ctx() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real == nil {
		if c.deadline.IsZero() {
			c.real = c.parent
		} else {
			c.real, c.cancel = context.WithDeadline(c.parent, c.deadline)
		}
	}
	return c.real
}

func (c *reqCtx) Deadline() (time.Time, bool) {
	d, ok := c.parent.Deadline()
	if c.deadline.IsZero() || (ok && d.Before(c.deadline)) {
		return d, ok
	}
	return c.deadline, true
}

func (c *reqCtx) Done() <-chan struct{} { return c.ctx().Done() }

func (c *reqCtx) Err() error { return c.ctx().Err() }

// Value answers chi's key itself; any other goes to the context with the
// deadline, so that context.Cause and derived contexts see it.
func (c *reqCtx) Value(key any) any {
	if key == chi.RouteCtxKey {
		return c.x.rctx
	}
	return c.ctx().Value(key)
}

// end releases the deadline's timer, if one was made.
func (c *reqCtx) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
}

// guard is the read deadline of an HTTP/2 request body. net/http's
// SetReadDeadline would cost a timer and a round trip to the
// connection's goroutine per request; the guard's timer, when it fires,
// sets a deadline in the past, which costs neither and ends the body at
// once: the handler's read fails with os.ErrDeadlineExceeded and the
// client gets a 408. (A body that has ended is not affected.) The write
// deadline stays net/http's: it must outlive the handler, which flushes
// the answer after it returns.
type guard struct {
	mu   sync.Mutex
	t    *time.Timer
	rc   *http.ResponseController
	done bool // the handler returned: the response writer is no longer ours
}

func (g *guard) start(rc *http.ResponseController, read time.Time) {
	g.rc = rc
	g.t = time.AfterFunc(time.Until(read), g.fire)
}

func (g *guard) fire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done {
		g.rc.SetReadDeadline(time.Unix(1, 0))
	}
}

// stop ends the guard before the handler returns: net/http reuses the
// response writer after that.
func (g *guard) stop() {
	if g.t == nil {
		return
	}
	g.t.Stop()
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
}
