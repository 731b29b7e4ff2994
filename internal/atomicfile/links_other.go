// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !unix

package atomicfile

import "os"

// mayHaveLinks cannot tell without a link count: the directory is
// scanned every time.
func mayHaveLinks(os.FileInfo) bool { return true }
