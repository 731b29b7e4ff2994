// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"strings"
	"testing"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
)

// TestKeyPairMessageCost: the Create Key Pair items of one message may
// cost four RSA-4096 generations in all; the item past that is Invalid
// Field before it generates anything, and the next message starts a
// fresh budget.
func TestKeyPairMessageCost(t *testing.T) {
	if keygenCost(keys.AlgorithmRSA, 4096) != 256 || keygenCost(keys.AlgorithmRSA, 2048) != 16 || keygenCost(keys.AlgorithmEC, 521) != 1 {
		t.Fatal("keygenCost does not follow (bits/1024)^4")
	}
	e := newEnv(t)
	c := e.dial(e.client)
	var items []kmip.OperationPayload
	for range maxKeygenCost / 256 {
		p, err := c.CreateKeyPair().RSA(4096, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).Build()
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, p)
	}
	ec, err := c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).Build()
	if err != nil {
		t.Fatal(err)
	}
	before := len(listKeys(t, e.keys))
	br, err := c.Batch(context.Background(), append(items, ec)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(br) != len(items)+1 {
		t.Fatalf("%d batch items", len(br))
	}
	for _, bi := range br[:len(items)] {
		wantOK(t, bi)
	}
	last := br[len(items)]
	wantReason(t, last, kmip.ResultReasonInvalidField)
	if !strings.Contains(last.ResultMessage, "four RSA-4096") {
		t.Fatalf("refusal message %q", last.ResultMessage)
	}
	if after := len(listKeys(t, e.keys)); after != before+2*len(items) {
		t.Fatalf("%d keys stored, want %d", after-before, 2*len(items))
	}
	// The budget is the message's: the same item alone is served.
	wantOK(t, batchOne(t, c, ec))
}
