// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package fs is the embedded keystore for one machine: one file per key in
// a directory, holding exactly the stored value (the file format of
// minio/kes, so migrating from it is copying the directory, and
// minio/kes can read a directory written here).
//
// # Names
//
// A key file is named after its key. Key names must not contain a path
// separator, NUL or a dot; KES key names ([0-9A-Za-z_-]) always pass. The
// only other files the store ever makes are temporary files named
// ".tmp-" and 16 lower-case hex digits, which a key name can therefore
// never look like. List returns only entries that are regular files with
// a valid key name, so nothing else in the directory shows as a key.
// Key files are mode 0600; the directory is created mode 0700.
//
// # Writes
//
// Every write first makes a temporary file, writes the value, and
// fsyncs it. Then:
//
//   - Create moves it to the key name with a rename that fails if the name
//     exists (renameat2 RENAME_NOREPLACE, Linux). Where that is not
//     available (other systems, or file systems such as NFS), it links
//     the temporary file to the key name (which fails if the name exists)
//     and unlinks the temporary name.
//   - Replace renames it over the key file, after checking under the lock
//     that the file still holds the old value.
//   - Delete unlinks the key file.
//
// The directory is fsynced after each of these, before the call returns,
// so an acknowledged write survives a crash and a power loss. Readers
// never see a partial value: a key name always points at a complete,
// synced file.
//
// # Crashes
//
// A process killed at any point leaves the directory in the old or the
// new state, plus possibly one temporary file: a partial or complete
// value that was not yet moved into place or, on the link path of
// Create, a second name of the new key file (killed between link and
// unlink). Opening the store removes all such temporary files. A
// temporary file that is a second name of a key is also removed by
// Replace and Delete of that key, so that the old record keeps no name in
// the directory even while a store that was opened before the crash is
// still running.
//
// Delete does not overwrite the file before unlinking it. Once every
// name the store made is gone, overwriting would only reach names made
// from outside the store: another key name the administrator linked to
// the same file (which overwriting would corrupt) or a hard-linked
// backup (which a delete must not destroy). Against reading the freed
// blocks of the disk it gives no assurance either, since journaling and
// copy-on-write file systems and flash storage keep old blocks where
// the application cannot reach them. Key material that must not outlive
// a delete on the medium needs an encrypted file system or a sealed
// keystore, where deleting the key makes its copies useless.
//
// # Locking
//
// Writers are serialised within a process by a mutex and across
// processes (a server and `kes key rewrap` on one directory) by an
// exclusive flock(2) on the directory itself, so the lock adds no file to
// the directory. Reads take no lock. The cleanup at Open runs under the
// lock: a temporary file is only ever seen there after its writer has
// finished or died, so a write in progress in another process is never
// removed. Removing second names on Replace and Delete needs no lock, as
// a temporary file of a write in progress is not yet linked to any key.
//
// Limits: flock on a directory needs a local file system; on NFS it may
// fail, and then Open fails rather than run without the lock. On systems
// without flock (Windows) writers are serialised within one process
// only, and Create relies on the link to refuse an existing name.
//
// # Upgrading from earlier versions
//
// Earlier versions locked a ".lock" file in the directory (which
// minio/kes lists as a key and fails to migrate). Open takes that file's
// lock, so that a writer of an earlier version finishes its write, and
// then removes the file. Do not run an earlier version on the same
// directory at the same time as this one: the two locks do not exclude
// each other.
package fs
