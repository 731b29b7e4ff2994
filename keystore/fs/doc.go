// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package fs is the embedded keystore for one machine: one file per key in
// a directory, holding exactly the stored value (the file format of
// minio/kes, so migrating from it is copying the directory).
//
// Files are written to a temporary name, synced, and then linked into
// place, so a crash never leaves a half-written key behind and a create
// never overwrites one. Replace renames over the old file. An advisory
// lock on the directory serialises writers across processes (for example
// `kes key rewrap` next to a running server).
package fs
