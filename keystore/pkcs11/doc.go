// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package pkcs11 keeps keys under a root key in a PKCS#11 token (an HSM, or
// SoftHSM2 for development).
//
// A [Sealer] encrypts values with AES-256-GCM inside the token under a
// non-extractable root key; the key name is the associated data, so a
// sealed value copied under another name does not unseal. [NewStore] adds
// storage: each sealed value is kept on the token as a CKO_DATA object, or,
// with Config.Dir, as a file in a directory for tokens with little storage.
//
// # Sealed value format (version 1)
//
//	offset  size  field
//	0       1     version, 0x01
//	1       12    GCM IV, random (crypto/rand) for every Seal
//	13      n     ciphertext of the n-byte plaintext
//	13+n    16    GCM tag (128 bits)
//
// The associated data is the key name as UTF-8 bytes, nothing else. A
// PKCS#11 key has no versions and the format names no key: the root key
// is rotated by creating a new key on the token and naming the old one in
// Config.PreviousRootKeyLabels. A value the root key does not open is then
// tried with each previous key; Unseal returns it resealed under the root
// key and Reseal re-encrypts it. Without previous keys Reseal returns its
// input unchanged once it parses.
//
// # Objects on the token
//
// Each key is one CKO_DATA object with CKA_TOKEN and CKA_PRIVATE set,
// CKA_LABEL = the key name and CKA_APPLICATION = [Application]; List only
// sees objects with that application. CKA_VALUE holds a record: an 8-byte
// big-endian sequence number followed by the sealed value. Replace creates
// the new object with the next sequence number before it destroys the old
// one, so a crash in between leaves two objects and never none; Get and
// List use the highest sequence number and Replace and Delete remove the
// leftovers. Changing CKA_VALUE in place is not an option: SoftHSM2 2.6.1
// answers C_SetAttributeValue on it with CKR_ATTRIBUTE_READ_ONLY.
//
// # Concurrency
//
// Sessions come from a pool of at most Config.PoolSize sessions; callers
// wait for a free one until their context ends. Create, Replace and
// Delete of one name are serialised inside the process, which makes
// Create exactly-one-winner and Replace a compare-and-swap. Operations
// that create or destroy token objects also exclude every other operation
// on the same module in the process, because SoftHSM2 2.6.1 fails
// C_CreateObject now and then while other threads use the token
// (SoftHSMv2 issue #573). Get remembers the object handle of each name to
// skip C_FindObjects, which SoftHSM2 answers by reading every object of
// the token; a remembered handle is checked on use. Two processes
// that share one token (or one directory) are not serialised against each
// other on the token: run one writer per token. With Config.Dir, Create is
// exactly-one-winner across processes too (the blob is linked into place,
// which fails if the name exists).
//
// # Recovery
//
// When the token or module goes away underneath (a restarted HSM, an
// unplugged token, a C_Finalize elsewhere in the process) an operation
// fails with a session, device or initialisation error. The driver then
// drops its sessions, re-initialises the module when needed, finds the
// token by label again, logs in again and retries the operation once. If
// that fails too the error is a *keystore.UnreachableError.
//
// # Build
//
// PKCS#11 needs cgo. Built with CGO_ENABLED=0 the package keeps its API but
// the constructors return an error that says so.
package pkcs11
