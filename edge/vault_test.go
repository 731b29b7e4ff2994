// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	emulator "github.com/kesbridge/kes/internal/emulator/vault"
)

// vaultEnv is a Vault emulator and a server on it.
type vaultEnv struct {
	*env
	em *emulator.Server
}

// vaultSection is a minio/kes keystore.vault section for em.
func vaultSection(t *testing.T, em *emulator.Server, version string, transit bool) string {
	t.Helper()
	caFile := filepath.Join(t.TempDir(), "vault-ca.pem")
	if err := os.WriteFile(caFile, em.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	a := em.AppRoles()[0]
	t.Setenv("EDGE_TEST_VAULT_SECRET_ID", a.SecretID)
	s := `keystore:
  vault:
    endpoint: ` + em.URL() + `
    engine: kv
    version: ` + version + `
    prefix: kes
    approle:
      id: ` + a.RoleID + `
      secret: ${EDGE_TEST_VAULT_SECRET_ID}
      retry: 15s
    tls:
      ca: ` + caFile + `
    status:
      ping: 10s
`
	if transit {
		s += "    transit:\n      key: kes\n"
	}
	return s
}

// minioValue is a stored key value in minio/kes v0.24.0's format, put
// together byte by byte from the reference (kes-api.md §5.1), not by
// this server's encoder: standard base64 of the protobuf KeyVersion
// {1: SecretKey{1: key, 2: AES256}, 2: HMACKey{1: hmac, 2: SHA256},
// 3: Timestamp, 4: created_by}.
func minioValue(key, hmacKey []byte, createdBy string) string {
	var b []byte
	b = append(b, 0x0a, 0x24, 0x0a, 0x20)
	b = append(b, key...)
	b = append(b, 0x10, 0x01, 0x12, 0x24, 0x0a, 0x20)
	b = append(b, hmacKey...)
	b = append(b, 0x10, 0x01)
	ts := []byte{0x08}
	ts = binary.AppendUvarint(ts, 1735689600) // 2025-01-01T00:00:00Z
	ts = append(ts, 0x10)
	ts = binary.AppendUvarint(ts, 500000000)
	b = append(b, 0x1a, byte(len(ts)))
	b = append(b, ts...)
	b = append(b, 0x22, 0x40)
	b = append(b, createdBy...)
	return base64.StdEncoding.EncodeToString(b)
}

// TestVaultMinioLayout seeds Vault with keys exactly where and how
// minio/kes v0.24.0 stores them (KV v1, KV v2, KV v2 with transit), and
// checks that the server serves them with their key material, and that
// keys it creates land in the same place and form.
func TestVaultMinioLayout(t *testing.T) {
	key := bytes.Repeat([]byte{0x11}, 32)
	hmacKey := bytes.Repeat([]byte{0x22}, 32)
	value := minioValue(key, hmacKey, strings.Repeat("ab", 32))
	legacy := `{"bytes":"` + base64.StdEncoding.EncodeToString(key) + `","algorithm":"AES256","created_at":"2021-06-01T10:00:00Z","created_by":"` + strings.Repeat("cd", 32) + `"}`
	for _, tt := range []struct {
		name    string
		kv      int
		transit bool
	}{{"v1", 1, false}, {"v2", 2, false}, {"v2-transit", 2, true}} {
		t.Run(tt.name, func(t *testing.T) {
			ecfg := emulator.Config{KV: []emulator.KVMount{{Path: "kv", Version: tt.kv}}}
			em, err := emulator.New(ecfg)
			if err != nil {
				t.Fatal(err)
			}
			seedRoot := func(name, v string) {
				if tt.transit {
					v = transitEncrypt(t, em, v)
				}
				// Path and body as minio/kes writes them: v1
				// kv/<prefix>/<name>; v2 kv/data/<prefix>/<name>.
				if err := em.SeedKV("", "kv", "kes/"+name, map[string]any{name: v}); err != nil {
					t.Fatal(err)
				}
			}
			e := startVaultOn(t, em, tt.kv, tt.transit)
			seedRoot("minio-key", value)
			seedRoot("minio-legacy", legacy)
			ctx := context.Background()
			c := e.kms(e.admin)
			msg := []byte("root access key")
			got, err := c.HMAC(ctx, "minio-key", msg)
			if err != nil {
				t.Fatalf("HMAC with a key minio/kes stored: %v", err)
			}
			m := hmac.New(sha256.New, hmacKey)
			m.Write(msg)
			if !hmac.Equal(got, m.Sum(nil)) {
				t.Fatal("HMAC differs: the server did not read the stored key material")
			}
			dek, err := c.GenerateKey(ctx, "minio-legacy", nil)
			if err != nil {
				t.Fatalf("GenerateKey with a legacy JSON key: %v", err)
			}
			if _, err := c.Decrypt(ctx, "minio-legacy", dek.Ciphertext, nil); err != nil {
				t.Fatal(err)
			}
			names, _, err := c.ListKeys(ctx, "", 0)
			if err != nil || len(names) != 2 {
				t.Fatalf("ListKeys = %v, %v", names, err)
			}

			// Our own key, where minio/kes would look for it.
			if err := c.CreateKey(ctx, "minio-ours"); err != nil {
				t.Fatal(err)
			}
			data, version, ok := em.ReadKV("", "kv", "kes/minio-ours")
			if !ok || len(data) != 1 || (tt.kv == 2 && version != 1) {
				t.Fatalf("stored entry = %v (version %d, found %v), want one field at version 1", data, version, ok)
			}
			field, _ := data["minio-ours"].(string)
			if tt.transit {
				if !strings.HasPrefix(field, "vault:v1:") {
					t.Fatalf("transit field = %.20q, want vault:v1:", field)
				}
				return
			}
			raw, err := base64.StdEncoding.DecodeString(field)
			if err != nil || len(raw) < 4 || !bytes.Equal(raw[:4], []byte{0x0a, 0x24, 0x0a, 0x20}) {
				t.Fatalf("stored field is not the base64 protobuf KeyVersion: %.40q", field)
			}
		})
	}
}

func startVaultOn(t *testing.T, em *emulator.Server, kv int, transit bool) *vaultEnv {
	t.Helper()
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	p := newPKI(t)
	admin := newAPIKey(t)
	version := "v1"
	if kv == 2 {
		version = "v2"
	}
	yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "")
	i := strings.Index(yaml, "keystore:\n")
	yaml = yaml[:i] + vaultSection(t, em, version, transit)
	return &vaultEnv{env: startWith(t, p, admin, yaml, true), em: em}
}

// transitEncrypt wraps a stored value as minio/kes does: the transit
// plaintext is the base64 of the value string.
func transitEncrypt(t *testing.T, em *emulator.Server, value string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"plaintext": base64.StdEncoding.EncodeToString([]byte(value))})
	req, _ := http.NewRequest(http.MethodPost, em.URL()+"/v1/transit/encrypt/kes", bytes.NewReader(body))
	req.Header.Set("X-Vault-Token", em.RootToken())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigWithRoots(em)}, Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !strings.HasPrefix(out.Data.Ciphertext, "vault:v1:") {
		t.Fatalf("transit encrypt: %v %q", err, out.Data.Ciphertext)
	}
	return out.Data.Ciphertext
}

// TestVaultFaults runs the server on Vault and checks the answers of a
// sealed Vault (cached keys keep working with cache.expiry.offline,
// uncached ones answer 504, all recover after unsealing), a slow Vault
// (the route timeout answers 504) and a policy that denies (502
// "permission denied", never 404).
func TestVaultFaults(t *testing.T) {
	t.Run("sealed", func(t *testing.T) {
		e := startVaultOn2(t, emulator.Config{}, "cache:\n  expiry:\n    offline: 1h\n")
		ctx := context.Background()
		c := e.kms(e.admin)
		for _, name := range []string{"cached", "cold"} {
			if err := c.CreateKey(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.GenerateKey(ctx, "cached", nil); err != nil {
			t.Fatal(err)
		}
		e.em.SetSealed(true)
		eventually(t, "offline", e.srv.Keys().Offline)
		for i := range 10 {
			if _, err := c.GenerateKey(ctx, "cached", nil); err != nil {
				t.Fatalf("request %d for a cached key while sealed: %v", i, err)
			}
		}
		raw := e.raw(apiCert(t, e.admin))
		if r := e.do(raw, "POST", "/v1/key/generate/cold", nil); r.code != 503 || !strings.Contains(r.body, "vault is sealed") {
			t.Fatalf("uncached key while sealed: %d %q", r.code, r.body)
		}
		e.em.SetSealed(false)
		eventually(t, "online", func() bool { return !e.srv.Keys().Offline() })
		if _, err := c.GenerateKey(ctx, "cold", nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("slow", func(t *testing.T) {
		e := startVaultOn2(t, emulator.Config{}, "api:\n  /v1/key/create/:\n    timeout: 500ms\n")
		e.em.SetLatency(3 * time.Second)
		raw := e.raw(apiCert(t, e.admin))
		start := time.Now()
		r := e.do(raw, "POST", "/v1/key/create/slow", nil)
		if r.code != 504 {
			t.Fatalf("create on a slow Vault: %d %q, want 504", r.code, r.body)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("the answer took %v", d)
		}
		e.em.SetLatency(0)
	})
	t.Run("denied", func(t *testing.T) {
		e := startVaultOn2(t, emulator.Config{Policies: map[string][]emulator.Rule{"kes": {{Path: "kv/data/other/*", Capabilities: []string{"read", "create"}}}}}, "")
		raw := e.raw(apiCert(t, e.admin))
		for _, path := range []string{"/v1/key/describe/minio-key", "/v1/key/create/minio-key"} {
			method := "GET"
			if strings.Contains(path, "create") {
				method = "POST"
			}
			if r := e.do(raw, method, path, nil); r.code != 502 || r.body != errorBody("permission denied") {
				t.Fatalf("%s with a policy that denies: %d %q, want 502 permission denied", path, r.code, r.body)
			}
		}
	})
}

func startVaultOn2(t *testing.T, ecfg emulator.Config, extra string) *vaultEnv {
	t.Helper()
	em, err := emulator.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	p := newPKI(t)
	admin := newAPIKey(t)
	yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "")
	i := strings.Index(yaml, "keystore:\n")
	yaml = yaml[:i] + vaultSection(t, em, "v2", false) + extra
	return &vaultEnv{env: startWith(t, p, admin, yaml, true), em: em}
}

func tlsConfigWithRoots(em *emulator.Server) *tls.Config {
	return &tls.Config{RootCAs: em.CertPool(), MinVersion: tls.VersionTLS12}
}
