// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import "github.com/kesbridge/kes/keystore"

// checkoutEnvelope is the room left in a CheckoutSecret answer for what
// surrounds secret_data: the JSON keys, secret_subtype_info and a lease.
const checkoutEnvelope = 64 << 10

// MaxValueSize is the largest value the store writes: its base64 form
// (secret_data is a base64 string, as minio/kes writes it) plus the rest
// of a checkout answer must fit in the 1 MiB the driver reads back
// (limitCheckout). KeyControl documents no size limit for a secret's
// value, so this read limit is the binding one: 737,280 bytes.
const MaxValueSize = (limitCheckout - checkoutEnvelope) / 4 * 3

// Capabilities reports what the KeyControl store guarantees: values of
// up to MaxValueSize bytes, and no linearizable Replace. KeyControl has
// no compare-and-swap, so Replace is serialised only among the Stores of
// one process; two nodes on one box can both succeed (see Replace).
func (s *Store) Capabilities() keystore.Capabilities {
	return keystore.Capabilities{MaxValueSize: MaxValueSize, LinearizableReplace: false}
}
