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

// lockLegacy returns a function that removes the lock file of earlier
// versions if it is a regular file, or nil if there is none.
func lockLegacy(dir string) (remove func() error, err error) {
	path := filepath.Join(dir, legacyLock)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil || !fi.Mode().IsRegular() {
		return nil, err
	}
	return func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}, nil
}
