// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package emuenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.env")
	if err := os.WriteFile(path, []byte("OLD=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := []Var{
		{"URL", "https://127.0.0.1:8443"},
		{"CA", "/tmp/a dir/ca.pem"},
		{"PASSWORD", `it's "$HOME" ${X} ` + "`id`"},
	}
	if err := Write(path, vars); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "OLD=") || !strings.Contains(string(b), "\nURL=https://127.0.0.1:8443\n") {
		t.Errorf("file:\n%s", b)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, v := range vars {
		out, err := exec.Command(sh, "-c", `set -a; . "$1"; set +a; printenv "$2"`, "sh", path, v.Name).Output()
		if err != nil {
			t.Fatalf("source: %v", err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != v.Value {
			t.Errorf("%s: sourced %q, want %q", v.Name, got, v.Value)
		}
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []Var{{"lower", "x"}, {"A B", "x"}, {"", "x"}, {"X", "a\nY=b"}} {
		if err := Write(filepath.Join(dir, "e"), []Var{v}); err == nil {
			t.Errorf("%q=%q: no error", v.Name, v.Value)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "e")); !os.IsNotExist(err) {
		t.Errorf("a refused file was written: %v", err)
	}
}
