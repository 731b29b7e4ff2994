// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"encoding/binary"
	"time"
	"unicode/utf8"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// decodeGet decodes msg into req if it is the most common request there
// is, one Get of a key by its Unique Identifier (with at most a Maximum
// Response Size, a Time Stamp and a Unique Batch Item ID besides), and reports whether
// it did. Decoding that message by reflection was the larger part of what
// the bridge added to a new connection's cost. The layout is checked
// exactly, padding included; any other message, or any doubt, is left to
// the library's decoder (false), and TestDecodeGet checks that what this
// accepts decodes to the same as there.
func decodeGet(msg []byte, req *kmip.RequestMessage) bool {
	body, rest, ok := ttlvStruct(msg, kmip.TagRequestMessage)
	if !ok || len(rest) != 0 {
		return false
	}
	hdr, body, ok := ttlvStruct(body, kmip.TagRequestHeader)
	if !ok {
		return false
	}
	pv, hdr, ok := ttlvStruct(hdr, kmip.TagProtocolVersion)
	if !ok {
		return false
	}
	major, pv, ok := ttlvInt(pv, kmip.TagProtocolVersionMajor, ttlv.TypeInteger)
	if !ok {
		return false
	}
	minor, pv, ok := ttlvInt(pv, kmip.TagProtocolVersionMinor, ttlv.TypeInteger)
	if !ok || len(pv) != 0 {
		return false
	}
	var (
		out      kmip.RequestMessage
		stamp    time.Time
		hasStamp bool
	)
	out.Header.ProtocolVersion = kmip.ProtocolVersion{ProtocolVersionMajor: major, ProtocolVersionMinor: minor}
	if size, after, ok := ttlvInt(hdr, kmip.TagMaximumResponseSize, ttlv.TypeInteger); ok {
		out.Header.MaximumResponseSize, hdr = size, after
	}
	if val, after, ok := ttlvItem(hdr, kmip.TagTimeStamp, ttlv.TypeDateTime); ok {
		if len(val) != 8 {
			return false
		}
		// As the library decodes a Date-Time.
		stamp, hasStamp, hdr = time.Unix(int64(binary.BigEndian.Uint64(val)), 0), true, after
	}
	count, hdr, ok := ttlvInt(hdr, kmip.TagBatchCount, ttlv.TypeInteger)
	if !ok || count != 1 || len(hdr) != 0 {
		return false
	}
	out.Header.BatchCount = count
	item, body, ok := ttlvStruct(body, kmip.TagBatchItem)
	if !ok || len(body) != 0 {
		return false
	}
	op, item, ok := ttlvInt(item, kmip.TagOperation, ttlv.TypeEnumeration)
	if !ok || kmip.Operation(op) != kmip.OperationGet {
		return false
	}
	var id []byte
	if v, after, ok := ttlvBytes(item, kmip.TagUniqueBatchItemID, ttlv.TypeByteString); ok {
		if len(v) == 0 {
			return false
		}
		id, item = append([]byte(nil), v...), after
	}
	pl, item, ok := ttlvStruct(item, kmip.TagRequestPayload)
	if !ok || len(item) != 0 {
		return false
	}
	uid, pl, ok := ttlvBytes(pl, kmip.TagUniqueIdentifier, ttlv.TypeTextString)
	if !ok || len(uid) == 0 || !utf8.Valid(uid) || len(pl) != 0 {
		return false
	}
	// The time stamp, the batch item and its payload, in one allocation.
	parts := &getParts{stamp: stamp}
	if hasStamp {
		out.Header.TimeStamp = &parts.stamp
	}
	parts.payload.UniqueIdentifier = string(uid)
	parts.items[0] = kmip.RequestBatchItem{
		Operation:         kmip.OperationGet,
		UniqueBatchItemID: id,
		RequestPayload:    &parts.payload,
	}
	out.BatchItem = parts.items[:]
	*req = out
	return true
}

// getParts holds what decodeGet's request points to.
type getParts struct {
	stamp   time.Time
	items   [1]kmip.RequestBatchItem
	payload payloads.GetRequestPayload
}

// ttlvItem splits the item at the start of b, of the given tag and type,
// into its value (without padding) and what follows it. Its padding must
// be zeros.
func ttlvItem(b []byte, tag int, typ ttlv.Type) (val, rest []byte, ok bool) {
	if len(b) < 8 || binary.BigEndian.Uint32(b[:4]) != uint32(tag)<<8|uint32(typ) {
		return nil, nil, false
	}
	n := uint64(binary.BigEndian.Uint32(b[4:8]))
	padded := n
	if typ != ttlv.TypeStructure {
		padded = (n + 7) / 8 * 8
	}
	if padded > uint64(len(b)-8) {
		return nil, nil, false
	}
	for _, c := range b[8+n : 8+padded] {
		if c != 0 {
			return nil, nil, false
		}
	}
	return b[8 : 8+n], b[8+padded:], true
}

// ttlvStruct is ttlvItem for a Structure.
func ttlvStruct(b []byte, tag int) (val, rest []byte, ok bool) {
	return ttlvItem(b, tag, ttlv.TypeStructure)
}

// ttlvBytes is ttlvItem for a Text or Byte String.
func ttlvBytes(b []byte, tag int, typ ttlv.Type) (val, rest []byte, ok bool) {
	return ttlvItem(b, tag, typ)
}

// ttlvInt decodes an Integer or Enumeration at the start of b.
func ttlvInt(b []byte, tag int, typ ttlv.Type) (v int32, rest []byte, ok bool) {
	val, rest, ok := ttlvItem(b, tag, typ)
	if !ok || len(val) != 4 {
		return 0, nil, false
	}
	return int32(binary.BigEndian.Uint32(val)), rest, true
}
