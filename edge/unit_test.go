// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
)

// TestWireError checks the one mapping from errors to answers.
func TestWireError(t *testing.T) {
	tests := []struct {
		err  error
		op   op
		code int
		msg  string
	}{
		{fmt.Errorf("x: %w", keys.ErrKeyNotFound), opRead, 404, "key does not exist"},
		{fmt.Errorf("x: %w", keys.ErrKeyExists), opCreate, 400, "key already exists"},
		{fmt.Errorf("x: %w", crypto.ErrDecrypt), opRead, 400, "decryption failed: ciphertext is not authentic"},
		{policy.ErrNotAllowed, opRead, 403, "not authorized: insufficient permissions"},
		{keys.ErrHMACNotSupported, opRead, 409, "key does not support HMAC"},
		{keys.ErrNotActive, opRead, 409, "key is not active"},
		{keys.ErrNotEncryptionKey, opRead, 409, "key is not a 256-bit encryption key"},
		{fmt.Errorf("get: %w", &keystore.UnreachableError{Store: "kc", Err: errors.New("dial tcp: refused")}), opRead, 504, "failed to read key"},
		{&keystore.UnreachableError{Store: "kc"}, opDelete, 504, "failed to delete key"},
		{fmt.Errorf("get: %w", &keystore.UnreachableError{Store: "vault", Reason: "vault is sealed", Err: errors.New("503 sealed")}), opRead, 503, "vault is sealed"},
		{fmt.Errorf("get: %w", &keystore.UnavailableError{Store: "hpcs", Reason: "root key disabled", Err: errors.New("secret detail")}), opRead, 502, "root key disabled"},
		{errors.New("keycontrol: 500 internal: secret detail"), opCreate, 502, "failed to create key"},
		{errors.New("boom"), opList, 502, "failed to list keys"},
		{context.DeadlineExceeded, opRead, 504, "failed to read key"},
		{&http.MaxBytesError{Limit: 1}, opRead, 400, "invalid request body"},
		{fmt.Errorf("keys: %w", &keys.LimitError{What: "encoded key", Limit: 1024, Unit: " bytes"}), opCreate, 400, "key is too large: encoded key exceeds the limit of 1024 bytes"},
		{fmt.Errorf("fs: %w", keystore.ErrValueTooLarge), opCreate, 400, "key is too large for the key store"},
		{fmt.Errorf("keys: key 'k': %w (%w)", keys.ErrKeyBusy, context.DeadlineExceeded), opDelete, 503, "key is busy: another node is changing it, try again"},
	}
	for _, tt := range tests {
		code, msg := wireError(tt.err, tt.op)
		if code != tt.code || msg != tt.msg {
			t.Errorf("%v: got %d %q, want %d %q", tt.err, code, msg, tt.code, tt.msg)
		}
	}
}

// unavailableStore answers every call with an UnavailableError.
type unavailableStore struct{ *keystore.MemStore }

var errUnavailable = &keystore.UnavailableError{Store: "test", Reason: "root key disabled"}

func (unavailableStore) Get(context.Context, string) ([]byte, error) { return nil, errUnavailable }
func (unavailableStore) Status(context.Context) (keystore.State, error) {
	return keystore.State{}, errUnavailable
}

// newTestServer returns a server that is not listening, for ServeHTTP.
func newTestServer(t *testing.T, store keystore.Store) (*Server, *tls.ConnectionState) {
	t.Helper()
	p := newPKI(t)
	admin := newAPIKey(t)
	cfg, err := ParseConfig([]byte(baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "")))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(context.Background(), cfg, ServerOptions{
		OpenStore: func(context.Context, *Config, *slog.Logger) (keystore.Store, error) { return store, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	cert := apiCert(t, admin)
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	return srv, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
}

func serve(srv *Server, cs *tls.ConnectionState, method, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.TLS = cs
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	return w
}

func TestUnavailableKeystore(t *testing.T) {
	srv, cs := newTestServer(t, unavailableStore{keystore.NewMem()})
	if w := serve(srv, cs, "GET", "/v1/ready"); w.Code != 502 || w.Body.String() != errorBody("key store is unavailable: root key disabled") {
		t.Fatalf("ready: %d %q", w.Code, w.Body)
	}
	if w := serve(srv, cs, "GET", "/v1/key/describe/k"); w.Code != 502 || w.Body.String() != errorBody("root key disabled") {
		t.Fatalf("describe: %d %q", w.Code, w.Body)
	}
	w := serve(srv, cs, "GET", "/v1/status")
	if w.Code != 200 || !contains(w.Body.String(), `"keystore_unavailable":true`) || contains(w.Body.String(), "keystore_unreachable") ||
		!contains(w.Body.String(), `"keystore_error":"root key disabled"`) {
		t.Fatalf("status: %d %s", w.Code, w.Body)
	}
	if w := serve(srv, nil, "GET", "/v1/status"); w.Code != 400 || w.Body.String() != errorBody("insecure connection: TLS is required") {
		t.Fatalf("no TLS: %d %q", w.Code, w.Body)
	}
}

// TestRecover checks that a panicking handler answers 500 without
// leaking the panic and that the server keeps serving.
func TestRecover(t *testing.T) {
	srv, cs := newTestServer(t, keystore.NewMem())
	srv.cur.Load().routes["/v1/api"].handle = func(*call) { panic("secret panic value") }
	w := serve(srv, cs, "GET", "/v1/api")
	if w.Code != 500 || w.Body.String() != errorBody("internal server error") {
		t.Fatalf("%d %q", w.Code, w.Body)
	}
	if w := serve(srv, cs, "GET", "/v1/status"); w.Code != 200 {
		t.Fatalf("after panic: %d", w.Code)
	}
}

// TestKMIPTLS checks the bridge's client verification: a CA-issued
// certificate without the clientAuth EKU (as vCenter makes them) is
// accepted, a foreign one is refused.
func TestKMIPTLS(t *testing.T) {
	p := newPKI(t)
	kcfg := &KMIPConfig{KeyFile: p.keyFile, CertFile: p.certFile, CAFile: p.caFile, Compat: true}
	conf, err := kmipTLS(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(conf.CipherSuites) == 0 || conf.MinVersion != tls.VersionTLS12 {
		t.Fatal("compat suites not set")
	}
	handshake := func(cert tls.Certificate) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		srvErr := make(chan error, 1)
		go func() {
			a, err := ln.Accept()
			if err != nil {
				srvErr <- err
				return
			}
			s := tls.Server(a, conf)
			srvErr <- s.Handshake()
			s.Close()
		}()
		b, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := tls.Client(b, &tls.Config{RootCAs: p.roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		c.Handshake()
		err = <-srvErr
		c.Close()
		return err
	}
	noEKU := p.issue(t, "", "", x509.ExtKeyUsageServerAuth, nil) // no clientAuth
	if err := handshake(noEKU); err != nil {
		t.Fatalf("certificate without clientAuth EKU refused: %v", err)
	}
	other := newPKI(t)
	foreign := other.issue(t, "", "", x509.ExtKeyUsageClientAuth, nil)
	if err := handshake(foreign); err == nil {
		t.Fatal("certificate of another CA accepted")
	}
	if err := handshake(*apiCert(t, newAPIKey(t))); err == nil {
		t.Fatal("self-signed certificate accepted")
	}
}

// TestOpenKeystoreFS opens the filesystem keystore of a config.
func TestOpenKeystoreFS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	cfg := &Config{Keystore: KeystoreConfig{FS: &FSConfig{Path: dir}}}
	s, err := OpenKeystore(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Create(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "k")); err != nil {
		t.Fatal(err)
	}
}

// TestSlowSubscriber checks that a subscriber that does not read never
// blocks publishing: events beyond its buffer are dropped and counted.
func TestSlowSubscriber(t *testing.T) {
	m := newMetrics(time.Now())
	h := newHub(m.auditEvents, m.auditDropped)
	_, cancel := h.subscribe()
	defer cancel()
	for range subscriberBuffer + 10 {
		h.publish([]byte("{}\n"))
	}
	if got := counterValue(m.auditDropped); got != 10 {
		t.Fatalf("dropped %v, want 10", got)
	}
	if got := counterValue(m.auditEvents); got != subscriberBuffer {
		t.Fatalf("delivered %v, want %d", got, subscriberBuffer)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestLoadCAs reads CA certificates from a file and from a directory.
func TestLoadCAs(t *testing.T) {
	p := newPKI(t)
	leaf := p.issue(t, "", "", x509.ExtKeyUsageClientAuth, nil)
	verify := func(pool *x509.CertPool) error {
		_, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
	pool, err := loadCAs(p.caFile)
	if err != nil || verify(pool) != nil {
		t.Fatalf("file: %v", err)
	}
	dir := t.TempDir()
	b, _ := os.ReadFile(p.caFile)
	os.WriteFile(filepath.Join(dir, "a.pem"), b, 0o600)
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a certificate"), 0o600)
	pool, err = loadCAs(dir)
	if err != nil || verify(pool) != nil {
		t.Fatalf("dir: %v", err)
	}
	bad := filepath.Join(dir, "README")
	if _, err := loadCAs(bad); err == nil {
		t.Fatal("file without certificates accepted")
	}
	if _, err := loadCAs(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}
