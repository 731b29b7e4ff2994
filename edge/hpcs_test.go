// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kesbridge/kes/internal/crypto"
	emulator "github.com/kesbridge/kes/internal/emulator/hpcs"
)

// TestHPCS runs the server on the real IBM HPCS driver against the
// emulator, as the keystore and as the sealer of a filesystem keystore.
func TestHPCS(t *testing.T) {
	_, section := hpcsSetup(t, emulator.Config{AllowFrequentRotation: true, AllowEarlyEnable: true})

	use := func(t *testing.T, e *env) {
		t.Helper()
		ctx := context.Background()
		c := e.kms(e.admin)
		if err := c.CreateKey(ctx, "sealed-key"); err != nil {
			t.Fatal(err)
		}
		dek, err := c.GenerateKey(ctx, "sealed-key", []byte("ctx"))
		if err != nil {
			t.Fatal(err)
		}
		pt, err := c.Decrypt(ctx, "sealed-key", dek.Ciphertext, []byte("ctx"))
		if err != nil || !bytes.Equal(pt, dek.Plaintext) {
			t.Fatalf("decrypt: %v", err)
		}
		if st, err := c.Status(ctx); err != nil || !st.KeyStoreReachable {
			t.Fatalf("status: %+v %v", st, err)
		}
	}

	t.Run("keystore", func(t *testing.T) {
		p := newPKI(t)
		admin := newAPIKey(t)
		yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "")
		yaml = yaml[:strings.Index(yaml, "keystore:\n")] + "keystore:\n  ibm:\n" + section
		e := startWith(t, p, admin, yaml, true)
		use(t, e)
	})

	t.Run("seal", func(t *testing.T) {
		p := newPKI(t)
		admin := newAPIKey(t)
		yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "seal:\n  ibm:\n"+section)
		e := startWith(t, p, admin, yaml, true)
		use(t, e)
		// The filesystem holds only the sealed value, not a KES key.
		b, err := os.ReadFile(filepath.Join(p.dir, "keys", "sealed-key"))
		if err != nil {
			t.Fatal(err)
		}
		if v, err := crypto.ParseKeyVersion(b); err == nil {
			v.Destroy()
			t.Fatal("the filesystem holds an unsealed key")
		}
	})
}

// hpcsSetup starts the HPCS emulator with cfg and a root key, and returns
// it with the keystore or seal section (below "ibm:") that uses it; the
// API key is in $EDGE_TEST_HPCS_API_KEY.
func hpcsSetup(t *testing.T, cfg emulator.Config) (*emulator.Server, string) {
	t.Helper()
	em, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	root, err := em.CreateRootKey("kes-root")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "hpcs-ca.pem")
	if err := os.WriteFile(caFile, em.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EDGE_TEST_HPCS_API_KEY", em.APIKey())
	section := `    hpcs:
      endpoint: ` + em.URL() + `
      instance_id: ` + em.InstanceID() + `
      root_key_id: ` + root + `
      iam:
        endpoint: ` + em.URL() + `
        api_key: ${EDGE_TEST_HPCS_API_KEY}
      tls:
        ca: ` + caFile + "\n"
	return em, section
}
