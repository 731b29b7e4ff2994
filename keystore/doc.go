// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package keystore defines where keys live: the Store interface that every
// backend driver implements (fs, keycontrol, hpcs, pkcs11, the in-memory
// store), the sentinel and typed errors that callers branch on, and the
// Sealer interface with the SealedStore wrapper that encrypts every stored
// value under an HSM root key.
//
// A store holds opaque encoded values; it knows nothing about key types,
// ciphertexts or policies. The conformance suite in keystoretest states
// the contract in executable form, and every driver runs it.
package keystore
