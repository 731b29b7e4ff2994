// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package keys_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/pkcs11"
)

// BenchmarkServicePKCS11 is BenchmarkService on a SoftHSM2 token (values
// sealed in the HPCS-less PKCS#11 way: data objects on the token).
func BenchmarkServicePKCS11(b *testing.B) {
	const module = "/usr/lib/softhsm/libsofthsm2.so"
	util, err := exec.LookPath("softhsm2-util")
	if _, serr := os.Stat(module); err != nil || serr != nil {
		b.Skip("SoftHSM2 is not installed")
	}
	dir := b.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		b.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command(util, "--init-token", "--free", "--label", "kes-bench", "--pin", "1234", "--so-pin", "5678").CombinedOutput(); err != nil {
		b.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	benchService(b, func(b *testing.B) keystore.Store {
		s, err := pkcs11.NewStore(context.Background(), pkcs11.Config{
			Module: module, TokenLabel: "kes-bench", PIN: keystore.NewSecret("1234"), RootKeyLabel: "kes-root", CreateRootKey: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}
