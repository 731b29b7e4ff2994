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
