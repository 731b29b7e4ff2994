// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !unix

package fs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Without flock, writers are serialised within the process only.
func lockDir(*os.File) error   { return nil }
func unlockDir(*os.File) error { return nil }

// legacyLock is the lock file that earlier versions kept in the key
// directory.
const legacyLock = ".lock"

// removeLegacyLock removes the lock file of earlier versions if it is a
// regular file.
func removeLegacyLock(dir string) error {
	path := filepath.Join(dir, legacyLock)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || !fi.Mode().IsRegular() {
		return err
	}
	return os.Remove(path)
}
