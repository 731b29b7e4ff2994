// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package hpcs stores keys in IBM Hyper Protect Crypto Services or IBM Key
// Protect (the two share the Key Protect v2 API) and seals values with a
// root key that never leaves the service.
//
// # Sealer
//
// NewSealer returns a keystore.Sealer whose Seal is the root key's wrap
// action with the key name as additional authenticated data, so a sealed
// value copied under another name does not unseal. Values up to 4 KiB are
// wrapped directly. Larger ones (the wrap action's plaintext limit is not
// documented) are encrypted locally with AES-256-GCM under a data key that
// the service generates and wraps in the same call ("create and wrap");
// either way the root key decides whether the value can be read.
//
// When the root key has been rotated, unwrap returns the value re-wrapped
// under the newest version and Unseal hands it back as resealed, which
// keystore.SealedStore writes back. Reseal forces the same for one value.
//
// # Store
//
// NewStore returns a keystore.Store that keeps each key as an extractable
// standard key in the instance: its payload is the value sealed by the
// root key (as above). The standard key is found through the alias
// "kes-<name>", because names are not unique in Key Protect but aliases
// are: the create request carries the alias, so of several concurrent
// Creates of one name exactly one succeeds. Values too large for one
// standard key (7,500 bytes) are split across several, referenced by ID
// from the one that carries the alias.
//
// Replace writes a new standard key and then moves the alias: it removes
// the alias from the old key (which only one of several concurrent
// Replaces can do, so exactly one wins) and adds it to the new key. The
// old key is deleted only after the alias has moved, so the value is never
// lost; between the two alias calls a Get does not find the key, and Get
// retries briefly to ride over that window. If the process dies in the
// window, the new value stays in the instance as a standard key named
// "kes-<name>" without alias; adding the alias by hand restores it.
//
// Store.Rewrap re-wraps every stored value under the newest root key
// version; this is what `kes key rewrap` does for this store.
//
// # Errors
//
// Network errors, timeouts and 5xx answers are *keystore.UnreachableError.
// A disabled, deleted or missing root key and rejected credentials are
// *keystore.UnavailableError with the reasons "root key disabled", "root
// key deleted", "root key not found" and "authentication failed".
package hpcs
