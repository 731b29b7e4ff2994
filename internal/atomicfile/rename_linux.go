// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package atomicfile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameat2NoReplace renames oldpath to newpath, failing if newpath exists.
// It returns errors.ErrUnsupported where the file system has no such
// rename (for example NFS, or kernels before 3.15).
func renameat2NoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENOTSUP):
		return errors.ErrUnsupported
	default:
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
}

// renameNoReplace is a variable so that tests can take the link path.
var renameNoReplace = renameat2NoReplace
