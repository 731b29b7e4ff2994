// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"

	"github.com/kesbridge/kes/keystore"
)

// eventually polls cond until it holds; the test's own deadline bounds
// it. It is for state that changes in the background (health checks),
// not for timing assertions.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: condition never held", what)
}

// TestLogStreams checks that audit and error events reach subscribers
// live, in the shape kms-go decodes.
func TestLogStreams(t *testing.T) {
	p := newPKI(t)
	admin, minio := newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), ""))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// minio's policy allows the audit stream: subscribing works for
	// non-admins too.
	audit, err := e.kms(minio).AuditLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	errs, err := e.kms(admin).ErrorLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer errs.Close()

	c := e.kms(admin)
	if err := c.CreateKey(ctx, "audited"); err != nil {
		t.Fatal(err)
	}
	if !audit.Next() {
		t.Fatal("no audit event")
	}
	ev := audit.Event()
	if ev.APIPath != "/v1/key/create/audited" || ev.StatusCode != 200 || ev.ClientIdentity.String() != identityOf(admin) ||
		!ev.ClientIP.Equal(net.IPv4(127, 0, 0, 1)) || ev.ResponseTime <= 0 || ev.ResponseTime > time.Minute {
		t.Fatalf("audit event: %+v", ev)
	}
	// Every call is audited, not just create and delete.
	c.DescribeKey(ctx, "missing")
	if !audit.Next() || audit.Event().APIPath != "/v1/key/describe/missing" || audit.Event().StatusCode != 404 {
		t.Fatalf("second audit event: %+v", audit.Event())
	}

	// A keystore failure is logged as an error.
	e.store.down.Store(true)
	if _, err := c.GenerateKey(ctx, "not-cached", nil); err == nil {
		t.Fatal("generate with keystore down succeeded")
	}
	e.store.down.Store(false)
	found := false
	for !found && errs.Next() {
		found = strings.Contains(errs.Message(), "request failed")
	}
	if !found {
		t.Fatal("no error event")
	}
	// kes-go v0.2.1 decodes the same stream.
	gaudit, err := e.kesgo(admin).AuditLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gaudit.Close()
	c.DescribeKey(ctx, "audited")
	if !gaudit.Next() || gaudit.Event().APIPath != "/v1/key/describe/audited" || gaudit.Event().StatusCode != 200 {
		t.Fatalf("kes-go audit event: %+v", gaudit.Event())
	}
	if !strings.Contains(e.stdout.String(), "secret key 'audited' created") {
		t.Fatalf("stdout audit log: %q", e.stdout.String())
	}
}

// TestOffline runs the offline cache through a keystore outage: cached
// keys keep working, uncached ones answer 504, status tells the truth,
// and the server recovers by itself.
func TestOffline(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "cache:\n  expiry:\n    any: 1h\n    unused: 1h\n    offline: 1h\n"))
	ctx := context.Background()
	c := e.kms(admin)
	for _, name := range []string{"cached", "cold"} {
		if err := c.CreateKey(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	dek, err := c.GenerateKey(ctx, "cached", nil) // warms the cache
	if err != nil {
		t.Fatal(err)
	}

	e.store.down.Store(true)
	eventually(t, "offline", e.srv.Keys().Offline)
	for i := range 50 {
		d, err := c.GenerateKey(ctx, "cached", nil)
		if err != nil {
			t.Fatalf("request %d for a cached key failed: %v", i, err)
		}
		if _, err := c.Decrypt(ctx, "cached", d.Ciphertext, nil); err != nil {
			t.Fatalf("decrypt %d failed: %v", i, err)
		}
	}
	raw := e.raw(apiCert(t, admin))
	if r := e.do(raw, "POST", "/v1/key/generate/cold", nil); r.code != 504 || r.body != errorBody("failed to read key") {
		t.Fatalf("uncached key: %d %q", r.code, r.body)
	}
	if r := e.do(raw, "GET", "/v1/ready", nil); r.code != 504 || r.body != errorBody("key store is not reachable") {
		t.Fatalf("ready: %d %q", r.code, r.body)
	}
	st, err := c.Status(ctx)
	if err != nil || st.KeyStoreReachable {
		t.Fatalf("status during outage: %+v %v", st, err)
	}

	e.store.down.Store(false)
	eventually(t, "online", func() bool { return !e.srv.Keys().Offline() })
	if _, err := c.Decrypt(ctx, "cached", dek.Ciphertext, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateKey(ctx, "cold", nil); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(ctx); err != nil || !st.KeyStoreReachable {
		t.Fatalf("status after outage: %+v %v", st, err)
	}
}

// TestReload swaps policies and keeps the old config when the new one
// is broken.
func TestReload(t *testing.T) {
	p := newPKI(t)
	admin, minio := newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), ""))
	ctx := context.Background()
	mc := e.kms(minio)
	if err := mc.CreateKey(ctx, "minio-1"); err != nil {
		t.Fatal(err)
	}

	// New config: minio loses its policy (another identity gets it).
	other := newAPIKey(t)
	cfg, err := ParseConfig([]byte(baseConfig(p, identityOf(admin), identityOf(other), "log:\n  audit: off\n")))
	if err != nil {
		t.Fatal(err)
	}
	old := e.srv.Keys()
	if err := e.srv.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if e.srv.Keys() == old {
		t.Fatal("reload kept the key service")
	}
	if _, err := mc.GenerateKey(ctx, "minio-1", nil); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("after reload: got %v, want ErrNotAllowed", err)
	}
	if _, err := e.kms(other).GenerateKey(ctx, "minio-1", nil); err != nil {
		t.Fatal(err)
	}
	// The old service (and its keystore) is closed once its last request
	// has finished.
	eventually(t, "old keystore closed", func() bool { return e.store.closed.Load() == 1 })
	before := e.stdout.String()
	e.kms(admin).DescribeKey(ctx, "minio-1")
	if e.stdout.String() != before {
		t.Fatal("audit log still on after reload with log.audit: off")
	}

	// A broken config (certificate gone) is refused; the old one runs on.
	broken := *cfg
	broken.TLS.CertFile = filepath.Join(t.TempDir(), "missing.crt")
	if err := e.srv.Reload(ctx, &broken); err == nil {
		t.Fatal("reload with a missing certificate succeeded")
	}
	if _, err := e.kms(other).GenerateKey(ctx, "minio-1", nil); err != nil {
		t.Fatal(err)
	}
}

// TestTLSModes checks tls.auth on, the skip_auth downgrade and API
// overrides.
func TestTLSModes(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	ctx := context.Background()

	t.Run("auth on", func(t *testing.T) {
		e := start(t, p, admin, strings.Replace(baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), ""),
			"tls:\n", "tls:\n  auth: on\n  ca: "+p.caFile+"\n", 1))
		// A self-signed API key certificate is not trusted: handshake fails.
		if _, err := e.kms(admin).Version(ctx); err == nil {
			t.Fatal("unverified client certificate accepted")
		}
		// A CA-issued client certificate works; its identity has no policy.
		cert := p.issue(t, "", "", x509.ExtKeyUsageClientAuth, nil)
		r := e.do(e.raw(&cert), "GET", "/v1/status", nil)
		if r.code != 403 {
			t.Fatalf("CA-issued client: %d %s", r.code, r.body)
		}
	})

	t.Run("skip_auth", func(t *testing.T) {
		e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)),
			"api:\n  /v1/status:\n    skip_auth: true\n    timeout: 20s\n"))
		anon := e.raw(nil)
		if r := e.do(anon, "GET", "/v1/status", nil); r.code != 200 {
			t.Fatalf("skip_auth status: %d %s", r.code, r.body)
		}
		if r := e.do(anon, "GET", "/v1/key/list/", nil); r.code != 400 || r.body != errorBody("tls: client certificate is required") {
			t.Fatalf("no cert: %d %q", r.code, r.body)
		}
		apis, err := e.kms(admin).APIs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range apis {
			if a.Path == "/v1/status" && a.Timeout != 20*time.Second {
				t.Fatalf("timeout override not listed: %v", a.Timeout)
			}
		}
	})

	t.Run("http/1.1", func(t *testing.T) {
		e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), ""))
		tr := &http.Transport{TLSClientConfig: e.clientTLS(apiCert(t, admin)), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(e.url + "/v1/key/list")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 1 || resp.StatusCode != 200 {
			t.Fatalf("%s %d", resp.Proto, resp.StatusCode)
		}
	})

	t.Run("no client cert", func(t *testing.T) {
		e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), ""))
		req, _ := http.NewRequest("GET", e.url+"/version", nil)
		if _, err := e.raw(nil).Do(req); err == nil {
			t.Fatal("connection without client certificate accepted")
		}
	})
}

// TestProxy checks tls.proxy: the client certificate comes from the
// header and the IP from X-Forwarded-For.
func TestProxy(t *testing.T) {
	p := newPKI(t)
	admin, proxy, client := newAPIKey(t), newAPIKey(t), newAPIKey(t)
	yaml := strings.Replace(baseConfig(p, identityOf(admin), identityOf(client), ""),
		"tls:\n", "tls:\n  proxy:\n    identities: ["+identityOf(proxy)+"]\n", 1)
	e := start(t, p, admin, yaml)
	hc := e.raw(apiCert(t, proxy))

	clientCert := apiCert(t, client)
	header := url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientCert.Certificate[0]})))
	req, _ := http.NewRequest("GET", e.url+"/v1/status", nil)
	req.Header.Set("X-Tls-Client-Cert", header)
	req.Header.Set("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("forwarded client: %d", resp.StatusCode)
	}
	if !strings.Contains(e.stdout.String(), "req.ip=203.0.113.7") || !strings.Contains(e.stdout.String(), "req.identity="+identityOf(client)) {
		t.Fatalf("audit does not show the forwarded client: %s", e.stdout.String())
	}
	if r := e.do(hc, "GET", "/v1/status", nil); r.code != 400 {
		t.Fatalf("proxy without header: %d %s", r.code, r.body)
	}
}

// TestEncryptedKeyAndRotation loads a legacy-encrypted private key with
// tls.password and picks up a rotated certificate.
func TestEncryptedKeyAndRotation(t *testing.T) {
	p := newPKI(t)
	b, err := os.ReadFile(p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	//lint:ignore SA1019 testing the legacy format tls.password exists for
	enc, err := x509.EncryptPEMBlock(strings.NewReader(strings.Repeat("r", 64)), "PRIVATE KEY", block.Bytes, []byte("secret"), x509.PEMCipherAES256) //nolint:staticcheck // see above
	if err != nil {
		t.Fatal(err)
	}
	encFile := filepath.Join(p.dir, "enc.key")
	if err := os.WriteFile(encFile, pem.EncodeToMemory(enc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCertificate(p.certFile, encFile, noPassword); err == nil || !strings.Contains(err.Error(), "tls.password") {
		t.Fatalf("encrypted key without password: %v", err)
	}
	if _, err := loadCertificate(p.certFile, encFile, keystore.NewSecret("wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := loadCertificate(p.certFile, encFile, keystore.NewSecret("secret")); err != nil {
		t.Fatal(err)
	}

	l, err := newCertLoader(p.certFile, p.keyFile, noPassword, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	first, _ := l.get(nil)
	p.issue(t, p.certFile, p.keyFile, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	os.Chtimes(p.certFile, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	l.mu.Lock()
	l.checked = time.Time{} // as if the check interval had passed
	l.mu.Unlock()
	second, _ := l.get(nil)
	if first.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) == 0 {
		t.Fatal("rotated certificate not picked up")
	}

	// No SAN: refused.
	noSAN := filepath.Join(p.dir, "nosan.crt")
	p.issue(t, noSAN, filepath.Join(p.dir, "nosan.key"), x509.ExtKeyUsageServerAuth, nil)
	if _, err := loadCertificate(noSAN, filepath.Join(p.dir, "nosan.key"), noPassword); err == nil || !strings.Contains(err.Error(), "does not contain any DNS or IP address as SAN") {
		t.Fatalf("certificate without SAN: %v", err)
	}
}

// TestRunDev starts `kes server --dev` through Run and uses the printed
// API key.
func TestRunDev(t *testing.T) {
	addr := freeAddr(t)
	out := &syncBuffer{}
	dir := t.TempDir()
	ctx := runInBackground(t, Options{Dev: true, Addr: addr, DataDir: dir, Stdout: out, Stderr: &syncBuffer{}})
	eventually(t, "banner", func() bool { return strings.Contains(out.String(), " key dek -k my-key\n") })
	var apiKey string
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "export KES_API_KEY="); ok {
			apiKey = v
		}
	}
	if !strings.Contains(out.String(), "export KES_SERVER=https://"+addr) || !strings.Contains(out.String(), "Filesystem: "+dir) {
		banner := out.String()
		if apiKey != "" { // the banner holds the admin API key
			banner = strings.ReplaceAll(banner, apiKey, "<api key>")
		}
		t.Fatalf("banner:\n%s", banner)
	}
	key, err := kes.ParseAPIKey(apiKey)
	if err != nil {
		t.Fatal(err)
	}
	cert := apiCert(t, key)
	c := kes.NewClientWithConfig("https://"+addr, &tls.Config{Certificates: []tls.Certificate{*cert}, InsecureSkipVerify: true})
	defer c.HTTPClient.CloseIdleConnections()
	if err := c.CreateKey(ctx, "my-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "my-key")); err != nil {
		t.Fatalf("key not in the data directory: %v", err)
	}
	if err := Run(ctx, Options{Dev: true, ConfigFile: "x.yaml"}); err == nil {
		t.Fatal("--dev with --config accepted")
	}
}
