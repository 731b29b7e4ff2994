// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	if err := Create(dir, "a", []byte("one")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := Create(dir, "a", []byte("two")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create = %v, want fs.ErrExist", err)
	}
	if b, err := Read(dir, "a", 3); err != nil || string(b) != "one" {
		t.Fatalf("Read = %q, %v", b, err)
	}
	if err := Replace(dir, "a", []byte("four")); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if _, err := Read(dir, "a", 3); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read above the limit = %v, want ErrTooLarge", err)
	}
	if b, err := Read(dir, "a", 4); err != nil || string(b) != "four" {
		t.Fatalf("Read after Replace = %q, %v", b, err)
	}
	if err := Remove(dir, "a"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := Remove(dir, "a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Remove = %v, want fs.ErrNotExist", err)
	}
	if _, err := Read(dir, "a", 4); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read after Remove = %v, want fs.ErrNotExist", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	if names, err := List(dir, ""); err != nil || names == nil || len(names) != 0 {
		t.Fatalf("List of an empty directory = %#v, %v", names, err)
	}
	for _, n := range []string{"key-b", "key-a", "other", ".lock"} {
		if err := Create(dir, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "key-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	names, err := List(dir, "key-")
	if err != nil || !slices.Equal(names, []string{"key-a", "key-b"}) {
		t.Fatalf("List = %v, %v, want [key-a key-b]", names, err)
	}
}
