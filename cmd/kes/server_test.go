// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/kesbridge/kes/edge"
	"github.com/minio/kms-go/kes"
	"github.com/rogpeppe/go-internal/testscript"
)

const haveServer = true

// testServer is a dev server running in the test process.
type testServer struct {
	Addr   string // 127.0.0.1:port
	APIKey string // the admin API key

	cancel context.CancelFunc
	done   chan error
	out    *syncBuffer
	errOut *syncBuffer
}

// startServer starts a dev server (edge.Run with Dev) on a free loopback
// port with its data in dataDir, and waits until it answers.
func startServer(dataDir string) (*testServer, error) {
	return start(edge.Options{Dev: true, DataDir: dataDir})
}

// start runs edge.Run with opts on a free loopback port and waits until
// the server answers. A dev server's admin API key is taken from its
// banner.
func start(opts edge.Options) (*testServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{Addr: addr, cancel: cancel, done: make(chan error, 1), out: &syncBuffer{}, errOut: &syncBuffer{}}
	opts.Addr, opts.Stdout, opts.Stderr = addr, s.out, s.errOut
	go func() { s.done <- edge.Run(ctx, opts) }()

	apiKeyRE := regexp.MustCompile(`KES_API_KEY=(kes:v1:[A-Za-z0-9+/=]+)`)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-s.done:
			cancel()
			return nil, fmt.Errorf("server stopped: %v\n%s", err, s.errOut)
		default:
		}
		if opts.Dev {
			if m := apiKeyRE.FindStringSubmatch(s.out.String()); m != nil {
				s.APIKey = m[1]
			}
		}
		if s.ready() {
			if !opts.Dev || s.APIKey != "" {
				return s, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return nil, errors.New("server did not become ready")
}

// ready reports whether the server answers GET /version, which needs a
// TLS client certificate but no authorization.
func (s *testServer) ready() bool {
	key := s.APIKey
	if key == "" {
		k, err := kes.GenerateAPIKey(nil)
		if err != nil {
			return false
		}
		key = k.String()
	}
	client, err := (&testServer{Addr: s.Addr, APIKey: key}).Client()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = client.Version(ctx)
	return err == nil
}

// Client returns an admin client that skips server certificate checks.
func (s *testServer) Client() (*kes.Client, error) {
	key, err := kes.ParseAPIKey(s.APIKey)
	if err != nil {
		return nil, err
	}
	client, err := kes.NewClient("https://"+s.Addr, key)
	if err != nil {
		return nil, err
	}
	// The dev server's certificate is self-signed.
	client.HTTPClient.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	return client, nil
}

// Stop stops the server and waits until it is down.
func (s *testServer) Stop() {
	s.cancel()
	<-s.done
}

// cmdKESServer starts a server for the rest of the script on a free
// loopback port and sets KES_SERVER for the kes commands that follow. A
// dev server (no argument) keeps its data in $WORK/kes-data, and
// KES_API_KEY is set to its admin API key. $VARs in a config file are
// expanded from the script's environment:
//
//	kesserver [-config FILE]
func cmdKESServer(ts *testscript.TestScript, neg bool, args []string) {
	var opts edge.Options
	switch {
	case neg:
		ts.Fatalf("usage: kesserver [-config FILE]")
	case len(args) == 0:
		opts = edge.Options{Dev: true, DataDir: ts.MkAbs("kes-data")}
	case len(args) == 2 && args[0] == "-config":
		// The server runs in the test process, whose working directory
		// and environment are not the script's: expand $VARs (e.g.
		// $WORK) from the script's environment first.
		config := os.Expand(ts.ReadFile(args[1]), ts.Getenv)
		file := ts.MkAbs(args[1] + ".expanded")
		ts.Check(os.WriteFile(file, []byte(config), 0o600))
		opts = edge.Options{ConfigFile: file}
	default:
		ts.Fatalf("usage: kesserver [-config FILE]")
	}
	s, err := start(opts)
	ts.Check(err)
	ts.Defer(s.Stop)
	ts.Setenv("KES_SERVER", "https://"+s.Addr) // as the README exports it
	if opts.Dev {
		ts.Setenv("KES_API_KEY", s.APIKey)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
