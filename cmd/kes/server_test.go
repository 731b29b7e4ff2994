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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{Addr: addr, cancel: cancel, done: make(chan error, 1), out: &syncBuffer{}, errOut: &syncBuffer{}}
	go func() {
		s.done <- edge.Run(ctx, edge.Options{Addr: addr, Dev: true, DataDir: dataDir, Stdout: s.out, Stderr: s.errOut})
	}()

	// The banner prints the admin API key; then the server must answer.
	apiKeyRE := regexp.MustCompile(`KES_API_KEY=(kes:v1:[A-Za-z0-9+/=]+)`)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-s.done:
			cancel()
			return nil, fmt.Errorf("server stopped: %v\n%s", err, s.errOut)
		default:
		}
		if m := apiKeyRE.FindStringSubmatch(s.out.String()); m != nil {
			s.APIKey = m[1]
			if s.ready() {
				return s, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return nil, errors.New("server did not become ready")
}

func (s *testServer) ready() bool {
	client, err := s.Client()
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

// cmdKESServer starts a dev server for the rest of the script and sets
// KES_SERVER and KES_API_KEY for the kes commands that follow:
//
//	kesserver
func cmdKESServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: kesserver")
	}
	s, err := startServer(ts.MkAbs("kes-data"))
	ts.Check(err)
	ts.Defer(s.Stop)
	ts.Setenv("KES_SERVER", s.Addr)
	ts.Setenv("KES_API_KEY", s.APIKey)
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
