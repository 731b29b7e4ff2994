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
// value copied under another name does not unseal. Values of 1 byte to
// 4 KiB are wrapped directly. Larger ones (the wrap action's plaintext
// limit is not documented) and empty ones are encrypted locally with
// AES-256-GCM under a data key that the service generates and wraps in
// the same call ("create and wrap"); either way the root key decides
// whether the value can be read.
//
// When the root key has been rotated, unwrap returns the value re-wrapped
// under the newest version and Unseal hands it back as resealed, which
// keystore.SealedStore writes back. Reseal forces the same for one value.
//
// # Store
//
// NewStore returns a keystore.Store that keeps each key as an extractable
// standard key in the instance (named "kes-<name>"), whose payload is the
// value sealed by the root key as above. A standard key holds at most
// 7,500 bytes, so a sealed value above 5,000 bytes (leaving room for
// base64) is split across several, referenced by ID from the one that
// is found by alias.
//
// Names are not unique in Key Protect, aliases are, so aliases find our
// keys. Every write of a key is a new standard key (payloads cannot be
// changed) with a generation number: Create writes generation 0, each
// Replace the next one. Even generations carry the alias "kes-<name>",
// odd ones "kes_<name>", and readers take the higher generation of the
// two. Creating the next generation with its alias in the create
// request is the commit: of concurrent Creates or Replaces exactly one
// gets the alias. The previous generation is deleted only after its
// successor exists, so a value is never lost and there is no instant
// without a value; a reader that looks at the two aliases across a
// commit may miss both once, and Get retries a miss twice (so a Get of a
// missing name takes about 0.1 s longer). Aliases are never moved,
// because Key Protect takes up to five minutes to release a deleted alias:
// on the real service a second write of the same key within that time,
// or a Create of a name deleted within that time, fails with an error
// that says so and can be retried later. A writer that dies between
// commit and cleanup leaves the older generation behind; readers ignore
// it and the next write deletes it.
//
// Known limits: an instance holds at most 1,000 aliases, so at most
// about 1,000 keys (the limit is per instance, so give each deployment
// its own); a Replace racing with a Delete of the same key can bring the
// key back with the replaced value; List pages with offsets, so keys created or
// deleted while it runs may be missed.
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
