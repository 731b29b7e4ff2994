// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kesbridge/kes/keystore"
)

const (
	softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"
	testPIN       = "1234-user"
	testSOPIN     = "5678-so"
	testRootKey   = "kes-root"
)

var tokenSeq atomic.Int64

// requireSoftHSM skips the test when SoftHSM2 is not installed, except
// under CI, which must have it.
func requireSoftHSM(tb testing.TB) string {
	tb.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err == nil {
		_, err = os.Stat(softhsmModule)
	}
	if err != nil {
		msg := fmt.Sprintf("SoftHSM2 is not installed (apt-get install softhsm2): %v", err)
		if os.Getenv("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return util
}

// newToken initialises a fresh SoftHSM2 token in a temporary directory,
// points SOFTHSM2_CONF at it and returns a Config for it that creates the
// root key. SoftHSM2 reads SOFTHSM2_CONF in C_Initialize, which happens
// when the first Sealer or Store of the process opens the module and
// after the last one closed it: tests using it must close their stores
// (t.Cleanup) and must not run in parallel.
func newToken(tb testing.TB) Config {
	tb.Helper()
	util := requireSoftHSM(tb)
	dir := tb.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	content := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("SOFTHSM2_CONF", conf)
	label := fmt.Sprintf("kes-test-%d", tokenSeq.Add(1))
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", testPIN, "--so-pin", testSOPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return Config{
		Module:        softhsmModule,
		TokenLabel:    label,
		PIN:           keystore.NewSecret(testPIN),
		RootKeyLabel:  testRootKey,
		CreateRootKey: true,
	}
}

func newSealer(tb testing.TB, cfg Config) *Sealer {
	tb.Helper()
	s, err := NewSealer(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("NewSealer: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// rawSession opens a session of the test's own on the module that h uses,
// to look at or change the token behind the driver's back.
func rawSession(tb testing.TB, h *hsm) pkcs11.SessionHandle {
	tb.Helper()
	slot, err := h.findSlot()
	if err != nil {
		tb.Fatal(err)
	}
	sh, err := h.mod.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		tb.Fatalf("C_OpenSession: %v", err)
	}
	if err := h.mod.ctx.Login(sh, pkcs11.CKU_USER, testPIN); err != nil && !hasCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		tb.Fatalf("C_Login: %v", err)
	}
	return sh
}

// findRaw finds objects with the library's own calls, not the driver's.
func findRaw(tb testing.TB, h *hsm, sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) []pkcs11.ObjectHandle {
	tb.Helper()
	ctx := h.mod.ctx
	if err := ctx.FindObjectsInit(sh, tmpl); err != nil {
		tb.Fatalf("C_FindObjectsInit: %v", err)
	}
	objs, _, err := ctx.FindObjects(sh, 1000)
	if err != nil {
		tb.Fatalf("C_FindObjects: %v", err)
	}
	if err := ctx.FindObjectsFinal(sh); err != nil {
		tb.Fatalf("C_FindObjectsFinal: %v", err)
	}
	return objs
}
