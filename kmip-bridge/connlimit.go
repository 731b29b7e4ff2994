// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConnections is the limit on concurrent client connections
// when Config.MaxConnections is zero.
//
// Each connection holds one file descriptor, a goroutine and its TLS
// state, plus its message while one is in flight: messages below 64 KiB
// take at most 64 MB of buffers for 1000 connections (decoding takes a
// multiple of that while it runs, up to about 13 times for a KMIP 2.x
// message of tiny items), larger ones share a budget of 32 MiB
// (inflight.go). The limit leaves ample descriptors for the HTTP
// API, the keystore and the files of a process under the smallest
// common descriptor limit (4096; the Go runtime raises the soft limit
// to the hard one, often 524288 under systemd). KMIP clients keep few
// connections each (vCenter and every vSAN host one or a few), so the
// limit is far above what a large vSphere estate opens. A connection
// that never completes its handshake gives its slot back after
// Config.HandshakeTimeout (10 s), an idle one after Config.IdleTimeout
// (5 min).
const DefaultMaxConnections = 1000

// DefaultHandshakeTimeout bounds a TLS handshake when
// Config.HandshakeTimeout is zero: a handshake takes milliseconds, and
// a connection in it holds a slot without a certificate.
const DefaultHandshakeTimeout = 10 * time.Second

// Refusals reach Config.ConnRefused (and the error log) through a token
// bucket: up to refusalBurst at once, then one per refusalInterval.
// Every refusal is counted in Server.Refused regardless.
const (
	refusalBurst    = 10
	refusalInterval = time.Second
)

// ConnRefusal is a connection refused at the connection limit, as
// Config.ConnRefused receives it.
type ConnRefusal struct {
	// Remote is the client's address (host:port).
	Remote string
	// Limit is the connection limit in force.
	Limit int
	// Suppressed is the number of refusals since the previous report
	// that were not reported one by one, because they came faster than
	// the rate limit.
	Suppressed uint64
}

// connLimit is the Server's connection limit and its refusal reports.
type connLimit struct {
	max     atomic.Int64
	refused atomic.Uint64
	report  func(ConnRefusal)

	mu     sync.Mutex // guards bucket
	bucket refusalBucket

	// handshakeTO is Config.HandshakeTimeout (zero: the default).
	handshakeTO time.Duration
	hsMu        sync.Mutex // guards hs and closing
	// hs are the admitted connections still in their TLS handshake,
	// oldest first, with the time each was admitted.
	hs []handshaking
	// closing are the connections admit closed whose serve has not
	// ended yet: their slots are already the new connections'.
	closing map[*conn]struct{}
}

// left is called when c's serve ends, after its slot is given back.
func (l *connLimit) left(c *conn) {
	l.hsMu.Lock()
	delete(l.closing, c)
	l.hsMu.Unlock()
}

// handshaking is a connection in its TLS handshake and when it was
// admitted.
type handshaking struct {
	c  *conn
	at time.Time
}

// handshakeGrace is how long a connection may be in its handshake
// before a newer one may take its slot: a client that handshakes (a few
// round trips) is never cut off, a socket that sends nothing is.
const handshakeGrace = time.Second

// maxHandshakes is the number of connections that may be in their TLS
// handshake at once under the limit n: half of it, so that connections
// without a certificate never hold more than half of the slots.
func maxHandshakes(n int64) int { return max(1, int(n/2)) }

// errNegativeMaxConnections refuses a negative Config.MaxConnections.
var errNegativeMaxConnections = errors.New("kmip: invalid config: negative maximum number of connections")

// init sets the limit and the report hook of cfg.
func (l *connLimit) init(cfg *Config) error {
	if cfg.MaxConnections < 0 {
		return errNegativeMaxConnections
	}
	l.set(cfg.MaxConnections)
	l.report = cfg.ConnRefused
	l.handshakeTO = max(0, cfg.HandshakeTimeout)
	return nil
}

func (l *connLimit) set(n int) {
	if n == 0 {
		n = DefaultMaxConnections
	}
	l.max.Store(int64(n))
}

// SetMaxConnections changes the limit on concurrent client connections;
// zero means DefaultMaxConnections, a negative n is an error. It is safe
// to call while the server runs. Open connections are never closed by
// it: under a lower limit new ones are refused until enough have ended.
func (s *Server) SetMaxConnections(n int) error {
	if n < 0 {
		return errNegativeMaxConnections
	}
	s.limit.set(n)
	return nil
}

// MaxConnections returns the limit on concurrent client connections in
// force.
func (s *Server) MaxConnections() int { return int(s.limit.max.Load()) }

// Refused returns the number of connections refused at the connection
// limit since the server was created. It does not lock: metrics read it
// on every scrape.
func (s *Server) Refused() uint64 { return s.limit.refused.Load() }

// admit reports whether the new connection c may be served when open
// are being served already. Serve calls it under s.mu, where it counts
// the connection as open, so that two listeners cannot both take the
// last slot. An admitted connection counts as in its handshake until
// handshake ends it. When maxHandshakes connections already are, or the
// limit is reached, the oldest connection in its handshake is closed to
// make room if it has been there for handshakeGrace (its slot is the new
// connection's at once, though its serve may take a moment to end).
// Otherwise a connection at the limit is refused, and one under it is
// admitted (a burst of real handshakes may hold more than half of the
// slots for a moment). Connections that open TCP and never handshake
// (they need no certificate) thus lose their slots to newer ones after
// handshakeGrace, a client that handshakes gets through such a flood,
// and established connections keep their slots.
func (s *Server) admit(c *conn, open int64) bool {
	limit := s.limit.max.Load()
	now := time.Now()
	s.limit.hsMu.Lock()
	defer s.limit.hsMu.Unlock()
	open -= int64(len(s.limit.closing))
	if open >= limit || len(s.limit.hs) >= maxHandshakes(limit) {
		switch {
		case len(s.limit.hs) > 0 && now.Sub(s.limit.hs[0].at) >= handshakeGrace:
			oldest := s.limit.hs[0].c
			s.limit.hs = s.limit.hs[1:]
			if s.limit.closing == nil {
				s.limit.closing = map[*conn]struct{}{}
			}
			s.limit.closing[oldest] = struct{}{}
			// Its Handshake returns at once; serve then gives its
			// slot back.
			oldest.raw.Close()
		case open >= limit:
			return false
		}
	}
	s.limit.hs = append(s.limit.hs, handshaking{c, now})
	return true
}

// handshake runs c's TLS handshake within the handshake timeout and then
// stops counting c as in its handshake.
func (s *Server) handshake(c *conn, tc *tls.Conn) error {
	defer func() {
		s.limit.hsMu.Lock()
		if i := slices.IndexFunc(s.limit.hs, func(h handshaking) bool { return h.c == c }); i >= 0 {
			s.limit.hs = slices.Delete(s.limit.hs, i, i+1)
		}
		s.limit.hsMu.Unlock()
	}()
	to := s.limit.handshakeTO
	if to == 0 {
		to = min(DefaultHandshakeTimeout, s.readTO)
	}
	// A deadline on the connection bounds the handshake: unlike a
	// context, it needs no goroutine to watch it.
	if err := c.raw.SetDeadline(time.Now().Add(to)); err != nil {
		return err
	}
	return tc.Handshake()
}

// refuse closes c, a connection over the limit, right after accept: a
// TLS handshake, the expensive part of a connection, is never started
// for it, and a KMIP error answer would need one (and a read of the
// client's first message, holding the very resources the limit
// protects). The client sees its connection reset, which KMIP clients
// treat as a server to retry later. The refusal is counted and, within
// the rate limit, logged and reported.
func (s *Server) refuse(c net.Conn) {
	// Reset instead of an orderly close: under a flood of connections
	// the server keeps no TIME_WAIT state for them.
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	remote := c.RemoteAddr().String()
	c.Close()
	s.limit.refused.Add(1)

	s.limit.mu.Lock()
	suppressed, ok := s.limit.bucket.take(time.Now())
	s.limit.mu.Unlock()
	if !ok {
		return
	}
	limit := s.MaxConnections()
	s.log.Warn("kmip: connection refused: connection limit reached", "remote", remote, "limit", limit, "suppressed", suppressed)
	if s.limit.report != nil {
		s.limit.report(ConnRefusal{Remote: remote, Limit: limit, Suppressed: suppressed})
	}
}

// refusalBucket rate-limits refusal reports: a token bucket of
// refusalBurst tokens, refilled by one per refusalInterval.
type refusalBucket struct {
	tokens     int
	last       time.Time // when tokens were last refilled; zero: never used
	suppressed uint64    // refusals not reported since the last report
}

// take reports whether a refusal at now may be reported and, if so, how
// many were suppressed since the previous report.
func (b *refusalBucket) take(now time.Time) (suppressed uint64, ok bool) {
	if n := now.Sub(b.last) / refusalInterval; b.last.IsZero() || n >= refusalBurst {
		b.tokens, b.last = refusalBurst, now
	} else if n > 0 {
		b.tokens = min(refusalBurst, b.tokens+int(n))
		b.last = b.last.Add(n * refusalInterval)
	}
	if b.tokens == 0 {
		b.suppressed++
		return 0, false
	}
	b.tokens--
	suppressed, b.suppressed = b.suppressed, 0
	return suppressed, true
}
