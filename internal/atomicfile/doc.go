// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package atomicfile keeps one value per file in a directory so that a
// reader sees the old or the new file, never a partial one, and a
// finished write survives a crash. The directory stores (keystore/fs and
// the PKCS#11 directory store) share it.
//
// Writes go to a synced temporary file named ".tmp-" and 16 lower-case
// hex digits (see IsTemp), which is then moved into place: by a rename
// that does not replace (Create on Linux), by a link followed by an
// unlink of the temporary name (Create elsewhere), or by a rename over
// the old file (Replace). The directory is synced after every change.
// Names starting with a dot are therefore left out by List; checking
// names is the caller's job, and a caller's names must never start with
// a dot.
//
// A crash leaves at most temporary files besides the old or the new
// state. Replace and Remove take away temporary files that are further
// names of the file they replace or remove (left by a crash between
// link and unlink); RemoveTemps removes all temporary files and is for
// callers that know no other writer is at work, for example under a
// lock.
package atomicfile
