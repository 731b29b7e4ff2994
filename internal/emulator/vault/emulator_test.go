// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/emulator/emutest"
)

type client struct {
	t   *testing.T
	s   *Server
	hc  *http.Client
	tok string
	ns  string
}

func start(t *testing.T, cfg Config) (*Server, *client) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}
	return s, &client{t: t, s: s, hc: hc, tok: s.RootToken()}
}

func (c *client) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.s.URL()+"/v1/"+path, r)
	if c.tok != "" {
		req.Header.Set("X-Vault-Token", c.tok)
	}
	if c.ns != "" {
		req.Header.Set("X-Vault-Namespace", c.ns)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func errorsOf(m map[string]any) string {
	b, _ := json.Marshal(m["errors"])
	return string(b)
}

func TestKV2CheckAndSet(t *testing.T) {
	_, c := start(t, Config{})
	if code, _ := c.do("PUT", "kv/data/kes/k", map[string]any{"options": map[string]any{"cas": 0}, "data": map[string]any{"k": "v1"}}); code != 200 {
		t.Fatalf("create: %d", code)
	}
	code, m := c.do("PUT", "kv/data/kes/k", map[string]any{"options": map[string]any{"cas": 0}, "data": map[string]any{"k": "v2"}})
	if code != 400 || !strings.Contains(errorsOf(m), "check-and-set parameter did not match") {
		t.Fatalf("second create with cas 0: %d %v", code, m)
	}
	if code, _ := c.do("PUT", "kv/data/kes/k", map[string]any{"options": map[string]any{"cas": 1}, "data": map[string]any{"k": "v2"}}); code != 200 {
		t.Fatalf("update with cas 1: %d", code)
	}
	code, m = c.do("GET", "kv/data/kes/k?version=1", nil)
	if code != 200 || m["data"].(map[string]any)["data"].(map[string]any)["k"] != "v1" {
		t.Fatalf("read version 1: %d %v", code, m)
	}
	if code, _ := c.do("PUT", "kv/data/kes/x", map[string]any{"options": map[string]any{}}); code != 400 {
		t.Fatalf("write without data: %d", code)
	}
	if code, _ := c.do("DELETE", "kv/metadata/kes/k", nil); code != 204 {
		t.Fatalf("metadata delete: %d", code)
	}
	if code, _ := c.do("GET", "kv/data/kes/k", nil); code != 404 {
		t.Fatalf("read after metadata delete: %d", code)
	}
	if code, _ := c.do("LIST", "kv/metadata/kes", nil); code != 404 {
		t.Fatalf("list of an empty folder: %d, want 404", code)
	}
}

func TestPoliciesAndTokens(t *testing.T) {
	s, c := start(t, Config{
		KV:       []KVMount{{Path: "kv", Version: 1}},
		Policies: map[string][]Rule{"kes": {{Path: "kv/kes/*", Capabilities: []string{"create", "read"}}, {Path: "kv/kes/secret", Capabilities: []string{"deny"}}}},
	})
	a := s.AppRoles()[0]
	code, m := c.do("PUT", "auth/approle/login", map[string]string{"role_id": a.RoleID, "secret_id": "wrong"})
	if code != 400 {
		t.Fatalf("login with a wrong secret ID: %d %v", code, m)
	}
	code, m = c.do("PUT", "auth/approle/login", map[string]string{"role_id": a.RoleID, "secret_id": a.SecretID})
	if code != 200 {
		t.Fatalf("login: %d %v", code, m)
	}
	c.tok = m["auth"].(map[string]any)["client_token"].(string)
	if code, _ := c.do("PUT", "kv/kes/k", map[string]string{"k": "v"}); code != 204 {
		t.Fatalf("create: %d", code)
	}
	// A second write is an update, which the policy does not grant.
	if code, m := c.do("PUT", "kv/kes/k", map[string]string{"k": "w"}); code != 403 || !strings.Contains(errorsOf(m), "permission denied") || strings.Contains(errorsOf(m), "invalid token") {
		t.Fatalf("update without the capability: %d %v", code, m)
	}
	for _, p := range []string{"kv/other", "kv/kes/secret"} {
		if code, _ := c.do("GET", p, nil); code != 403 {
			t.Fatalf("read of %s outside the policy: %d", p, code)
		}
	}
	if code, _ := c.do("GET", "auth/token/lookup-self", nil); code != 200 {
		t.Fatalf("lookup-self: %d", code)
	}
	s.RevokeTokens()
	code, m = c.do("GET", "kv/kes/k", nil)
	if code != 403 || !strings.Contains(errorsOf(m), "invalid token") {
		t.Fatalf("request with a revoked token: %d %v", code, m)
	}
}

func TestHealthSealedNamespace(t *testing.T) {
	s, c := start(t, Config{Namespaces: []string{"t1"}, KV: []KVMount{{Namespace: "t1", Path: "kv", Version: 2}}})
	if code, m := c.do("GET", "sys/health", nil); code != 200 || m["sealed"] != false {
		t.Fatalf("health: %d %v", code, m)
	}
	c.ns = "t1"
	if code, _ := c.do("GET", "sys/health", nil); code != 404 {
		t.Fatalf("health with a namespace: %d, want 404 (root-only path)", code)
	}
	if code, _ := c.do("PUT", "kv/data/k", map[string]any{"data": map[string]any{"k": "v"}}); code != 200 {
		t.Fatalf("write in the namespace: %d", code)
	}
	c.ns = ""
	if code, _ := c.do("GET", "kv/data/k", nil); code != 404 {
		t.Fatalf("the root namespace sees the namespace's engine: %d", code)
	}
	s.SetSealed(true)
	if code, m := c.do("GET", "sys/health?sealedcode=299", nil); code != 299 || m["sealed"] != true {
		t.Fatalf("health while sealed: %d %v", code, m)
	}
	if code, m := c.do("GET", "kv/data/k", nil); code != 503 || !strings.Contains(errorsOf(m), "Vault is sealed") {
		t.Fatalf("read while sealed: %d %v", code, m)
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("0.0.0.0:0"); err == nil {
		s.Close()
		t.Fatal("Start on 0.0.0.0 succeeded")
	}
}

// TestRun checks that `kes dev vault` prints a config section whose
// credentials log in.
func TestRun(t *testing.T) {
	var out emutest.SyncBuffer
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	envFile := filepath.Join(t.TempDir(), "vault.env")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, "127.0.0.1:0", Config{CAFile: caFile, EnvFile: envFile}, &out)
	}()
	re := regexp.MustCompile(`endpoint: (https://\S+)\n[\s\S]*approle:\n\s+engine: (\S+)\n\s+id: (\S+)\n\s+secret: (\S+)\n[\s\S]*The values above are in `)
	var m []string
	for range 500 {
		if m = re.FindStringSubmatch(out.String()); m != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m == nil {
		cancel()
		t.Fatalf("no config printed:\n%s", out.String())
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body, _ := json.Marshal(map[string]string{"role_id": m[3], "secret_id": m[4]})
	resp, err := hc.Post(m[1]+"/v1/auth/"+m[2]+"/login", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("login with the printed credentials: %v %v", err, resp)
	}
	resp.Body.Close()
	env := emutest.ReadEnvFile(t, envFile)
	want := map[string]string{"VAULT_ENDPOINT": m[1], "VAULT_ROLE_ID": m[3], "VAULT_SECRET_ID": m[4], "VAULT_CA": caFile}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env file: %s=%q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["VAULT_NAMESPACE"]; ok || len(env) != len(want) {
		t.Errorf("env file has other variables: %v", env)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf("env file left behind: %v", err)
	}
}
