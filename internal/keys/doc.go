// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package keys is the one service both front doors call: it maps a key
// name to a usable key (keystore → decode → cache), enforces the key's
// lifecycle state, and performs generate, encrypt, decrypt and HMAC.
//
// Lifecycle state and KMIP attributes are stored with the key itself, in
// a field of the stored value that minio/kes ignores, so that every node
// sees them and a key written by minio/kes (which has none) is simply
// Active. Changes go through Update, a compare-and-swap on the keystore.
// On a keystore whose compare-and-swap holds only within one process
// (keystore.Capabilities.LinearizableReplace false), Update first takes a
// per-key lease, kept as a record under a reserved name (LeasePrefix), so
// that two nodes never change one key at once; lease.go states the
// scheme, its assumptions and where it does not help.
//
// # Versions
//
// A key is a series of versions (versions.go, rotate.go). Rotate makes a
// new one through Update; generate, encrypt and HMAC use the newest, or
// the version a VersionRef ("<name>.v<n>") names. The stored value keeps
// the newest version where minio/kes reads it (fields 1-4) and the older
// ones in a field it skips; a key never rotated is stored byte for byte
// as minio/kes stores it. Rules:
//   - a key never rotated writes ciphertext format 1; once rotated,
//     format 2 with the version id in its key id field;
//   - decrypt finds the version by that id (one lookup, one attempt); a
//     number above the newest version the cached key holds reads the key
//     again once (rotated on another node); every other ciphertext is
//     tried with version 1, then the newest: at most two attempts;
//   - a version is Active or Retired (decrypt only); the newest is always
//     Active and can be neither retired nor destroyed; only a retired
//     version can be destroyed, which wipes it and removes it from the
//     stored key, so its ciphertexts fail with crypto.ErrDecrypt;
//   - a key has at most MaxVersions versions;
//   - a Schedule rotates keys whose newest version is older than a
//     period; the condition is checked again inside the compare-and-swap,
//     so several nodes on one keystore make one version per period.
package keys
