// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build unix

package fs

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The lock is on the directory itself, and a second descriptor of the
// directory (another process, or another Store) cannot take it while it
// is held.
func TestDirectoryLock(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	other, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := lockDir(s.dirf); err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("flock of the directory while the store holds it: %v, want EWOULDBLOCK", err)
	}
	if err := unlockDir(s.dirf); err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock of the directory after the store released it: %v", err)
	}
}
