// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kesgo "github.com/minio/kes-go"
	"github.com/minio/kms-go/kes"

	"github.com/kesbridge/kes/keystore"
)

// pki is a throw-away CA with a server certificate for 127.0.0.1.
type pki struct {
	dir      string
	caCert   *x509.Certificate
	caKey    *ecdsa.PrivateKey
	caFile   string
	certFile string
	keyFile  string
	roots    *x509.CertPool
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	var err error
	p.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caFile = filepath.Join(p.dir, "ca.crt")
	writePEM(t, p.caFile, "CERTIFICATE", der)
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.caCert)

	p.certFile, p.keyFile = filepath.Join(p.dir, "server.crt"), filepath.Join(p.dir, "server.key")
	p.issue(t, p.certFile, p.keyFile, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	return p
}

// issue writes a certificate signed by the CA, and its key.
func (p *pki) issue(t testing.TB, certFile, keyFile string, eku x509.ExtKeyUsage, ips []net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{eku},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if certFile != "" {
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// switchStore is a keystore that can be made unreachable.
type switchStore struct {
	*keystore.MemStore
	down   atomic.Bool
	closed atomic.Int32
}

var errDown = &keystore.UnreachableError{Store: "test", Err: errors.New("connection refused")}

func (s *switchStore) Create(ctx context.Context, name string, v []byte) error {
	if s.down.Load() {
		return errDown
	}
	return s.MemStore.Create(ctx, name, v)
}

func (s *switchStore) Get(ctx context.Context, name string) ([]byte, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.MemStore.Get(ctx, name)
}

func (s *switchStore) Delete(ctx context.Context, name string) error {
	if s.down.Load() {
		return errDown
	}
	return s.MemStore.Delete(ctx, name)
}

func (s *switchStore) List(ctx context.Context, prefix string) ([]string, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.MemStore.List(ctx, prefix)
}

func (s *switchStore) Status(ctx context.Context) (keystore.State, error) {
	if s.down.Load() {
		return keystore.State{}, errDown
	}
	return s.MemStore.Status(ctx)
}

// Close keeps the shared memory store open across reloads.
func (s *switchStore) Close() error {
	s.closed.Add(1)
	return nil
}

// env is a running server with its PKI and clients.
type env struct {
	t        testing.TB
	pki      *pki
	srv      *Server
	url      string
	admin    kes.APIKey
	store    *switchStore
	stdout   *syncBuffer
	stderr   *syncBuffer
	yamlPath string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newAPIKey(t testing.TB) kes.APIKey {
	t.Helper()
	k, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// baseConfig is a config with the admin, a "minio" policy for minioID
// and a filesystem keystore; extra is appended at the top level.
func baseConfig(p *pki, admin, minioID, extra string) string {
	return `version: v1
address: 127.0.0.1:0
admin:
  identity: ` + admin + `
tls:
  key: ` + p.keyFile + `
  cert: ` + p.certFile + `
policy:
  minio:
    allow:
    - /v1/key/create/minio-*
    - /v1/key/generate/minio-*
    - /v1/key/decrypt/minio-*
    - /v1/key/bulk/decrypt/minio-*
    - /v1/key/describe/minio-*
    - /v1/key/hmac/minio-*
    - /v1/key/list/*
    - /v1/status
    - /v1/ready
    - /v1/metrics
    - /v1/api
    - /v1/log/audit
    - /v1/log/error
    deny:
    - /v1/key/generate/minio-internal*
    identities:
    - ` + minioID + `
keystore:
  fs:
    path: ` + filepath.Join(p.dir, "keys") + `
` + extra
}

// start parses yaml, starts a server with a switchable in-memory store
// on 127.0.0.1 and stops it at the end of the test.
func start(t testing.TB, p *pki, admin kes.APIKey, yaml string) *env {
	t.Helper()
	return startWith(t, p, admin, yaml, false)
}

// startWith is start; with realStore the server opens the configured
// keystore itself (OpenKeystore) instead of the switchable one.
func startWith(t testing.TB, p *pki, admin kes.APIKey, yaml string, realStore bool) *env {
	t.Helper()
	return startOpts(t, p, admin, yaml, realStore, nil)
}

// startOpts is startWith with a hook that adjusts the server options.
func startOpts(t testing.TB, p *pki, admin kes.APIKey, yaml string, realStore bool, adjust func(*ServerOptions)) *env {
	t.Helper()
	e := &env{t: t, pki: p, admin: admin, store: &switchStore{MemStore: keystore.NewMem()}, stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	e.yamlPath = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(e.yamlPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfig(e.yamlPath)
	if err != nil {
		t.Fatal(err)
	}
	opts := ServerOptions{
		Stdout: e.stdout, Stderr: e.stderr,
		OpenStore: func(context.Context, *Config, *slog.Logger) (keystore.Store, error) {
			return e.store, nil
		},
		HealthInterval: 20 * time.Millisecond,
	}
	if realStore {
		opts.OpenStore = nil
	}
	if adjust != nil {
		adjust(&opts)
	}
	srv, err := NewServer(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	e.srv, e.url = srv, "https://"+ln.Addr().String()
	return e
}

func (e *env) clientTLS(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: e.pki.roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

func apiCert(t testing.TB, k kes.APIKey) *tls.Certificate {
	t.Helper()
	c, err := kes.GenerateCertificate(k)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// kms returns a kms-go client authenticated with k.
func (e *env) kms(k kes.APIKey) *kes.Client {
	c := kes.NewClientWithConfig(e.url, e.clientTLS(apiCert(e.t, k)))
	e.t.Cleanup(c.HTTPClient.CloseIdleConnections)
	return c
}

// kesgo returns a kes-go v0.2.1 client authenticated with k.
func (e *env) kesgo(k kes.APIKey) *kesgo.Client {
	c := kesgo.NewClientWithConfig(e.url, e.clientTLS(apiCert(e.t, k)))
	e.t.Cleanup(c.HTTPClient.CloseIdleConnections)
	return c
}

// raw returns a plain HTTP client presenting cert (nil: none).
func (e *env) raw(cert *tls.Certificate) *http.Client {
	tr := &http.Transport{TLSClientConfig: e.clientTLS(cert), ForceAttemptHTTP2: true}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type response struct {
	code   int
	header http.Header
	body   string
}

func (e *env) do(c *http.Client, method, path string, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return response{resp.StatusCode, resp.Header, string(b)}
}

func errorBody(msg string) string {
	return `{"message":"` + msg + "\"\n}"
}

func identityOf(k kes.APIKey) string { return k.Identity().String() }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
