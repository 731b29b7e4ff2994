// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// TestAssembleResponse checks that a response assembled from the answers
// limitItem encoded is byte for byte the library's encoding of the whole
// response, in every 1.x version, and that the kept encodings are used
// exactly when the response's items are the answers that were encoded.
func TestAssembleResponse(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	uid := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	get := func(id string) *payloads.GetRequestPayload { return &payloads.GetRequestPayload{UniqueIdentifier: id} }
	create := &payloads.CreateRequestPayload{
		ObjectType: kmip.ObjectTypeSymmetricKey,
		TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
			{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(128)},
			{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt},
		}},
	}
	type tc struct {
		name string
		req  *kmip.RequestMessage
		// kept is whether the response is assembled from the kept
		// encodings rather than encoded whole.
		kept bool
	}
	var cases []tc
	for _, v := range []kmip.ProtocolVersion{kmip.V1_0, kmip.V1_1, kmip.V1_2, kmip.V1_3, kmip.V1_4} {
		cases = append(cases,
			tc{"get " + v.String(), request(v, get(uid)), true},
			tc{"discover " + v.String(), request(v, &payloads.DiscoverVersionsRequestPayload{}), true},
			tc{"unknown " + v.String(), request(v, get("no-such-key")), true},
			// Locate and Query answers have fields of later versions.
			tc{"locate " + v.String(), request(v, &payloads.LocateRequestPayload{MaximumItems: 10}), true},
			tc{"query " + v.String(), request(v, &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionOperations, kmip.QueryFunctionRNGs, kmip.QueryFunctionProfiles}}), true},
		)
	}
	withIDs := request(kmip.V1_4, get(uid), create, get("no-such-key"))
	for i := range withIDs.BatchItem {
		withIDs.BatchItem[i].UniqueBatchItemID = []byte{byte(i + 1)}
	}
	cases = append(cases, tc{"batch with ids", withIDs, true})
	corr := request(kmip.V1_4, get(uid))
	corr.Header.ClientCorrelationValue = "client-42"
	cases = append(cases, tc{"correlation value", corr, true})

	// Items the library answers itself are not kept: the response is
	// encoded whole.
	stop := request(kmip.V1_4, get("no-such-key"), get(uid))
	stop.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionStop
	cases = append(cases, tc{"stopped batch", stop, false})
	small := request(kmip.V1_4, get(uid))
	small.Header.MaximumResponseSize = 200
	cases = append(cases, tc{"too large", small, false})
	unsupported := request(kmip.ProtocolVersion{ProtocolVersionMajor: 1, ProtocolVersionMinor: 9}, get(uid))
	cases = append(cases, tc{"unsupported version", unsupported, false})
	cases = append(cases, tc{"no items", request(kmip.V1_4), false})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req kmip.RequestMessage
			if err := ttlv.UnmarshalTTLV(ttlv.MarshalTTLV(tc.req), &req); err != nil {
				t.Fatal(err)
			}
			st, release := e.srv.state()
			if release != nil {
				defer release()
			}
			m := &message{state: st}
			defer m.release()
			ctx := context.WithValue(sessionContext(e), messageKey{}, m)
			resp := e.srv.exec.HandleRequest(ctx, &req)
			if got := m.matches(resp); got != tc.kept {
				t.Fatalf("kept encodings used: %v, want %v", got, tc.kept)
			}
			want := ttlv.MarshalTTLV(resp)
			if got := m.assembleResponse(resp); !bytes.Equal(got, want) {
				t.Fatalf("assembled response differs from its encoding:\n got %x\nwant %x", got, want)
			}
		})
	}
}

// TestAssembledGetWiped checks that the kept encoding of a Get answer,
// which holds the key, is wiped once the response is assembled.
func TestAssembledGetWiped(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	uid := c.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	var req kmip.RequestMessage
	if err := ttlv.UnmarshalTTLV(ttlv.MarshalTTLV(request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: uid})), &req); err != nil {
		t.Fatal(err)
	}
	st, release := e.srv.state()
	if release != nil {
		defer release()
	}
	m := &message{state: st}
	ctx := context.WithValue(sessionContext(e), messageKey{}, m)
	resp := e.srv.exec.HandleRequest(ctx, &req)
	wantOK(t, resp.BatchItem[0])
	items := m.items
	if len(items) == 0 {
		t.Fatal("no kept encoding")
	}
	m.assembleResponse(resp)
	m.release()
	if !bytes.Equal(items, make([]byte, len(items))) {
		t.Fatal("kept encoding not wiped")
	}
}

// TestEncodeHeader checks appendHeader against the library's encoding of
// the Response Header, in every version and with and without correlation
// values.
func TestEncodeHeader(t *testing.T) {
	versions := append([]kmip.ProtocolVersion{{ProtocolVersionMajor: 1, ProtocolVersionMinor: 9}}, supportedVersions...)
	stamp := time.Now()
	for _, v := range versions {
		for _, corr := range [][2]string{{"", ""}, {"client", ""}, {"", "server-value"}, {"c", "s"}} {
			h := kmip.ResponseHeader{ProtocolVersion: v, TimeStamp: stamp, ClientCorrelationValue: corr[0], ServerCorrelationValue: corr[1], BatchCount: 3}
			want := encodeTagged(kmip.TagResponseHeader, &h)
			if got := appendHeader([]byte("prefix"), &h); !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
				t.Errorf("%s %q: got %x, want %x", v, corr, got, want)
			}
		}
	}
}
