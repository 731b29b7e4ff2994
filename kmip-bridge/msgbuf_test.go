// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"strings"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// One connection reads messages of every size into the buffer it keeps
// for the small ones: a message longer than the buffer, then shorter
// ones, each answered for what it says, with nothing of the message
// before it.
func TestMessageBufferReuse(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	cl := e.dial(e.client)
	id := cl.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	get := func(uid string) *kmip.ResponseMessage {
		t.Helper()
		return exchange(t, c, ttlv.MarshalTTLV(request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: uid})))
	}
	long := strings.Repeat("k", 2*smallMessage)
	for _, uid := range []string{id, long, id + "x", id, long[:smallMessage-100], id[:8], id} {
		resp := get(uid)
		if uid != id {
			wantReason(t, resp.BatchItem[0], kmip.ResultReasonItemNotFound)
			continue
		}
		wantOK(t, resp.BatchItem[0])
		if got := resp.BatchItem[0].ResponsePayload.(*payloads.GetResponsePayload).UniqueIdentifier; got != id {
			t.Fatalf("Get of %s answered %s", id, got)
		}
	}
}
