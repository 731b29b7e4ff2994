// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !unix

package fs

import "os"

// Without flock, writers are serialised within the process only.
func lockFile(*os.File) error   { return nil }
func unlockFile(*os.File) error { return nil }
