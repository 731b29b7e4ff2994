// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

func attrValue(t *testing.T, attrs []kmip.Attribute, name kmip.AttributeName) any {
	t.Helper()
	for _, a := range attrs {
		if a.AttributeName == name {
			return a.AttributeValue
		}
	}
	return nil
}

// TestOVHClient runs the lifecycle of a key with the ovh/kmip-go client.
func TestOVHClient(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	if c.Version() != kmip.V1_4 {
		t.Fatalf("negotiated %v, want 1.4", c.Version())
	}
	usage := kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt

	created := c.Create().AES(256, usage).WithName("disk-key").MustExec()
	if created.ObjectType != kmip.ObjectTypeSymmetricKey || created.UniqueIdentifier == "" {
		t.Fatalf("create: %+v", created)
	}
	id := created.UniqueIdentifier

	attrs := c.GetAttributes(id, kmip.AttributeNameState, kmip.AttributeNameCryptographicLength, kmip.AttributeNameName, kmip.AttributeNameDigest).MustExec()
	if got := attrValue(t, attrs.Attribute, kmip.AttributeNameState); got != kmip.StatePreActive {
		t.Fatalf("state = %v, want PreActive", got)
	}
	if got := attrValue(t, attrs.Attribute, kmip.AttributeNameCryptographicLength); got != int32(256) {
		t.Fatalf("length = %v", got)
	}
	if got, ok := attrValue(t, attrs.Attribute, kmip.AttributeNameName).(kmip.Name); !ok || got.NameValue != "disk-key" {
		t.Fatalf("name = %v", got)
	}

	got := c.Get(id).MustExec()
	key, err := got.SymmetricKey()
	if err != nil || len(key) != 32 {
		t.Fatalf("get: %v, %d bytes", err, len(key))
	}
	tr := c.Get(id).WithKeyFormat(kmip.KeyFormatTypeTransparentSymmetricKey).MustExec()
	if k2, _ := tr.SymmetricKey(); !bytes.Equal(k2, key) {
		t.Fatal("transparent key differs from raw key")
	}
	res, err := c.Get(id).WithKeyFormat(kmip.KeyFormatTypePKCS_8).Build()
	if err != nil {
		t.Fatal(err)
	}
	br, err := c.Batch(context.Background(), res)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, br[0], kmip.ResultReasonKeyFormatTypeNotSupported)

	c.AddAttribute(id, "x-Vendor", "VMware, Inc.").MustExec()
	c.AddAttribute(id, "x-Vendor", "second").MustExec()
	va := c.GetAttributes(id, "x-Vendor").MustExec()
	if len(va.Attribute) != 2 || va.Attribute[1].AttributeIndex == nil || *va.Attribute[1].AttributeIndex != 1 {
		t.Fatalf("x-Vendor instances: %+v", va.Attribute)
	}

	loc := c.Locate().WithName("disk-key").MustExec()
	if !slices.Equal(loc.UniqueIdentifier, []string{id}) {
		t.Fatalf("locate by name: %v", loc.UniqueIdentifier)
	}
	loc = c.Locate().WithAttribute("x-Vendor", "VMware, Inc.").WithObjectType(kmip.ObjectTypeSymmetricKey).MustExec()
	if !slices.Equal(loc.UniqueIdentifier, []string{id}) {
		t.Fatalf("locate by custom attribute: %v", loc.UniqueIdentifier)
	}

	// Destroying an active key is refused; revoking first allows it.
	c.Activate(id).MustExec()
	d, _ := c.Destroy(id).Build()
	br, err = c.Batch(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, br[0], kmip.ResultReasonPermissionDenied)
	c.Revoke(id).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
	st := c.GetAttributes(id, kmip.AttributeNameState).MustExec()
	if got := attrValue(t, st.Attribute, kmip.AttributeNameState); got != kmip.StateDeactivated {
		t.Fatalf("state after revoke = %v", got)
	}
	c.Destroy(id).MustExec()
	g, _ := c.Get(id).Build()
	br, _ = c.Batch(context.Background(), g)
	wantReason(t, br[0], kmip.ResultReasonItemNotFound)

	// Register a known key, a secret and an opaque object.
	known := bytes.Repeat([]byte{7}, 16)
	reg := c.Register().SymmetricKey(kmip.CryptographicAlgorithmAES, usage, known).MustExec()
	if k, _ := c.Get(reg.UniqueIdentifier).MustExec().SymmetricKey(); !bytes.Equal(k, known) {
		t.Fatal("registered AES-128 key does not round-trip")
	}
	sec := c.Register().Secret(kmip.SecretDataTypePassword, []byte("hunter2hunter2")).MustExec()
	if s, err := c.Get(sec.UniqueIdentifier).MustExec().Secret(); err != nil || string(s) != "hunter2hunter2" {
		t.Fatalf("secret data: %v", err)
	}
	op := c.Register().Object(&kmip.OpaqueObject{OpaqueDataType: 0x80000001, OpaqueDataValue: []byte{1, 2, 3}}).MustExec()
	gr := c.Get(op.UniqueIdentifier).MustExec()
	if o, ok := gr.Object.(*kmip.OpaqueObject); !ok || !bytes.Equal(o.OpaqueDataValue, []byte{1, 2, 3}) {
		t.Fatalf("opaque object: %+v", gr.Object)
	}
	if !e.audited(idOf(e.client), "create", id, false) || !e.audited(idOf(e.client), "get", id, false) || !e.audited(idOf(e.client), "destroy", id, true) {
		t.Fatal("audit records missing")
	}
}

func TestRekey(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).WithName("rk").MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	nid := c.Rekey(id).MustExec().UniqueIdentifier
	if nid == id {
		t.Fatal("re-key returned the old identifier")
	}
	links := c.GetAttributes(nid, kmip.AttributeNameLink, kmip.AttributeNameState).MustExec()
	if l, _ := attrValue(t, links.Attribute, kmip.AttributeNameLink).(kmip.Link); l.LinkType != kmip.LinkTypeReplacedObjectLink || l.LinkedObjectIdentifier != id {
		t.Fatalf("new key link: %+v", links.Attribute)
	}
	if s := attrValue(t, links.Attribute, kmip.AttributeNameState); s != kmip.StateActive {
		t.Fatalf("new key state %v", s)
	}
	if n, _ := attrValue(t, c.GetAttributes(nid, kmip.AttributeNameName).MustExec().Attribute, kmip.AttributeNameName).(kmip.Name); n.NameValue != "rk" {
		t.Fatalf("new key name %+v", n)
	}
	if loc := c.Locate().WithName("rk").MustExec(); !slices.Equal(loc.UniqueIdentifier, []string{nid}) {
		t.Fatalf("the name did not move to the new key: %v", loc.UniqueIdentifier)
	}
	old := c.GetAttributes(id, kmip.AttributeNameLink).MustExec()
	if l, _ := attrValue(t, old.Attribute, kmip.AttributeNameLink).(kmip.Link); l.LinkType != kmip.LinkTypeReplacementObjectLink || l.LinkedObjectIdentifier != nid {
		t.Fatalf("old key link: %+v", old.Attribute)
	}
}

// TestRekeyDatesKeepActive: a Re-key of an Active key whose template
// gives dates but no Activation Date makes an Active replacement, active
// from the Re-key on, as one without dates.
func TestRekeyDatesKeepActive(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	deactivate := time.Now().Add(time.Hour).Truncate(time.Second)
	nid := c.Rekey(id).WithAttribute(kmip.AttributeNameDeactivationDate, deactivate).MustExec().UniqueIdentifier
	attrs := c.GetAttributes(nid, kmip.AttributeNameState, kmip.AttributeNameActivationDate, kmip.AttributeNameDeactivationDate).MustExec().Attribute
	if s := attrValue(t, attrs, kmip.AttributeNameState); s != kmip.StateActive {
		t.Fatalf("replacement state %v, want Active", s)
	}
	if a, _ := attrValue(t, attrs, kmip.AttributeNameActivationDate).(time.Time); a.IsZero() || a.After(time.Now()) {
		t.Fatalf("replacement Activation Date %v", a)
	}
	if d, _ := attrValue(t, attrs, kmip.AttributeNameDeactivationDate).(time.Time); !d.Equal(deactivate) {
		t.Fatalf("replacement Deactivation Date %v, want %v", d, deactivate)
	}
}

// TestCrossProtocol checks that both front doors see the same keys.
func TestCrossProtocol(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.dial(e.client)

	t.Run("KES key over KMIP", func(t *testing.T) {
		if err := e.keys.Create(ctx, "my-key", "admin"); err != nil {
			t.Fatal(err)
		}
		ct, err := e.keys.Encrypt(ctx, "my-key", []byte("hello"), []byte("ctx"))
		if err != nil {
			t.Fatal(err)
		}
		// A KES key is not extractable: Get is refused, saying why.
		req, _ := c.Get("my-key").Build()
		br, err := c.Batch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		wantReason(t, br[0], kmip.ResultReasonPermissionDenied)
		if !strings.HasPrefix(br[0].ResultMessage, "key is not extractable: ") {
			t.Fatalf("reason %q", br[0].ResultMessage)
		}
		if e.audited(idOf(e.client), "export", "my-key", false) {
			t.Fatal("refused Get audited as an export")
		}
		// The admin's switch makes it extractable; the export is
		// audited on its own.
		if err := e.keys.AllowExport(ctx, "my-key", true); err != nil {
			t.Fatal(err)
		}
		got := c.Get("my-key").MustExec()
		if !e.audited(idOf(e.client), "export", "my-key", false) {
			t.Fatal("export not audited")
		}
		material, err := got.SymmetricKey()
		if err != nil {
			t.Fatal(err)
		}
		info, _ := e.keys.Describe(ctx, "my-key")
		sk, err := crypto.NewSecretKey(info.Algorithm, material)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := sk.Decrypt(ct, []byte("ctx"))
		if err != nil || string(pt) != "hello" {
			t.Fatalf("decrypt with KMIP material: %v", err)
		}
		attrs := c.GetAttributes("my-key").MustExec()
		if s := attrValue(t, attrs.Attribute, kmip.AttributeNameState); s != kmip.StateActive {
			t.Fatalf("state %v", s)
		}
		if n, _ := attrValue(t, attrs.Attribute, kmip.AttributeNameName).(kmip.Name); n.NameValue != "my-key" {
			t.Fatalf("name %v", n)
		}
		if u := attrValue(t, attrs.Attribute, kmip.AttributeNameCryptographicUsageMask); u != kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt|kmip.CryptographicUsageMACGenerate|kmip.CryptographicUsageMACVerify {
			t.Fatalf("usage %v", u)
		}
		// Attributes added over KMIP leave the key usable over KES.
		c.AddAttribute("my-key", "x-Tag", "t").MustExec()
		if pt, err := e.keys.Decrypt(ctx, "my-key", ct, []byte("ctx")); err != nil || string(pt) != "hello" {
			t.Fatalf("decrypt after add attribute: %v", err)
		}
	})

	t.Run("KMIP key over KES", func(t *testing.T) {
		id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
		if _, _, err := e.keys.Generate(ctx, id, nil); !errors.Is(err, keys.ErrNotActive) {
			t.Fatalf("generate with pre-active key: %v", err)
		}
		c.Activate(id).MustExec()
		dek, ct, err := e.keys.Generate(ctx, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := e.keys.Decrypt(ctx, id, ct, nil); err != nil || !bytes.Equal(pt, dek) {
			t.Fatalf("decrypt: %v", err)
		}
		names, _ := e.keys.List(ctx, "")
		if !slices.Contains(names, id) {
			t.Fatalf("list %v lacks %s", names, id)
		}
		c.Revoke(id).WithRevocationReasonCode(kmip.RevocationReasonCodeKeyCompromise).MustExec()
		if _, _, err := e.keys.Generate(ctx, id, nil); !errors.Is(err, keys.ErrNotActive) {
			t.Fatalf("generate with compromised key: %v", err)
		}
		if pt, err := e.keys.Decrypt(ctx, id, ct, nil); err != nil || !bytes.Equal(pt, dek) {
			t.Fatalf("decrypt with compromised key: %v", err)
		}
		c.Destroy(id).MustExec()
		if _, err := e.keys.Describe(ctx, id); !errors.Is(err, keys.ErrKeyNotFound) {
			t.Fatalf("describe destroyed key: %v", err)
		}
	})

	t.Run("AES-128 is not a KES key", func(t *testing.T) {
		id := c.Create().AES(128, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
		c.Activate(id).MustExec()
		if _, _, err := e.keys.Generate(ctx, id, nil); !errors.Is(err, keys.ErrNotEncryptionKey) {
			t.Fatalf("generate with AES-128: %v", err)
		}
		k, _ := c.Get(id).MustExec().SymmetricKey()
		if len(k) != 16 {
			t.Fatalf("AES-128 key has %d bytes", len(k))
		}
	})
}

// TestBatch checks ID placeholders, batch ids and the continuation option.
func TestBatch(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	create := &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
	}}}
	resp := send(t, c, request(kmip.V1_2, create, &payloads.ActivateRequestPayload{}, &payloads.GetRequestPayload{}))
	if len(resp.BatchItem) != 3 {
		t.Fatalf("%d batch items", len(resp.BatchItem))
	}
	for i, bi := range resp.BatchItem {
		wantOK(t, bi)
		if !bytes.Equal(bi.UniqueBatchItemID, []byte{0, 0, 0, 0, 0, 0, 0, byte(i)}) {
			t.Fatalf("batch id %x", bi.UniqueBatchItemID)
		}
	}

	// Stop (the default): items after a failure are not run.
	msg := request(kmip.V1_2, &payloads.GetRequestPayload{UniqueIdentifier: "missing"}, create)
	resp = send(t, c, msg)
	wantReason(t, resp.BatchItem[0], kmip.ResultReasonItemNotFound)
	wantReason(t, resp.BatchItem[1], kmip.ResultReasonOperationCanceledByRequester)
	msg.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionContinue
	resp = send(t, c, msg)
	wantReason(t, resp.BatchItem[0], kmip.ResultReasonItemNotFound)
	wantOK(t, resp.BatchItem[1])

	// Undo needs transactions the keystore does not have: the whole
	// message is refused and nothing runs.
	msg = request(kmip.V1_2, create, create)
	msg.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionUndo
	resp = send(t, c, msg)
	if len(resp.BatchItem) != 1 {
		t.Fatalf("%d items for a refused message", len(resp.BatchItem))
	}
	wantReason(t, resp.BatchItem[0], kmip.ResultReasonFeatureNotSupported)

	// A wrong Batch Count is an invalid message.
	msg = request(kmip.V1_2, create)
	msg.Header.BatchCount = 2
	wantReason(t, send(t, c, msg).BatchItem[0], kmip.ResultReasonInvalidMessage)

	// An unsupported operation fails alone.
	msg = request(kmip.V1_2, kmip.NewUnknownPayload(kmip.OperationCertify), &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionServerInformation}})
	msg.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionContinue
	resp = send(t, c, msg)
	wantReason(t, resp.BatchItem[0], kmip.ResultReasonOperationNotSupported)
	wantOK(t, resp.BatchItem[1])
	if q := resp.BatchItem[1].ResponsePayload.(*payloads.QueryResponsePayload); q.VendorIdentification != VendorIdentification {
		t.Fatalf("vendor %q", q.VendorIdentification)
	}
}

// TestLocateTemplateAttribute sends filters wrapped in a Template-Attribute
// as some KMIP 1.0/1.1 clients do.
func TestLocateTemplateAttribute(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt).WithName("wrapped").MustExec().UniqueIdentifier
	c.Create().AES(256, kmip.CryptographicUsageEncrypt).WithName("other").MustExec()

	// Locate{Template-Attribute{Attribute{Name, Name{wrapped}}}}, KMIP 1.1.
	enc := ttlv.NewTTLVEncoder()
	enc.Struct(kmip.TagRequestMessage, func(e *ttlv.Encoder) {
		e.Struct(kmip.TagRequestHeader, func(e *ttlv.Encoder) {
			e.Struct(kmip.TagProtocolVersion, func(e *ttlv.Encoder) {
				e.Integer(kmip.TagProtocolVersionMajor, 1)
				e.Integer(kmip.TagProtocolVersionMinor, 1)
			})
			e.Integer(kmip.TagBatchCount, 1)
		})
		e.Struct(kmip.TagBatchItem, func(e *ttlv.Encoder) {
			e.Enum(kmip.TagOperation, kmip.TagOperation, uint32(kmip.OperationLocate))
			e.Struct(kmip.TagRequestPayload, func(e *ttlv.Encoder) {
				e.Struct(kmip.TagTemplateAttribute, func(e *ttlv.Encoder) {
					e.Struct(kmip.TagAttribute, func(e *ttlv.Encoder) {
						e.TextString(kmip.TagAttributeName, "Name")
						e.Struct(kmip.TagAttributeValue, func(e *ttlv.Encoder) {
							e.TextString(kmip.TagNameValue, "wrapped")
							e.Enum(kmip.TagNameType, kmip.TagNameType, 1)
						})
					})
				})
			})
		})
	})
	req := enc.Bytes()
	resp := exchange(t, e.raw(e.client), req)
	wantOK(t, resp.BatchItem[0])
	got := resp.BatchItem[0].ResponsePayload.(*payloads.LocateResponsePayload).UniqueIdentifier
	if !slices.Equal(got, []string{id}) {
		t.Fatalf("located %v, want [%s]", got, id)
	}

	all := c.Locate().WithObjectType(kmip.ObjectTypeSymmetricKey).MustExec()
	if len(all.UniqueIdentifier) != 2 {
		t.Fatalf("located %v", all.UniqueIdentifier)
	}
	page := c.Locate().WithObjectType(kmip.ObjectTypeSymmetricKey).WithMaxItems(1).WithOffset(1).MustExec()
	if len(page.UniqueIdentifier) != 1 || page.UniqueIdentifier[0] != all.UniqueIdentifier[1] || page.LocatedItems == nil || *page.LocatedItems != 2 {
		t.Fatalf("page %v located %v", page.UniqueIdentifier, page.LocatedItems)
	}
}

var _ = kmipclient.EnforceVersion

// TestDestroyClaim: Destroy first claims the key with a compare-and-swap
// (state Destroyed), then deletes it. A key left claimed (another node's
// delete failed half-way) is gone for Get and Activate, and a second
// Destroy finishes the job.
func TestDestroyClaim(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	ctx := context.Background()
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier

	// What another node's Destroy leaves behind if its delete fails.
	if err := e.keys.Update(ctx, id, func(o *keys.Object) error { o.Meta.State = keys.StateDestroyed; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, build := range []func() (kmip.OperationPayload, error){c.Get(id).Build, c.Activate(id).Build} {
		p, _ := build()
		br, err := c.Batch(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		wantReason(t, br[0], kmip.ResultReasonItemNotFound)
	}
	c.Destroy(id).MustExec()
	if names, _ := e.keys.List(ctx, ""); slices.Contains(names, id) {
		t.Fatal("the claimed key is still in the keystore after Destroy")
	}
}
