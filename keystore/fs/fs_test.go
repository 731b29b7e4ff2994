// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package fs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/keystoretest"
)

func newStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store { return newStore(t, t.TempDir()) }, keystoretest.Options{
		ManyKeys: 300,
		// A second Store on the same directory has its own lock file
		// descriptor, so the directory lock is what orders the two, as
		// between two processes.
		Second: func(t *testing.T, first keystore.Store) keystore.Store { return newStore(t, first.(*Store).dir) },
	})
}

// A directory written by minio/kes (one file per key holding the stored
// value, reference kes-api.md §5.1) is read as it is, and what we write
// has the same layout.
func TestMinioLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	stored := []byte("CiQKIMQrD3aHBH2z7EPmvKqcP8MKwQTDeUQkn+TfEyotvhMTEAESJAogMhSywaBOkm+8jk7gaYADYYZmgSERzq/UPTxkOlXQ9wYQARoMCOKakdgGEJ7Br/ECIkA3OTA1YjkzOGIxNzA3ODM3MmNiNjE4OTMzOTEwMzY1ODBjMjkzMzQ5OTU2NDk2MGYxMjU3NTNiMjI3ZGFlNGY0")
	if err := os.WriteFile(filepath.Join(dir, "minio-key"), stored, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, dir)
	if got, err := s.Get(ctx, "minio-key"); err != nil || !bytes.Equal(got, stored) {
		t.Fatalf("Get of a minio/kes key file: %v", err)
	}
	if err := s.Create(ctx, "new-key", []byte("value")); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "new-key"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	if content, _ := os.ReadFile(filepath.Join(dir, "new-key")); string(content) != "value" {
		t.Fatalf("key file holds %q, want exactly the value", content)
	}
	names, _ := s.List(ctx, "")
	if !slices.Equal(names, []string{"minio-key", "new-key"}) {
		t.Fatalf("List = %q: the store's own files must not show", names)
	}
}

func TestInvalidNames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, filepath.Join(dir, "keys"))
	os.WriteFile(filepath.Join(dir, "secret"), []byte("outside"), 0o600)
	for _, name := range []string{"", "../secret", "a/b", `a\b`, ".lock", "..", "a.b"} {
		if err := s.Create(ctx, name, []byte("x")); err == nil || errors.Is(err, keystore.ErrKeyExists) {
			t.Errorf("Create(%q) = %v, want an invalid-name error", name, err)
		}
		if _, err := s.Get(ctx, name); err == nil || errors.Is(err, keystore.ErrKeyNotFound) {
			t.Errorf("Get(%q) = %v, want an invalid-name error", name, err)
		}
		if err := s.Delete(ctx, name); err == nil {
			t.Errorf("Delete(%q) succeeded", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "secret")); err != nil {
		t.Fatal("a file outside the keystore was touched")
	}
}

func TestOversizedFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "huge"), make([]byte, maxValueSize+1), 0o600)
	if _, err := newStore(t, dir).Get(context.Background(), "huge"); err == nil {
		t.Fatal("Get of an oversized key file succeeded")
	}
}

// Two stores on one directory (a server and `kes key rewrap`) see each
// other's writes and never overwrite each other.
func TestTwoProcessesOneDirectory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := newStore(t, dir), newStore(t, dir)
	if err := a.Create(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, "k", []byte("other")); !errors.Is(err, keystore.ErrKeyExists) {
		t.Fatalf("Create through the second store: %v", err)
	}
	if err := b.Replace(ctx, "k", []byte("v1"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := a.Replace(ctx, "k", []byte("v1"), []byte("v3")); !errors.Is(err, keystore.ErrConflict) {
		t.Fatalf("stale Replace through the first store: %v", err)
	}
	if got, _ := a.Get(ctx, "k"); string(got) != "v2" {
		t.Fatalf("Get = %q, want v2", got)
	}
}

func TestStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	s := newStore(t, dir)
	if _, err := s.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	if _, err := s.Status(context.Background()); !keystore.IsUnreachable(err) {
		t.Fatalf("Status with the directory gone: %v, want unreachable", err)
	}
}

// writeFiles puts files with the given names and contents into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// dirNames returns the names of all entries of dir, sorted.
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

// Open removes the temporary files that crashed writers left, also one
// that is a second name of a live key, and nothing that could be a key.
func TestOpenRemovesStaleTemps(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"live":                  "live value",
		".tmp-00000000000000aa": "half a write",
		// Names a key may have, or that are not of the temporary form.
		"tmp-0123456789abcdef": "a key",
		".tmp-not-hex":         "someone else's",
	})
	if err := os.Link(filepath.Join(dir, "live"), filepath.Join(dir, ".tmp-00000000000000bb")); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, dir)
	want := []string{".tmp-not-hex", "live", "tmp-0123456789abcdef"}
	if names := dirNames(t, dir); !slices.Equal(names, want) {
		t.Fatalf("after Open the directory holds %q, want %q", names, want)
	}
	if got, err := s.Get(ctx, "live"); err != nil || string(got) != "live value" {
		t.Fatalf("Get(live) = %q, %v after its second name was removed", got, err)
	}
	if got, err := s.Get(ctx, "tmp-0123456789abcdef"); err != nil || string(got) != "a key" {
		t.Fatalf("Get of a key named like a temporary file = %q, %v", got, err)
	}
}

// A temporary file that a crashed writer left as a second name of a key
// (while this store was open, so Open did not see it) does not keep the
// key's content once the key is deleted or replaced.
func TestDeletedValueGoneFromDisk(t *testing.T) {
	ctx := context.Background()
	for _, op := range []string{"Delete", "Replace"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			s := newStore(t, dir)
			if err := s.Create(ctx, "k", []byte("secret record")); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(filepath.Join(dir, "k"), filepath.Join(dir, ".tmp-0123456789abcdef")); err != nil {
				t.Fatal(err)
			}
			var err error
			if op == "Delete" {
				err = s.Delete(ctx, "k")
			} else {
				err = s.Replace(ctx, "k", []byte("secret record"), []byte("new"))
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range dirNames(t, dir) {
				if b, _ := os.ReadFile(filepath.Join(dir, name)); bytes.Contains(b, []byte("secret record")) {
					t.Fatalf("after %s, %s holds the old record", op, name)
				}
			}
		})
	}
}

// The store adds no file of its own to the directory: minio/kes would
// list it as a key. A lock file of an earlier version is removed.
func TestOnlyKeyFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{".lock": ""})
	s := newStore(t, dir)
	check := func(step string, want ...string) {
		t.Helper()
		if names := dirNames(t, dir); !slices.Equal(names, want) {
			t.Fatalf("after %s the directory holds %q, want %q", step, names, want)
		}
	}
	check("Open")
	if err := s.Create(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	check("Create", "a")
	if err := s.Create(ctx, "a", []byte("2")); !errors.Is(err, keystore.ErrKeyExists) {
		t.Fatalf("second Create: %v", err)
	}
	check("a failed Create", "a")
	if err := s.Replace(ctx, "a", []byte("1"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	check("Replace", "a")
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	check("Delete")
	s.Close()
	newStore(t, dir).Close()
	check("Close and a second Open")
}

// A .lock that is not a regular file is not the lock file of an earlier
// version: it is left alone and Open still works.
func TestOddLegacyLock(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".lock"), 0o700); err != nil {
		t.Fatal(err)
	}
	newStore(t, dir)
	if fi, err := os.Lstat(filepath.Join(dir, ".lock")); err != nil || !fi.IsDir() {
		t.Fatalf("directory .lock touched: %v", err)
	}
}

// List returns key files only, never the store's own files or other
// entries that Get could not read as a key.
func TestListOnlyKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"key":       "v",
		"README.md": "not a key",
		".hidden":   "not a key",
	})
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("key", filepath.Join(dir, "symlink")); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, dir)
	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"key"}) {
		t.Fatalf("List = %q, want [key]", names)
	}
	for _, name := range names {
		if _, err := s.Get(ctx, name); err != nil {
			t.Fatalf("Get of listed %q: %v", name, err)
		}
	}
}
