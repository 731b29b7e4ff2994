// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import "github.com/kesbridge/kes/keystore"

// maxSealOverhead bounds what Seal adds to a plaintext: the envelope
// format's header, the largest wrap ciphertext we accept back
// (maxWrapped), the GCM nonce and tag. A directly wrapped value is never
// larger than that either (1 + maxWrapped bytes in all).
const maxSealOverhead = 3 + maxWrapped + gcmNonce + gcmTag

// MaxValueSize is the largest value the Store writes. Key Protect holds
// at most 7,500 bytes in a standard key's payload; the Store splits a
// sealed value into at most maxParts standard keys of maxInline bytes
// (which stays under that limit even if it applies to the base64 form),
// so a value plus the sealing overhead must fit in maxParts × maxInline
// bytes: 303,585 bytes.
const MaxValueSize = maxParts*maxInline - maxSealOverhead

// MaxSealOverhead reports the most bytes Seal adds to a plaintext, so
// that a keystore.SealedStore on top of another store knows how large a
// value still fits once sealed.
func (s *Sealer) MaxSealOverhead() int { return maxSealOverhead }

// Capabilities reports what the Store guarantees: values of up to
// MaxValueSize bytes, and no linearizable Replace.
//
// Creating a record under a unique alias makes the service decide
// between two writers that Replace the same generation at once, across
// nodes: exactly one wins. That is not a full compare-and-swap, though.
// Aliases alternate between two names, so a writer that read generation
// g and is overtaken by two further writes can find its alias free again
// and commit g+1 below g+2; when a later writer then removes that record
// as stale and the alias of g is released too, the overtaken writer finds
// nothing to contradict it and reports success for a value that never
// became current. And a Replace racing with a Delete can bring the key
// back (see the package documentation). Both need unlucky timing, but
// callers that rely on LinearizableReplace must not get them.
func (s *Store) Capabilities() keystore.Capabilities {
	return keystore.Capabilities{MaxValueSize: MaxValueSize, LinearizableReplace: false}
}
