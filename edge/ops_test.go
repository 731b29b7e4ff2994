// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"

	"github.com/kesbridge/kes/identity"
	hpcsemu "github.com/kesbridge/kes/internal/emulator/hpcs"
)

// opsEnv is a server with an fs keystore sealed by the HPCS emulator, a
// KMIP bridge and a KMIP client identity allowed everything.
type opsEnv struct {
	*env
	hpcs       *hpcsemu.Server
	kmipClient tls.Certificate
	kmipID     string
}

func startOpsEnv(t *testing.T) *opsEnv {
	t.Helper()
	em, section := hpcsSetup(t, hpcsemu.Config{})
	p := newPKI(t)
	admin := newAPIKey(t)
	clientCert := p.issue(t, "", "", x509.ExtKeyUsageClientAuth, nil)
	kid := string(identity.FromCertificate(clientCert.Leaf))
	yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "seal:\n  ibm:\n"+section+`kmip:
  address: 127.0.0.1:0
  tls:
    key: `+p.keyFile+`
    cert: `+p.certFile+`
    ca: `+p.caFile+"\n")
	yaml = strings.Replace(yaml, "policy:\n", "policy:\n  kmip:\n    allow: [/kmip/*]\n    identities: ["+kid+"]\n", 1)
	e := startWith(t, p, admin, yaml, true)
	if err := e.srv.StartKMIP(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &opsEnv{env: e, hpcs: em, kmipClient: clientCert, kmipID: kid}
}

func (e *opsEnv) dialKMIP(t *testing.T) *kmipclient.Client {
	t.Helper()
	caPEM, err := os.ReadFile(e.pki.caFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kmipclient.Dial(e.srv.KMIPAddr().String(), kmipclient.WithRootCAPem(caPEM), kmipclient.WithClientCert(e.kmipClient))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawStatus returns the /v1/status body decoded into a map.
func rawStatus(t *testing.T, e *env) map[string]any {
	t.Helper()
	r := e.do(e.raw(apiCert(t, e.admin)), "GET", "/v1/status", nil)
	if r.code != 200 {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStatusReportsKeystoreKMIPAndSeal checks the fields /v1/status adds
// against a running server, and that kes-go v0.2.1 and kms-go v0.3.1
// still decode the answer, with the seal available and disabled.
func TestStatusReportsKeystoreKMIPAndSeal(t *testing.T) {
	e := startOpsEnv(t)
	ctx := context.Background()
	c := e.dialKMIP(t)
	if _, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).Exec(); err != nil {
		t.Fatal(err)
	}

	m := rawStatus(t, e.env)
	want := map[string]any{
		"keystore_driver":       "fs",
		"keystore_state":        "available",
		"keystore_linearizable": true,
		"kmip_address":          e.srv.KMIPAddr().String(),
		"kmip_connections":      float64(1),
		"seal_state":            "available",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: got %v, want %v", k, m[k], v)
		}
	}
	for _, k := range []string{"keystore", "seal"} {
		if s, _ := m[k].(string); s == "" {
			t.Errorf("%s: missing", k)
		}
	}
	if !strings.Contains(m["keystore"].(string), "sealed by") || !strings.HasPrefix(m["seal"].(string), "IBM") {
		t.Errorf("descriptions: keystore %q, seal %q", m["keystore"], m["seal"])
	}
	if _, ok := m["keystore_error"]; ok {
		t.Errorf("keystore_error on a healthy keystore: %v", m["keystore_error"])
	}
	if st, err := e.kms(e.admin).Status(ctx); err != nil || !st.KeystoreAvailable || st.KeyStoreLatency <= 0 {
		t.Fatalf("kms-go: %+v %v", st, err)
	}
	if st, err := e.kesgo(e.admin).Status(ctx); err != nil || !st.KeystoreAvailable || st.KeyStoreLatency <= 0 {
		t.Fatalf("kes-go: %+v %v", st, err)
	}

	// HPCS down: the seal says so, and so does the keystore (a sealed
	// store is as available as its sealer).
	e.hpcs.SetDown(true)
	m = rawStatus(t, e.env)
	if m["seal_state"] != "unreachable" || m["seal_error"] != "key store is not reachable" || m["keystore_state"] != "unreachable" || m["keystore_error"] != "key store is not reachable" {
		t.Fatalf("HPCS down: %v", m)
	}
	if st, err := e.kms(e.admin).Status(ctx); err != nil || st.KeystoreAvailable {
		t.Fatalf("kms-go with HPCS down: %+v %v", st, err)
	}
	if st, err := e.kesgo(e.admin).Status(ctx); err != nil || st.KeystoreAvailable {
		t.Fatalf("kes-go with HPCS down: %+v %v", st, err)
	}
	e.hpcs.SetDown(false)

	c.Close()
	eventually(t, "kmip connection closed", func() bool {
		return rawStatus(t, e.env)["kmip_connections"] == float64(0)
	})
}

// TestKMIPAuditStream checks that a KMIP batch item reaches the audit
// stream with the client's address, identity, operation, object, result
// and duration.
func TestKMIPAuditStream(t *testing.T) {
	e := startOpsEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	audit, err := e.kms(e.admin).AuditLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	c := e.dialKMIP(t)
	created, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).Exec()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("no-such-key").Exec(); err == nil {
		t.Fatal("Get of a missing key succeeded")
	}
	want := []struct {
		path string
		code int
	}{
		{"/kmip/create/" + created.UniqueIdentifier, 200},
		{"/kmip/get/no-such-key", 404},
	}
	for _, w := range want {
		if !audit.Next() {
			t.Fatalf("no audit event for %s: %v", w.path, audit.Close())
		}
		ev := audit.Event()
		if ev.APIPath == "/kmip/discover-versions" { // the client's first request
			if !audit.Next() {
				t.Fatalf("no audit event for %s: %v", w.path, audit.Close())
			}
			ev = audit.Event()
		}
		if ev.APIPath != w.path || ev.StatusCode != w.code || ev.ClientIdentity.String() != e.kmipID ||
			!ev.ClientIP.Equal(net.IPv4(127, 0, 0, 1)) || ev.ResponseTime <= 0 || ev.ResponseTime > time.Minute {
			t.Fatalf("audit event: %+v, want %s %d", ev, w.path, w.code)
		}
	}
	for _, l := range strings.Split(e.stdout.String(), "\n") {
		if strings.Contains(l, "req.path=/kmip/get/no-such-key ") {
			if !strings.Contains(l, " req.ip=127.0.0.1 ") || strings.Contains(l, "res.time=0s") {
				t.Fatalf("stdout audit line: %s", l)
			}
			return
		}
	}
	t.Fatalf("no stdout audit line: %s", e.stdout.String())
}

// TestHealth checks that /v1/health answers without any client
// certificate once a readiness probe is configured with skip_auth, and
// that it stays 200 while /v1/ready fails.
func TestHealth(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "api:\n  /v1/ready:\n    skip_auth: true\n"))
	probe := e.raw(nil) // like a kubelet: no client certificate
	if r := e.do(probe, "GET", "/v1/health", nil); r.code != 200 || r.body != "" {
		t.Fatalf("health: %d %q", r.code, r.body)
	}
	if r := e.do(probe, "GET", "/v1/ready", nil); r.code != 200 {
		t.Fatalf("ready: %d %q", r.code, r.body)
	}
	e.store.down.Store(true)
	if r := e.do(probe, "GET", "/v1/ready", nil); r.code == 200 {
		t.Fatalf("ready with the keystore down: %d", r.code)
	}
	if r := e.do(probe, "GET", "/v1/health", nil); r.code != 200 {
		t.Fatalf("health with the keystore down: %d %q", r.code, r.body)
	}
	// Other APIs still need an identity.
	if r := e.do(probe, "GET", "/v1/status", nil); r.code == 200 {
		t.Fatalf("status without a certificate: %d", r.code)
	}
}

// scrape returns the metrics exposition as Prometheus asks for it.
func scrape(t *testing.T, e *env) string {
	t.Helper()
	req, err := http.NewRequest("GET", e.url+"/v1/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	resp, err := e.raw(apiCert(t, e.admin)).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestOpsMetrics checks the KMIP, keystore and cache families against a
// running server, and that kes-go and kms-go, which reject families they
// do not know, still decode /v1/metrics.
func TestOpsMetrics(t *testing.T) {
	e := startOpsEnv(t)
	ctx := context.Background()
	c := e.dialKMIP(t)
	created, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).Exec()
	if err != nil {
		t.Fatal(err)
	}
	c.Get("no-such-key").Exec()
	kc := e.kms(e.admin)
	if err := kc.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := kc.GenerateKey(ctx, "k", nil); err != nil {
			t.Fatal(err)
		}
	}
	_ = created
	// A rotation counts; the next generate reads the rotated key back
	// into the cache.
	if _, err := e.srv.Keys().Rotate(ctx, "k", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.GenerateKey(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	out := scrape(t, e.env)
	for _, want := range []string{
		`kes_kmip_operations_total{operation="create",result="success"} 1`,
		`kes_kmip_operations_total{operation="get",result="ItemNotFound"} 1`,
		`kes_kmip_operation_duration_seconds_count{operation="create"} 1`,
		`kes_kmip_connections_open 1`,
		`kes_keystore_calls_total{driver="fs",operation="create",result="success"} 2`,
		`kes_keystore_calls_total{driver="fs",operation="get",result="not_found"}`,
		`kes_keystore_call_duration_seconds_bucket{driver="fs",operation="create",le="+Inf"} 2`,
		`kes_keystore_outages_total{driver="fs"} 0`,
		`kes_cache_hits_total 2`,
		`kes_cache_misses_total`,
		`kes_cache_size 1`,
		`kes_cache_offline_serves_total 0`,
		`kes_key_rotations_total{result="success"} 1`,
		`kes_http_request_success`,
	} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want+" ") && !strings.Contains(out, want+"{") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
	if _, err := kc.Metrics(ctx); err != nil {
		t.Fatalf("kms-go Metrics: %v", err)
	}
	if _, err := e.kesgo(e.admin).Metrics(ctx); err != nil {
		t.Fatalf("kes-go Metrics: %v", err)
	}
}
