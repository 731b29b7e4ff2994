// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// TestSetAttributeChecksLikeAdd: 2.x Set Attribute refuses what Add
// Attribute refuses (a Link of an unknown type or without identifier)
// and stores nothing; a lifecycle date it sets follows the date rules
// (an Activation Date moves only while the key is Pre-Active).
func TestSetAttributeChecksLikeAdd(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	resp := v2Exchange(t, c, v2Request(1, sklcCreate("setattr")))
	uid := get(*v2OK(t, items(resp)[0]), kmip.TagUniqueIdentifier).Value.(string)
	for _, bad := range []tv{
		st(kmip.TagLink, enum(kmip.TagLinkType, 0x7777), text(kmip.TagLinkedObjectIdentifier, "x")),
		st(kmip.TagLink, enum(kmip.TagLinkType, uint32(kmip.LinkTypeParentLink)), text(kmip.TagLinkedObjectIdentifier, "")),
	} {
		for _, o := range []uint32{uint32(kmip.OperationAddAttribute), uint32(operationSetAttribute)} {
			resp = v2Exchange(t, c, v2Request(1, op(kmip.Operation(o), text(kmip.TagUniqueIdentifier, uid), st(tagNewAttribute, bad))))
			v2Fails(t, items(resp)[0], kmip.ResultReasonInvalidField)
		}
	}
	resp = v2Exchange(t, c, v2Request(1, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, uid), aref(kmip.TagLink))))
	if pl := v2OK(t, items(resp)[0]); get(*pl, tagAttributes) != nil && get(*get(*pl, tagAttributes), kmip.TagLink) != nil {
		t.Fatalf("a refused Link was stored: %v", pl)
	}

	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	setDate := func(d time.Time) []byte {
		return v2Request(1, op(operationSetAttribute, text(kmip.TagUniqueIdentifier, uid), st(tagNewAttribute, tv{Tag: kmip.TagActivationDate, Value: d})))
	}
	v2OK(t, items(v2Exchange(t, c, setDate(past)))[0]) // Pre-Active: the date activates it
	resp = v2Exchange(t, c, v2Request(1, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, uid), aref(kmip.TagState))))
	if a := get(*get(*v2OK(t, items(resp)[0]), tagAttributes), kmip.TagState); a == nil || a.Value != ttlv.Enum(kmip.StateActive) {
		t.Fatalf("state after Set Attribute of a past Activation Date: %v", a)
	}
	v2Fails(t, items(v2Exchange(t, c, setDate(past.Add(time.Minute))))[0], reasonWrongKeyLifecycleState)
}

// TestModifyAttributeNoDuplicateName: Modify Attribute may not turn one
// of an object's names into another it already has, as Add Attribute
// may not add it.
func TestModifyAttributeNoDuplicateName(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	uid := c.Create().AES(128, kmip.CryptographicUsageEncrypt).WithName("first").MustExec().UniqueIdentifier
	second := kmip.Name{NameValue: "second", NameType: kmip.NameTypeUninterpretedTextString}
	c.AddAttribute(uid, kmip.AttributeNameName, second).MustExec()
	req, _ := c.AddAttribute(uid, kmip.AttributeNameName, second).Build()
	wantReason(t, batchOne(t, c, req), kmip.ResultReasonIllegalOperation)
	req, _ = c.ModifyAttribute(uid, kmip.AttributeNameName, kmip.Name{NameValue: "first", NameType: kmip.NameTypeUninterpretedTextString}).WithIndex(1).Build()
	wantReason(t, batchOne(t, c, req), kmip.ResultReasonIllegalOperation)
	// Modifying a name to its own value is no duplicate.
	c.ModifyAttribute(uid, kmip.AttributeNameName, second).WithIndex(1).MustExec()
}
