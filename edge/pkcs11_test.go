// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package edge

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"

// TestPKCS11 runs the server on the real PKCS#11 driver with a fresh
// SoftHSM2 token: keys sealed by a root key on the token, kept as files.
func TestPKCS11(t *testing.T) {
	util, err := exec.LookPath("softhsm2-util")
	if err == nil {
		_, err = os.Stat(softhsmModule)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("SoftHSM2 is not installed: %v", err)
		}
		t.Skipf("SoftHSM2 is not installed (apt-get install softhsm2): %v", err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	cmd := exec.Command(util, "--init-token", "--free", "--label", "edge-test", "--pin", "1234", "--so-pin", "5678")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}

	p := newPKI(t)
	admin := newAPIKey(t)
	sealed := filepath.Join(dir, "sealed")
	yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "")
	yaml = yaml[:strings.Index(yaml, "keystore:\n")] + `keystore:
  pkcs11:
    module: ` + softhsmModule + `
    token: edge-test
    pin: "1234"
    root_key: kes-root
    create_root_key: true
    store: ` + sealed + "\n"
	e := startWith(t, p, admin, yaml, true)
	ctx := context.Background()
	c := e.kms(admin)
	if err := c.CreateKey(ctx, "hsm-key"); err != nil {
		t.Fatal(err)
	}
	dek, err := c.GenerateKey(ctx, "hsm-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := c.Decrypt(ctx, "hsm-key", dek.Ciphertext, nil)
	if err != nil || !bytes.Equal(pt, dek.Plaintext) {
		t.Fatalf("decrypt: %v", err)
	}
	names, _, err := c.ListKeys(ctx, "", 10)
	if err != nil || len(names) != 1 {
		t.Fatalf("list: %v %v", names, err)
	}
	if entries, err := os.ReadDir(sealed); err != nil || len(entries) == 0 {
		t.Fatalf("no sealed values in the store directory: %v", err)
	}
}
