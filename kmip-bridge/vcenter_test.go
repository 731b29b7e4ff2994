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

// Requests captured from vCenter 7.0.3 (KMIP 1.1), see the KMIP reference
// notes §2.1. The ones naming an object use Unique Identifier "1".
const (
	vcDiscoverVersions = `42007801000000604200770100000038420069010000002042006a0200000004000000010000000042006b0200000004000000010000000042000d0200000004000000010000000042000f010000001842005c05000000040000001e000000004200790100000000`
	vcCreate           = `42007801000001304200770100000038420069010000002042006a0200000004000000010000000042006b0200000004000000010000000042000d0200000004000000010000000042000f01000000e842005c050000000400000001000000004200930800000008514c4b430100000042007901000000c04200570500000004000000020000000042009101000000a8420008010000003042000a070000001743727970746f6772617068696320416c676f726974686d0042000b05000000040000000300000000420008010000003042000a070000001843727970746f67726170686963205573616765204d61736b42000b02000000040000000c00000000420008010000003042000a070000001443727970746f67726170686963204c656e6774680000000042000b02000000040000010000000000`
	vcGetAttributes    = `42007801000000a04200770100000038420069010000002042006a0200000004000000010000000042006b0200000004000000010000000042000d0200000004000000010000000042000f010000005842005c05000000040000000b000000004200930800000008514c4b430100000042007901000000304200940700000001310000000000000042000a0700000011782d50726f647563745f56657273696f6e00000000000000`
	vcAddAttributes    = `42007801000001b04200770100000038420069010000002042006a0200000004000000010000000042006b0200000004000000010000000042000d0200000004000000030000000042000f010000008042005c05000000040000000d000000004200930800000008514c4b4301000000420079010000005842009407000000013100000000000000420008010000004042000a0700000011782d50726f647563745f56657273696f6e0000000000000042000b0700000014372e302e33206275696c642d31393438303836360000000042000f010000006842005c05000000040000000d000000004200930800000008514c4b4302000000420079010000004042009407000000013100000000000000420008010000002842000a0700000008782d56656e646f7242000b070000000c564d776172652c20496e632e0000000042000f010000007042005c05000000040000000d000000004200930800000008514c4b4303000000420079010000004842009407000000013100000000000000420008010000003042000a0700000009782d50726f647563740000000000000042000b070000000e564d7761726520765370686572650000`
)

var vcBatchID = []byte("QLKC\x01\x00\x00\x00")

// withUID decodes a captured request, checks that re-encoding it gives
// the captured bytes (so the message sent is exactly what vCenter sends),
// and returns it with every Unique Identifier replaced by uid.
func withUID(t *testing.T, captured, uid string) []byte {
	t.Helper()
	raw := unhex(t, captured)
	var msg kmip.RequestMessage
	if err := ttlv.UnmarshalTTLV(raw, &msg); err != nil {
		t.Fatalf("decode capture: %v", err)
	}
	if got := ttlv.MarshalTTLV(&msg); !bytes.Equal(got, raw) {
		t.Fatalf("capture does not re-encode identically:\n got %x\nwant %x", got, raw)
	}
	for _, bi := range msg.BatchItem {
		switch p := bi.RequestPayload.(type) {
		case *payloads.GetAttributesRequestPayload:
			p.UniqueIdentifier = uid
		case *payloads.AddAttributeRequestPayload:
			p.UniqueIdentifier = uid
		case *payloads.GetRequestPayload:
			p.UniqueIdentifier = uid
		case *payloads.ActivateRequestPayload:
			p.UniqueIdentifier = uid
		default:
			t.Fatalf("unexpected payload %T", p)
		}
	}
	return ttlv.MarshalTTLV(&msg)
}

func vcMessage(uid string, pl kmip.OperationPayload) []byte {
	m := kmip.RequestMessage{
		Header:    kmip.RequestHeader{ProtocolVersion: kmip.V1_1, BatchCount: 1},
		BatchItem: []kmip.RequestBatchItem{{Operation: pl.Operation(), UniqueBatchItemID: vcBatchID, RequestPayload: pl}},
	}
	return ttlv.MarshalTTLV(&m)
}

// TestVCenter replays the conversation of vCenter 7.0.3 with a KMS: one
// TLS connection per operation, each starting with Discover Versions.
func TestVCenter(t *testing.T) {
	e := newEnv(t)

	// session opens a connection, runs Discover Versions and then the
	// given request, and returns the second response.
	session := func(t *testing.T, req []byte) *kmip.ResponseMessage {
		t.Helper()
		c := e.raw(e.client)
		dv := exchange(t, c, unhex(t, vcDiscoverVersions))
		checkHeader(t, dv, 1)
		wantOK(t, dv.BatchItem[0])
		if dv.BatchItem[0].Operation != kmip.OperationDiscoverVersions {
			t.Fatalf("operation %v", dv.BatchItem[0].Operation)
		}
		vs := dv.BatchItem[0].ResponsePayload.(*payloads.DiscoverVersionsResponsePayload).ProtocolVersion
		if len(vs) != 7 || vs[0] != kmip.V2_1 || vs[2] != kmip.V1_4 || vs[5] != kmip.V1_1 {
			t.Fatalf("versions %v", vs)
		}
		if req == nil {
			return nil
		}
		resp := exchange(t, c, req)
		return resp
	}

	// Health check: Discover Versions twice on one connection.
	c := e.raw(e.client)
	for range 2 {
		wantOK(t, exchange(t, c, unhex(t, vcDiscoverVersions)).BatchItem[0])
	}

	// "Connect": Query Server Information.
	resp := session(t, vcMessage("", &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionServerInformation}}))
	checkHeader(t, resp, 1)
	checkItem(t, resp.BatchItem[0], kmip.OperationQuery)
	if v := resp.BatchItem[0].ResponsePayload.(*payloads.QueryResponsePayload).VendorIdentification; v == "" {
		t.Fatal("no vendor identification")
	}

	// Create a key encryption key.
	resp = session(t, unhex(t, vcCreate))
	checkHeader(t, resp, 1)
	checkItem(t, resp.BatchItem[0], kmip.OperationCreate)
	cr := resp.BatchItem[0].ResponsePayload.(*payloads.CreateResponsePayload)
	if cr.ObjectType != kmip.ObjectTypeSymmetricKey || cr.UniqueIdentifier == "" {
		t.Fatalf("create response %+v", cr)
	}
	uid := cr.UniqueIdentifier

	// Tag it: Get Attributes of an absent attribute returns only the
	// identifier, then a 3-item Add Attribute batch.
	resp = session(t, withUID(t, vcGetAttributes, uid))
	checkItem(t, resp.BatchItem[0], kmip.OperationGetAttributes)
	ga := resp.BatchItem[0].ResponsePayload.(*payloads.GetAttributesResponsePayload)
	if ga.UniqueIdentifier != uid || len(ga.Attribute) != 0 {
		t.Fatalf("get attributes of absent attribute: %+v", ga)
	}
	resp = session(t, withUID(t, vcAddAttributes, uid))
	checkHeader(t, resp, 3)
	for i, bi := range resp.BatchItem {
		wantOK(t, bi)
		if bi.Operation != kmip.OperationAddAttribute || !bytes.Equal(bi.UniqueBatchItemID, []byte{'Q', 'L', 'K', 'C', byte(i + 1), 0, 0, 0}) {
			t.Fatalf("item %d: operation %v id %x", i, bi.Operation, bi.UniqueBatchItemID)
		}
		aa := bi.ResponsePayload.(*payloads.AddAttributeResponsePayload)
		if aa.UniqueIdentifier != uid {
			t.Fatalf("add attribute uid %q", aa.UniqueIdentifier)
		}
	}
	resp = session(t, withUID(t, vcGetAttributes, uid))
	ga = resp.BatchItem[0].ResponsePayload.(*payloads.GetAttributesResponsePayload)
	if len(ga.Attribute) != 1 || ga.Attribute[0].AttributeName != "x-Product_Version" {
		t.Fatalf("x-Product_Version: %+v", ga.Attribute)
	}
	if v, ok := ga.Attribute[0].AttributeValue.(ttlv.Value); !ok || v.Value != "7.0.3 build-19480866" {
		t.Fatalf("x-Product_Version value %#v", ga.Attribute[0].AttributeValue)
	}

	// Fetch the key: Get without a format answers Raw.
	resp = session(t, vcMessage(uid, &payloads.GetRequestPayload{UniqueIdentifier: uid}))
	checkItem(t, resp.BatchItem[0], kmip.OperationGet)
	g := resp.BatchItem[0].ResponsePayload.(*payloads.GetResponsePayload)
	sk, ok := g.Object.(*kmip.SymmetricKey)
	if g.ObjectType != kmip.ObjectTypeSymmetricKey || g.UniqueIdentifier != uid || !ok {
		t.Fatalf("get response %+v", g)
	}
	kb := sk.KeyBlock
	if kb.KeyFormatType != kmip.KeyFormatTypeRaw || kb.CryptographicAlgorithm != kmip.CryptographicAlgorithmAES || kb.CryptographicLength != 256 {
		t.Fatalf("key block %+v", kb)
	}
	if m, err := sk.KeyMaterial(); err != nil || len(m) != 32 {
		t.Fatalf("key material: %v (%d bytes)", err, len(m))
	}

	// State, then Activate as it is Pre-Active.
	state := func() kmip.State {
		resp := session(t, vcMessage(uid, &payloads.GetAttributesRequestPayload{UniqueIdentifier: uid, AttributeName: []kmip.AttributeName{kmip.AttributeNameState}}))
		checkItem(t, resp.BatchItem[0], kmip.OperationGetAttributes)
		ga := resp.BatchItem[0].ResponsePayload.(*payloads.GetAttributesResponsePayload)
		if len(ga.Attribute) != 1 {
			t.Fatalf("state attribute: %+v", ga.Attribute)
		}
		return ga.Attribute[0].AttributeValue.(kmip.State)
	}
	if s := state(); s != kmip.StatePreActive {
		t.Fatalf("state %v", s)
	}
	resp = session(t, vcMessage(uid, &payloads.ActivateRequestPayload{UniqueIdentifier: uid}))
	checkItem(t, resp.BatchItem[0], kmip.OperationActivate)
	if s := state(); s != kmip.StateActive {
		t.Fatalf("state after activate %v", s)
	}
}

func checkHeader(t *testing.T, resp *kmip.ResponseMessage, n int) {
	t.Helper()
	if resp.Header.ProtocolVersion != kmip.V1_1 || resp.Header.TimeStamp.IsZero() || int(resp.Header.BatchCount) != n || len(resp.BatchItem) != n {
		t.Fatalf("response header %+v with %d items", resp.Header, len(resp.BatchItem))
	}
}

func checkItem(t *testing.T, bi kmip.ResponseBatchItem, op kmip.Operation) {
	t.Helper()
	wantOK(t, bi)
	if bi.Operation != op || !bytes.Equal(bi.UniqueBatchItemID, vcBatchID) {
		t.Fatalf("item: operation %v, batch id %x", bi.Operation, bi.UniqueBatchItemID)
	}
}
