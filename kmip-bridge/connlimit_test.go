// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// refusals collects what Config.ConnRefused receives.
type refusals struct {
	mu   sync.Mutex
	list []ConnRefusal
}

func (r *refusals) add(e ConnRefusal) {
	r.mu.Lock()
	r.list = append(r.list, e)
	r.mu.Unlock()
}

func (r *refusals) get() []ConnRefusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ConnRefusal(nil), r.list...)
}

// waitFor waits until cond holds, for events of the real network (a
// closed connection reaching the server) that no synctest bubble can
// wait for.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// discover runs a Discover Versions on c and fails the test unless it
// succeeds.
func discover(t *testing.T, c net.Conn) {
	t.Helper()
	resp := send(t, c, request(kmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}))
	wantOK(t, resp.BatchItem[0])
}

// The N+1th connection is refused before its handshake and counted;
// the N open ones keep working; closing one frees its slot.
func TestConnLimit(t *testing.T) {
	var got refusals
	e := newEnv(t, func(c *Config) { c.MaxConnections = 2; c.ConnRefused = got.add })
	if n := e.srv.MaxConnections(); n != 2 {
		t.Fatalf("MaxConnections = %d, want 2", n)
	}
	a, b := e.raw(e.client), e.raw(e.client)
	discover(t, a)
	discover(t, b)

	// Refused at accept: the client's handshake fails, no TLS alert.
	if _, err := tls.Dial("tcp", e.addr, e.tlsConfig(&e.client)); err == nil {
		t.Fatal("the third connection was accepted over a limit of 2")
	}
	if n := e.srv.Refused(); n != 1 {
		t.Fatalf("Refused = %d, want 1", n)
	}
	r := got.get()
	if len(r) != 1 || r[0].Limit != 2 || r[0].Suppressed != 0 {
		t.Fatalf("reports = %+v, want one at limit 2", r)
	}
	if host, _, err := net.SplitHostPort(r[0].Remote); err != nil || host != "127.0.0.1" {
		t.Fatalf("report remote = %q, want 127.0.0.1:port", r[0].Remote)
	}
	// The open connections are not affected.
	discover(t, a)
	discover(t, b)
	if n := e.srv.Connections(); n != 2 {
		t.Fatalf("Connections = %d, want 2", n)
	}

	a.Close()
	waitFor(t, "the closed connection gives its slot back", func() bool { return e.srv.Connections() == 1 })
	c := e.raw(e.client)
	discover(t, c)
	discover(t, b)
	if n := e.srv.Refused(); n != 1 {
		t.Fatalf("Refused = %d after a slot was freed, want 1", n)
	}
}

// A connection that fails its handshake, is reset by its client, or
// whose message makes the server panic gives its slot back.
func TestConnLimitSlotsReturn(t *testing.T) {
	panicking := func(c *Config) {
		c.Keys, c.Policies, c.Users = nil, nil, nil
		c.State = func() (*State, func()) { panic("state failed") }
	}
	for _, tt := range []struct {
		name string
		opts []envOption
		// use occupies the only slot and leaves; it may leave the
		// connection open (the server must close it).
		use func(t *testing.T, e *env)
	}{
		{"no client certificate", nil, func(t *testing.T, e *env) {
			if !e.refused(nil) {
				t.Fatal("a client without certificate was served")
			}
		}},
		{"not TLS", nil, func(t *testing.T, e *env) {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// The server ends the connection by itself.
			if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the server kept a failed handshake open")
			}
		}},
		{"client reset", nil, func(t *testing.T, e *env) {
			c := e.raw(e.client)
			discover(t, c)
			tcp := c.NetConn().(*net.TCPConn)
			tcp.SetLinger(0)
			tcp.Close()
		}},
		{"panic", []envOption{panicking}, func(t *testing.T, e *env) {
			c := e.raw(e.client)
			resp := send(t, c, request(kmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}))
			wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)
			// The connection survives the panic, and still holds
			// its slot until it closes.
			if n := e.srv.Connections(); n != 1 {
				t.Fatalf("Connections = %d after the panic, want 1", n)
			}
			c.Close()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]envOption{func(c *Config) { c.MaxConnections = 1 }}, tt.opts...)
			e := newEnv(t, opts...)
			for range 3 {
				tt.use(t, e)
				waitFor(t, "the slot is given back", func() bool { return e.srv.Connections() == 0 })
			}
			if n := e.srv.Refused(); n != 0 {
				t.Fatalf("Refused = %d, want 0: a slot leaked", n)
			}
			if tt.name == "panic" {
				return
			}
			discover(t, e.raw(e.client))
		})
	}
}

// Raising and lowering the limit on a running server takes effect for
// the next connection and never closes an open one.
func TestSetMaxConnections(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnections = 1 })
	a := e.raw(e.client)
	if _, err := tls.Dial("tcp", e.addr, e.tlsConfig(&e.client)); err == nil {
		t.Fatal("a second connection was accepted over a limit of 1")
	}
	if err := e.srv.SetMaxConnections(2); err != nil {
		t.Fatal(err)
	}
	b := e.raw(e.client)
	discover(t, b)
	if err := e.srv.SetMaxConnections(1); err != nil {
		t.Fatal(err)
	}
	// Over the lower limit: both stay open, a third is refused.
	discover(t, a)
	discover(t, b)
	if _, err := tls.Dial("tcp", e.addr, e.tlsConfig(&e.client)); err == nil {
		t.Fatal("a connection was accepted over the lowered limit")
	}
	if n := e.srv.Refused(); n != 2 {
		t.Fatalf("Refused = %d, want 2", n)
	}
	if err := e.srv.SetMaxConnections(0); err != nil || e.srv.MaxConnections() != DefaultMaxConnections {
		t.Fatalf("SetMaxConnections(0) = %v, limit %d; want the default %d", err, e.srv.MaxConnections(), DefaultMaxConnections)
	}
	discover(t, e.raw(e.client))
	if err := e.srv.SetMaxConnections(-1); err == nil || e.srv.MaxConnections() != DefaultMaxConnections {
		t.Fatalf("SetMaxConnections(-1) = %v, limit %d; want an error and no change", err, e.srv.MaxConnections())
	}
}

func TestMaxConnectionsConfig(t *testing.T) {
	p := testPKI(t)
	ks := keys.New(keys.Config{Store: keystore.NewMem()})
	defer ks.Close()
	cfg := Config{
		Keys:      ks,
		Policies:  func() *policy.Set { return nil },
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{p.server}},
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.MaxConnections(); n != DefaultMaxConnections {
		t.Fatalf("zero MaxConnections gives %d, want the default %d", n, DefaultMaxConnections)
	}
	cfg.MaxConnections = -1
	if _, err := New(cfg); err == nil {
		t.Fatal("a negative MaxConnections was accepted")
	}
}

// pipeListener hands out in-memory connections, so that a real server
// runs inside a synctest bubble.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// dial returns the client end of a new connection the server accepts.
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

// bubbleServer runs a bridge on a pipeListener inside the calling
// synctest bubble and returns it with a function that dials it over TLS
// with the client certificate of the test PKI.
func bubbleServer(t *testing.T, now time.Time, cfg Config) (*Server, *pipeListener, func() *tls.Conn) {
	t.Helper()
	p := testPKI(t)
	client := p.issue(t, "client", false)
	ks := keys.New(keys.Config{Store: keystore.NewMem()})
	cfg.Keys = ks
	cfg.Policies = func() *policy.Set {
		return &policy.Set{
			Policies:   map[string]*policy.Policy{"kmip": {Allow: []string{"/kmip/*"}}},
			Identities: map[string]string{idOf(client): "kmip"},
		}
	}
	cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{p.server}}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := newPipeListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != ErrServerClosed {
			t.Errorf("serve: %v", err)
		}
		ks.Close()
	})
	e := &env{pki: p}
	dial := func() *tls.Conn {
		conf := e.tlsConfig(&client)
		// The certificates are valid in real time, not in the bubble's.
		conf.Time = func() time.Time { return now }
		c := tls.Client(ln.dial(), conf)
		if err := c.Handshake(); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return srv, ln, dial
}

// An idle connection, or one that never completes its handshake, gives
// its slot back at its timeout.
func TestConnLimitTimeouts(t *testing.T) {
	testPKI(t) // outside the bubble: the shared CA is valid in real time
	now := time.Now()
	synctest.Test(t, func(t *testing.T) {
		srv, ln, dial := bubbleServer(t, now, Config{MaxConnections: 1})

		c := dial()
		discover(t, c)
		start := time.Now()
		synctest.Wait()
		if n := srv.Connections(); n != 1 {
			t.Fatalf("Connections = %d, want 1", n)
		}
		// The only slot is taken: refused at accept.
		refused := ln.dial()
		defer refused.Close()
		if _, err := refused.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read on a connection over the limit: %v, want EOF", err)
		}
		if n := srv.Refused(); n != 1 {
			t.Fatalf("Refused = %d, want 1", n)
		}
		// The idle connection ends at the idle timeout, not earlier.
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read on the idle connection succeeded")
		}
		if d := time.Since(start); d != DefaultIdleTimeout {
			t.Fatalf("idle connection closed after %v, want %v", d, DefaultIdleTimeout)
		}
		synctest.Wait()
		if n := srv.Connections(); n != 0 {
			t.Fatalf("Connections = %d after the idle timeout, want 0", n)
		}

		// A client silent in its handshake holds the slot for the
		// handshake timeout.
		silent := ln.dial()
		defer silent.Close()
		start = time.Now()
		if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read on the silent connection: %v, want EOF", err)
		}
		if d := time.Since(start); d != DefaultHandshakeTimeout {
			t.Fatalf("silent connection closed after %v, want %v", d, DefaultHandshakeTimeout)
		}
		synctest.Wait()
		if n := srv.Connections(); n != 0 {
			t.Fatalf("Connections = %d after the handshake timeout, want 0", n)
		}
		discover(t, dial())
		if n := srv.Refused(); n != 1 {
			t.Fatalf("Refused = %d, want 1", n)
		}
	})
}

// A flood of connections over the limit is counted one by one but
// reported (audited) at most refusalBurst times at once and then once a
// second; each report says how many were left out before it.
func TestConnLimitFloodReports(t *testing.T) {
	testPKI(t) // outside the bubble: the shared CA is valid in real time
	now := time.Now()
	synctest.Test(t, func(t *testing.T) {
		var got refusals
		srv, ln, dial := bubbleServer(t, now, Config{MaxConnections: 1, ConnRefused: got.add})
		holder := dial()

		flood := func(n int) {
			for range n {
				ln.dial().Close()
			}
			synctest.Wait()
		}
		flood(1000)
		if n := srv.Refused(); n != 1000 {
			t.Fatalf("Refused = %d, want 1000", n)
		}
		r := got.get()
		if len(r) != refusalBurst {
			t.Fatalf("%d reports for a flood of 1000 at once, want %d", len(r), refusalBurst)
		}
		for _, e := range r {
			if e.Suppressed != 0 || e.Limit != 1 || e.Remote != "pipe" {
				t.Fatalf("report %+v, want limit 1 from pipe and nothing suppressed", e)
			}
		}

		// Three seconds later, three more reports; the first counts
		// the refusals left out.
		time.Sleep(3 * refusalInterval)
		flood(100)
		r = got.get()
		if len(r) != refusalBurst+3 {
			t.Fatalf("%d reports after three seconds, want %d", len(r), refusalBurst+3)
		}
		if s := r[refusalBurst].Suppressed; s != 1000-refusalBurst {
			t.Fatalf("first report after the pause says %d suppressed, want %d", s, 1000-refusalBurst)
		}
		var total uint64
		for _, e := range r {
			total += 1 + e.Suppressed
		}
		if pending := srv.Refused() - total; pending != 100-3 {
			t.Fatalf("%d refusals neither reported nor counted as suppressed, want 97", pending)
		}

		// The slot holder never noticed.
		discover(t, holder)
		if n := srv.Connections(); n != 1 {
			t.Fatalf("Connections = %d, want 1", n)
		}
	})
}

func TestRefusalBucket(t *testing.T) {
	var b refusalBucket
	t0 := time.Unix(1e9, 0)
	take := func(at time.Duration) (uint64, bool) { return b.take(t0.Add(at)) }
	for i := range refusalBurst {
		if s, ok := take(0); !ok || s != 0 {
			t.Fatalf("take %d of the burst = %d, %v", i, s, ok)
		}
	}
	if _, ok := take(refusalInterval / 2); ok {
		t.Fatal("a report over the burst within the first interval")
	}
	if s, ok := take(refusalInterval); !ok || s != 1 {
		t.Fatalf("take after one interval = %d, %v; want 1 suppressed", s, ok)
	}
	if _, ok := take(refusalInterval); ok {
		t.Fatal("two reports in one interval after the burst")
	}
	// A long quiet time refills the whole burst, no more.
	for i := range refusalBurst {
		if _, ok := take(time.Hour); !ok {
			t.Fatalf("take %d after an hour refused", i)
		}
	}
	if s, ok := take(time.Hour); ok {
		t.Fatalf("take over the refilled burst = %d, %v", s, ok)
	}
}
