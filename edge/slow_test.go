// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"

	emulator "github.com/kesbridge/kes/internal/emulator/hpcs"
)

// slowTimeout is the route timeout the slow-client tests configure for
// /v1/key/generate/: far below the 15 s default, so that an answer
// within a few multiples of it proves the configured value is used.
const slowTimeout = time.Second

// slowBound is how long a slow client may wait for its answer and for
// the server to let go of the connection: the route timeout, the drain
// grace and generous slack for a loaded machine. The default route
// timeout (15 s) and an unbounded hold are both well above it.
const slowBound = 3*slowTimeout + 2*time.Second

// trickleInterval is how often a slow client sends one byte: slow
// enough that the declared 1000-byte body would take minutes, fast
// enough that a per-read idle timeout would never fire.
const trickleInterval = 250 * time.Millisecond

func slowConfig() string {
	return "api:\n  /v1/key/generate/:\n    timeout: " + slowTimeout.String() + "\n"
}

// trickleResult is what a slow client saw.
type trickleResult struct {
	proto    int
	code     int
	body     string
	answered time.Duration // until the response header arrived
	released time.Duration // until the server closed the connection or stream
}

// trickleH1 sends a PUT with a declared 1000-byte body over its own
// HTTP/1.1 connection, one byte every trickleInterval, and reads the
// answer concurrently. It fails the test if no answer arrives, or the
// connection is not closed, within slowBound.
func trickleH1(e *env, cert *tls.Certificate, path string) (trickleResult, error) {
	conf := e.clientTLS(cert)
	conf.NextProtos = []string{"http/1.1"}
	host := strings.TrimPrefix(e.url, "https://")
	conn, err := tls.Dial("tcp", host, conf)
	if err != nil {
		return trickleResult{}, err
	}
	defer conn.Close()
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", path, host); err != nil {
		return trickleResult{}, err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(trickleInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, err := conn.Write([]byte{' '}); err != nil {
					return
				}
			}
		}
	})
	defer wg.Wait()
	defer close(stop)

	conn.SetReadDeadline(start.Add(slowBound))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return trickleResult{}, fmt.Errorf("no answer within %v: %w", slowBound, err)
	}
	res := trickleResult{proto: resp.ProtoMajor, code: resp.StatusCode, answered: time.Since(start)}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return res, fmt.Errorf("reading the answer: %w", err)
	}
	res.body = string(b)
	// Whatever follows the answer, the server must close the connection.
	_, err = io.Copy(io.Discard, br)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return res, fmt.Errorf("connection still open after %v", slowBound)
	}
	res.released = time.Since(start)
	return res, nil
}

// trickleH2 is trickleH1 over an HTTP/2 stream: the server must answer
// and end the stream, so that the client stops sending the body.
func trickleH2(e *env, cert *tls.Certificate, path string) (trickleResult, error) {
	tr := &http.Transport{TLSClientConfig: e.clientTLS(cert), Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP2(true)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), slowBound)
	defer cancel()

	pr, pw := io.Pipe()
	defer pw.Close()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		t := time.NewTicker(trickleInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := pw.Write([]byte{' '}); err != nil {
					return // the transport closed the body: the stream ended
				}
			}
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, e.url+path, pr)
	if err != nil {
		return trickleResult{}, err
	}
	req.ContentLength = 1000
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return trickleResult{}, fmt.Errorf("no answer within %v: %w", slowBound, err)
	}
	defer resp.Body.Close()
	res := trickleResult{proto: resp.ProtoMajor, code: resp.StatusCode, answered: time.Since(start)}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return res, fmt.Errorf("reading the answer: %w", err)
	}
	res.body = string(b)
	<-writerDone
	if ctx.Err() != nil {
		return res, fmt.Errorf("stream still open after %v", slowBound)
	}
	res.released = time.Since(start)
	return res, nil
}

// TestTrickleBody sends request bodies one byte at a time, over HTTP/1.1
// and HTTP/2. An identity without a policy is answered 403 at once, on a
// route with the default 15 s timeout, and the server does not wait for
// the body; an allowed identity is answered 408 when the configured
// route timeout runs out. Either way the server lets go of the
// connection (HTTP/1.1) or stream (HTTP/2) well within the bound.
func TestTrickleBody(t *testing.T) {
	p := newPKI(t)
	admin, minio, stranger := newAPIKey(t), newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), slowConfig()))

	clients := []struct {
		name string
		send func(*env, *tls.Certificate, string) (trickleResult, error)
	}{{"http1", trickleH1}, {"http2", trickleH2}}
	for _, c := range clients {
		t.Run(c.name+"/denied", func(t *testing.T) {
			res, err := c.send(e, apiCert(t, stranger), "/v1/key/import/minio-key")
			if err != nil {
				t.Fatal(err)
			}
			if res.code != http.StatusForbidden || res.body != errorBody("not authorized: insufficient permissions") {
				t.Fatalf("answer: %d %q", res.code, res.body)
			}
			// Denied before the body is read: nothing waits for the body
			// or for the 15 s route deadline.
			if res.answered > 3*time.Second {
				t.Fatalf("answered after %v", res.answered)
			}
			t.Logf("HTTP/%d: answered after %v, released after %v", res.proto, res.answered, res.released)
		})
		t.Run(c.name+"/allowed", func(t *testing.T) {
			res, err := c.send(e, apiCert(t, minio), "/v1/key/generate/minio-key")
			if err != nil {
				t.Fatal(err)
			}
			if res.code != http.StatusRequestTimeout || res.body != errorBody("request body not received in time") {
				t.Fatalf("answer: %d %q", res.code, res.body)
			}
			// Within slowBound (the client's deadline), far below the
			// default route timeout of 15 s: the configured one is used.
			t.Logf("HTTP/%d: answered after %v, released after %v", res.proto, res.answered, res.released)
		})
	}
}

// TestKeepAliveAfterBody checks that a body read to its end keeps the
// HTTP/1.1 connection usable, while one that was not (a denied request)
// closes it.
func TestKeepAliveAfterBody(t *testing.T) {
	p := newPKI(t)
	admin, stranger := newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), slowConfig()))
	if err := e.kms(admin).CreateKey(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	send := func(k kes.APIKey, chunked bool) (code int, reused bool) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: e.clientTLS(apiCert(t, k)), Protocols: new(http.Protocols)}
		tr.Protocols.SetHTTP1(true)
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		for i := range 2 {
			var got httptrace.GotConnInfo
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				GotConn: func(info httptrace.GotConnInfo) { got = info },
			})
			var body io.Reader = strings.NewReader(`{"context":""}`)
			if chunked {
				// Hidden behind a plain io.Reader the length is
				// unknown, so the body is sent chunked.
				body = struct{ io.Reader }{body}
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, e.url+"/v1/key/generate/k", body)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
			if i == 1 {
				reused = got.Reused
			}
		}
		return code, reused
	}
	if code, reused := send(admin, false); code != http.StatusOK || !reused {
		t.Fatalf("allowed: %d, connection reused: %v", code, reused)
	}
	if code, reused := send(admin, true); code != http.StatusOK || !reused {
		t.Fatalf("allowed, chunked: %d, connection reused: %v", code, reused)
	}
	if code, reused := send(stranger, false); code != http.StatusForbidden || reused {
		t.Fatalf("denied: %d, connection reused: %v", code, reused)
	}
}

// TestManySlowConnections opens 50 trickling connections at once, half
// denied and half allowed: every one is answered and closed within the
// bound, and the server's goroutines return to their number before.
func TestManySlowConnections(t *testing.T) {
	p := newPKI(t)
	admin, minio, stranger := newAPIKey(t), newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), slowConfig()))
	certs := []*tls.Certificate{apiCert(t, stranger), apiCert(t, minio)}

	// One request first, so that what a first request starts once
	// (e.g. buffer pools) is part of the baseline.
	c := e.raw(certs[0])
	if r := e.do(c, http.MethodGet, "/version", nil); r.code != http.StatusOK {
		t.Fatalf("version: %d", r.code)
	}
	c.CloseIdleConnections()
	baseline := settledGoroutines()

	const n = 50
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := trickleH1(e, certs[i%2], "/v1/key/generate/minio-key")
			switch {
			case err != nil:
				errs <- fmt.Errorf("connection %d: %w", i, err)
			case res.code != http.StatusForbidden && res.code != http.StatusRequestTimeout:
				errs <- fmt.Errorf("connection %d: answer %d %q", i, res.code, res.body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= baseline {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the slow connections, %d before", got, baseline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settledGoroutines returns the goroutine count once it stopped falling,
// so that goroutines of earlier tests that are still winding down do not
// inflate the baseline.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return max(n, m)
		}
		n = m
	}
	return n
}

// TestHungKeystore stalls the HPCS emulator: every call to it hangs. The
// keystore call must give up before the route does, so that HTTP/1.1 and
// HTTP/2 clients both get a 504 with a JSON error body within the
// configured route timeout, not a closed connection or a reset stream.
func TestHungKeystore(t *testing.T) {
	em, section := hpcsSetup(t, emulator.Config{})
	p := newPKI(t)
	admin := newAPIKey(t)
	yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "")
	yaml = yaml[:strings.Index(yaml, "keystore:\n")] + "keystore:\n  ibm:\n" + section + slowConfig()
	e := startWith(t, p, admin, yaml, true)
	if err := e.kms(admin).CreateKey(context.Background(), "cold"); err != nil {
		t.Fatal(err)
	}
	em.SetLatency(time.Hour)

	for _, proto := range []string{"http1", "http2"} {
		t.Run(proto, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: e.clientTLS(apiCert(t, admin)), Protocols: new(http.Protocols)}
			if proto == "http1" {
				tr.Protocols.SetHTTP1(true)
			} else {
				tr.Protocols.SetHTTP2(true)
			}
			t.Cleanup(tr.CloseIdleConnections)
			ctx, cancel := context.WithTimeout(context.Background(), slowBound)
			defer cancel()
			// Each subtest asks for a key that is not cached, so that the
			// request reaches the stalled keystore.
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, e.url+"/v1/key/generate/cold-"+proto, nil)
			start := time.Now()
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatalf("no answer after %v: %v", time.Since(start), err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			var msg struct {
				Message string `json:"message"`
			}
			if resp.StatusCode != http.StatusGatewayTimeout || json.Unmarshal(b, &msg) != nil || msg.Message == "" {
				t.Fatalf("HTTP/%d answer: %d %q", resp.ProtoMajor, resp.StatusCode, b)
			}
			// The client's own deadline is slowBound, far below the
			// default route timeout of 15 s: the configured one is used.
			t.Logf("HTTP/%d: answered after %v", resp.ProtoMajor, time.Since(start))
			if want := map[string]int{"http1": 1, "http2": 2}[proto]; resp.ProtoMajor != want {
				t.Fatalf("answered over HTTP/%d", resp.ProtoMajor)
			}
		})
	}
}
