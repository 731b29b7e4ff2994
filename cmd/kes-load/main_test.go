// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kesbridge/kes/edge"
)

// The load tool drives a real server (dev config, real TLS on 127.0.0.1)
// with each HTTP operation and reports what it measured.
func TestHTTPLoad(t *testing.T) {
	ctx := context.Background()
	cfg, apiKey, err := edge.DevConfig("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := edge.NewServer(ctx, cfg, edge.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	go srv.Serve(cl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	t.Setenv("KES_SERVER", "https://"+ln.Addr().String())
	t.Setenv("KES_API_KEY", apiKey.String())

	okLine := regexp.MustCompile(`(?m)^HTTP [a-z+ ]+[^:]*: (\d+) ok, (\d+) failed`)
	for _, op := range []string{"generate", "decrypt", "bulk-decrypt", "mixed"} {
		t.Run(op, func(t *testing.T) {
			var out bytes.Buffer
			err := run([]string{"-k", "--op", op, "-c", "2", "-d", "20s", "-n", "200"}, &out)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			m := okLine.FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("no result line in:\n%s", out.String())
			}
			ok, _ := strconv.Atoi(m[1])
			failed, _ := strconv.Atoi(m[2])
			if ok != 200 || failed != 0 {
				t.Fatalf("%d ok, %d failed; want 200 ok (the request bound) and none failed:\n%s", ok, failed, out.String())
			}
		})
	}
	// The method: 64 concurrent requests over 4 HTTP/2
	// connections, so the server sees 4 connections, not one.
	t.Run("Connections", func(t *testing.T) {
		before := cl.accepted.Load()
		var out bytes.Buffer
		if err := run([]string{"-k", "-c", "64", "--connections", "4", "-d", "20s", "-n", "512"}, &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		if n := cl.accepted.Load() - before; n != 4 {
			t.Fatalf("server accepted %d connections; want 4:\n%s", n, out.String())
		}
	})
	t.Run("BadArguments", func(t *testing.T) {
		for _, args := range [][]string{{"-c", "0"}, {"-d", "1h"}, {"-n", "0"}, {"--connections", "0"}, {"--batch", "1001"}, {"--op", "nope", "-k", "-n", "1"}} {
			if err := run(args, &bytes.Buffer{}); err == nil {
				t.Errorf("run(%q) succeeded", args)
			}
		}
	})
}

// countingListener counts the connections the server accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}
