// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"strings"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// TestSignMessageCost: the signatures of one message are charged to its
// budget by key size, so that a batch cannot hold a core for a minute;
// the item past maxSignCost is refused before it signs, and the same
// item in a message of its own is served.
func TestSignMessageCost(t *testing.T) {
	if signCost(kmip.CryptographicAlgorithmRSA, 2048) != 8 || signCost(kmip.CryptographicAlgorithmRSA, 8192) != 512 ||
		signCost(kmip.CryptographicAlgorithmECDSA, 521) != 1 {
		t.Fatal("signCost does not follow (bits/1024)^3")
	}
	e := newEnv(t)
	c := e.dial(e.client)
	resp := c.CreateKeyPair().RSA(4096, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).MustExec()
	priv := resp.PrivateKeyUniqueIdentifier
	c.Activate(priv).MustExec()
	params := &kmip.CryptographicParameters{PaddingMethod: kmip.PaddingMethodPKCS1V1_5, HashingAlgorithm: kmip.HashingAlgorithmSHA_256}
	sign := &payloads.SignRequestPayload{UniqueIdentifier: priv, CryptographicParameters: params, Data: []byte("m")}
	n := maxSignCost / signCost(kmip.CryptographicAlgorithmRSA, 4096)
	items := make([]kmip.OperationPayload, n+1)
	for i := range items {
		items[i] = sign
	}
	br, err := c.Batch(context.Background(), items...)
	if err != nil {
		t.Fatal(err)
	}
	if len(br) != n+1 {
		t.Fatalf("%d batch items, want %d", len(br), n+1)
	}
	for _, bi := range br[:n] {
		wantOK(t, bi)
	}
	last := br[n]
	wantReason(t, last, kmip.ResultReasonInvalidField)
	if !strings.Contains(last.ResultMessage, "1,000 RSA-2048 signatures") {
		t.Fatalf("refusal message %q", last.ResultMessage)
	}
	wantOK(t, batchOne(t, c, sign))
}
