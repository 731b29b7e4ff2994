// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build unix

package edge

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/kms-go/kes"
)

// TestRunSIGHUP runs the server from a config file through Run and
// reloads it with SIGHUP: a good new file takes effect, a broken one is
// logged and the running config stays.
func TestRunSIGHUP(t *testing.T) {
	p := newPKI(t)
	admin, first, second := newAPIKey(t), newAPIKey(t), newAPIKey(t)
	addr := freeAddr(t)
	file := filepath.Join(t.TempDir(), "config.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(baseConfig(p, identityOf(admin), identityOf(first), ""), "127.0.0.1:0", addr, 1))

	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	ctx := runInBackground(t, Options{ConfigFile: file, Stdout: stdout, Stderr: stderr})
	eventually(t, "banner", func() bool { return strings.Contains(stdout.String(), "MLock") })
	if !strings.Contains(stdout.String(), "Filesystem: ") || !strings.Contains(stdout.String(), identityOf(admin)) {
		t.Fatalf("banner:\n%s", stdout.String())
	}

	e := &env{t: t, pki: p, url: "https://" + addr}
	c1, c2 := e.kms(first), e.kms(second)
	if _, err := c1.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Status(ctx); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("second before reload: %v", err)
	}

	write(strings.Replace(baseConfig(p, identityOf(admin), identityOf(second), ""), "127.0.0.1:0", addr, 1))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	eventually(t, "reload", func() bool { _, err := c2.Status(ctx); return err == nil })

	write("version: v1\nroott: x\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	eventually(t, "reload error logged", func() bool { return strings.Contains(stderr.String(), "reload failed") })
	if !strings.Contains(stderr.String(), "unknown field 'roott'") {
		t.Fatalf("stderr: %s", stderr.String())
	}
	if _, err := c2.Status(ctx); err != nil {
		t.Fatalf("after broken reload: %v", err)
	}
}
