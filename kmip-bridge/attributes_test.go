// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"slices"
	"testing"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

func TestAttributeInstances(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt).WithName("first").MustExec().UniqueIdentifier

	c.AddAttribute(id, kmip.AttributeNameName, kmip.Name{NameValue: "second", NameType: kmip.NameTypeUninterpretedTextString}).MustExec()
	c.AddAttribute(id, kmip.AttributeNameObjectGroup, "g1").MustExec()
	c.AddAttribute(id, kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeParentLink, LinkedObjectIdentifier: "p"}).MustExec()
	c.AddAttribute(id, kmip.AttributeNameApplicationSpecificInformation, kmip.ApplicationSpecificInformation{ApplicationNamespace: "ssl", ApplicationData: "example.com"}).MustExec()
	c.AddAttribute(id, kmip.AttributeNameContactInformation, "ops").MustExec()

	names := c.GetAttributes(id, kmip.AttributeNameName).MustExec().Attribute
	if len(names) != 2 || names[1].AttributeIndex == nil || *names[1].AttributeIndex != 1 {
		t.Fatalf("names %+v", names)
	}

	// Delete instance 0: instance 1 keeps its index.
	c.DeleteAttribute(id, kmip.AttributeNameName).MustExec()
	names = c.GetAttributes(id, kmip.AttributeNameName).MustExec().Attribute
	if len(names) != 1 || *names[0].AttributeIndex != 1 || names[0].AttributeValue.(kmip.Name).NameValue != "second" {
		t.Fatalf("names after delete %+v", names)
	}
	c.ModifyAttribute(id, kmip.AttributeNameName, kmip.Name{NameValue: "renamed", NameType: kmip.NameTypeUninterpretedTextString}).WithIndex(1).MustExec()
	if loc := c.Locate().WithName("renamed").MustExec(); !slices.Equal(loc.UniqueIdentifier, []string{id}) {
		t.Fatalf("locate renamed: %v", loc.UniqueIdentifier)
	}

	// Single-valued and read-only attributes.
	for _, tc := range []struct {
		payload kmip.OperationPayload
		reason  kmip.ResultReason
	}{
		{&payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameContactInformation, AttributeValue: "again"}}, kmip.ResultReasonIllegalOperation},
		{&payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameState, AttributeValue: kmip.StateActive}}, kmip.ResultReasonPermissionDenied},
		{&payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id, Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(128)}}, kmip.ResultReasonPermissionDenied},
		{&payloads.DeleteAttributeRequestPayload{UniqueIdentifier: id, AttributeName: kmip.AttributeNameDigest}, kmip.ResultReasonPermissionDenied},
		{&payloads.DeleteAttributeRequestPayload{UniqueIdentifier: id, AttributeName: "x-none"}, kmip.ResultReasonItemNotFound},
		{&payloads.ActivateRequestPayload{UniqueIdentifier: "no-such-key"}, kmip.ResultReasonItemNotFound},
		{&payloads.GetRequestPayload{UniqueIdentifier: "../etc/passwd"}, kmip.ResultReasonItemNotFound},
	} {
		br, err := c.Batch(context.Background(), tc.payload)
		if err != nil {
			t.Fatal(err)
		}
		wantReason(t, br[0], tc.reason)
	}

	// Locate by state, algorithm and length.
	other := c.Create().AES(128, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	c.Activate(other).MustExec()
	loc := c.Locate().WithAttribute(kmip.AttributeNameState, kmip.StateActive).MustExec()
	if !slices.Equal(loc.UniqueIdentifier, []string{other}) {
		t.Fatalf("locate active: %v", loc.UniqueIdentifier)
	}
	loc = c.Locate().WithAttribute(kmip.AttributeNameCryptographicAlgorithm, kmip.CryptographicAlgorithmAES).WithAttribute(kmip.AttributeNameCryptographicLength, int32(256)).MustExec()
	if !slices.Equal(loc.UniqueIdentifier, []string{id}) {
		t.Fatalf("locate AES-256: %v", loc.UniqueIdentifier)
	}

	// Everything is in the keystore: a second node over the same
	// keystore sees the same attributes.
	ks2 := keys.New(keys.Config{Store: sharedStore{e.keys.Store()}})
	t.Cleanup(func() { ks2.Close() })
	node2 := newEnv(t, func(cfg *Config) { cfg.Keys = ks2 })
	all := node2.dial(node2.client).GetAttributes(id).MustExec().Attribute
	got := map[kmip.AttributeName]int{}
	for _, a := range all {
		got[a.AttributeName]++
	}
	for _, n := range []kmip.AttributeName{kmip.AttributeNameObjectGroup, kmip.AttributeNameLink, kmip.AttributeNameApplicationSpecificInformation, kmip.AttributeNameContactInformation, kmip.AttributeNameName} {
		if got[n] != 1 {
			t.Fatalf("%s: %d instances in %v", n, got[n], got)
		}
	}
}

// sharedStore lets a second key service use a store without closing it.
type sharedStore struct{ keystore.Store }

func (sharedStore) Close() error { return nil }

// TestAttributesByVersion: listings leave out attributes the client's
// protocol version does not define.
func TestAttributesByVersion(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	c.AddAttribute(id, kmip.AttributeNameDescription, "disk key").MustExec()
	conn := e.raw(e.client)
	for _, tc := range []struct {
		v    kmip.ProtocolVersion
		want bool
	}{{kmip.V1_0, false}, {kmip.V1_3, false}, {kmip.V1_4, true}} {
		resp := send(t, conn, request(tc.v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id}, &payloads.GetAttributeListRequestPayload{UniqueIdentifier: id}))
		wantOK(t, resp.BatchItem[0])
		wantOK(t, resp.BatchItem[1])
		ga := resp.BatchItem[0].ResponsePayload.(*payloads.GetAttributesResponsePayload)
		has := slices.ContainsFunc(ga.Attribute, func(a kmip.Attribute) bool { return a.AttributeName == kmip.AttributeNameDescription })
		gl := resp.BatchItem[1].ResponsePayload.(*payloads.GetAttributeListResponsePayload)
		listed := slices.Contains(gl.AttributeName, kmip.AttributeNameDescription)
		if has != tc.want || listed != tc.want || len(ga.Attribute) < 8 {
			t.Fatalf("%v: description in attributes %v, in list %v (%d attributes)", tc.v, has, listed, len(ga.Attribute))
		}
	}
}
