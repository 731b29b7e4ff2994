// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hpcsemu "github.com/kesbridge/kes/internal/emulator/hpcs"
	kcemu "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/keystore"
)

func waitKeystore(o *ServerOptions) {
	o.WaitKeystore = true
	o.KeystoreRetry = 20 * time.Millisecond
}

// checkWaiting checks what a server that has not reached its keystore
// answers: 503 with the reason on ready and key calls, status with the
// reason.
func checkWaiting(t *testing.T, e *env) {
	t.Helper()
	raw := e.raw(apiCert(t, e.admin))
	want := errorBody("key store is unavailable: not connected yet: key store is not reachable")
	if r := e.do(raw, "GET", "/v1/ready", nil); r.code != 503 || r.body != want {
		t.Fatalf("ready while waiting: %d %q", r.code, r.body)
	}
	if r := e.do(raw, "POST", "/v1/key/create/k1", nil); r.code != 503 || r.body != want {
		t.Fatalf("create while waiting: %d %q", r.code, r.body)
	}
	st, err := e.kms(e.admin).Status(context.Background())
	if err != nil || st.KeystoreAvailable {
		t.Fatalf("kms-go status while waiting: %+v %v", st, err)
	}
	if _, err := e.kesgo(e.admin).Status(context.Background()); err != nil {
		t.Fatalf("kes-go status while waiting: %v", err)
	}
	if r := e.do(raw, "GET", "/v1/status", nil); !strings.Contains(r.body, `"keystore_error":"not connected yet: key store is not reachable"`) {
		t.Fatalf("status while waiting: %s", r.body)
	}
}

// checkServing checks that the server serves once its keystore is up,
// with the configured key created.
func checkServing(t *testing.T, e *env) {
	t.Helper()
	raw := e.raw(apiCert(t, e.admin))
	eventually(t, "ready", func() bool { return e.do(raw, "GET", "/v1/ready", nil).code == 200 })
	ctx := context.Background()
	c := e.kms(e.admin)
	defer func() {
		if t.Failed() {
			t.Log(e.stderr.String())
		}
	}()
	eventually(t, "configured key", func() bool {
		_, err := c.DescribeKey(ctx, "configured")
		return err == nil
	})
	if err := c.CreateKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateKey(ctx, "k1", nil); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(ctx); err != nil || !st.KeystoreAvailable {
		t.Fatalf("status once connected: %+v %v", st, err)
	}
}

// TestStartBeforeKeyControl starts the server before the KeyControl it
// uses exists: it answers 503 and then serves by itself.
func TestStartBeforeKeyControl(t *testing.T) {
	em, err := kcemu.New(kcemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	addr := freeAddr(t)
	caFile := filepath.Join(t.TempDir(), "kc-ca.pem")
	if err := os.WriteFile(caFile, em.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newPKI(t)
	admin := newAPIKey(t)
	t.Setenv("EDGE_TEST_KC_PASSWORD", em.Password(kcemu.DefaultUsername))
	yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "")
	i := strings.Index(yaml, "keystore:\n")
	yaml = yaml[:i] + `keystore:
  entrust:
    keycontrol:
      endpoint: https://` + addr + `
      vault_id: ` + em.VaultID() + `
      box_id: ` + kcemu.DefaultBox + `
      credentials:
        username: ` + kcemu.DefaultUsername + `
        password: ${EDGE_TEST_KC_PASSWORD}
      tls:
        ca: ` + caFile + "\n" + "keys:\n  - name: configured\n"

	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Without WaitKeystore the server does not start, as before.
	if _, err := NewServer(context.Background(), cfg, ServerOptions{}); err == nil || !keystore.IsUnreachable(err) {
		t.Fatalf("NewServer without WaitKeystore: got %v, want unreachable", err)
	}

	e := startOpts(t, p, admin, yaml, true, waitKeystore)
	if got := e.srv.Keys().Store().String(); got != "keycontrol (not connected)" {
		t.Fatalf("store while waiting: %q", got)
	}
	checkWaiting(t, e)
	if err := em.Start(addr); err != nil {
		t.Fatal(err)
	}
	checkServing(t, e)
	if names := em.SecretNames(kcemu.DefaultBox); len(names) != 2 {
		t.Fatalf("secrets in KeyControl: %v", names)
	}
}

// TestStartBeforeHPCS starts the server, as the keystore and as the
// sealer, while HPCS drops every connection (its CA has to exist before
// the server starts, so the emulator runs from the start and is down).
func TestStartBeforeHPCS(t *testing.T) {
	em, section := hpcsSetup(t, hpcsemu.Config{})
	for _, tc := range []struct{ name, extra string }{
		{"keystore", ""},
		{"seal", "seal:\n  ibm:\n" + section},
	} {
		t.Run(tc.name, func(t *testing.T) {
			em.SetDown(true)
			p := newPKI(t)
			admin := newAPIKey(t)
			yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "keys:\n  - name: configured\n"+tc.extra)
			if tc.extra == "" {
				yaml = yaml[:strings.Index(yaml, "keystore:\n")] + "keystore:\n  ibm:\n" + section + "keys:\n  - name: configured\n"
			}
			e := startOpts(t, p, admin, yaml, true, waitKeystore)
			checkWaiting(t, e)
			em.SetDown(false)
			checkServing(t, e)
		})
	}
}
