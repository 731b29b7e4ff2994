// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/keystore"
	"github.com/minio/kms-go/kes"
)

// TestDeniedStreamAnswerDeadline: the answer to a request for a log
// stream that is denied (403) or has the wrong method (405) is no
// stream, and has a write deadline like any other answer: a client that
// does not read it loses its connection (HTTP/1.1) or stream (HTTP/2)
// instead of holding the server's goroutine for as long as it likes. A
// route with the default timeout is the control case.
func TestDeniedStreamAnswerDeadline(t *testing.T) {
	d := newDeadlineSetup(t, "")
	admin, stranger, cfg, clientTLS := d.admin, d.stranger, d.cfg, d.clientTLS
	// Longer than any write deadline the server gives.
	const wait = 2*streamWriteTimeout + defaultTimeout

	for _, tc := range []struct {
		name   string
		method string
		path   string
		key    kes.APIKey
	}{
		{"denied", http.MethodGet, "/v1/log/error", stranger},
		{"wrong-method", http.MethodPut, "/v1/log/audit", admin},
		{"control-default-route", http.MethodGet, "/v1/key/describe/k", stranger},
	} {
		for _, proto := range []string{"http/1.1", "h2"} {
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					srv, err := NewServer(context.Background(), cfg, ServerOptions{
						OpenStore: func(context.Context, *Config, *slog.Logger) (keystore.Store, error) {
							return keystore.NewMem(), nil
						},
						HealthInterval: time.Hour,
					})
					if err != nil {
						t.Fatal(err)
					}
					ln := newPipeListener()
					done := make(chan struct{})
					go func() { defer close(done); srv.Serve(ln) }()
					defer func() {
						srv.Shutdown(context.Background())
						<-done
					}()
					dial := func(ctx context.Context) (net.Conn, error) {
						c, err := ln.dial(ctx)
						if err != nil {
							return nil, err
						}
						tc := tls.Client(c, clientTLS(tc.key, proto))
						if err := tc.HandshakeContext(ctx); err != nil {
							c.Close()
							return nil, err
						}
						return tc, nil
					}

					var answer func() (int, error)
					if proto == "http/1.1" {
						// The pipe has no buffer: the answer's write
						// waits for the client to read it.
						conn, err := dial(context.Background())
						if err != nil {
							t.Fatal(err)
						}
						defer conn.Close()
						fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: kes\r\nContent-Length: 0\r\n\r\n", tc.method, tc.path)
						answer = func() (int, error) {
							resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
							if err != nil {
								return 0, err
							}
							_, err = io.ReadAll(resp.Body)
							return resp.StatusCode, err
						}
					} else {
						// A stream window of one byte: the answer's body
						// waits for the client to read it.
						tr := &http.Transport{
							DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
								return dial(ctx)
							},
							ForceAttemptHTTP2: true,
							HTTP2:             &http.HTTP2Config{MaxReceiveBufferPerStream: 1},
						}
						defer tr.CloseIdleConnections()
						req, _ := http.NewRequest(tc.method, "https://kes"+tc.path, http.NoBody)
						resp, err := (&http.Client{Transport: tr}).Do(req)
						if err != nil {
							t.Fatalf("no answer headers: %v", err)
						}
						defer resp.Body.Close()
						answer = func() (int, error) {
							_, err := io.ReadAll(resp.Body)
							return resp.StatusCode, err
						}
					}
					time.Sleep(wait)
					code, err := answer()
					t.Logf("after %v: %d %v", wait, code, err)
					if err == nil {
						t.Errorf("%s %s: a %d answer was still waiting for the client after %v", tc.method, tc.path, code, wait)
					}
				})
			})
		}
	}
}
