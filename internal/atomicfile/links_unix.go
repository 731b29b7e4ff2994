// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build unix

package atomicfile

import (
	"os"
	"syscall"
)

// mayHaveLinks reports whether the file has more than one name, so that
// the usual case costs no directory scan.
func mayHaveLinks(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || st.Nlink > 1
}
