// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/minio/kms-go/kes"

	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
)

// TestKeyControlColdKeyOneRead sends many concurrent requests for keys
// that are not cached yet, over the KES API to the real KeyControl
// driver, and counts the emulator's reads: one per key.
func TestKeyControlColdKeyOneRead(t *testing.T) {
	em, yaml, p, admin := keyControlSetup(t, emulator.Config{}, "")
	e := startWith(t, p, admin, yaml, true)
	ctx := context.Background()
	c := e.kms(admin)
	const keys, callers = 5, 32
	for k := range keys {
		if err := c.CreateKey(ctx, "cold-"+strconv.Itoa(k)); err != nil {
			t.Fatal(err)
		}
	}
	// Create fills no cache: every key is cold here.
	before := em.Count("CheckoutSecret")
	var wg sync.WaitGroup
	for k := range keys {
		for range callers {
			wg.Go(func() {
				if _, err := c.GenerateKey(ctx, "cold-"+strconv.Itoa(k), nil); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if n := em.Count("CheckoutSecret") - before; n != keys {
		t.Fatalf("%d concurrent requests for each of %d cold keys read KeyControl %d times, want %d", callers, keys, n, keys)
	}
}

// keyControlSetup starts the KeyControl emulator with cfg and returns a
// server config that uses it, with extra appended before the keystore.
func keyControlSetup(t *testing.T, cfg emulator.Config, extra string) (*emulator.Server, string, *pki, kes.APIKey) {
	t.Helper()
	em, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	caFile := filepath.Join(t.TempDir(), "kc-ca.pem")
	if err := os.WriteFile(caFile, em.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newPKI(t)
	admin := newAPIKey(t)
	t.Setenv("EDGE_TEST_KC_PASSWORD", em.Password(emulator.DefaultUsername))
	yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), extra)
	i := strings.Index(yaml, "keystore:\n")
	yaml = yaml[:i] + `keystore:
  entrust:
    keycontrol:
      endpoint: ` + em.URL() + `
      vault_id: ` + em.VaultID() + `
      box_id: ` + emulator.DefaultBox + `
      credentials:
        username: ` + emulator.DefaultUsername + `
        password: ${EDGE_TEST_KC_PASSWORD}
      tls:
        ca: ` + caFile + "\n"
	return em, yaml, p, admin
}

// TestKeyControlOutage runs the server on the real KeyControl driver
// against the emulator and takes KeyControl down: cached keys keep
// working with no failed request, uncached ones answer 504, status and
// ready tell the truth, and the server recovers by itself.
func TestKeyControlOutage(t *testing.T) {
	em, yaml, p, admin := keyControlSetup(t, emulator.Config{}, "cache:\n  expiry:\n    offline: 1h\n")
	e := startWith(t, p, admin, yaml, true)
	ctx := context.Background()
	c := e.kms(admin)
	for _, name := range []string{"cached", "cold"} {
		if err := c.CreateKey(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if names := em.SecretNames(emulator.DefaultBox); len(names) != 2 {
		t.Fatalf("secrets in KeyControl: %v", names)
	}
	dek, err := c.GenerateKey(ctx, "cached", nil)
	if err != nil {
		t.Fatal(err)
	}

	em.SetDown(true)
	eventually(t, "offline", e.srv.Keys().Offline)
	for i := range 20 {
		d, err := c.GenerateKey(ctx, "cached", nil)
		if err != nil {
			t.Fatalf("request %d for a cached key failed: %v", i, err)
		}
		if _, err := c.Decrypt(ctx, "cached", d.Ciphertext, nil); err != nil {
			t.Fatalf("decrypt %d: %v", i, err)
		}
	}
	raw := e.raw(apiCert(t, admin))
	if r := e.do(raw, "POST", "/v1/key/generate/cold", nil); r.code != 504 || r.body != errorBody("failed to read key") {
		t.Fatalf("uncached key during outage: %d %q", r.code, r.body)
	}
	if r := e.do(raw, "GET", "/v1/ready", nil); r.code != 504 {
		t.Fatalf("ready during outage: %d %q", r.code, r.body)
	}
	if st, err := c.Status(ctx); err != nil || st.KeyStoreReachable {
		t.Fatalf("status during outage: %+v %v", st, err)
	}

	em.SetDown(false)
	eventually(t, "online", func() bool { return !e.srv.Keys().Offline() })
	if _, err := c.GenerateKey(ctx, "cold", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, "cached", dek.Ciphertext, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(ctx); err != nil || !st.KeyStoreReachable {
		t.Fatalf("status after outage: %+v %v", st, err)
	}
}
