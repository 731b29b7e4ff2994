// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package vault is a strict emulator of the subset of the HashiCorp Vault
// (and OpenBao) HTTP API that the vault keystore driver and minio/kes
// use, for tests, demos and fault injection:
//
//   - KV v1 and KV v2 engines (read, write with check-and-set, delete,
//     metadata delete, list);
//   - transit encrypt and decrypt with "vault:vN:" ciphertexts and key
//     rotation;
//   - AppRole and Kubernetes logins, and token lookup-self, renew-self and
//     revoke-self with TTLs and maximum TTLs;
//   - sys/health (root namespace only), sealing;
//   - namespaces through X-Vault-Namespace, and ACL policies that scope a
//     token to paths and capabilities.
//
// It serves real TLS with a certificate generated in memory, on loopback
// addresses only. Answers follow Vault's documented behaviour; where the
// emulator has to guess, the code says so in a comment starting with
// "Assumed:", and tests must not take those answers as facts about Vault.
//
// Fault switches (SetDown, SetSealed, SetLatency, FailNext,
// RevokeTokens, SetTokenTTL) can be flipped at any time from any
// goroutine. The emulator keeps everything in memory and protects
// nothing.
package vault
