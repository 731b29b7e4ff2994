// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"encoding/binary"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// The messages of these tests are written with the library's generic
// TTLV values (not with the bridge's translation code), following the
// OASIS KMIP 2.1 test cases; answers are read the same way.

type tv = ttlv.Value

func st(tag int, kids ...tv) tv { return tv{Tag: tag, Value: ttlv.Struct(kids)} }
func enum(tag int, v uint32) tv { return tv{Tag: tag, Value: ttlv.Enum(v)} }
func text(tag int, s string) tv { return tv{Tag: tag, Value: s} }
func integer(tag int, v int32) tv {
	return tv{Tag: tag, Value: v}
}

// v2Request encodes a request message of version 2.minor with one batch
// item per payload: {operation, payload items}.
func v2Request(minor int32, items ...v2op) []byte {
	return versionRequest(2, minor, items...)
}

func versionRequest(major, minor int32, items ...v2op) []byte {
	hdr := st(kmip.TagRequestHeader,
		st(kmip.TagProtocolVersion, integer(kmip.TagProtocolVersionMajor, major), integer(kmip.TagProtocolVersionMinor, minor)),
		integer(kmip.TagBatchCount, int32(len(items))))
	msg := []tv{hdr}
	for _, it := range items {
		msg = append(msg, st(kmip.TagBatchItem, enum(kmip.TagOperation, uint32(it.op)), st(kmip.TagRequestPayload, it.payload...)))
	}
	return ttlv.MarshalTTLV(st(kmip.TagRequestMessage, msg...))
}

type v2op struct {
	op      kmip.Operation
	payload []tv
}

func op(o kmip.Operation, payload ...tv) v2op { return v2op{o, payload} }

// v2Exchange sends a message and returns the generic answer.
func v2Exchange(t *testing.T, c net.Conn, msg []byte) tv {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var resp tv
	if err := ttlv.UnmarshalTTLV(readMessage(t, c), &resp); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return resp
}

// get returns the first child of v with each tag in turn, or nil.
func get(v tv, tags ...int) *tv {
	cur := &v
	for _, tag := range tags {
		s, ok := cur.Value.(ttlv.Struct)
		if !ok {
			return nil
		}
		var next *tv
		for i := range s {
			if s[i].Tag == tag {
				next = &s[i]
				break
			}
		}
		if next == nil {
			return nil
		}
		cur = next
	}
	return cur
}

// all returns the children of v with tag.
func all(v *tv, tag int) []tv {
	if v == nil {
		return nil
	}
	s, _ := v.Value.(ttlv.Struct)
	var out []tv
	for _, k := range s {
		if k.Tag == tag {
			out = append(out, k)
		}
	}
	return out
}

// items returns the batch items of an answer.
func items(resp tv) []tv { return all(&resp, kmip.TagBatchItem) }

func v2OK(t *testing.T, bi tv) *tv {
	t.Helper()
	if s := get(bi, kmip.TagResultStatus); s == nil || s.Value != ttlv.Enum(kmip.ResultStatusSuccess) {
		t.Fatalf("item failed: reason %v: %v", get(bi, kmip.TagResultReason), get(bi, kmip.TagResultMessage))
	}
	return get(bi, kmip.TagResponsePayload)
}

func v2Fails(t *testing.T, bi tv, reason kmip.ResultReason) {
	t.Helper()
	s, r := get(bi, kmip.TagResultStatus), get(bi, kmip.TagResultReason)
	if s == nil || s.Value != ttlv.Enum(kmip.ResultStatusOperationFailed) || r == nil || r.Value != ttlv.Enum(reason) {
		t.Fatalf("got status %v reason %v (%v), want reason %#x", s, r, get(bi, kmip.TagResultMessage), uint32(reason))
	}
}

func headerVersion(t *testing.T, resp tv) (int32, int32) {
	t.Helper()
	pv := get(resp, kmip.TagResponseHeader, kmip.TagProtocolVersion)
	if pv == nil {
		t.Fatal("no protocol version")
	}
	return get(*pv, kmip.TagProtocolVersionMajor).Value.(int32), get(*pv, kmip.TagProtocolVersionMinor).Value.(int32)
}

// hasTag reports whether tag appears anywhere in v.
func hasTag(v tv, tag int) bool {
	if v.Tag == tag {
		return true
	}
	s, _ := v.Value.(ttlv.Struct)
	return slices.ContainsFunc(s, func(k tv) bool { return hasTag(k, tag) })
}

func pv(major, minor int32) tv {
	return st(kmip.TagProtocolVersion, integer(kmip.TagProtocolVersionMajor, major), integer(kmip.TagProtocolVersionMinor, minor))
}

func versionsOf(t *testing.T, pl *tv) []string {
	t.Helper()
	var out []string
	for _, v := range all(pl, kmip.TagProtocolVersion) {
		out = append(out, string(rune('0'+get(v, kmip.TagProtocolVersionMajor).Value.(int32)))+"."+string(rune('0'+get(v, kmip.TagProtocolVersionMinor).Value.(int32))))
	}
	return out
}

func TestV2DiscoverVersions(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	for _, minor := range []int32{0, 1} {
		resp := v2Exchange(t, c, v2Request(minor, op(kmip.OperationDiscoverVersions)))
		if ma, mi := headerVersion(t, resp); ma != 2 || mi != minor {
			t.Fatalf("header version %d.%d, want 2.%d", ma, mi, minor)
		}
		if got := versionsOf(t, v2OK(t, items(resp)[0])); !slices.Equal(got, []string{"2.1", "2.0", "1.4", "1.3", "1.2", "1.1", "1.0"}) {
			t.Fatalf("2.%d, empty list: %q", minor, got)
		}
		// The intersection, in the server's order whatever the
		// client's.
		resp = v2Exchange(t, c, v2Request(minor, op(kmip.OperationDiscoverVersions, pv(1, 2), pv(3, 0), pv(2, 0), pv(2, 1))))
		if got := versionsOf(t, v2OK(t, items(resp)[0])); !slices.Equal(got, []string{"2.1", "2.0", "1.2"}) {
			t.Fatalf("2.%d: %q", minor, got)
		}
	}
	// Inside a 1.x message as well: the ovh client negotiates so.
	resp := v2Exchange(t, c, versionRequest(1, 1, op(kmip.OperationDiscoverVersions, pv(2, 1), pv(1, 4))))
	if got := versionsOf(t, v2OK(t, items(resp)[0])); !slices.Equal(got, []string{"2.1", "1.4"}) {
		t.Fatalf("1.1: %q", got)
	}
	// A version the bridge does not speak keeps its answer.
	for _, v := range [][2]int32{{2, 2}, {3, 0}} {
		resp := v2Exchange(t, c, versionRequest(v[0], v[1], op(kmip.OperationDiscoverVersions)))
		v2Fails(t, items(resp)[0], kmip.ResultReasonInvalidMessage)
	}
}

// sklcCreate is the Create of SKLC-M-2-21.
func sklcCreate(name string) v2op {
	return op(kmip.OperationCreate,
		enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey)),
		st(tagAttributes,
			enum(kmip.TagCryptographicAlgorithm, uint32(kmip.CryptographicAlgorithmAES)),
			integer(kmip.TagCryptographicLength, 256),
			integer(kmip.TagCryptographicUsageMask, int32(kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt)),
			st(kmip.TagName, text(kmip.TagNameValue, name), enum(kmip.TagNameType, uint32(kmip.NameTypeUninterpretedTextString)))))
}

func aref(tag uint32) tv { return enum(tagAttributeReference, tag) }

// TestV2SymmetricKeyLifecycle replays SKLC-M-1-21, SKLC-M-2-21 and the
// step of SKLC-M-3-21 that differs.
func TestV2SymmetricKeyLifecycle(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)

	// SKLC-M-1-21 / -2-21 step 0: Create answers Object Type and
	// Unique Identifier only.
	resp := v2Exchange(t, c, v2Request(1, sklcCreate("SKLC-M-2-21")))
	if ma, mi := headerVersion(t, resp); ma != 2 || mi != 1 {
		t.Fatalf("header version %d.%d", ma, mi)
	}
	pl := v2OK(t, items(resp)[0])
	if hasTag(*pl, kmip.TagTemplateAttribute) {
		t.Fatal("2.1 Create answer has a Template-Attribute")
	}
	uid := get(*pl, kmip.TagUniqueIdentifier).Value.(string)

	// Step 1: Get Attributes by Attribute Reference, answered in one
	// Attributes structure.
	resp = v2Exchange(t, c, v2Request(1, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, uid),
		aref(kmip.TagState), aref(kmip.TagCryptographicUsageMask), aref(kmip.TagUniqueIdentifier), aref(kmip.TagObjectType),
		aref(kmip.TagCryptographicAlgorithm), aref(kmip.TagCryptographicLength), aref(kmip.TagDigest),
		aref(kmip.TagInitialDate), aref(kmip.TagLastChangeDate))))
	pl = v2OK(t, items(resp)[0])
	attrs := get(*pl, tagAttributes)
	if attrs == nil || hasTag(*pl, kmip.TagAttribute) || hasTag(*pl, kmip.TagAttributeName) {
		t.Fatalf("not a 2.x Get Attributes answer: %v", pl)
	}
	want := map[int]any{
		kmip.TagState:                  ttlv.Enum(kmip.StatePreActive),
		kmip.TagCryptographicUsageMask: int32(kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt),
		kmip.TagUniqueIdentifier:       uid,
		kmip.TagObjectType:             ttlv.Enum(kmip.ObjectTypeSymmetricKey),
		kmip.TagCryptographicAlgorithm: ttlv.Enum(kmip.CryptographicAlgorithmAES),
		kmip.TagCryptographicLength:    int32(256),
	}
	for tag, v := range want {
		if a := get(*attrs, tag); a == nil || a.Value != v {
			t.Errorf("attribute %#x: %v, want %v", tag, a, v)
		}
	}
	for _, tag := range []int{kmip.TagDigest, kmip.TagInitialDate, kmip.TagLastChangeDate} {
		if get(*attrs, tag) == nil {
			t.Errorf("attribute %#x missing", tag)
		}
	}
	if d := get(*attrs, kmip.TagDigest, kmip.TagKeyFormatType); d == nil || d.Value != ttlv.Enum(kmip.KeyFormatTypeRaw) {
		t.Errorf("digest key format type %v", d)
	}

	// Steps 2-4: Activate, Get Attributes (no Deactivation Date), and
	// Destroy of the Active key: Wrong Key Lifecycle State at 2.1.
	v2OK(t, items(v2Exchange(t, c, v2Request(1, op(kmip.OperationActivate, text(kmip.TagUniqueIdentifier, uid)))))[0])
	resp = v2Exchange(t, c, v2Request(1, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, uid),
		aref(kmip.TagState), aref(kmip.TagActivationDate), aref(kmip.TagDeactivationDate))))
	attrs = get(*v2OK(t, items(resp)[0]), tagAttributes)
	if a := get(*attrs, kmip.TagState); a == nil || a.Value != ttlv.Enum(kmip.StateActive) || get(*attrs, kmip.TagActivationDate) == nil || get(*attrs, kmip.TagDeactivationDate) != nil {
		t.Fatalf("after activate: %v", attrs)
	}
	// SKLC-M-3-21 step 4: the Activation Date of an Active key cannot
	// change.
	modify := func(minor int32) []byte {
		return v2Request(minor, op(kmip.OperationModifyAttribute, text(kmip.TagUniqueIdentifier, uid),
			st(tagNewAttribute, tv{Tag: kmip.TagActivationDate, Value: time.Now()})))
	}
	v2Fails(t, items(v2Exchange(t, c, modify(1)))[0], reasonWrongKeyLifecycleState)
	v2Fails(t, items(v2Exchange(t, c, modify(0)))[0], kmip.ResultReasonPermissionDenied)
	destroy := v2Request(1, op(kmip.OperationDestroy, text(kmip.TagUniqueIdentifier, uid)))
	v2Fails(t, items(v2Exchange(t, c, destroy))[0], reasonWrongKeyLifecycleState)
	// 2.0 (like 1.x) answers Permission Denied.
	v2Fails(t, items(v2Exchange(t, c, v2Request(0, op(kmip.OperationDestroy, text(kmip.TagUniqueIdentifier, uid)))))[0], kmip.ResultReasonPermissionDenied)

	// Steps 5-7: Revoke (Key Compromise), State Compromised, Destroy.
	v2OK(t, items(v2Exchange(t, c, v2Request(1, op(kmip.OperationRevoke, text(kmip.TagUniqueIdentifier, uid),
		st(kmip.TagRevocationReason, enum(kmip.TagRevocationReasonCode, uint32(kmip.RevocationReasonCodeKeyCompromise))),
		tv{Tag: kmip.TagCompromiseOccurrenceDate, Value: time.Unix(6, 0)}))))[0])
	resp = v2Exchange(t, c, v2Request(1, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, uid), aref(kmip.TagState))))
	if a := get(*v2OK(t, items(resp)[0]), tagAttributes, kmip.TagState); a == nil || a.Value != ttlv.Enum(kmip.StateCompromised) {
		t.Fatalf("after revoke: %v", a)
	}
	v2OK(t, items(v2Exchange(t, c, destroy))[0])
}

// vendor is a 2.x vendor attribute.
func vendor(id, name string, value tv) tv {
	value.Tag = kmip.TagAttributeValue
	return st(kmip.TagAttribute, text(kmip.TagVendorIdentification, id), text(kmip.TagAttributeName, name), value)
}

// TestV2Attributes covers the 2.x attribute operations: Add / Modify /
// Delete with New and Current Attribute, Set and Adjust Attribute, Get
// Attributes of everything, Get Attribute List, vendor attributes, Locate
// by an Attributes filter and the ID placeholder as an enumeration.
func TestV2Attributes(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	// Create and, in the same batch, Add Attribute to the ID placeholder
	// (Unique Identifier as the Enumeration ID Placeholder).
	resp := v2Exchange(t, c, v2Request(1, sklcCreate("attrs"),
		op(kmip.OperationAddAttribute, enum(kmip.TagUniqueIdentifier, 1),
			st(tagNewAttribute, vendor("x", "count", integer(0, 5))))))
	uid := get(*v2OK(t, items(resp)[0]), kmip.TagUniqueIdentifier).Value.(string)
	pl := v2OK(t, items(resp)[1])
	if get(*pl, kmip.TagUniqueIdentifier).Value != uid || hasTag(*pl, kmip.TagAttribute) {
		t.Fatalf("2.x Add Attribute answers the identifier only: %v", pl)
	}
	id := text(kmip.TagUniqueIdentifier, uid)
	run := func(o v2op) tv { t.Helper(); return items(v2Exchange(t, c, v2Request(1, o)))[0] }

	// A second instance of a multi-valued attribute, then Modify of the
	// first one named by its value.
	v2OK(t, run(op(kmip.OperationAddAttribute, id, st(tagNewAttribute, vendor("x", "tag", text(0, "a"))))))
	v2OK(t, run(op(kmip.OperationAddAttribute, id, st(tagNewAttribute, vendor("x", "tag", text(0, "b"))))))
	v2OK(t, run(op(kmip.OperationModifyAttribute, id,
		st(tagCurrentAttribute, vendor("x", "tag", text(0, "a"))),
		st(tagNewAttribute, vendor("x", "tag", text(0, "c"))))))
	v2Fails(t, run(op(kmip.OperationModifyAttribute, id,
		st(tagCurrentAttribute, vendor("x", "tag", text(0, "zz"))),
		st(tagNewAttribute, vendor("x", "tag", text(0, "d"))))), reasonAttributeNotFound)
	// Delete the instance "b".
	v2OK(t, run(op(kmip.OperationDeleteAttribute, id, st(tagCurrentAttribute, vendor("x", "tag", text(0, "b"))))))

	// Set Attribute adds, then replaces, a single instance; it refuses
	// server-managed attributes.
	v2OK(t, run(op(operationSetAttribute, id, st(tagNewAttribute, text(kmip.TagContactInformation, "ops")))))
	v2OK(t, run(op(operationSetAttribute, id, st(tagNewAttribute, text(kmip.TagContactInformation, "sec")))))
	v2Fails(t, run(op(operationSetAttribute, id, st(tagNewAttribute, enum(kmip.TagState, uint32(kmip.StateActive))))), reasonAttributeReadOnly)
	// Adding a second Contact Information: Attribute Single Valued.
	v2Fails(t, run(op(kmip.OperationAddAttribute, id, st(tagNewAttribute, text(kmip.TagContactInformation, "x")))), reasonAttributeSingleValued)

	// Adjust Attribute: 5 + 3 - 1 = 7.
	xcount := st(tagAttributeReference, text(kmip.TagVendorIdentification, "x"), text(kmip.TagAttributeName, "count"))
	v2OK(t, run(op(operationAdjustAttribute, id, xcount, enum(tagAdjustmentType, uint32(adjustIncrement)), integer(tagAdjustmentValue, 3))))
	v2OK(t, run(op(operationAdjustAttribute, id, xcount, enum(tagAdjustmentType, uint32(adjustDecrement)))))
	v2Fails(t, run(op(operationAdjustAttribute, id, aref(kmip.TagState), enum(tagAdjustmentType, uint32(adjustIncrement)))), reasonAttributeReadOnly)

	// Get Attributes of everything: 2.x tags, vendor attributes, no
	// Attribute Index and no attribute 2.x removed.
	pl = v2OK(t, run(op(kmip.OperationGetAttributes, id)))
	attrs := get(*pl, tagAttributes)
	if attrs == nil || hasTag(*pl, kmip.TagAttributeIndex) || hasTag(*pl, tagOperationPolicyName) || get(*pl, kmip.TagAttribute) != nil {
		t.Fatalf("Get Attributes: %v", pl)
	}
	if a := get(*attrs, kmip.TagContactInformation); a == nil || a.Value != "sec" {
		t.Errorf("contact information %v", a)
	}
	vendorValues := map[string][]any{}
	for _, a := range all(attrs, kmip.TagAttribute) {
		if get(a, kmip.TagVendorIdentification).Value != "x" {
			t.Errorf("vendor %v", a)
		}
		n := get(a, kmip.TagAttributeName).Value.(string)
		vendorValues[n] = append(vendorValues[n], get(a, kmip.TagAttributeValue).Value)
	}
	if !slices.Equal(vendorValues["count"], []any{int32(7)}) || !slices.Equal(vendorValues["tag"], []any{"c"}) {
		t.Errorf("vendor attributes %v", vendorValues)
	}

	// Get Attribute List: Attribute References.
	pl = v2OK(t, run(op(kmip.OperationGetAttributeList, id)))
	refs := all(pl, tagAttributeReference)
	var gotState, gotVendor bool
	for _, r := range refs {
		switch v := r.Value.(type) {
		case ttlv.Enum:
			gotState = gotState || v == ttlv.Enum(kmip.TagState)
		case ttlv.Struct:
			gotVendor = gotVendor || get(r, kmip.TagAttributeName).Value == "count"
		}
	}
	if !gotState || !gotVendor || hasTag(*pl, kmip.TagAttributeName) && !gotVendor {
		t.Fatalf("Get Attribute List: %v", pl)
	}

	// Locate by an Attributes filter.
	pl = v2OK(t, run(op(kmip.OperationLocate, st(tagAttributes,
		st(kmip.TagName, text(kmip.TagNameValue, "attrs"), enum(kmip.TagNameType, uint32(kmip.NameTypeUninterpretedTextString)))))))
	if u := all(pl, kmip.TagUniqueIdentifier); len(u) != 1 || u[0].Value != uid {
		t.Fatalf("Locate: %v", pl)
	}
}

// withDateTimeExtended returns msg with the Date-Time item of tag turned
// into a Date-Time Extended of the same instant (in microseconds).
func withDateTimeExtended(t *testing.T, msg []byte, tag int) []byte {
	t.Helper()
	marker := []byte{byte(tag >> 16), byte(tag >> 8), byte(tag), byte(ttlv.TypeDateTime)}
	i := bytes.Index(msg, marker)
	if i < 0 {
		t.Fatal("no date-time item")
	}
	out := slices.Clone(msg)
	out[i+3] = byte(typeDateTimeExtended)
	s := int64(binary.BigEndian.Uint64(out[i+8:]))
	binary.BigEndian.PutUint64(out[i+8:], uint64(s*1_000_000+123_456))
	return out
}

func TestV2DateTimeExtended(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	uid := get(*v2OK(t, items(v2Exchange(t, c, v2Request(1, sklcCreate("dtx"))))[0]), kmip.TagUniqueIdentifier).Value.(string)
	when := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	msg := withDateTimeExtended(t, v2Request(1, op(kmip.OperationAddAttribute, text(kmip.TagUniqueIdentifier, uid),
		st(tagNewAttribute, tv{Tag: kmip.TagProtectStopDate, Value: when}))), kmip.TagProtectStopDate)
	v2OK(t, items(v2Exchange(t, c, msg))[0])
	resp := v2Exchange(t, c, v2Request(1, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, uid), aref(kmip.TagProtectStopDate))))
	if a := get(*v2OK(t, items(resp)[0]), tagAttributes, kmip.TagProtectStopDate); a == nil || !a.Value.(time.Time).Equal(when) {
		t.Fatalf("protect stop date %v, want %v", a, when)
	}
}

func TestV2Query(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	resp := v2Exchange(t, c, v2Request(1, op(kmip.OperationQuery,
		enum(kmip.TagQueryFunction, uint32(kmip.QueryFunctionOperations)),
		enum(kmip.TagQueryFunction, uint32(kmip.QueryFunctionObjects)),
		enum(kmip.TagQueryFunction, uint32(kmip.QueryFunctionServerInformation)),
		enum(kmip.TagQueryFunction, uint32(kmip.QueryFunctionCapabilities)))))
	pl := v2OK(t, items(resp)[0])
	var ops []ttlv.Enum
	for _, o := range all(pl, kmip.TagOperation) {
		ops = append(ops, o.Value.(ttlv.Enum))
	}
	for _, want := range []kmip.Operation{kmip.OperationCreate, kmip.OperationGetAttributes, operationSetAttribute, operationAdjustAttribute, kmip.OperationDiscoverVersions} {
		if !slices.Contains(ops, ttlv.Enum(want)) {
			t.Errorf("operation %#x not listed", uint32(want))
		}
	}
	if len(all(pl, kmip.TagObjectType)) == 0 || get(*pl, kmip.TagVendorIdentification) == nil {
		t.Errorf("objects or server information missing: %v", pl)
	}
	if get(*pl, kmip.TagCapabilityInformation, kmip.TagBatchContinueCapability) == nil {
		t.Errorf("capability information missing: %v", pl)
	}
	// At 1.4 the 2.x operations are not listed.
	resp = v2Exchange(t, c, versionRequest(1, 4, op(kmip.OperationQuery, enum(kmip.TagQueryFunction, uint32(kmip.QueryFunctionOperations)))))
	for _, o := range all(v2OK(t, items(resp)[0]), kmip.TagOperation) {
		if o.Value == ttlv.Enum(operationSetAttribute) {
			t.Error("1.4 Query lists Set Attribute")
		}
	}
}

// TestV2Refusals sends what an attacker or a broken client would: each is
// answered with its KMIP reason, the item alone fails, and the
// connection keeps working.
func TestV2Refusals(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	uid := get(*v2OK(t, items(v2Exchange(t, c, v2Request(1, sklcCreate("refusals"))))[0]), kmip.TagUniqueIdentifier).Value.(string)
	id := text(kmip.TagUniqueIdentifier, uid)
	tooMany := make([]tv, maxV2Attributes+1)
	for i := range tooMany {
		tooMany[i] = text(kmip.TagObjectGroup, "g")
	}
	for _, tc := range []struct {
		name   string
		op     v2op
		reason kmip.ResultReason
	}{
		{"unknown attribute tag", op(kmip.OperationCreate, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey)),
			st(tagAttributes, integer(0x42FFFF, 1))), kmip.ResultReasonInvalidField},
		{"vendor tag", op(kmip.OperationCreate, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey)),
			st(tagAttributes, integer(0x540001, 1))), kmip.ResultReasonInvalidField},
		{"removed attribute", op(kmip.OperationCreate, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey)),
			st(tagAttributes, text(tagOperationPolicyName, "default"))), kmip.ResultReasonInvalidField},
		{"huge attributes", op(kmip.OperationCreate, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey)),
			st(tagAttributes, tooMany...)), kmip.ResultReasonInvalidMessage},
		{"repeated single-valued attribute", op(kmip.OperationCreate, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey)),
			st(tagAttributes, text(kmip.TagContactInformation, "a"), text(kmip.TagContactInformation, "b"))), kmip.ResultReasonInvalidField},
		{"repeated attribute reference", op(kmip.OperationGetAttributes, id, aref(kmip.TagState), aref(kmip.TagState)), kmip.ResultReasonInvalidMessage},
		{"reference to an unknown tag", op(kmip.OperationGetAttributes, id, aref(0x42FFFF)), reasonAttributeNotFound},
		{"reference to a non-attribute", op(kmip.OperationGetAttributes, id, aref(kmip.TagBatchCount)), reasonAttributeNotFound},
		{"reference of the wrong type", op(kmip.OperationGetAttributes, id, text(tagAttributeReference, "State")), kmip.ResultReasonInvalidField},
		{"vendor attribute without name", op(kmip.OperationAddAttribute, id, st(tagNewAttribute,
			st(kmip.TagAttribute, text(kmip.TagVendorIdentification, "x"), text(kmip.TagAttributeValue, "v")))), kmip.ResultReasonInvalidField},
		{"vendor attribute with an empty name", op(kmip.OperationAddAttribute, id, st(tagNewAttribute, vendor("x", "", text(0, "v")))), kmip.ResultReasonInvalidField},
		{"unknown vendor", op(kmip.OperationAddAttribute, id, st(tagNewAttribute, vendor("acme", "n", text(0, "v")))), kmip.ResultReasonInvalidField},
		{"vendor reference without name", op(kmip.OperationGetAttributes, id, st(tagAttributeReference, text(kmip.TagVendorIdentification, "x"))), kmip.ResultReasonInvalidField},
		{"two new attributes", op(kmip.OperationAddAttribute, id, st(tagNewAttribute, text(kmip.TagContactInformation, "a"), text(kmip.TagComment, "b"))), kmip.ResultReasonInvalidField},
		{"empty new attribute", op(kmip.OperationAddAttribute, id, st(tagNewAttribute)), kmip.ResultReasonInvalidField},
		{"mixed: template-attribute and attributes", op(kmip.OperationCreate, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey)),
			st(kmip.TagTemplateAttribute), st(tagAttributes)), kmip.ResultReasonInvalidMessage},
		{"mixed: attribute name and reference", op(kmip.OperationGetAttributes, id, text(kmip.TagAttributeName, "State"), aref(kmip.TagState)), kmip.ResultReasonInvalidMessage},
		{"mixed: 1.x attribute inside attributes", op(kmip.OperationCreate, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey)),
			st(tagAttributes, st(kmip.TagAttribute, text(kmip.TagAttributeName, "x-a"), text(kmip.TagAttributeValue, "v")))), kmip.ResultReasonInvalidMessage},
		{"integer unique identifier", op(kmip.OperationGet, integer(kmip.TagUniqueIdentifier, 0)), kmip.ResultReasonFeatureNotSupported},
		{"boolean unique identifier", op(kmip.OperationGet, tv{Tag: kmip.TagUniqueIdentifier, Value: true}), kmip.ResultReasonInvalidField},
		{"set of a multi-instance attribute", op(operationSetAttribute, id, st(tagNewAttribute, vendor("x", "m", text(0, "1")))), 0},
		{"adjust of an absent attribute", op(operationAdjustAttribute, id, aref(kmip.TagContactInformation), enum(tagAdjustmentType, uint32(adjustIncrement))), reasonAttributeNotFound},
		{"set of a comment", op(operationSetAttribute, id, st(tagNewAttribute, text(kmip.TagComment, "c"))), 0},
		{"adjust of a text attribute", op(operationAdjustAttribute, id, aref(kmip.TagComment), enum(tagAdjustmentType, uint32(adjustIncrement))), kmip.ResultReasonInvalidField},
		{"adjust of an unknown type", op(operationAdjustAttribute, id, aref(kmip.TagComment), enum(tagAdjustmentType, 9)), kmip.ResultReasonInvalidField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Between a good item and another good item: only the bad
			// one fails (Batch Error Continuation: Continue is not
			// needed, the bad item is last but one).
			resp := v2Exchange(t, c, v2Request(1, tc.op))
			bi := items(resp)
			if len(bi) != 1 {
				t.Fatalf("%d items", len(bi))
			}
			if tc.reason == 0 {
				v2OK(t, bi[0])
			} else {
				v2Fails(t, bi[0], tc.reason)
				if o := get(bi[0], kmip.TagOperation); o == nil || o.Value != ttlv.Enum(tc.op.op) {
					t.Errorf("operation echoed as %v", o)
				}
			}
			v2OK(t, items(v2Exchange(t, c, v2Request(1, op(kmip.OperationDiscoverVersions))))[0])
		})
	}

	// A multi-instance attribute with two instances cannot be Set.
	v2OK(t, items(v2Exchange(t, c, v2Request(1, op(kmip.OperationAddAttribute, id, st(tagNewAttribute, vendor("x", "m", text(0, "2")))))))[0])
	v2Fails(t, items(v2Exchange(t, c, v2Request(1, op(operationSetAttribute, id, st(tagNewAttribute, vendor("x", "m", text(0, "3")))))))[0], reasonMultiValuedAttribute)

	t.Run("only the bad item fails", func(t *testing.T) {
		resp := v2Exchange(t, c, v2Request(1,
			op(kmip.OperationGetAttributes, id, aref(kmip.TagState)),
			op(kmip.OperationGetAttributes, id, aref(0x42FFFF)),
			op(kmip.OperationGetAttributes, id, aref(kmip.TagState))))
		bi := items(resp)
		v2OK(t, bi[0])
		v2Fails(t, bi[1], reasonAttributeNotFound)
		// Stop is the default: the rest is canceled.
		v2Fails(t, bi[2], kmip.ResultReasonOperationCanceledByRequester)
		if !e.audited(idOf(e.client), "get-attributes", "", true) {
			t.Error("the refused item was not audited as get-attributes")
		}
	})

	t.Run("deep nesting", func(t *testing.T) {
		deep := text(kmip.TagComment, "x")
		for range maxDepth + 2 {
			deep = st(kmip.TagAttribute, deep)
		}
		resp := v2Exchange(t, c, v2Request(1, op(kmip.OperationCreate, st(tagAttributes, deep))))
		v2Fails(t, items(resp)[0], kmip.ResultReasonInvalidMessage)
		v2OK(t, items(v2Exchange(t, c, v2Request(1, op(kmip.OperationDiscoverVersions))))[0])
	})
}

// TestV2ConnectionShape checks the choice of answer shape for items that
// do not show theirs: 2.x form by default, 1.x form on a connection that
// sent 1.x-shaped payloads in 2.x messages.
func TestV2ConnectionShape(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	uid := get(*v2OK(t, items(v2Exchange(t, c, v2Request(1, sklcCreate("shape"))))[0]), kmip.TagUniqueIdentifier).Value.(string)
	list := v2Request(1, op(kmip.OperationGetAttributeList, text(kmip.TagUniqueIdentifier, uid)))
	if pl := v2OK(t, items(v2Exchange(t, c, list))[0]); len(all(pl, tagAttributeReference)) == 0 || len(all(pl, kmip.TagAttributeName)) != 0 {
		t.Fatalf("2.x connection: %v", pl)
	}
	c1 := e.raw(e.client)
	// A 1.x-shaped Get Attributes under a 2.1 header, answered in 1.x form.
	resp := v2Exchange(t, c1, v2Request(1, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, uid), text(kmip.TagAttributeName, "State"))))
	if pl := v2OK(t, items(resp)[0]); get(*pl, kmip.TagAttribute, kmip.TagAttributeName) == nil {
		t.Fatalf("1.x-shaped item: %v", pl)
	}
	if pl := v2OK(t, items(v2Exchange(t, c1, list))[0]); len(all(pl, kmip.TagAttributeName)) == 0 || len(all(pl, tagAttributeReference)) != 0 {
		t.Fatalf("1.x-shaped connection: %v", pl)
	}
	// The first connection is not affected.
	if pl := v2OK(t, items(v2Exchange(t, c, list))[0]); len(all(pl, tagAttributeReference)) == 0 {
		t.Fatalf("2.x connection after the other: %v", pl)
	}
}

// TestV2ResponseBudget: a 2.x answer may be larger than the 1.x one the
// handler built (vendor attributes gain a Vendor Identification). The
// response budget counts that growth, so the item that does not fit fails
// alone with Response Too Large instead of the message being replaced.
func TestV2ResponseBudget(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	uid := get(*v2OK(t, items(v2Exchange(t, c, v2Request(1, sklcCreate("budget"))))[0]), kmip.TagUniqueIdentifier).Value.(string)
	id := text(kmip.TagUniqueIdentifier, uid)
	var adds []v2op
	for i := range 40 {
		adds = append(adds, op(kmip.OperationAddAttribute, id, st(tagNewAttribute, vendor("x", string(rune('a'+i/26))+string(rune('a'+i%26)), text(0, "v")))))
	}
	for _, bi := range items(v2Exchange(t, c, v2Request(1, adds...))) {
		v2OK(t, bi)
	}
	getAll := op(kmip.OperationGetAttributes, id)
	full := len(ttlv.MarshalTTLV(v2Exchange(t, c, v2Request(1, getAll))))
	v1 := len(ttlv.MarshalTTLV(v2Exchange(t, c, versionRequest(1, 4, getAll))))

	// A limit the 1.x form of the answer would meet, the 2.x form not.
	limit := int32(v1+full) / 2
	if v1 >= int(limit) || int(limit) >= full {
		t.Fatalf("1.x answer %d, 2.x answer %d bytes: no limit between", v1, full)
	}
	hdr := st(kmip.TagRequestHeader,
		st(kmip.TagProtocolVersion, integer(kmip.TagProtocolVersionMajor, 2), integer(kmip.TagProtocolVersionMinor, 1)),
		integer(kmip.TagMaximumResponseSize, limit),
		integer(kmip.TagBatchCount, 1))
	msg := ttlv.MarshalTTLV(st(kmip.TagRequestMessage, hdr,
		st(kmip.TagBatchItem, enum(kmip.TagOperation, uint32(kmip.OperationGetAttributes)), st(kmip.TagRequestPayload, id))))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	raw := readMessage(t, c)
	if len(raw) > int(limit) {
		t.Fatalf("answer of %d bytes over the limit of %d", len(raw), limit)
	}
	var resp tv
	if err := ttlv.UnmarshalTTLV(raw, &resp); err != nil {
		t.Fatal(err)
	}
	bi := items(resp)[0]
	v2Fails(t, bi, kmip.ResultReasonResponseTooLarge)
	// The item's own failure, not the message-level last resort (which
	// has no operation).
	if o := get(bi, kmip.TagOperation); o == nil || o.Value != ttlv.Enum(kmip.OperationGetAttributes) {
		t.Fatalf("operation %v", o)
	}
}

// TestV2TranslationOfOtherOperations checks the translation of operations
// whose handlers are not needed for it: a 2.x Create Key Pair becomes the
// library's 1.x payload with its three template-attributes, a Derive Key
// gets a Template-Attribute, and the 2.x answers lose the
// template-attributes 1.x answers may carry.
func TestV2TranslationOfOtherOperations(t *testing.T) {
	msg := v2Request(1,
		op(kmip.OperationCreateKeyPair,
			st(tagCommonAttributes, enum(kmip.TagCryptographicAlgorithm, uint32(kmip.CryptographicAlgorithmRSA)), integer(kmip.TagCryptographicLength, 2048)),
			st(tagPrivateKeyAttributes, integer(kmip.TagCryptographicUsageMask, int32(kmip.CryptographicUsageSign)),
				st(kmip.TagName, text(kmip.TagNameValue, "priv"), enum(kmip.TagNameType, uint32(kmip.NameTypeUninterpretedTextString)))),
			st(tagPublicKeyAttributes, integer(kmip.TagCryptographicUsageMask, int32(kmip.CryptographicUsageVerify)), vendor("x", "side", text(0, "public"))),
			st(tagCommonProtectionStorageMasks, integer(0x42015E, 1))),
		op(kmip.OperationDeriveKey, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey)), text(kmip.TagUniqueIdentifier, "base"),
			enum(kmip.TagDerivationMethod, 1), // PBKDF2
			st(kmip.TagDerivationParameters, tv{Tag: kmip.TagSalt, Value: []byte("salt")}, integer(kmip.TagIterationCount, 1000)),
			st(tagAttributes, integer(kmip.TagCryptographicLength, 128))))
	sess := &session{}
	tr, m, err := fromV2(msg, sess)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.items) != 2 || !m.items[0].v2 || !m.items[1].v2 || m.items[0].err != nil || m.items[1].err != nil || sess.v1Shaped {
		t.Fatalf("items %+v", m.items)
	}
	if err := checkTTLV(tr); err != nil {
		t.Fatal(err)
	}
	var req kmip.RequestMessage
	if err := ttlv.UnmarshalTTLV(tr, &req); err != nil {
		t.Fatal(err)
	}
	kp, ok := req.BatchItem[0].RequestPayload.(interface{ Operation() kmip.Operation })
	if !ok || kp.Operation() != kmip.OperationCreateKeyPair {
		t.Fatalf("payload %T", req.BatchItem[0].RequestPayload)
	}
	names := func(ta *kmip.TemplateAttribute) map[kmip.AttributeName]any {
		out := map[kmip.AttributeName]any{}
		if ta != nil {
			for _, a := range ta.Attribute {
				out[a.AttributeName] = a.AttributeValue
			}
		}
		return out
	}
	p := req.BatchItem[0].RequestPayload.(*payloads.CreateKeyPairRequestPayload)
	common, priv, pub := names(p.CommonTemplateAttribute), names(p.PrivateKeyTemplateAttribute), names(p.PublicKeyTemplateAttribute)
	if common[kmip.AttributeNameCryptographicAlgorithm] != kmip.CryptographicAlgorithmRSA || common[kmip.AttributeNameCryptographicLength] != int32(2048) {
		t.Errorf("common %v", common)
	}
	if priv[kmip.AttributeNameCryptographicUsageMask] != kmip.CryptographicUsageSign || priv[kmip.AttributeNameName].(kmip.Name).NameValue != "priv" {
		t.Errorf("private %v", priv)
	}
	if pub[kmip.AttributeNameCryptographicUsageMask] != kmip.CryptographicUsageVerify || pub["x-side"].(ttlv.Value).Value != "public" {
		t.Errorf("public %v", pub)
	}
	root, _ := parseTree(tr)
	var derive *tnode
	for _, bi := range root.kids {
		if bi.tag == kmip.TagBatchItem && bi.child(kmip.TagOperation).u32() == uint32(kmip.OperationDeriveKey) {
			derive = bi.child(kmip.TagRequestPayload)
		}
	}
	if derive == nil || derive.child(kmip.TagTemplateAttribute) == nil || derive.child(tagAttributes) != nil ||
		derive.child(kmip.TagTemplateAttribute).child(kmip.TagAttribute).child(kmip.TagAttributeName).text() != string(kmip.AttributeNameCryptographicLength) {
		t.Fatalf("derive key payload: %+v", derive)
	}

	// Answers: the 1.x template-attributes go.
	out := ttlv.MarshalTTLV(&kmip.ResponseMessage{
		Header: kmip.ResponseHeader{ProtocolVersion: kmip.V2_1, TimeStamp: time.Now(), BatchCount: 1},
		BatchItem: []kmip.ResponseBatchItem{
			{Operation: kmip.OperationCreateKeyPair, ResultStatus: kmip.ResultStatusSuccess, ResponsePayload: &payloads.CreateKeyPairResponsePayload{
				PrivateKeyUniqueIdentifier: "a", PublicKeyUniqueIdentifier: "b",
				PrivateKeyTemplateAttribute: &kmip.TemplateAttribute{Attribute: []kmip.Attribute{{AttributeName: kmip.AttributeNameState, AttributeValue: kmip.StateActive}}},
			}},
		},
	})
	var resp tv
	if err := ttlv.UnmarshalTTLV(toV2(out, m), &resp); err != nil {
		t.Fatal(err)
	}
	for _, bi := range items(resp) {
		pl := get(bi, kmip.TagResponsePayload)
		if hasTag(*pl, kmip.TagPrivateKeyTemplateAttribute) || hasTag(*pl, kmip.TagTemplateAttribute) || get(*pl, kmip.TagPrivateKeyUniqueIdentifier) == nil && get(*pl, kmip.TagUniqueIdentifier) == nil {
			t.Errorf("2.x answer %v", pl)
		}
	}
}

// TestV2NestedAttributeReference: an Attribute Reference below the top of
// a payload (a Get's Key Wrapping Specification) is translated as well.
func TestV2NestedAttributeReference(t *testing.T) {
	msg := v2Request(1, op(kmip.OperationGet, text(kmip.TagUniqueIdentifier, "k"),
		st(kmip.TagKeyWrappingSpecification, enum(kmip.TagWrappingMethod, 1), aref(kmip.TagCryptographicUsageMask))))
	tr, m, err := fromV2(msg, &session{})
	if err != nil || m.items[0].err != nil {
		t.Fatal(err, m.items[0].err)
	}
	var req kmip.RequestMessage
	if err := ttlv.UnmarshalTTLV(tr, &req); err != nil {
		t.Fatal(err)
	}
	kws := req.BatchItem[0].RequestPayload.(*payloads.GetRequestPayload).KeyWrappingSpecification
	if kws == nil || !slices.Equal(kws.AttributeName, []kmip.AttributeName{kmip.AttributeNameCryptographicUsageMask}) {
		t.Fatalf("key wrapping specification %+v", kws)
	}
}
