// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystore

// TokenObserver is told the outcome of every access token renewal of a
// driver that holds one (KeyControl, HPCS/Key Protect, Vault): err is
// nil when a fresh token was obtained, else why not (an
// *UnreachableError, an *UnavailableError or another error). It is
// called from the driver's refresher goroutine and must not block; it
// never sees the token.
type TokenObserver func(err error)

// Observe calls o with err if o is not nil.
func (o TokenObserver) Observe(err error) {
	if o != nil {
		o(err)
	}
}
