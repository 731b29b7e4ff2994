// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"math/big"
	"strings"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// getItem returns a successful Get answer for a key of n bytes in the
// given shape.
func getItem(shape int, uid string, material []byte) *kmip.ResponseBatchItem {
	m := material
	var obj kmip.Object
	switch shape {
	case 0: // Raw symmetric key, as the bridge answers by default
		obj = &kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{
			KeyFormatType:          kmip.KeyFormatTypeRaw,
			KeyValue:               &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &m}}},
			CryptographicAlgorithm: kmip.CryptographicAlgorithmAES,
			CryptographicLength:    int32(8 * len(m)),
		}}
	case 1: // Transparent Symmetric Key
		obj = &kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{
			KeyFormatType:          kmip.KeyFormatTypeTransparentSymmetricKey,
			KeyValue:               &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{TransparentSymmetricKey: &kmip.TransparentSymmetricKey{Key: m}}}},
			CryptographicAlgorithm: kmip.CryptographicAlgorithmHMACSHA256,
			CryptographicLength:    int32(8 * len(m)),
		}}
	case 2: // Opaque secret data, no algorithm or length
		obj = &kmip.SecretData{SecretDataType: kmip.SecretDataTypeSeed, KeyBlock: kmip.KeyBlock{
			KeyFormatType: kmip.KeyFormatTypeOpaque,
			KeyValue:      &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &m}}},
		}}
	case 3: // Raw secret data (a password)
		obj = &kmip.SecretData{SecretDataType: kmip.SecretDataTypePassword, KeyBlock: kmip.KeyBlock{
			KeyFormatType: kmip.KeyFormatTypeRaw,
			KeyValue:      &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &m}}},
		}}
	}
	return &kmip.ResponseBatchItem{
		Operation:       kmip.OperationGet,
		ResultStatus:    kmip.ResultStatusSuccess,
		ResponsePayload: &payloads.GetResponsePayload{ObjectType: obj.ObjectType(), UniqueIdentifier: uid, Object: obj},
	}
}

// TestEncodeGetItem checks that appendGetItem encodes every answer it
// takes exactly as the library's encoder does, in every protocol
// version, across the lengths that change the padding, and that it
// leaves every other answer to the library.
func TestEncodeGetItem(t *testing.T) {
	versions := []kmip.ProtocolVersion{kmip.V1_0, kmip.V1_1, kmip.V1_2, kmip.V1_3, kmip.V1_4, kmip.V2_0, kmip.V2_1}
	check := func(t *testing.T, item *kmip.ResponseBatchItem) {
		t.Helper()
		prefix := []byte("kept") // what the buffer already holds stays
		got, ok := appendGetItem(bytes.Clone(prefix), item)
		if !ok {
			t.Fatalf("appendGetItem refused %+v", item)
		}
		// The size it grows the buffer by before writing is exact, so
		// the buffer never grows after the key is in it.
		pl := item.ResponsePayload.(*payloads.GetResponsePayload)
		var block *kmip.KeyBlock
		switch o := pl.Object.(type) {
		case *kmip.SymmetricKey:
			block = &o.KeyBlock
		case *kmip.SecretData:
			block = &o.KeyBlock
		}
		if n := getItemSize(item, pl, block, &block.KeyValue.Plain.KeyMaterial); n != len(got)-len(prefix) {
			t.Fatalf("getItemSize = %d, the encoding has %d bytes", n, len(got)-len(prefix))
		}
		for _, v := range versions {
			want := encodeItemReflect(bytes.Clone(prefix), v, item)
			if !bytes.Equal(got, want) {
				t.Fatalf("version %d.%d: appendGetItem = %x, the library encodes %x", v.ProtocolVersionMajor, v.ProtocolVersionMinor, got, want)
			}
		}
	}
	for shape := range 4 {
		for n := range 34 {
			material := bytes.Repeat([]byte{0xa5}, n)
			for _, uid := range []string{"", "k", "1234567", "12345678", "123456789", "3f5a8bd0-4c32-4b5e-9d1e-7c1e2a9f0b11", "key.v2"} {
				check(t, getItem(shape, uid, material))
			}
		}
		item := getItem(shape, "k", make([]byte, 32))
		item.UniqueBatchItemID = []byte{1, 2, 3}
		check(t, item)
		item.AsynchronousCorrelationValue = []byte("0123456789")
		check(t, item)
		item.ResultReason = kmip.ResultReasonGeneralFailure // success with a reason: the library writes it
		check(t, item)
		item.ResultStatus, item.ResultMessage = kmip.ResultStatusOperationFailed, "x"
		check(t, item)
		item.Operation = 0
		check(t, item)
		big := getItem(shape, strings.Repeat("u", 1000), make([]byte, 4096))
		check(t, big)
	}

	// Every other answer is the library's, and dst is left as it was.
	refuse := func(name string, item *kmip.ResponseBatchItem) {
		t.Helper()
		dst := []byte("kept")
		if out, ok := appendGetItem(dst, item); ok || !bytes.Equal(out, dst) {
			t.Errorf("%s: appendGetItem took it (%v) or changed dst to %x", name, ok, out)
		}
	}
	mut := func(f func(b *kmip.KeyBlock)) *kmip.ResponseBatchItem {
		item := getItem(0, "k", make([]byte, 16))
		f(&item.ResponsePayload.(*payloads.GetResponsePayload).Object.(*kmip.SymmetricKey).KeyBlock)
		return item
	}
	w := []byte{1, 2, 3}
	refuse("compressed", mut(func(b *kmip.KeyBlock) { b.KeyCompressionType = kmip.KeyCompressionTypeECPublicKeyTypeUncompressed }))
	refuse("wrapping data", mut(func(b *kmip.KeyBlock) {
		b.KeyWrappingData = &kmip.KeyWrappingData{WrappingMethod: kmip.WrappingMethodEncrypt}
	}))
	refuse("wrapped value", mut(func(b *kmip.KeyBlock) { b.KeyValue = &kmip.KeyValue{Wrapped: &w} }))
	refuse("no value", mut(func(b *kmip.KeyBlock) { b.KeyValue = nil }))
	refuse("empty value", mut(func(b *kmip.KeyBlock) { b.KeyValue = &kmip.KeyValue{} }))
	refuse("attributes in the value", mut(func(b *kmip.KeyBlock) {
		b.KeyValue.Plain.Attribute = []kmip.Attribute{{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(128)}}
	}))
	refuse("two materials", mut(func(b *kmip.KeyBlock) {
		b.KeyValue.Plain.KeyMaterial.TransparentSymmetricKey = &kmip.TransparentSymmetricKey{}
	}))
	refuse("no material", mut(func(b *kmip.KeyBlock) { b.KeyValue.Plain.KeyMaterial.Bytes = nil }))
	refuse("RSA material", mut(func(b *kmip.KeyBlock) {
		b.KeyValue.Plain.KeyMaterial = kmip.KeyMaterial{TransparentRSAPublicKey: &kmip.TransparentRSAPublicKey{Modulus: *big.NewInt(3), PublicExponent: *big.NewInt(3)}}
	}))
	ext := getItem(0, "k", make([]byte, 16))
	ext.MessageExtension = &kmip.MessageExtension{VendorIdentification: "v"}
	refuse("message extension", ext)
	refuse("nil symmetric key", &kmip.ResponseBatchItem{Operation: kmip.OperationGet, ResponsePayload: &payloads.GetResponsePayload{Object: (*kmip.SymmetricKey)(nil)}})
	refuse("nil secret data", &kmip.ResponseBatchItem{Operation: kmip.OperationGet, ResponsePayload: &payloads.GetResponsePayload{Object: (*kmip.SecretData)(nil)}})
	refuse("no object", &kmip.ResponseBatchItem{Operation: kmip.OperationGet, ResponsePayload: &payloads.GetResponsePayload{}})
	refuse("a certificate", &kmip.ResponseBatchItem{Operation: kmip.OperationGet, ResponsePayload: &payloads.GetResponsePayload{
		ObjectType: kmip.ObjectTypeCertificate, UniqueIdentifier: "c", Object: &kmip.Certificate{CertificateType: kmip.CertificateTypeX_509, CertificateValue: []byte{1}},
	}})
	refuse("a failure", &kmip.ResponseBatchItem{Operation: kmip.OperationGet, ResultStatus: kmip.ResultStatusOperationFailed, ResultReason: kmip.ResultReasonItemNotFound})
	refuse("another operation", &kmip.ResponseBatchItem{Operation: kmip.OperationActivate, ResponsePayload: &payloads.ActivateResponsePayload{UniqueIdentifier: "k"}})
}

// FuzzEncodeGetItem compares appendGetItem with the library's encoder
// on arbitrary identifiers, materials and batch item fields.
func FuzzEncodeGetItem(f *testing.F) {
	f.Add(uint8(0), "3f5a8bd0-4c32-4b5e-9d1e-7c1e2a9f0b11", []byte("0123456789abcdef"), []byte{1}, "", int32(3), int32(128))
	f.Add(uint8(2), "", []byte{}, []byte{}, "message", int32(0), int32(0))
	f.Fuzz(func(t *testing.T, shape uint8, uid string, material, batchID []byte, msg string, alg, length int32) {
		item := getItem(int(shape%4), uid, material)
		item.UniqueBatchItemID, item.ResultMessage = batchID, msg
		o := item.ResponsePayload.(*payloads.GetResponsePayload).Object
		if k, ok := o.(*kmip.SymmetricKey); ok {
			k.KeyBlock.CryptographicAlgorithm, k.KeyBlock.CryptographicLength = kmip.CryptographicAlgorithm(alg), length
		}
		got, ok := appendGetItem(nil, item)
		if !ok {
			t.Fatal("appendGetItem refused a Get answer")
		}
		if want := encodeItemReflect(nil, kmip.V1_4, item); !bytes.Equal(got, want) {
			t.Fatalf("appendGetItem = %x, the library encodes %x", got, want)
		}
	})
}
