// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"encoding/binary"
	"slices"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// appendGetItem appends the encoding of item to dst if item is the most
// common answer there is, a Get of a symmetric key or secret data in the
// clear (Raw, Opaque or Transparent Symmetric Key, no key wrapping, no
// attributes in the key value), and reports whether it did. Encoding that
// answer by reflection was the largest cost of serving a Get over a
// persistent connection. The bytes are the library's: TestEncodeGetItem
// compares the two on every shape this takes, and any other answer is
// left to the library (false, dst unchanged).
//
// None of this answer's fields depends on the protocol version, so one
// encoding serves every version.
func appendGetItem(dst []byte, item *kmip.ResponseBatchItem) ([]byte, bool) {
	pl, ok := item.ResponsePayload.(*payloads.GetResponsePayload)
	if !ok || pl == nil || item.MessageExtension != nil {
		return dst, false
	}
	var block *kmip.KeyBlock
	var secretType kmip.SecretDataType
	objTag := kmip.TagSymmetricKey
	switch o := pl.Object.(type) {
	case *kmip.SymmetricKey:
		if o == nil {
			return dst, false
		}
		block = &o.KeyBlock
	case *kmip.SecretData:
		if o == nil {
			return dst, false
		}
		block, secretType, objTag = &o.KeyBlock, o.SecretDataType, kmip.TagSecretData
	default:
		return dst, false
	}
	if block.KeyCompressionType != 0 || block.KeyWrappingData != nil || block.KeyValue == nil ||
		block.KeyValue.Wrapped != nil || block.KeyValue.Plain == nil || len(block.KeyValue.Plain.Attribute) != 0 {
		return dst, false
	}
	km := &block.KeyValue.Plain.KeyMaterial
	if km.TransparentRSAPrivateKey != nil || km.TransparentRSAPublicKey != nil ||
		km.TransparentECDSAPrivateKey != nil || km.TransparentECDSAPublicKey != nil ||
		km.TransparentECPrivateKey != nil || km.TransparentECPublicKey != nil ||
		(km.Bytes == nil) == (km.TransparentSymmetricKey == nil) {
		// Not exactly one of the two forms this encodes.
		return dst, false
	}

	// The buffer grows at most once, before the key is written: an
	// array left behind holds no key material (see growWiped).
	dst = growWiped(dst, getItemSize(item, pl, block, km))
	start := len(dst)
	dst = appendTTLVHead(dst, kmip.TagBatchItem, ttlv.TypeStructure, 0)
	if item.Operation != 0 {
		dst = appendTTLVEnum(dst, kmip.TagOperation, uint32(item.Operation))
	}
	if len(item.UniqueBatchItemID) > 0 {
		dst = appendTTLVBytes(dst, kmip.TagUniqueBatchItemID, item.UniqueBatchItemID)
	}
	dst = appendTTLVEnum(dst, kmip.TagResultStatus, uint32(item.ResultStatus))
	if item.ResultStatus != kmip.ResultStatusSuccess || item.ResultReason != 0 {
		dst = appendTTLVEnum(dst, kmip.TagResultReason, uint32(item.ResultReason))
	}
	if item.ResultMessage != "" {
		dst = appendTTLVText(dst, kmip.TagResultMessage, item.ResultMessage)
	}
	if len(item.AsynchronousCorrelationValue) > 0 {
		dst = appendTTLVBytes(dst, kmip.TagAsynchronousCorrelationValue, item.AsynchronousCorrelationValue)
	}

	payload := len(dst)
	dst = appendTTLVHead(dst, kmip.TagResponsePayload, ttlv.TypeStructure, 0)
	dst = appendTTLVEnum(dst, kmip.TagObjectType, uint32(pl.ObjectType))
	dst = appendTTLVText(dst, kmip.TagUniqueIdentifier, pl.UniqueIdentifier)

	obj := len(dst)
	dst = appendTTLVHead(dst, objTag, ttlv.TypeStructure, 0)
	if objTag == kmip.TagSecretData {
		dst = appendTTLVEnum(dst, kmip.TagSecretDataType, uint32(secretType))
	}
	kb := len(dst)
	dst = appendTTLVHead(dst, kmip.TagKeyBlock, ttlv.TypeStructure, 0)
	dst = appendTTLVEnum(dst, kmip.TagKeyFormatType, uint32(block.KeyFormatType))
	kv := len(dst)
	dst = appendTTLVHead(dst, kmip.TagKeyValue, ttlv.TypeStructure, 0)
	if km.Bytes != nil {
		dst = appendTTLVBytes(dst, kmip.TagKeyMaterial, *km.Bytes)
	} else {
		tsk := len(dst)
		dst = appendTTLVHead(dst, kmip.TagKeyMaterial, ttlv.TypeStructure, 0)
		dst = appendTTLVBytes(dst, kmip.TagKey, km.TransparentSymmetricKey.Key)
		dst = endTTLVStruct(dst, tsk)
	}
	dst = endTTLVStruct(dst, kv)
	if block.CryptographicAlgorithm != 0 {
		dst = appendTTLVEnum(dst, kmip.TagCryptographicAlgorithm, uint32(block.CryptographicAlgorithm))
	}
	if block.CryptographicLength != 0 {
		dst = appendTTLVInt(dst, kmip.TagCryptographicLength, block.CryptographicLength)
	}
	dst = endTTLVStruct(dst, kb)
	dst = endTTLVStruct(dst, obj)
	dst = endTTLVStruct(dst, payload)
	return endTTLVStruct(dst, start), true
}

// getItemSize returns the length of appendGetItem's encoding of item,
// whose payload, key block and key material are pl, block and km.
func getItemSize(item *kmip.ResponseBatchItem, pl *payloads.GetResponsePayload, block *kmip.KeyBlock, km *kmip.KeyMaterial) int {
	n := 8 + 16 // Batch Item, Result Status
	if item.Operation != 0 {
		n += 16
	}
	if len(item.UniqueBatchItemID) > 0 {
		n += ttlvStringSize(len(item.UniqueBatchItemID))
	}
	if item.ResultStatus != kmip.ResultStatusSuccess || item.ResultReason != 0 {
		n += 16
	}
	if item.ResultMessage != "" {
		n += ttlvStringSize(len(item.ResultMessage))
	}
	if len(item.AsynchronousCorrelationValue) > 0 {
		n += ttlvStringSize(len(item.AsynchronousCorrelationValue))
	}
	n += 8 + 16 + ttlvStringSize(len(pl.UniqueIdentifier)) // payload, Object Type, Unique Identifier
	n += 8                                                 // the object
	if _, ok := pl.Object.(*kmip.SecretData); ok {
		n += 16
	}
	n += 8 + 16 + 8 // Key Block, Key Format Type, Key Value
	if km.Bytes != nil {
		n += ttlvStringSize(len(*km.Bytes))
	} else {
		n += 8 + ttlvStringSize(len(km.TransparentSymmetricKey.Key))
	}
	if block.CryptographicAlgorithm != 0 {
		n += 16
	}
	if block.CryptographicLength != 0 {
		n += 16
	}
	return n
}

// ttlvStringSize is the encoded length of a Text or Byte String of n
// bytes: its header and the value padded to a multiple of 8.
func ttlvStringSize(n int) int { return 8 + n + (8-n%8)%8 }

// growWiped returns dst with room for n more bytes. When that takes a
// new array, the old one is wiped: it holds the answers encoded so far,
// key material among them, and nothing else would clear it.
func growWiped(dst []byte, n int) []byte {
	if n <= cap(dst)-len(dst) {
		return dst
	}
	out := slices.Grow(dst, n)
	clear(dst[:cap(dst)])
	return out
}

// endTTLVStruct sets the length of the Structure whose header starts at
// dst[start:] to what follows that header.
func endTTLVStruct(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+4:start+8], uint32(len(dst)-start-8))
	return dst
}

// appendTTLVEnum appends an Enumeration.
func appendTTLVEnum(dst []byte, tag int, v uint32) []byte {
	dst = appendTTLVHead(dst, tag, ttlv.TypeEnumeration, 4)
	dst = binary.BigEndian.AppendUint32(dst, v)
	return append(dst, 0, 0, 0, 0)
}

// appendTTLVBytes appends a Byte String, padded to a multiple of 8 bytes.
func appendTTLVBytes(dst []byte, tag int, b []byte) []byte {
	dst = appendTTLVHead(dst, tag, ttlv.TypeByteString, len(b))
	dst = append(dst, b...)
	return append(dst, zeros[:(8-len(b)%8)%8]...)
}

// zeros is the padding of TTLV values.
var zeros [8]byte
