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
// (keystore.Capabilities.LinearizableReplace false), Update and Delete
// first take a per-key lease, kept as records under reserved names
// (LeasePrefix, IsReserved), so that two nodes never change one key at
// once; lease.go states the scheme, why it is safe, its assumptions and
// where it does not help. Client changes stop LifecycleHeadroom below
// the keystore's value limit, so that a key can always be revoked and
// destroyed.
package keys
