// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// TestV2UIDEnumerationOnlyPlaceholder: in a 2.1 batch, a Unique
// Identifier Enumeration other than ID Placeholder (here Create Key Pair
// Public Key, 0x06, after a Create Key Pair) is Invalid Field, not the
// batch's placeholder (which names the private key); the batch stops
// there, so the Destroy after it destroys nothing.
func TestV2UIDEnumerationOnlyPlaceholder(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	msg := v2Request(1,
		op(kmip.OperationCreateKeyPair,
			st(tagCommonAttributes, enum(kmip.TagCryptographicAlgorithm, uint32(kmip.CryptographicAlgorithmRSA)), integer(kmip.TagCryptographicLength, 2048)),
			st(tagPrivateKeyAttributes, integer(kmip.TagCryptographicUsageMask, int32(kmip.CryptographicUsageSign))),
			st(tagPublicKeyAttributes, integer(kmip.TagCryptographicUsageMask, int32(kmip.CryptographicUsageVerify)))),
		op(kmip.OperationGet, enum(kmip.TagUniqueIdentifier, 0x06)), // Create Key Pair Public Key
		op(kmip.OperationDestroy, enum(kmip.TagUniqueIdentifier, 0x06)))
	bis := items(v2Exchange(t, c, msg))
	if len(bis) != 3 {
		t.Fatalf("%d batch items", len(bis))
	}
	pl := v2OK(t, bis[0])
	priv := get(*pl, kmip.TagPrivateKeyUniqueIdentifier).Value.(string)
	v2Fails(t, bis[1], kmip.ResultReasonInvalidField)
	if s := get(bis[2], kmip.TagResultStatus); s == nil || s.Value == ttlv.Enum(kmip.ResultStatusSuccess) {
		t.Fatal("the Destroy by Create Key Pair Public Key succeeded")
	}
	if _, err := e.keys.Describe(t.Context(), priv); err != nil {
		t.Fatalf("the private key: %v", err)
	}
}
