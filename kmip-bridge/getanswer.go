// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// getAnswer is a Get's response payload with the parts of a symmetric
// key's Raw answer and the operation's context: one allocation instead
// of one per part. Its buffer
// holds the copy of a key of up to 256 bits, which the session wipes
// with the other copies once the response is on the wire.
type getAnswer struct {
	// op is the operation's context (opContext): it lives no longer
	// than the answer, which the encoder reads after the operation.
	op       opCtx
	resp     payloads.GetResponsePayload
	key      kmip.SymmetricKey
	value    kmip.KeyValue
	plain    kmip.PlainKeyValue
	material []byte
	buf      [32]byte
}

// copyOf returns a copy of b, in a's buffer if it fits.
func (a *getAnswer) copyOf(b []byte) []byte {
	if len(b) <= len(a.buf) {
		return append(a.buf[:0:len(b)], b...)
	}
	return append([]byte(nil), b...)
}
