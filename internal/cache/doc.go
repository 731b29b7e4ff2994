// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package cache is the key cache in front of the keystore: single-flight
// loads, expiry after a fixed time (any) or after disuse (unused), and an
// offline mode that keeps serving cached keys while the keystore is
// unreachable (offline). Evicted values are released, which wipes their
// key material.
package cache
