// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package atomicfile keeps one value per file in a directory so that a
// reader sees the old or the new file, never a partial one, and a
// finished write survives a crash. The directory stores (keystore/fs and
// the PKCS#11 directory store) share it.
//
// Writes go to a synced temporary file whose name starts with ".tmp-"
// and are then linked (Create) or renamed (Replace) into place; the
// directory is synced after every change. Names starting with a dot are
// therefore left out by List; checking names is the caller's job.
package atomicfile
