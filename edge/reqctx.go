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

// guard enforces the deadlines of an HTTP/2 request with one timer. At
// the read deadline it ends a body still arriving (the handler sees
// os.ErrDeadlineExceeded and the client gets a 408), then at the write
// deadline it resets the stream. net/http's own SetReadDeadline and
// SetWriteDeadline would cost two timers and two round trips to the
// connection's goroutine per request; setting a deadline in the past, as
// the guard does when its timer fires, costs neither.
type guard struct {
	mu      sync.Mutex
	t       *time.Timer
	rc      *http.ResponseController
	body    bool      // the request has a body
	write   time.Time // the write deadline
	writing bool      // the read deadline passed; the timer now waits for the write deadline
	done    bool      // the handler returned: the response writer is no longer ours
}

func (g *guard) start(rc *http.ResponseController, body bool, read, write time.Time) {
	g.rc, g.body, g.write = rc, body, write
	g.t = time.AfterFunc(time.Until(read), g.fire)
}

func (g *guard) fire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return
	}
	past := time.Unix(1, 0)
	if !g.writing {
		if g.body {
			g.rc.SetReadDeadline(past)
		}
		g.writing = true
		g.t.Reset(time.Until(g.write))
		return
	}
	g.rc.SetWriteDeadline(past)
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
