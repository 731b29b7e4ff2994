// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package crypto implements the KES key formats: the 256-bit secret keys
// (AES256 and ChaCha20) with their per-ciphertext key derivation, the
// three ciphertext formats KES clients hold (binary, MessagePack, JSON),
// HMAC keys, and the stored value a keystore keeps under a key name
// (base64 of a protobuf KeyVersion, or the legacy JSON object).
//
// Key material lives in locked memory (see locked.go) and is wiped by
// Destroy. Operations on a destroyed key fail with ErrKeyDestroyed rather
// than using wiped bytes.
package crypto
