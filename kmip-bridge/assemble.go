// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"sync"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// Response assembly.
//
// A TTLV Structure is its 8-byte tag, type and length followed by the
// encodings of its fields, so a Response Message is its header, then the
// Response Header, then each Batch Item. limitItem encodes every answer
// to charge its size to the response budget; the encoding is kept and the
// message is assembled from those bytes instead of encoding every answer
// a second time, which was the larger part of what encoding a Get
// answer's message cost.
//
// The kept encodings are used only when the response's batch items are,
// in order, exactly the answers that were encoded, field by field (the
// payload by identity), in the message's protocol version. Any other
// response (a failure of the message as a whole, items the library
// skipped after a Stop, an item that did not fit) is encoded whole, as
// before.

// keep records that item, whose encoding limitItem just appended to
// m.items, is the answer of the next batch item.
func (m *message) keep(item kmip.ResponseBatchItem) {
	if m.kept == nil {
		m.kept = m.keptBuf[:0]
	}
	m.kept = append(m.kept, item)
	m.keptLen = len(m.items)
}

// assembleResponse returns the encoding of resp, the response to m.
func (m *message) assembleResponse(resp *kmip.ResponseMessage) []byte {
	if !m.matches(resp) {
		return ttlv.MarshalTTLV(resp)
	}
	// The header is rarely above 128 bytes; append grows out if it is.
	out := make([]byte, 8, 8+128+len(m.items))
	out = appendHeader(out, &resp.Header)
	n := len(out) - 8 + len(m.items)
	if uint64(n) > 1<<32-1 {
		// Beyond any response size limit; checkResponseSize refuses
		// what this encodes.
		return ttlv.MarshalTTLV(resp)
	}
	binary.BigEndian.PutUint32(out[0:4], uint32(kmip.TagResponseMessage)<<8|uint32(ttlv.TypeStructure))
	binary.BigEndian.PutUint32(out[4:8], uint32(n))
	out = append(out, m.items...)
	return out
}

// matches reports whether resp's batch items are the answers kept in m,
// in order and in the protocol version of resp.
func (m *message) matches(resp *kmip.ResponseMessage) bool {
	if len(m.kept) == 0 || len(m.kept) != len(resp.BatchItem) ||
		m.keptLen != len(m.items) || resp.Header.ProtocolVersion != m.version {
		return false
	}
	for i := range resp.BatchItem {
		if !sameItem(&m.kept[i], &resp.BatchItem[i]) {
			return false
		}
	}
	return true
}

// sameItem reports whether a and b encode the same: equal fields, and the
// same payload and message extension.
func sameItem(a, b *kmip.ResponseBatchItem) bool {
	return a.Operation == b.Operation &&
		bytes.Equal(a.UniqueBatchItemID, b.UniqueBatchItemID) &&
		a.ResultStatus == b.ResultStatus &&
		a.ResultReason == b.ResultReason &&
		a.ResultMessage == b.ResultMessage &&
		bytes.Equal(a.AsynchronousCorrelationValue, b.AsynchronousCorrelationValue) &&
		comparableType(b.ResponsePayload) && a.ResponsePayload == b.ResponsePayload &&
		a.MessageExtension == b.MessageExtension
}

// comparableType reports whether v can be compared with == without a
// panic: an interface comparison panics only on equal dynamic types that
// are not comparable.
func comparableType(v any) bool {
	return v == nil || reflect.TypeOf(v).Comparable()
}

// release wipes m's kept encodings, which may hold key material, and
// returns their buffer for the next message.
func (m *message) release() {
	if m.items == nil {
		return
	}
	clear(m.items)
	if cap(m.items) <= maxPooledItems {
		b := m.items[:0]
		itemBufs.Put(&b)
	}
	m.items, m.kept = nil, nil
}

// maxPooledItems is the largest buffer of kept encodings itemBufs keeps:
// a rare large answer should not keep its memory for every message.
const maxPooledItems = 64 << 10

// itemBufs holds buffers for message.items.
var itemBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// itemBuf returns an empty buffer for message.items.
func itemBuf() []byte { return (*itemBufs.Get().(*[]byte))[:0] }

// appendHeader appends the encoding of h to dst, the same as the
// library's reflection-based encoder's (TestEncodeHeader compares the
// two) but written field by field: the Response Header is in every
// response, and encoding it by reflection cost a tenth of handling a Get.
func appendHeader(dst []byte, h *kmip.ResponseHeader) []byte {
	if h.Nonce != nil || len(h.AttestationType) > 0 {
		// Fields the executor never sets.
		enc := ttlv.NewTTLVEncoder()
		enc.TagAny(kmip.TagResponseHeader, h)
		return append(dst, enc.Bytes()...)
	}
	v := h.ProtocolVersion
	// The correlation values exist from version 1.4 on.
	correlation := v.ProtocolVersionMajor > 1 || v.ProtocolVersionMajor == 1 && v.ProtocolVersionMinor >= 4
	start := len(dst)
	dst = appendTTLVHead(dst, kmip.TagResponseHeader, ttlv.TypeStructure, 0)
	dst = appendTTLVHead(dst, kmip.TagProtocolVersion, ttlv.TypeStructure, 32)
	dst = appendTTLVInt(dst, kmip.TagProtocolVersionMajor, v.ProtocolVersionMajor)
	dst = appendTTLVInt(dst, kmip.TagProtocolVersionMinor, v.ProtocolVersionMinor)
	dst = appendTTLVHead(dst, kmip.TagTimeStamp, ttlv.TypeDateTime, 8)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.TimeStamp.Unix()))
	if correlation && h.ClientCorrelationValue != "" {
		dst = appendTTLVText(dst, kmip.TagClientCorrelationValue, h.ClientCorrelationValue)
	}
	if correlation && h.ServerCorrelationValue != "" {
		dst = appendTTLVText(dst, kmip.TagServerCorrelationValue, h.ServerCorrelationValue)
	}
	dst = appendTTLVInt(dst, kmip.TagBatchCount, h.BatchCount)
	binary.BigEndian.PutUint32(dst[start+4:start+8], uint32(len(dst)-start-8))
	return dst
}

// appendTTLVHead appends the tag, type and length of an item.
func appendTTLVHead(dst []byte, tag int, typ ttlv.Type, n int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(tag)<<8|uint32(typ))
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// appendTTLVInt appends an Integer.
func appendTTLVInt(dst []byte, tag int, v int32) []byte {
	dst = appendTTLVHead(dst, tag, ttlv.TypeInteger, 4)
	dst = binary.BigEndian.AppendUint32(dst, uint32(v))
	return append(dst, 0, 0, 0, 0)
}

// appendTTLVText appends a Text String, padded to a multiple of 8 bytes.
func appendTTLVText(dst []byte, tag int, s string) []byte {
	dst = appendTTLVHead(dst, tag, ttlv.TypeTextString, len(s))
	dst = append(dst, s...)
	return append(dst, zeros[:(8-len(s)%8)%8]...)
}
