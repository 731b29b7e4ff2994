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

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{
		".tmp-0123456789abcdef":  true,
		".tmp-0123456789ABCDEF":  false,
		".tmp-0123456789abcde":   false,
		".tmp-0123456789abcdef0": false,
		".tmp-0123456789abcdeg":  false,
		"tmp-0123456789abcdef":   false,
		".lock":                  false,
		"":                       false,
	} {
		if got := IsTemp(name); got != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, got, want)
		}
	}
	dir := t.TempDir()
	tmp, err := writeTemp(dir, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if !IsTemp(filepath.Base(tmp)) {
		t.Fatalf("IsTemp(%q) = false for a name writeTemp made", filepath.Base(tmp))
	}
}

// Without a rename that does not replace, Create links and then removes
// the temporary name.
func TestCreateByLink(t *testing.T) {
	defer func(f func(string, string) error) { renameNoReplace = f }(renameNoReplace)
	renameNoReplace = func(string, string) error { return errors.ErrUnsupported }
	dir := t.TempDir()
	if err := Create(dir, "a", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := Create(dir, "a", []byte("two")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create = %v, want fs.ErrExist", err)
	}
	if b, err := Read(dir, "a", 3); err != nil || string(b) != "one" {
		t.Fatalf("Read = %q, %v", b, err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"a"}) {
		t.Fatalf("directory holds %q, want only a", names)
	}
}

// A crash between link and unlink in Create leaves a temporary file that
// is a second name of the new file. Replace and Remove take it away with
// the old content; a temporary file of a write in progress stays.
func TestTempLinksGoWithTheFile(t *testing.T) {
	for _, op := range []string{"Replace", "Remove"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			if err := Create(dir, "a", []byte("secret")); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, ".tmp-00112233445566ff")
			if err := os.Link(filepath.Join(dir, "a"), link); err != nil {
				t.Fatal(err)
			}
			inProgress := filepath.Join(dir, ".tmp-0000000000000001")
			if err := os.WriteFile(inProgress, []byte("other"), 0o600); err != nil {
				t.Fatal(err)
			}
			var err error
			if op == "Replace" {
				err = Replace(dir, "a", []byte("new"))
			} else {
				err = Remove(dir, "a")
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("second name of the old file still there: %v", err)
			}
			if _, err := os.Lstat(inProgress); err != nil {
				t.Fatalf("unrelated temporary file removed: %v", err)
			}
		})
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"key", "tmp-0123456789abcdef", ".tmp-short", ".lock"}
	for _, n := range keep {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".tmp-aaaaaaaaaaaaaaaa"), 0o700); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, ".tmp-aaaaaaaaaaaaaaaa")
	if _, err := writeTemp(dir, []byte("stale")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "key"), filepath.Join(dir, ".tmp-0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTemps(dir); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keep)
	if names := dirNames(t, dir); !slices.Equal(names, keep) {
		t.Fatalf("after RemoveTemps the directory holds %q, want %q", names, keep)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "key")); string(b) != "key" {
		t.Fatalf("key holds %q after its second name was removed", b)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
