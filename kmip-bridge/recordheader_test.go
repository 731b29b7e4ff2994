// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"encoding/json"
	"testing"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
)

// headerRecords are records as object.meta writes them, for every object
// type and with and without attributes.
func headerRecords(t testing.TB) [][]byte {
	t.Helper()
	attrs := []kmip.Attribute{
		{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "a name", NameType: kmip.NameTypeUninterpretedTextString}},
		{AttributeName: "x-custom", AttributeValue: "some text with \"quotes\" and \\ in it"},
	}
	objs := []object{
		{typ: kmip.ObjectTypeSymmetricKey, alg: kmip.CryptographicAlgorithmAES, length: 256, attrs: attrs},
		{typ: kmip.ObjectTypeSymmetricKey, alg: kmip.CryptographicAlgorithmAES, length: 128},
		{typ: kmip.ObjectTypeSymmetricKey, alg: kmip.CryptographicAlgorithmAES, length: 128, format: kmip.KeyFormatTypeTransparentSymmetricKey, attrs: attrs},
		{typ: kmip.ObjectTypeSecretData, secretType: kmip.SecretDataTypePassword, attrs: attrs},
		{typ: kmip.ObjectTypeSecretData, secretType: kmip.SecretDataTypePassword, format: kmip.KeyFormatTypeRaw},
		{typ: kmip.ObjectTypeOpaqueObject, opaqueType: kmip.OpaqueDataType(0x80000001)},
		{typ: kmip.ObjectTypePrivateKey, alg: kmip.CryptographicAlgorithmRSA, length: 2048, attrs: attrs[:1]},
		{typ: kmip.ObjectType(0xffffffff), alg: kmip.CryptographicAlgorithm(0xffffffff), length: 1<<31 - 1},
	}
	var recs [][]byte
	for _, obj := range objs {
		m, err := obj.meta()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, m.KMIP)
	}
	return recs
}

// The fast path decides every record this server writes, with the values
// encoding/json decodes.
func TestParseRecordHeader(t *testing.T) {
	for _, rec := range headerRecords(t) {
		var fast, slow recordHeader
		if !parseRecordHeader(rec, &fast) {
			t.Errorf("fast path declined %s", rec)
			continue
		}
		if err := json.Unmarshal(rec, &slow); err != nil {
			t.Fatal(err)
		}
		if fast.Type != slow.Type || fast.Algorithm != slow.Algorithm || fast.Length != slow.Length ||
			fast.SecretType != slow.SecretType || fast.OpaqueType != slow.OpaqueType || fast.Format != slow.Format ||
			string(fast.Attributes) != string(slow.Attributes) {
			t.Errorf("%s: fast %+v, encoding/json %+v", rec, fast, slow)
		}
	}
	// Shapes it leaves to encoding/json: they decode the same there.
	for _, rec := range []string{
		`{"type":2,"v":1}`, `{"v":1, "type":2}`, `{"v":1,"type":02}`, `{"v":1,"type":2.0}`, `{"v":1,"type":-2}`,
		`{"v":1,"type":2,"len":2147483648}`, `{"v":1,"type":4294967296}`, `{"v":1,"type":2,"attrs":"a\u0041"}`,
		`{"v":1,"type":2} `, `{"v":1,"type":2,"TYPE":3}`, `{"v":1,"type":2,"alg":3,"alg":4}`, `{"v":1,"type":2,"attrs":"ab"`,
	} {
		var h recordHeader
		if parseRecordHeader([]byte(rec), &h) {
			t.Errorf("fast path decided %s", rec)
		}
	}
}

// A Get's header read allocates only the object it returns: no decoding
// state for the record.
func TestHeaderOfAllocations(t *testing.T) {
	o := &keys.Object{Name: "uid"}
	o.Meta.KMIP = headerRecords(t)[0]
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := headerOf(o); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("headerOf allocates %v times; want 1", allocs)
	}
}

// FuzzParseRecordHeader checks that wherever the fast path decides,
// encoding/json accepts the same bytes and decodes the same values.
func FuzzParseRecordHeader(f *testing.F) {
	for _, rec := range headerRecords(f) {
		f.Add(rec)
	}
	f.Add([]byte(`{"v":1,"type":2,"alg":3,"len":256,"secretType":4,"opaqueType":5,"format":2,"attrs":"QUJD"}`))
	f.Add([]byte(`{"v":0,"type":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow recordHeader
		if !parseRecordHeader(b, &fast) {
			return
		}
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("fast path decided %q, which encoding/json refuses: %v", b, err)
		}
		if fast.Type != slow.Type || fast.Algorithm != slow.Algorithm || fast.Length != slow.Length ||
			fast.SecretType != slow.SecretType || fast.OpaqueType != slow.OpaqueType || fast.Format != slow.Format ||
			string(fast.Attributes) != string(slow.Attributes) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", b, fast, slow)
		}
	})
}
