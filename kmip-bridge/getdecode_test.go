// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"reflect"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// TestDecodeGet checks that decodeGet accepts the Get requests it is for
// and decodes them as the library does, and that whatever it accepts of
// every one-byte change to them (a different tag, type, length, padding
// or value) also decodes as the library does it.
func TestDecodeGet(t *testing.T) {
	var valid [][]byte
	for _, v := range append([]kmip.ProtocolVersion{kmip.V1_0, kmip.V1_1, kmip.V1_2, kmip.V1_3}, kmip.V1_4, kmip.V2_0, kmip.V2_1) {
		plain := request(v, &payloads.GetRequestPayload{UniqueIdentifier: "3f5a8bd0-4c32-4b5e-9d1e-7c1e2a9f0b11"})
		sized := request(v, &payloads.GetRequestPayload{UniqueIdentifier: "k"})
		sized.Header.MaximumResponseSize = 4096
		sized.BatchItem[0].UniqueBatchItemID = []byte{1, 2, 3}
		for _, m := range []*kmip.RequestMessage{plain, sized} {
			valid = append(valid, ttlv.MarshalTTLV(m))
		}
	}
	check := func(t *testing.T, msg []byte, mustAccept bool) {
		t.Helper()
		var got kmip.RequestMessage
		ok := decodeGet(msg, &got)
		if !ok {
			if mustAccept {
				t.Fatalf("decodeGet refused %x", msg)
			}
			if !reflect.DeepEqual(got, kmip.RequestMessage{}) {
				t.Fatalf("decodeGet refused %x but changed the request", msg)
			}
			return
		}
		var want kmip.RequestMessage
		if err := ttlv.UnmarshalTTLV(msg, &want); err != nil {
			t.Fatalf("decodeGet accepted %x, which the library refuses: %v", msg, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeGet(%x) = %+v, the library decodes %+v", msg, got, want)
		}
	}
	for _, msg := range valid {
		check(t, msg, true)
		for i := range msg {
			for _, x := range []byte{0x01, 0x02, 0x08, 0x80, 0xff} {
				m := append([]byte(nil), msg...)
				m[i] ^= x
				check(t, m, false)
			}
		}
		for n := range len(msg) {
			check(t, msg[:n], false)
		}
	}
	// Other messages are the library's.
	others := []*kmip.RequestMessage{
		request(kmip.V1_4, &payloads.GetRequestPayload{}),
		request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: "k", KeyFormatType: kmip.KeyFormatTypeRaw}),
		request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: "a"}, &payloads.GetRequestPayload{UniqueIdentifier: "b"}),
		request(kmip.V1_4, &payloads.GetAttributesRequestPayload{UniqueIdentifier: "k"}),
	}
	corr := request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: "k"})
	corr.Header.ClientCorrelationValue = "c"
	others = append(others, corr)
	for _, m := range others {
		msg := ttlv.MarshalTTLV(m)
		var got kmip.RequestMessage
		if decodeGet(msg, &got) {
			t.Errorf("decodeGet accepted %x", msg)
		}
	}
}
