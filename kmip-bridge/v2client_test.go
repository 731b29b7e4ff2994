// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/ttlv"
)

// TestOVHClientVersions runs every operation of the ovh kmipclient that
// the bridge implements, negotiated (1.4: the client lists only 1.x) and
// with EnforceVersion(2.1). At 2.1 the client still sends its 1.x payload
// shapes under the 2.1 header and decodes answers with its 1.x types:
// the bridge answers such items in 1.x form (v2.go).
func TestOVHClientVersions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []kmipclient.Option
		want kmip.ProtocolVersion
		// destroyActive is the reason for destroying an Active key.
		destroyActive kmip.ResultReason
	}{
		{"1.4", nil, kmip.V1_4, kmip.ResultReasonPermissionDenied},
		{"2.1", []kmipclient.Option{kmipclient.EnforceVersion(kmip.V2_1)}, kmip.V2_1, reasonWrongKeyLifecycleState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.dial(e.client, tc.opts...)
			if c.Version() != tc.want {
				t.Fatalf("version %v, want %v", c.Version(), tc.want)
			}
			ctx := context.Background()
			usage := kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt

			created := c.Create().AES(256, usage).WithName("ovh-" + tc.name).MustExec()
			id := created.UniqueIdentifier
			if created.ObjectType != kmip.ObjectTypeSymmetricKey || id == "" {
				t.Fatalf("create: %+v", created)
			}

			attrs := c.GetAttributes(id, kmip.AttributeNameState, kmip.AttributeNameCryptographicLength, kmip.AttributeNameName).MustExec()
			if got := attrValue(t, attrs.Attribute, kmip.AttributeNameState); got != kmip.StatePreActive {
				t.Fatalf("state %v", got)
			}
			if got, _ := attrValue(t, attrs.Attribute, kmip.AttributeNameName).(kmip.Name); got.NameValue != "ovh-"+tc.name {
				t.Fatalf("name %v", got)
			}
			every := c.GetAttributes(id).MustExec()
			if attrValue(t, every.Attribute, kmip.AttributeNameCryptographicAlgorithm) != kmip.CryptographicAlgorithmAES {
				t.Fatalf("all attributes: %+v", every.Attribute)
			}
			list := c.GetAttributeList(id).MustExec()
			if !slices.Contains(list.AttributeName, kmip.AttributeNameState) {
				t.Fatalf("attribute list %v", list.AttributeName)
			}

			c.AddAttribute(id, "x-Vendor", "VMware, Inc.").MustExec()
			c.AddAttribute(id, "x-Vendor", "second").MustExec()
			c.ModifyAttribute(id, "x-Vendor", "changed").MustExec()
			c.DeleteAttribute(id, "x-Vendor").MustExec()
			va := c.GetAttributes(id, "x-Vendor").MustExec()
			if len(va.Attribute) != 1 || va.Attribute[0].AttributeValue.(ttlv.Value).Value != "second" {
				t.Fatalf("x-Vendor after add, modify, delete: %+v", va.Attribute)
			}

			if loc := c.Locate().WithName("ovh-" + tc.name).MustExec(); !slices.Equal(loc.UniqueIdentifier, []string{id}) {
				t.Fatalf("locate by name: %v", loc.UniqueIdentifier)
			}
			if loc := c.Locate().WithAttribute("x-Vendor", "second").WithObjectType(kmip.ObjectTypeSymmetricKey).MustExec(); !slices.Equal(loc.UniqueIdentifier, []string{id}) {
				t.Fatalf("locate by custom attribute: %v", loc.UniqueIdentifier)
			}

			key, err := c.Get(id).MustExec().SymmetricKey()
			if err != nil || len(key) != 32 {
				t.Fatalf("get: %v, %d bytes", err, len(key))
			}
			tr, _ := c.Get(id).WithKeyFormat(kmip.KeyFormatTypeTransparentSymmetricKey).MustExec().SymmetricKey()
			if !bytes.Equal(tr, key) {
				t.Fatal("transparent key differs")
			}

			c.Activate(id).MustExec()
			enc := c.Encrypt(id).WithCryptographicParameters(kmip.AES_GCM).Data([]byte("secret")).MustExec()
			dec := c.Decrypt(id).WithCryptographicParameters(kmip.AES_GCM).WithIvCounterNonce(enc.IVCounterNonce).WithAuthTag(enc.AuthenticatedEncryptionTag).Data(enc.Data).MustExec()
			if string(dec.Data) != "secret" {
				t.Fatalf("decrypt: %q", dec.Data)
			}

			d, _ := c.Destroy(id).Build()
			br, err := c.Batch(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			wantReason(t, br[0], tc.destroyActive)
			nid := c.Rekey(id).MustExec().UniqueIdentifier
			if nid == "" || nid == id {
				t.Fatalf("re-key: %q", nid)
			}

			q := c.Query().Operations().Objects().ServerInformation().MustExec()
			if !slices.Contains(q.Operations, kmip.OperationCreate) || q.VendorIdentification != VendorIdentification {
				t.Fatalf("query: %+v", q)
			}
			if set := slices.Contains(q.Operations, operationSetAttribute); set != (tc.want == kmip.V2_1) {
				t.Fatalf("query lists Set Attribute: %v", set)
			}

			// The older version goes first, then the key.
			for _, v := range []string{id, nid} {
				c.Revoke(v).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
				c.Destroy(v).MustExec()
			}

			known := bytes.Repeat([]byte{7}, 16)
			reg := c.Register().SymmetricKey(kmip.CryptographicAlgorithmAES, usage, known).MustExec()
			if k, _ := c.Get(reg.UniqueIdentifier).MustExec().SymmetricKey(); !bytes.Equal(k, known) {
				t.Fatal("registered key does not round-trip")
			}
			sec := c.Register().Secret(kmip.SecretDataTypePassword, []byte("hunter2hunter2")).MustExec()
			if s, err := c.Get(sec.UniqueIdentifier).MustExec().Secret(); err != nil || string(s) != "hunter2hunter2" {
				t.Fatalf("secret data: %v", err)
			}

			ovhAsymmetricOps(t, e, c, "ovh-"+tc.name)
			ovhWrappedGet(t, c)
		})
	}
}

// TestOVHClientFreshConnection21 records what happens to an ovh client at
// 2.1 whose connection has shown no 1.x payload yet: an operation whose
// request has the same form in both versions (Get Attribute List) is
// answered in 2.x form, which the client's 1.x types read as an empty
// list. A client that creates, registers or names attributes first (as
// the test above) reads 1.x answers from then on.
func TestOVHClientFreshConnection21(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	id := c.Create().AES(128, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	c21 := e.dial(e.client, kmipclient.EnforceVersion(kmip.V2_1))
	if list := c21.GetAttributeList(id).MustExec(); len(list.AttributeName) != 0 {
		t.Fatalf("fresh 2.1 connection: %v", list.AttributeName)
	}
	c21.GetAttributes(id, kmip.AttributeNameState).MustExec()
	if list := c21.GetAttributeList(id).MustExec(); !slices.Contains(list.AttributeName, kmip.AttributeNameState) {
		t.Fatalf("after a 1.x-shaped request: %v", list.AttributeName)
	}
}
