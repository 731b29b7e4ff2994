// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package vault is the keystore.Store driver for HashiCorp Vault and
// OpenBao: every key is one entry of a KV secrets engine (version 1 or
// 2), optionally wrapped by a transit key.
//
// # Layout
//
// Keys live exactly where minio/kes keeps them, so that a deployment can
// switch between the two servers on the same Vault:
//
//   - KV v1: the entry <engine>/<prefix>/<name> holds {"<name>": value}.
//   - KV v2: <engine>/data/<prefix>/<name> holds {"<name>": value}; keys
//     are created with cas 0 and deleted with all their versions through
//     <engine>/metadata/<prefix>/<name>.
//   - With transit, the field holds the "vault:vN:..." ciphertext of
//     <transit>/encrypt/<key> over the base64 of the value; any key
//     version N decrypts, so a rotated transit key keeps working.
//
// A value that is printable ASCII (every value minio/kes writes: the
// base64 stored-value format, its legacy JSON form) is stored verbatim.
// Any other value, for example one sealed by a keystore.Sealer, is stored
// as "kesbridge:base64:" followed by its standard base64, a form no
// minio/kes value can take (neither base64 nor JSON contain ':' at that
// position). Transit-wrapped values carry any bytes as they are.
//
// # Sessions
//
// The driver logs in with AppRole or Kubernetes, or uses a given token. It
// renews the token at 80 % of its TTL and logs in again when renewal
// fails, when the token nears its maximum TTL, or when Vault rejects it
// as invalid; it retries with capped exponential backoff until Close. A
// request answered 403 "invalid token" logs in again once and is
// repeated, so a revoked token costs no failed request. A Kubernetes JWT
// that names a file is read again at every login.
//
// # Compare-and-swap
//
// KV v2 has check-and-set: Create writes with cas 0 and Replace with the
// version it read, so both are atomic across every node
// (Capabilities.LinearizableReplace). KV v1 has no compare-and-swap:
// Replace is serialised among the Stores of one process only, and two
// nodes creating one name at the same instant may both succeed unless
// the token's policy lacks "update" on the key paths (then Vault refuses
// to overwrite an existing entry and the loser gets ErrKeyExists). Replace
// needs "update"; the least-privilege policy of minio/kes (create, read,
// delete, list) serves every key but cannot rotate one.
//
// KV v2 versions: Replace adds a version. This driver reads the latest
// version; minio/kes v0.24.0 reads version 1. A key that was never
// replaced (every key minio/kes can create) reads the same in both.
//
// # Client
//
// Requests go through the official client, github.com/hashicorp/vault/api,
// with its own retries off: the driver retries idempotent reads itself and
// decides for every write whether a retry is safe. Two things the client
// does not do are added around it: it reads whole error bodies without a
// limit, so the driver's transport caps every response body; and its
// request helpers send the client-wide token, so the driver uses its raw
// request with the token it holds, to know which token Vault rejected.
package vault
