// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package hpcs is a strict, in-process emulator of IBM Hyper Protect Crypto
// Services / Key Protect: the IAM token endpoint and the subset of the Key
// Protect v2 key management API that the keystore driver uses (create,
// get, list, delete, aliases and the wrap, unwrap, rewrap, rotate, disable
// and enable actions), served over real TLS with a certificate issued by
// a throw-away CA (see package emutls).
//
// It follows the contract recorded in the project's reference notes
// (status codes, error envelope, reason codes, key states, rotation
// rules). Behaviour that no public source documents is marked in the code
// with an "Assumed:" comment. Root keys do real AES-GCM with the request's
// AAD bound, so tampering and swapping are detected as a real service
// would detect them.
//
// Fault switches (latency, 5xx bursts, token invalidation, down mode) can
// be flipped at runtime, which is what the driver tests use to exercise
// error handling. The emulator is for tests and demos only: it keeps
// everything in memory and protects nothing.
package hpcs
