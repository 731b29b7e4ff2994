// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package keycontrol is the keystore.Store driver for the Entrust
// KeyControl Vault for Secrets (PASM Vault): every key is one secret in one
// box of one vault.
//
// The stored form is the one minio/kes uses: secret_data on the wire is
// the standard base64 of the stored value bytes, and the secret name is
// the key name. A box filled by minio/kes can be used as is, and one
// filled by this driver can be read by minio/kes.
//
// The driver logs in with a user name and password, renews its access
// token at half its lifetime, logs in again when renewal fails, and keeps
// retrying with capped exponential backoff until Close. A request answered
// 401 or 403 logs in again once and is repeated. Idempotent reads
// (CheckoutSecret, ListSecretIds, GetBox) are retried on connection
// errors and server errors; writes are retried only where a retry cannot
// hide or duplicate an effect (see Store.Create and Store.Replace).
//
// KeyControl has no compare-and-swap. Replace is built from a read, a
// PutSecretValue that adds a new secret version, and a re-check; its
// guarantees and its race window are documented on Store.Replace.
package keycontrol
