// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package fs

import "github.com/kesbridge/kes/keystore"

// Capabilities reports what the fs store guarantees.
//
// MaxValueSize is maxValueSize (1 MiB), the most that Get reads from a
// key file: the read limit minio/kes has for its fs keystore, which keeps
// directories written by either server readable by both. Create and
// Replace refuse anything larger, so no write can leave a file that Get
// would then refuse forever.
//
// Replace is linearizable among every Store on the same directory of one
// machine, in this process or another: it compares and writes while it
// holds the directory's advisory lock (see write). It is not for network
// file systems whose locks are not honoured across machines.
func (s *Store) Capabilities() keystore.Capabilities {
	return keystore.Capabilities{MaxValueSize: maxValueSize, LinearizableReplace: true}
}

// checkWrite checks what Create and Replace are given before they touch
// the directory: a valid name and a value Get can read back.
func checkWrite(name string, value []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	return keystore.CheckValueSize(value, maxValueSize)
}
