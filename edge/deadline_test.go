// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/keystore"
	"github.com/minio/kms-go/kes"
)

func TestAnswerMargin(t *testing.T) {
	for _, tc := range []struct{ timeout, want time.Duration }{
		{15 * time.Second, 1500 * time.Millisecond},
		{5 * time.Second, 500 * time.Millisecond},
		{time.Second, minAnswerMargin},
		{300 * time.Millisecond, 150 * time.Millisecond}, // at most half
		{time.Minute, maxAnswerMargin},
	} {
		if got := answerMargin(tc.timeout); got != tc.want {
			t.Errorf("answerMargin(%v) = %v, want %v", tc.timeout, got, tc.want)
		}
	}
}

// pipeListener hands out in-memory connections, so that a real server
// can run inside a synctest bubble.
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
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
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dialFunc opens a TLS connection to the server under test.
type dialFunc func(context.Context, *tls.Config) (*tls.Conn, error)

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "127.0.0.1:443" }

// hangStore is a keystore whose Get blocks until the caller gives up or
// the store is released.
type hangStore struct {
	*keystore.MemStore
	released chan struct{}
}

func (s hangStore) Get(ctx context.Context, _ string) ([]byte, error) {
	select {
	case <-ctx.Done():
		return nil, &keystore.UnreachableError{Store: "hang", Err: ctx.Err()}
	case <-s.released:
		return nil, &keystore.UnreachableError{Store: "hang", Err: net.ErrClosed}
	}
}

// deadlineSetup is a server config of the deadline tests, with extra
// YAML, its three clients' API keys and their TLS configs.
type deadlineSetup struct {
	p                      *pki
	admin, minio, stranger kes.APIKey
	cfg                    *Config
	// clientTLS is the TLS config of the client with key k over proto.
	// The certificates are valid now, which a synctest bubble's clock
	// (it starts in 2000) is not.
	clientTLS func(k kes.APIKey, proto string) *tls.Config
}

func newDeadlineSetup(t *testing.T, extra string) *deadlineSetup {
	t.Helper()
	p := newPKI(t)
	admin, minio, stranger := newAPIKey(t), newAPIKey(t), newAPIKey(t)
	yaml := baseConfig(p, identityOf(admin), identityOf(minio), extra)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	realNow := time.Now()
	return &deadlineSetup{p: p, admin: admin, minio: minio, stranger: stranger, cfg: cfg,
		clientTLS: func(k kes.APIKey, proto string) *tls.Config {
			return &tls.Config{
				RootCAs: p.roots, Certificates: []tls.Certificate{*apiCert(t, k)},
				ServerName: "127.0.0.1", NextProtos: []string{proto}, Time: func() time.Time { return realNow },
			}
		}}
}

// TestDeadlines runs the server over in-memory connections in a
// synctest bubble, where time is exact: with a route timeout of 5 s
// (margin 500 ms), a body trickling one byte every 2 s is answered 408
// at 4.5 s, a denied request 403 at once with its connection closed
// after drainGrace, and a hung keystore 504 at 4.5 s on HTTP/1.1 and
// HTTP/2.
func TestDeadlines(t *testing.T) {
	d := newDeadlineSetup(t, "api:\n  /v1/key/generate/:\n    timeout: 5s\n")
	admin, minio, stranger, cfg, clientTLS := d.admin, d.minio, d.stranger, d.cfg, d.clientTLS
	const timeout, early = 5 * time.Second, 4500 * time.Millisecond

	// run starts a server in a bubble and hands fn a dialer to it;
	// runWith serves with serve rather than Server.Serve.
	var runWith func(t *testing.T, serve func(*Server, net.Listener) error, fn func(t *testing.T, srv *Server, dial dialFunc))
	run := func(t *testing.T, fn func(t *testing.T, srv *Server, dial dialFunc)) {
		runWith(t, (*Server).Serve, fn)
	}
	runWith = func(t *testing.T, serve func(*Server, net.Listener) error, fn func(t *testing.T, srv *Server, dial dialFunc)) {
		synctest.Test(t, func(t *testing.T) {
			// The key service loads keys detached from the request, with
			// a timeout of its own: release the loads still hanging at
			// the end, so that the bubble ends.
			store := hangStore{keystore.NewMem(), make(chan struct{})}
			defer close(store.released)
			srv, err := NewServer(context.Background(), cfg, ServerOptions{
				OpenStore: func(context.Context, *Config, *slog.Logger) (keystore.Store, error) {
					return store, nil
				},
				HealthInterval: time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			ln := newPipeListener()
			done := make(chan struct{})
			go func() { defer close(done); serve(srv, ln) }()
			defer func() {
				srv.Shutdown(context.Background())
				<-done
			}()
			fn(t, srv, func(ctx context.Context, conf *tls.Config) (*tls.Conn, error) {
				c, err := ln.dial(ctx)
				if err != nil {
					return nil, err
				}
				tc := tls.Client(c, conf)
				if err := tc.HandshakeContext(ctx); err != nil {
					c.Close()
					return nil, err
				}
				return tc, nil
			})
		})
	}

	// trickle sends a PUT over HTTP/1.1 with a declared 1000-byte body,
	// one byte every 2 s, and returns the answer, when it came and when
	// the connection was closed.
	trickle := func(t *testing.T, dial dialFunc, k kes.APIKey, path string) (int, string, time.Duration, time.Duration) {
		conn, err := dial(context.Background(), clientTLS(k, "http/1.1"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		defer wg.Wait()
		defer close(stop)
		wg.Go(func() {
			fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: kes\r\nContent-Length: 1000\r\n\r\n", path)
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Second):
					if _, err := conn.Write([]byte{' '}); err != nil {
						return
					}
				}
			}
		})
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		answered := time.Since(start)
		b, _ := io.ReadAll(resp.Body)
		io.Copy(io.Discard, br) // until the server closes the connection
		return resp.StatusCode, string(b), answered, time.Since(start)
	}

	t.Run("trickle/allowed", func(t *testing.T) {
		run(t, func(t *testing.T, srv *Server, dial dialFunc) {
			code, body, answered, closed := trickle(t, dial, minio, "/v1/key/generate/minio-key")
			if code != http.StatusRequestTimeout || body != errorBody("request body not received in time") {
				t.Fatalf("answer: %d %q", code, body)
			}
			if answered != early || closed != early {
				t.Fatalf("answered after %v, closed after %v; want both %v", answered, closed, early)
			}
		})
	})
	t.Run("trickle/denied", func(t *testing.T) {
		run(t, func(t *testing.T, srv *Server, dial dialFunc) {
			code, body, answered, closed := trickle(t, dial, stranger, "/v1/key/generate/minio-key")
			if code != http.StatusForbidden || body != errorBody("not authorized: insufficient permissions") {
				t.Fatalf("answer: %d %q", code, body)
			}
			if answered != 0 || closed != drainGrace {
				t.Fatalf("answered after %v, closed after %v; want 0 and %v", answered, closed, drainGrace)
			}
		})
	})
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run("hung-keystore/"+proto, func(t *testing.T) {
			run(t, func(t *testing.T, srv *Server, dial dialFunc) {
				tr := &http.Transport{
					DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
						return dial(ctx, clientTLS(admin, proto))
					},
					ForceAttemptHTTP2: true,
				}
				defer tr.CloseIdleConnections()
				req, _ := http.NewRequest(http.MethodPut, "https://kes/v1/key/generate/uncached", nil)
				start := time.Now()
				resp, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					t.Fatalf("no answer after %v: %v", time.Since(start), err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusGatewayTimeout || string(b) != errorBody("failed to read key") {
					t.Fatalf("HTTP/%d answer: %d %q", resp.ProtoMajor, resp.StatusCode, b)
				}
				if d := time.Since(start); d != early || !strings.HasPrefix(resp.Proto, map[string]string{"http/1.1": "HTTP/1", "h2": "HTTP/2"}[proto]) {
					t.Fatalf("%s answered after %v; want %v, under the write deadline %v", resp.Proto, d, early, timeout)
				}
			})
		})
	}

	// A handler that is stuck past its route's write deadline has its
	// HTTP/2 stream reset then: at 5.5 s for the route with a timeout
	// of 5 s, at 16.5 s for a route with the default timeout, whose
	// deadline is the server's WriteTimeout. The same holds for the
	// Server as the handler of an embedder's http.Server, which has no
	// WriteTimeout.
	for _, tc := range []struct {
		path     string
		reset    time.Duration
		handler  string
		embedded bool
	}{
		{"/v1/key/generate/k", timeout + timeout/10, "/v1/key/generate/", false},
		{"/v1/key/describe/k", defaultTimeout + defaultTimeout/10, "/v1/key/describe/", false},
		{"/v1/key/describe/k", defaultTimeout + defaultTimeout/10, "/v1/key/describe/", true},
	} {
		name, serve := "write-deadline/h2"+tc.handler, (*Server).Serve
		hs := &http.Server{}
		if tc.embedded {
			name = "write-deadline/h2-embedded" + tc.handler
			serve = func(srv *Server, ln net.Listener) error {
				hs.Handler = srv
				return hs.Serve(tls.NewListener(ln, srv.TLSConfig()))
			}
		}
		t.Run(name, func(t *testing.T) {
			runWith(t, serve, func(t *testing.T, srv *Server, dial dialFunc) {
				defer hs.Close()
				// The handler is released once the test is done, so
				// that the bubble ends.
				release, returned := make(chan struct{}), make(chan struct{})
				defer func() { <-returned }()
				defer close(release)
				srv.cur.Load().routes[tc.handler].handle = func(c *call) {
					defer close(returned)
					select {
					case <-time.After(2 * tc.reset):
					case <-release:
					}
					writeOK(c.w)
				}
				tr := &http.Transport{
					DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
						return dial(ctx, clientTLS(admin, "h2"))
					},
					ForceAttemptHTTP2: true,
				}
				defer tr.CloseIdleConnections()
				method := http.MethodPut
				if tc.handler == "/v1/key/describe/" {
					method = http.MethodGet
				}
				req, _ := http.NewRequest(method, "https://kes"+tc.path, nil)
				start := time.Now()
				resp, err := (&http.Client{Transport: tr}).Do(req)
				if err == nil {
					resp.Body.Close()
					t.Fatalf("answered %d after %v; want the stream reset after %v", resp.StatusCode, time.Since(start), tc.reset)
				}
				if d := time.Since(start); d != tc.reset {
					t.Fatalf("stream reset after %v (%v); want %v", d, err, tc.reset)
				}
			})
		})
	}

	t.Run("stream/stuck-reader", func(t *testing.T) {
		run(t, func(t *testing.T, srv *Server, dial dialFunc) {
			conn, err := dial(context.Background(), clientTLS(admin, "http/1.1"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /v1/log/error HTTP/1.1\r\nHost: kes\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("stream: %v %v", resp, err)
			}
			// The client stops reading: the event's write blocks.
			srv.ErrorLog().Error("event")
			time.Sleep(streamWriteTimeout + time.Second)
			conn.SetReadDeadline(time.Now().Add(time.Second))
			_, err = io.Copy(io.Discard, resp.Body)
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatalf("the stream of a client that stopped reading is still open")
			}
		})
	})
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run("stream/idle/"+proto, func(t *testing.T) {
			run(t, func(t *testing.T, srv *Server, dial dialFunc) {
				tr := &http.Transport{
					DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
						return dial(ctx, clientTLS(admin, proto))
					},
					ForceAttemptHTTP2: true,
				}
				defer tr.CloseIdleConnections()
				resp, err := (&http.Client{Transport: tr}).Get("https://kes/v1/log/error")
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("stream: %v %v", resp, err)
				}
				defer resp.Body.Close()
				// Idle for longer than a write may take: the stream lives.
				time.Sleep(2 * streamWriteTimeout)
				srv.ErrorLog().Error("late event")
				line, err := bufio.NewReader(resp.Body).ReadString('\n')
				if err != nil || !strings.Contains(line, "late event") {
					t.Fatalf("%s stream after idling: %q %v", resp.Proto, line, err)
				}
			})
		})
	}
}
