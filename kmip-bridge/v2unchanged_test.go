// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// TestToV2Unchanged: a Get answer whose 2.x form is its 1.x form is
// passed on as it is, not parsed and encoded again (which made one more
// copy of the key); one with attributes in its Key Value is translated.
func TestToV2Unchanged(t *testing.T) {
	resp := func(attrs []kmip.Attribute) []byte {
		item := getItem(0, "k", bytes.Repeat([]byte{0xa5}, 32))
		item.ResponsePayload.(*payloads.GetResponsePayload).Object.(*kmip.SymmetricKey).KeyBlock.KeyValue.Plain.Attribute = attrs
		return ttlv.MarshalTTLV(&kmip.ResponseMessage{
			Header:    kmip.ResponseHeader{ProtocolVersion: kmip.V2_1, BatchCount: 1},
			BatchItem: []kmip.ResponseBatchItem{*item},
		})
	}
	m := &v2Message{version: kmip.V2_1, items: []v2Item{{op: kmip.OperationGet, v2: true}}}

	plain := resp(nil)
	want := bytes.Clone(plain)
	if got := toV2(plain, m); &got[0] != &plain[0] || !bytes.Equal(got, want) {
		t.Fatal("a Get answer without attributes was rebuilt or changed")
	}
	withAttrs := resp([]kmip.Attribute{{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)}})
	before := bytes.Clone(withAttrs)
	got := toV2(withAttrs, m)
	if bytes.Equal(got, before) {
		t.Fatal("a Get answer with attributes in its Key Value was not translated")
	}
	if !bytes.Contains(got, []byte{0x42, 0x01, 0x25, byte(ttlv.TypeStructure)}) {
		t.Fatalf("no Attributes structure in the 2.x answer %x", got)
	}
}
