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

// TestDigestKeyFormatTypeV1_0: the Digest of a Get Attributes answer
// carries Key Format Type at KMIP 1.0 as at later versions (PyKMIP's
// client at 1.0 cannot parse it otherwise). The answer is read as raw
// TTLV: the library's 1.0 decoder would drop the field.
func TestDigestKeyFormatTypeV1_0(t *testing.T) {
	e := newEnv(t)
	c := e.rawFor(t, e.client)
	uid := createAES(t, c)
	for _, v := range []kmip.ProtocolVersion{kmip.V1_0, kmip.V1_1, kmip.V1_4} {
		req := request(v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: uid, AttributeName: []kmip.AttributeName{kmip.AttributeNameDigest}})
		raw := exchangeRaw(t, c, ttlv.MarshalTTLV(req))
		// Key Format Type Raw, inside the Digest's Attribute Value,
		// right after the 32-byte SHA-256 Digest Value.
		kft := ttlv.MarshalTTLV(&ttlv.Value{Tag: kmip.TagKeyFormatType, Value: ttlv.Enum(kmip.KeyFormatTypeRaw)})
		digestValue := []byte{0x42, 0x00, 0x35, 0x08, 0, 0, 0, 0x20}
		i := bytes.Index(raw, digestValue)
		if i < 0 {
			t.Fatalf("KMIP %d.%d: no SHA-256 Digest Value in the answer", v.ProtocolVersionMajor, v.ProtocolVersionMinor)
		}
		if rest := raw[i+len(digestValue)+32:]; !bytes.HasPrefix(rest, kft) {
			t.Errorf("KMIP %d.%d: the Digest has no Key Format Type", v.ProtocolVersionMajor, v.ProtocolVersionMinor)
		}
	}
}
