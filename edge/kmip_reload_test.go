// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/keystore"
)

// kmipSection describes the kmip part of a test config.
type kmipSection struct {
	addr      string // kmip.address; empty: no kmip section
	cert, key string // the server certificate; empty: the pki's
	ca        string // the client CAs; empty: the pki's
	denyGet   bool   // deny /kmip/get/* to the client
	keysDir   string // the fs keystore; empty: the pki's
	idle      string // kmip.timeout.idle; empty: the default
}

// kmipEnv is a server with a KMIP bridge and a client identity that its
// kmip policy names.
type kmipEnv struct {
	*env
	client tls.Certificate
	n      int // config files written
}

// closeCheckStore shares one in-memory store across reloads, like a
// remote keystore, but fails every call made after its Close: a request
// that runs on a key service the reload already closed shows up as an
// error.
type closeCheckStore struct {
	*keystore.MemStore
	closed atomic.Bool
}

var errUsedAfterClose = errors.New("keystore used after close")

func (s *closeCheckStore) Create(ctx context.Context, name string, v []byte) error {
	if s.closed.Load() {
		return errUsedAfterClose
	}
	return s.MemStore.Create(ctx, name, v)
}

func (s *closeCheckStore) Get(ctx context.Context, name string) ([]byte, error) {
	if s.closed.Load() {
		return nil, errUsedAfterClose
	}
	return s.MemStore.Get(ctx, name)
}

func (s *closeCheckStore) List(ctx context.Context, prefix string) ([]string, error) {
	if s.closed.Load() {
		return nil, errUsedAfterClose
	}
	return s.MemStore.List(ctx, prefix)
}

func (s *closeCheckStore) Close() error {
	s.closed.Store(true)
	return nil
}

// sharedMem returns an OpenStore that gives every state a new
// closeCheckStore over one in-memory store.
func sharedMem() func(context.Context, *Config, *slog.Logger) (keystore.Store, error) {
	mem := keystore.NewMem()
	return func(context.Context, *Config, *slog.Logger) (keystore.Store, error) {
		return &closeCheckStore{MemStore: mem}, nil
	}
}

// startKMIPEnv starts a server with the kmip section k and its bridge.
// open is the server's OpenStore; nil opens the configured fs keystore.
func startKMIPEnv(t *testing.T, k kmipSection, open func(context.Context, *Config, *slog.Logger) (keystore.Store, error)) *kmipEnv {
	t.Helper()
	p := newPKI(t)
	e := &kmipEnv{env: &env{t: t, pki: p, admin: newAPIKey(t), stdout: &syncBuffer{}, stderr: &syncBuffer{}}}
	e.client = p.issue(t, "", "", x509.ExtKeyUsageClientAuth, nil)
	cfg := e.config(k)
	opts := ServerOptions{Stdout: e.stdout, Stderr: e.stderr, HealthInterval: time.Hour, OpenStore: open}
	srv, err := NewServer(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	e.srv = srv
	if err := srv.StartKMIP(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// config writes a config file with the kmip section k and reads it.
func (e *kmipEnv) config(k kmipSection) *Config {
	e.t.Helper()
	p := e.pki
	extra := ""
	if k.addr != "" {
		cert, key, ca := p.certFile, p.keyFile, p.caFile
		if k.cert != "" {
			cert, key = k.cert, k.key
		}
		if k.ca != "" {
			ca = k.ca
		}
		extra = "kmip:\n  address: " + k.addr + "\n  tls:\n    key: " + key + "\n    cert: " + cert + "\n    ca: " + ca + "\n"
		if k.idle != "" {
			extra += "  timeout:\n    idle: " + k.idle + "\n"
		}
	}
	yaml := baseConfig(p, identityOf(e.admin), identityOf(newAPIKey(e.t)), extra)
	kmipPolicy := "  kmip:\n    allow: [/kmip/*]\n"
	if k.denyGet {
		kmipPolicy += "    deny: [/kmip/get/*]\n"
	}
	kmipPolicy += "    identities: [" + string(identity.FromCertificate(e.client.Leaf)) + "]\n"
	yaml = strings.Replace(yaml, "policy:\n", "policy:\n"+kmipPolicy, 1)
	if k.keysDir != "" {
		yaml = strings.Replace(yaml, filepath.Join(p.dir, "keys"), k.keysDir, 1)
	}
	e.n++
	file := filepath.Join(e.t.TempDir(), fmt.Sprintf("config-%d.yaml", e.n))
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cfg, err := ReadConfig(file)
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

// reload reloads the server with the kmip section k.
func (e *kmipEnv) reload(k kmipSection) error {
	e.t.Helper()
	return e.srv.Reload(context.Background(), e.config(k))
}

// kmipConn is an ovh kmipclient whose dialer counts the connections it
// makes (the client silently reconnects when the server closes one) and
// remembers the server certificate of the last one.
type kmipConn struct {
	*kmipclient.Client
	dials atomic.Int32
	mu    sync.Mutex
	cert  *x509.Certificate
}

func (e *kmipEnv) dial(addr string) (*kmipConn, error) {
	return e.dialAs(addr, e.client)
}

// dialAs is dial with another client certificate.
func (e *kmipEnv) dialAs(addr string, cert tls.Certificate) (*kmipConn, error) {
	c := &kmipConn{}
	conf := &tls.Config{
		RootCAs:      e.pki.roots,
		ServerName:   "127.0.0.1",
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: conf}
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		c.dials.Add(1)
		c.mu.Lock()
		c.cert = nc.(*tls.Conn).ConnectionState().PeerCertificates[0]
		c.mu.Unlock()
		return nc, nil
	}
	var err error
	c.Client, err = kmipclient.Dial(addr, kmipclient.WithDialerUnsafe(dialer))
	if err != nil {
		return nil, err
	}
	e.t.Cleanup(func() { c.Close() })
	return c, nil
}

// refusedTLS reports whether the bridge refuses a TLS session with
// cert. With TLS 1.3 the refusal shows only on the first read. It uses
// crypto/tls rather than kmipclient, which races with itself when the
// server closes a connection during its version negotiation.
func (e *kmipEnv) refusedTLS(addr string, cert tls.Certificate) bool {
	e.t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: e.pki.roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return true
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		e.t.Fatal("the bridge neither refused nor closed the session")
	}
	return err != nil
}

func (e *kmipEnv) mustDial(addr string) *kmipConn {
	e.t.Helper()
	c, err := e.dial(addr)
	if err != nil {
		e.t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}

func (e *kmipEnv) kmipAddr() string {
	e.t.Helper()
	a := e.srv.KMIPAddr()
	if a == nil {
		e.t.Fatal("no KMIP bridge")
	}
	return a.String()
}

// serverCert returns the certificate of the connection's handshake.
func (c *kmipConn) serverCert() *x509.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert
}

// sameConn fails the test if c reconnected.
func (c *kmipConn) sameConn(t *testing.T) {
	t.Helper()
	if n := c.dials.Load(); n != 1 {
		t.Fatalf("client connected %d times, want 1", n)
	}
}

func create(t *testing.T, c *kmipConn) string {
	t.Helper()
	resp, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).Exec()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return resp.UniqueIdentifier
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// runInBackground runs Run with opts until the test ends, then stops it
// and fails t if Run returned an error. The returned context lives as
// long as the server.
func runInBackground(t *testing.T, opts Options) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ctx
}

// TestKMIPReloadKeepsConnections: a client connected before reloads
// keeps its connection; each reload's policy applies to its next request.
func TestKMIPReloadKeepsConnections(t *testing.T) {
	e := startKMIPEnv(t, kmipSection{addr: "127.0.0.1:0"}, sharedMem())
	c := e.mustDial(e.kmipAddr())
	id := create(t, c)
	if _, err := c.Get(id).Exec(); err != nil {
		t.Fatalf("get before reload: %v", err)
	}

	if err := e.reload(kmipSection{addr: "127.0.0.1:0", denyGet: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(id).Exec(); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("get after a reload that denies it: %v", err)
	}
	if _, err := c.GetAttributes(id, kmip.AttributeNameState).Exec(); err != nil {
		t.Fatalf("get attributes after reload: %v", err)
	}

	if err := e.reload(kmipSection{addr: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(id).Exec(); err != nil {
		t.Fatalf("get after a reload that allows it again: %v", err)
	}
	c.sameConn(t)
}

// TestKMIPReloadKeystore: after a reload to another keystore the same
// connection works on the new one, and the old one is closed.
func TestKMIPReloadKeystore(t *testing.T) {
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	e := startKMIPEnv(t, kmipSection{addr: "127.0.0.1:0", keysDir: dirA}, nil)
	c := e.mustDial(e.kmipAddr())
	inA := create(t, c)

	if err := e.reload(kmipSection{addr: "127.0.0.1:0", keysDir: dirB}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(inA).Exec(); err == nil || !strings.Contains(err.Error(), "ItemNotFound") {
		t.Fatalf("key of the old keystore after reload: %v", err)
	}
	inB := create(t, c)
	if _, err := os.Stat(filepath.Join(dirB, inB)); err != nil {
		t.Fatalf("key created after reload is not in the new keystore: %v", err)
	}
	if _, err := c.Get(inB).Exec(); err != nil {
		t.Fatal(err)
	}
	c.sameConn(t)
}

// TestKMIPReloadCertificate: new connections get the new kmip
// certificate, the old connection keeps working.
func TestKMIPReloadCertificate(t *testing.T) {
	e := startKMIPEnv(t, kmipSection{addr: "127.0.0.1:0"}, sharedMem())
	addr := e.kmipAddr()
	old := e.mustDial(addr)
	id := create(t, old)
	first := old.serverCert()

	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "kmip.crt"), filepath.Join(dir, "kmip.key")
	next := e.pki.issue(t, certFile, keyFile, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err := e.reload(kmipSection{addr: "127.0.0.1:0", cert: certFile, key: keyFile}); err != nil {
		t.Fatal(err)
	}
	if got := e.kmipAddr(); got != addr {
		t.Fatalf("bridge moved from %s to %s", addr, got)
	}
	fresh := e.mustDial(addr)
	if got := fresh.serverCert(); !bytes.Equal(got.Raw, next.Leaf.Raw) || bytes.Equal(got.Raw, first.Raw) {
		t.Fatal("new connection did not get the new certificate")
	}
	if _, err := fresh.Get(id).Exec(); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Get(id).Exec(); err != nil {
		t.Fatalf("old connection after reload: %v", err)
	}
	old.sameConn(t)
	if !bytes.Equal(old.serverCert().Raw, first.Raw) {
		t.Fatal("old connection was redone")
	}
}

// TestKMIPReloadAddressInUse: a new kmip address that cannot be
// listened on fails the reload; the running bridge is untouched.
func TestKMIPReloadAddressInUse(t *testing.T) {
	e := startKMIPEnv(t, kmipSection{addr: "127.0.0.1:0", denyGet: true}, sharedMem())
	addr := e.kmipAddr()
	c := e.mustDial(addr)
	id := create(t, c)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = e.reload(kmipSection{addr: busy.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("reload to an address in use: %v", err)
	}
	if got := e.kmipAddr(); got != addr {
		t.Fatalf("bridge address %s after failed reload, want %s", got, addr)
	}
	// The running config stays: Get is still denied.
	if _, err := c.Get(id).Exec(); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("get after a failed reload: %v", err)
	}
	if _, err := c.GetAttributes(id, kmip.AttributeNameState).Exec(); err != nil {
		t.Fatal(err)
	}
	c.sameConn(t)
	fresh := e.mustDial(addr)
	if _, err := fresh.GetAttributes(id, kmip.AttributeNameState).Exec(); err != nil {
		t.Fatalf("new connection after a failed reload: %v", err)
	}
}

// TestKMIPReloadAddress: after a reload to another kmip address the new
// address accepts, the old one refuses, and connections accepted on the
// old one keep working with the new config.
func TestKMIPReloadAddress(t *testing.T) {
	e := startKMIPEnv(t, kmipSection{addr: "127.0.0.1:0"}, sharedMem())
	oldAddr := e.kmipAddr()
	c := e.mustDial(oldAddr)
	id := create(t, c)

	newAddr := freeAddr(t)
	if err := e.reload(kmipSection{addr: newAddr, denyGet: true}); err != nil {
		t.Fatal(err)
	}
	if got := e.kmipAddr(); got != newAddr {
		t.Fatalf("bridge address %s, want %s", got, newAddr)
	}
	fresh := e.mustDial(newAddr)
	if _, err := fresh.GetAttributes(id, kmip.AttributeNameState).Exec(); err != nil {
		t.Fatal(err)
	}
	if nc, err := net.DialTimeout("tcp", oldAddr, 5*time.Second); err == nil {
		nc.Close()
		t.Fatal("old address still accepts connections")
	}
	if _, err := c.Get(id).Exec(); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("old connection after reload: get %v, want the new policy's denial", err)
	}
	if _, err := c.GetAttributes(id, kmip.AttributeNameState).Exec(); err != nil {
		t.Fatalf("old connection after reload: %v", err)
	}
	c.sameConn(t)
}

// TestKMIPReloadAddRemove: a kmip section added by a reload starts the
// bridge, one removed by a reload stops it.
func TestKMIPReloadAddRemove(t *testing.T) {
	e := startKMIPEnv(t, kmipSection{}, sharedMem())
	if a := e.srv.KMIPAddr(); a != nil {
		t.Fatalf("bridge on %s without a kmip section", a)
	}
	if err := e.reload(kmipSection{addr: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	addr := e.kmipAddr()
	c := e.mustDial(addr)
	id := create(t, c)

	if err := e.reload(kmipSection{}); err != nil {
		t.Fatal(err)
	}
	if a := e.srv.KMIPAddr(); a != nil {
		t.Fatalf("bridge on %s after the kmip section was removed", a)
	}
	if _, err := c.Get(id).Exec(); err == nil {
		t.Fatal("KMIP request served after the kmip section was removed")
	}
	if nc, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		nc.Close()
		t.Fatal("KMIP address still accepts connections")
	}
}

// TestKMIPReloadConcurrent runs KMIP clients in a loop while the config
// is reloaded again and again, each time with a new key service and
// alternately a changed policy: no request fails for another reason than
// the policy, no client reconnects, and no request runs on a key service
// that was already closed.
func TestKMIPReloadConcurrent(t *testing.T) {
	const clients, reloads = 4, 20
	e := startKMIPEnv(t, kmipSection{addr: "127.0.0.1:0"}, sharedMem())
	addr := e.kmipAddr()
	conns := make([]*kmipConn, clients)
	for i := range conns {
		conns[i] = e.mustDial(addr)
	}
	var (
		stop  atomic.Bool
		ops   [clients]atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  []error
	)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt).Exec()
				if err == nil {
					_, err = c.GetAttributes(resp.UniqueIdentifier, kmip.AttributeNameState).Exec()
				}
				if err == nil {
					_, err = c.Get(resp.UniqueIdentifier).Exec()
					if err != nil && strings.Contains(err.Error(), "PermissionDenied") {
						err = nil // the policy of an odd reload
					}
				}
				if err != nil {
					errMu.Lock()
					errs = append(errs, fmt.Errorf("client %d: %w", i, err))
					errMu.Unlock()
					return
				}
				ops[i].Add(1)
			}
		}()
	}
	failed := func() bool {
		errMu.Lock()
		defer errMu.Unlock()
		return len(errs) > 0
	}
	for r := range reloads {
		// Every client has a request in between two reloads.
		var seen [clients]int64
		for i := range seen {
			seen[i] = ops[i].Load()
		}
		eventually(t, "client progress", func() bool {
			if failed() {
				return true
			}
			for i := range seen {
				if ops[i].Load() == seen[i] {
					return false
				}
			}
			return true
		})
		if failed() {
			break
		}
		if err := e.reload(kmipSection{addr: "127.0.0.1:0", denyGet: r%2 == 0}); err != nil {
			t.Errorf("reload %d: %v", r, err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	for i, c := range conns {
		if n := c.dials.Load(); n != 1 {
			t.Errorf("client %d connected %d times", i, n)
		}
	}
}

// blockingStore is a closeCheckStore whose Get of "slow" waits until
// unblocked, and checks for a Close only then.
type blockingStore struct {
	*closeCheckStore
	entered, unblock chan struct{}
}

func (s *blockingStore) Get(ctx context.Context, name string) ([]byte, error) {
	if name == "slow" {
		close(s.entered)
		<-s.unblock
	}
	return s.closeCheckStore.Get(ctx, name)
}

// TestKMIPReloadWaitsForRequests: a reload that replaces the key service
// closes the old one only after the KMIP request running on it is done.
func TestKMIPReloadWaitsForRequests(t *testing.T) {
	mem := keystore.NewMem()
	first := &blockingStore{closeCheckStore: &closeCheckStore{MemStore: mem}, entered: make(chan struct{}), unblock: make(chan struct{})}
	var opened atomic.Int32
	open := func(context.Context, *Config, *slog.Logger) (keystore.Store, error) {
		if opened.Add(1) == 1 {
			return first, nil
		}
		return &closeCheckStore{MemStore: mem}, nil
	}
	e := startKMIPEnv(t, kmipSection{addr: "127.0.0.1:0"}, open)
	c := e.mustDial(e.kmipAddr())
	unblock := sync.OnceFunc(func() { close(first.unblock) })
	t.Cleanup(unblock) // before the server's shutdown, also on failure
	done := make(chan error, 1)
	go func() { _, err := c.Get("slow").Exec(); done <- err }()
	select {
	case <-first.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the KMIP Get never reached the keystore")
	}

	if err := e.reload(kmipSection{addr: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if first.closed.Load() {
		t.Fatal("old keystore closed while a KMIP request uses it")
	}
	unblock()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "ItemNotFound") {
		t.Fatalf("get of a missing key across a reload: %v, want ItemNotFound", err)
	}
	eventually(t, "old keystore closed", first.closed.Load)
	c.sameConn(t)
}

// TestKMIPReloadLimits: a reload may not change the settings a running
// bridge cannot apply; it fails and the bridge keeps running.
func TestKMIPReloadLimits(t *testing.T) {
	e := startKMIPEnv(t, kmipSection{addr: "127.0.0.1:0"}, sharedMem())
	c := e.mustDial(e.kmipAddr())
	id := create(t, c)
	err := e.reload(kmipSection{addr: "127.0.0.1:0", idle: "1m", denyGet: true})
	if err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload with a new idle timeout: %v", err)
	}
	if _, err := c.Get(id).Exec(); err != nil {
		t.Fatalf("get after a refused reload: %v", err)
	}
	c.sameConn(t)
}

// TestKMIPReloadCA: new handshakes verify client certificates against
// the reloaded kmip CAs.
func TestKMIPReloadCA(t *testing.T) {
	e := startKMIPEnv(t, kmipSection{addr: "127.0.0.1:0"}, sharedMem())
	addr := e.kmipAddr()
	old := e.mustDial(addr)
	id := create(t, old)
	other := newPKI(t)
	foreign := other.issue(t, "", "", x509.ExtKeyUsageClientAuth, nil)
	if !e.refusedTLS(addr, foreign) {
		t.Fatal("client of another CA accepted before the reload")
	}

	bundle := filepath.Join(t.TempDir(), "cas.pem")
	a, err := os.ReadFile(e.pki.caFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(other.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle, append(a, b...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.reload(kmipSection{addr: "127.0.0.1:0", ca: bundle}); err != nil {
		t.Fatal(err)
	}
	// The CA is trusted now: the handshake passes, and the identity,
	// which has no policy, is denied the version negotiation of Dial.
	if _, err := e.dialAs(addr, foreign); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("client of the added CA: %v, want a handshake and PermissionDenied", err)
	}
	if _, err := old.GetAttributes(id, kmip.AttributeNameState).Exec(); err != nil {
		t.Fatal(err)
	}
	old.sameConn(t)
}
