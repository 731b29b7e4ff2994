// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kesbridge/kes/keystore"
)

// The dev banner's lines must work when pasted: 'make run' starts ./kes,
// which is not on $PATH, so the banner names the binary by its absolute
// path unless "kes" on $PATH is this binary.
func TestBannerCommand(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	banner := func() string {
		var b strings.Builder
		key := newAPIKey(t)
		printBanner(&b, bannerInfo{cfg: &Config{Addr: "127.0.0.1:7373"}, store: keystore.NewMem(), apiKey: key})
		return b.String()
	}

	t.Run("not on PATH", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		out := banner()
		if want := "\n" + shellQuote(exe) + " key create -k my-key\n"; !strings.Contains(out, want) {
			t.Fatalf("banner does not contain %q:\n%s", want, out)
		}
	})
	t.Run("on PATH", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink(exe, filepath.Join(dir, "kes")); err != nil {
			t.Skip(err)
		}
		t.Setenv("PATH", dir)
		out := banner()
		if want := "\nkes key create -k my-key\nkes key dek -k my-key\n"; !strings.Contains(out, want) {
			t.Fatalf("banner does not contain %q:\n%s", want, out)
		}
	})
	t.Run("another kes on PATH", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "kes"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", dir)
		if out := banner(); strings.Contains(out, "\nkes key") {
			t.Fatalf("banner names another kes binary:\n%s", out)
		}
	})
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/local/bin/kes": "/usr/local/bin/kes",
		"/home/a b/kes":      `'/home/a b/kes'`,
		"/tmp/it's/kes":      `'/tmp/it'\''s/kes'`,
		"":                   "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
