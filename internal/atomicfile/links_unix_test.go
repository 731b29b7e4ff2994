// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// On a file system with a rename that does not replace, a created file
// never has a second name, not even for a moment.
func TestCreateOneName(t *testing.T) {
	dir := t.TempDir()
	var seen uint64
	defer func(f func(string, string) error) { renameNoReplace = f }(renameNoReplace)
	rename := renameNoReplace
	renameNoReplace = func(oldpath, newpath string) error {
		err := rename(oldpath, newpath)
		if fi, serr := os.Lstat(newpath); serr == nil {
			seen = uint64(fi.Sys().(*syscall.Stat_t).Nlink)
		}
		return err
	}
	if err := Create(dir, "a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
		t.Fatalf("created file has %d names", n)
	}
	if seen == 0 {
		t.Skip("no rename without replace on this platform or file system")
	}
	if seen != 1 {
		t.Fatalf("created file had %d names right after it was moved into place", seen)
	}
}
