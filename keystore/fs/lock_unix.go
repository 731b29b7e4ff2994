// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build unix

package fs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockDir takes an exclusive flock on the open directory. Locks on two
// descriptors of one directory exclude each other, also within one
// process, so two Stores on one directory are serialised too.
func lockDir(d *os.File) error {
	return flock(d, unix.LOCK_EX)
}

func unlockDir(d *os.File) error { return flock(d, unix.LOCK_UN) }

func flock(f *os.File, how int) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if !errors.Is(ferr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// legacyLock is the lock file that earlier versions kept in the key
// directory. minio/kes lists it as a key.
const legacyLock = ".lock"

// lockLegacy takes the lock of the lock file of earlier versions, if
// there is one, so that a writer of an earlier version that is still at
// work finishes before the temporary files are cleaned up. The returned
// function removes the file and releases its lock. Only a regular file
// is touched; without one, lockLegacy returns a nil function.
func lockLegacy(dir string) (remove func() error, err error) {
	path := filepath.Join(dir, legacyLock)
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	// Neither a symlink nor a FIFO swapped in since the Lstat is
	// followed or waited for.
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ELOOP) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, err
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		defer f.Close()
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}, nil
}
