// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// TestEncodeGetItemEdges compares appendGetItem with the library on the
// field values TestEncodeGetItem does not vary: zero enumerations, a
// material that is a nil slice behind a non-nil pointer, a non-UTF-8
// identifier, negative lengths, empty non-nil batch fields.
func TestEncodeGetItemEdges(t *testing.T) {
	versions := []kmip.ProtocolVersion{kmip.V1_0, kmip.V1_4, kmip.V2_0, kmip.V2_1}
	check := func(name string, item *kmip.ResponseBatchItem) {
		t.Helper()
		got, ok := appendGetItem(nil, item)
		if !ok {
			return
		}
		for _, v := range versions {
			if want := encodeItemReflect(nil, v, item); !bytes.Equal(got, want) {
				t.Errorf("%s, version %d.%d: appendGetItem = %x, the library encodes %x", name, v.ProtocolVersionMajor, v.ProtocolVersionMinor, got, want)
			}
		}
	}
	pl := func(item *kmip.ResponseBatchItem) *payloads.GetResponsePayload {
		return item.ResponsePayload.(*payloads.GetResponsePayload)
	}
	for shape := range 4 {
		item := getItem(shape, "\xff\xfe", []byte{1})
		check("non-UTF-8 uid", item)

		item = getItem(shape, "k", []byte{1})
		pl(item).ObjectType = 0
		check("object type 0", item)

		item = getItem(shape, "k", nil)
		check("nil material", item)

		item = getItem(shape, "k", []byte{1})
		item.UniqueBatchItemID = []byte{}
		item.AsynchronousCorrelationValue = []byte{}
		check("empty non-nil batch fields", item)

		item = getItem(shape, "k", []byte{1})
		item.ResultStatus = kmip.ResultStatusOperationPending
		check("pending", item)

		item = getItem(shape, "k", []byte{1})
		switch o := pl(item).Object.(type) {
		case *kmip.SecretData:
			o.SecretDataType = 0
			o.KeyBlock.KeyFormatType = 0
			check("secret data type 0, format 0", item)
			o.KeyBlock.CryptographicAlgorithm = kmip.CryptographicAlgorithmAES
			o.KeyBlock.CryptographicLength = -1
			check("secret data with algorithm and negative length", item)
		case *kmip.SymmetricKey:
			o.KeyBlock.KeyFormatType = 0
			o.KeyBlock.CryptographicLength = -8
			check("format 0, negative length", item)
		}
	}
}

// TestEncodeGetItemGrowthLeavesNoMaterial checks that when appendGetItem
// or encodeItemReflect has to grow dst, the array it leaves behind holds
// none of the key's material: that array is garbage nobody would wipe.
func TestEncodeGetItemGrowthLeavesNoMaterial(t *testing.T) {
	material := bytes.Repeat([]byte{0xa5}, 32)
	item := getItem(0, "k", material)
	full, _ := appendGetItem(nil, item)
	// The offset at which the material ends.
	end := bytes.LastIndex(full, material) + len(material)
	for _, name := range []string{"appendGetItem", "encodeItemReflect"} {
		for c := end - 8; c <= end+24; c++ {
			// A buffer that already holds c bytes' room: the item
			// starts at 0, so the material ends at end.
			old := make([]byte, 0, c)
			var out []byte
			if name == "appendGetItem" {
				out, _ = appendGetItem(old, item)
			} else {
				out = encodeItemReflect(old, kmip.V1_4, item)
			}
			if cap(out) == cap(old) && &out[0] == &old[:1][0] {
				continue // not grown
			}
			if bytes.Contains(old[:cap(old)], material[:16]) {
				t.Errorf("%s: with a buffer of capacity %d, the array left behind by growth holds the key material", name, c)
			}
		}
	}
}

// A Get answer whose payload is a typed nil is left to the library, as
// a nil object is, rather than dereferenced.
func TestEncodeGetItemNilPayload(t *testing.T) {
	item := &kmip.ResponseBatchItem{Operation: kmip.OperationGet, ResponsePayload: (*payloads.GetResponsePayload)(nil)}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("appendGetItem panicked on a nil payload: %v", r)
		}
	}()
	if _, ok := appendGetItem(nil, item); ok {
		t.Fatal("appendGetItem took a nil payload")
	}
}

// When the answers of a batch outgrow the message's buffer, the array
// left behind holds none of the earlier answers' key material: it is
// garbage nobody would wipe. Both encoders wipe it (growWiped).
func TestEncodeItemGrowthLeavesNoEarlierMaterial(t *testing.T) {
	material := bytes.Repeat([]byte{0x5a}, 32)
	first := getItem(0, "first", material)
	second := getItem(0, "second", make([]byte, 32))
	for _, name := range []string{"appendGetItem", "encodeItemReflect"} {
		enc := func(dst []byte, item *kmip.ResponseBatchItem) []byte {
			if name == "appendGetItem" {
				out, _ := appendGetItem(dst, item)
				return out
			}
			return encodeItemReflect(dst, kmip.V1_4, item)
		}
		one := enc(nil, first)
		old := make([]byte, 0, len(one)) // full after the first answer
		old = enc(old, first)
		if cap(old) != len(one) {
			t.Fatalf("%s grew a buffer of the exact size", name)
		}
		out := enc(old, second)
		if &out[0] == &old[0] {
			t.Fatalf("%s did not grow a full buffer", name)
		}
		if bytes.Contains(old, material) {
			t.Errorf("%s: the array left behind by growth holds the first answer's key material", name)
		}
	}
}
