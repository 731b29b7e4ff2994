// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
)

// batchOne sends one payload and returns its batch item.
func batchOne(t *testing.T, c *kmipclient.Client, p kmip.OperationPayload) kmip.ResponseBatchItem {
	t.Helper()
	br, err := c.Batch(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return br[0]
}

// TestCryptoOverKMIP: a KES key is used over KMIP without leaving the
// server, with AES-GCM (IV, AAD, tag), AES-CBC and HMAC, and the results
// are those of the raw key.
func TestCryptoOverKMIP(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.dial(e.client)
	if err := e.keys.Create(ctx, "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	e.keys.With(ctx, "minio", func(o *keys.Object) error {
		return o.Version.Key.Use(func(b []byte) error { raw = bytes.Clone(b); return nil })
	})

	// The server draws every GCM IV: a client-chosen one is refused, as
	// it would let an encrypt-only client repeat a victim's IV.
	chosen, _ := c.Encrypt("minio").WithCryptographicParameters(kmip.AES_GCM).WithIvCounterNonce(bytes.Repeat([]byte{9}, 12)).Data([]byte("secret")).Build()
	if bi := batchOne(t, c, chosen); bi.ResultReason != kmip.ResultReasonInvalidField || !strings.Contains(bi.ResultMessage, "takes no IV") {
		t.Fatalf("GCM encrypt with a client IV: %v %q", bi.ResultReason, bi.ResultMessage)
	}
	enc := c.Encrypt("minio").WithCryptographicParameters(kmip.AES_GCM).WithAAD([]byte("aad")).Data([]byte("secret")).MustExec()
	iv := enc.IVCounterNonce
	if len(iv) != 12 {
		t.Fatalf("server GCM IV of %d bytes", len(iv))
	}
	wantCT, wantTag, _ := crypto.GCMSeal(raw, iv, []byte("secret"), []byte("aad"), 16)
	if !bytes.Equal(enc.Data, wantCT) || !bytes.Equal(enc.AuthenticatedEncryptionTag, wantTag) {
		t.Fatal("GCM ciphertext is not AES-256-GCM under the raw key")
	}
	dec := c.Decrypt("minio").WithCryptographicParameters(kmip.AES_GCM).WithIvCounterNonce(iv).WithAAD([]byte("aad")).WithAuthTag(enc.AuthenticatedEncryptionTag).Data(enc.Data).MustExec()
	if string(dec.Data) != "secret" {
		t.Fatalf("GCM decrypt: %q", dec.Data)
	}
	// A wrong tag or AAD is a Cryptographic Failure.
	bad := bytes.Clone(enc.AuthenticatedEncryptionTag)
	bad[0] ^= 1
	req, _ := c.Decrypt("minio").WithCryptographicParameters(kmip.AES_GCM).WithIvCounterNonce(iv).WithAAD([]byte("aad")).WithAuthTag(bad).Data(enc.Data).Build()
	wantReason(t, batchOne(t, c, req), kmip.ResultReasonCryptographicFailure)

	// Server-chosen IV, CBC.
	cbc := c.Encrypt("minio").WithCryptographicParameters(kmip.AES_CBC_PKCS5).Data([]byte("0123456789abcdef")).MustExec()
	if len(cbc.IVCounterNonce) != 16 || len(cbc.Data) != 32 {
		t.Fatalf("CBC: iv %d, data %d bytes", len(cbc.IVCounterNonce), len(cbc.Data))
	}
	if want, _ := crypto.CBCEncrypt(raw, cbc.IVCounterNonce, []byte("0123456789abcdef")); !bytes.Equal(want, cbc.Data) {
		t.Fatal("CBC ciphertext is not AES-256-CBC under the raw key")
	}
	pt := c.Decrypt("minio").WithCryptographicParameters(kmip.AES_CBC_PKCS5).WithIvCounterNonce(cbc.IVCounterNonce).Data(cbc.Data).MustExec()
	if string(pt.Data) != "0123456789abcdef" {
		t.Fatalf("CBC decrypt: %q", pt.Data)
	}

	// MAC: the KES API's HMAC.
	hmacParams := &kmip.CryptographicParameters{CryptographicAlgorithm: kmip.CryptographicAlgorithmHMACSHA256}
	bi := batchOne(t, c, &MACRequestPayload{UniqueIdentifier: "minio", CryptographicParameters: hmacParams, Data: []byte("msg")})
	mac, ok := bi.ResponsePayload.(*MACResponsePayload)
	if !ok || bi.ResultStatus != kmip.ResultStatusSuccess {
		t.Fatalf("MAC: %+v", bi)
	}
	if sum, _ := e.keys.HMAC(ctx, "minio", []byte("msg")); !bytes.Equal(sum, mac.MACData) {
		t.Fatal("KMIP MAC differs from the KES API's HMAC")
	}
	for _, tc := range []struct {
		data []byte
		want kmip.ValidityIndicator
	}{{[]byte("msg"), kmip.ValidityIndicatorValid}, {[]byte("other"), kmip.ValidityIndicatorInvalid}} {
		bi := batchOne(t, c, &MACVerifyRequestPayload{UniqueIdentifier: "minio", Data: tc.data, MACData: mac.MACData})
		if v, ok := bi.ResponsePayload.(*MACVerifyResponsePayload); !ok || v.ValidityIndicator != tc.want {
			t.Fatalf("MAC Verify %q: %+v", tc.data, bi)
		}
	}
	if !e.audited(idOf(e.client), "encrypt", "minio", false) || !e.audited(idOf(e.client), "mac", "minio", false) {
		t.Fatal("crypto operations not audited")
	}

	// KMIP-created HMAC-SHA512 key.
	id := c.Create().SymmetricKey(kmip.CryptographicAlgorithmHMACSHA512, 512, kmip.CryptographicUsageMACGenerate|kmip.CryptographicUsageMACVerify).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	material, _ := c.Get(id).MustExec().SymmetricKey()
	bi = batchOne(t, c, &MACRequestPayload{UniqueIdentifier: id, Data: []byte("msg")})
	want, _ := crypto.MACSum(crypto.MACSHA512, material, []byte("msg"))
	if m, ok := bi.ResponsePayload.(*MACResponsePayload); !ok || !bytes.Equal(m.MACData, want) {
		t.Fatalf("HMAC-SHA512 key: %+v", bi)
	}
}

// TestCryptoAttacks: usage-mask bypasses, odd parameters and states.
func TestCryptoAttacks(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.dial(e.client)
	encOnly := c.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	c.Activate(encOnly).MustExec()

	denied := func(name string, p kmip.OperationPayload, reason kmip.ResultReason, text string) {
		t.Helper()
		bi := batchOne(t, c, p)
		wantReason(t, bi, reason)
		if !strings.Contains(bi.ResultMessage, text) {
			t.Fatalf("%s: message %q lacks %q", name, bi.ResultMessage, text)
		}
	}
	denied("MAC with an encrypt-only key", &MACRequestPayload{UniqueIdentifier: encOnly, Data: []byte("m")}, kmip.ResultReasonPermissionDenied, "MAC generate")
	denied("MAC verify with an encrypt-only key", &MACVerifyRequestPayload{UniqueIdentifier: encOnly, Data: []byte("m"), MACData: make([]byte, 32)}, kmip.ResultReasonPermissionDenied, "MAC verify")
	gcm := kmip.AES_GCM
	denied("decrypt with an encrypt-only key", &payloads.DecryptRequestPayload{UniqueIdentifier: encOnly, CryptographicParameters: &gcm, Data: []byte("x"), IVCounterNonce: make([]byte, 12), AuthenticatedEncryptionTag: make([]byte, 16)},
		kmip.ResultReasonPermissionDenied, "decrypt")

	for _, n := range []int{0, 1, 8, 11, 129, 100000} {
		bi := batchOne(t, c, &payloads.EncryptRequestPayload{UniqueIdentifier: encOnly, CryptographicParameters: &gcm, Data: []byte("x"), IVCounterNonce: make([]byte, n)})
		if bi.ResultReason != kmip.ResultReasonInvalidField && bi.ResultReason != kmip.ResultReasonInvalidMessage {
			t.Fatalf("%d-byte GCM IV: %v %q", n, bi.ResultReason, bi.ResultMessage)
		}
	}
	cbc := kmip.AES_CBC_PKCS5
	cbcKey := c.Create().AES(128, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	c.Activate(cbcKey).MustExec()
	denied("15-byte CBC IV", &payloads.EncryptRequestPayload{UniqueIdentifier: cbcKey, CryptographicParameters: &cbc, Data: []byte("x"), IVCounterNonce: make([]byte, 15)}, kmip.ResultReasonInvalidField, "IV")
	denied("unaligned CBC ciphertext", &payloads.DecryptRequestPayload{UniqueIdentifier: cbcKey, CryptographicParameters: &cbc, Data: make([]byte, 17), IVCounterNonce: make([]byte, 16)}, kmip.ResultReasonInvalidField, "length")
	short := kmip.AES_GCM
	short.TagLength = 4
	denied("4-byte GCM tag", &payloads.EncryptRequestPayload{UniqueIdentifier: cbcKey, CryptographicParameters: &short, Data: []byte("x")}, kmip.ResultReasonInvalidField, "tag")
	ecb := kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeECB}
	denied("ECB", &payloads.EncryptRequestPayload{UniqueIdentifier: cbcKey, CryptographicParameters: &ecb, Data: []byte("x")}, kmip.ResultReasonFeatureNotSupported, "mode")
	denied("no parameters", &payloads.EncryptRequestPayload{UniqueIdentifier: cbcKey, Data: []byte("x")}, kmip.ResultReasonMissingData, "parameters")
	init := true
	denied("multi-part", &payloads.EncryptRequestPayload{UniqueIdentifier: cbcKey, CryptographicParameters: &gcm, Data: []byte("x"), InitIndicator: &init}, kmip.ResultReasonFeatureNotSupported, "multi-part")
	denied("GCM decrypt without tag", &payloads.DecryptRequestPayload{UniqueIdentifier: cbcKey, CryptographicParameters: &gcm, Data: []byte("x"), IVCounterNonce: make([]byte, 12)}, kmip.ResultReasonMissingData, "tag")

	// A pre-active key does nothing; an AES key does not MAC.
	pre := c.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	denied("encrypt with a pre-active key", &payloads.EncryptRequestPayload{UniqueIdentifier: pre, CryptographicParameters: &gcm, Data: []byte("x")}, kmip.ResultReasonPermissionDenied, "not active")
	macKey := c.Create().AES(128, kmip.CryptographicUsageMACGenerate).MustExec().UniqueIdentifier
	c.Activate(macKey).MustExec()
	denied("MAC with an AES-128 key", &MACRequestPayload{UniqueIdentifier: macKey, Data: []byte("m")}, kmip.ResultReasonInvalidField, "algorithm")

	// Revoke and Destroy of a KES key are refused: no KMIP client takes a
	// MinIO key out of service.
	if err := e.keys.Create(ctx, "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	denied("revoke of a KES key", &payloads.RevokeRequestPayload{UniqueIdentifier: "minio", RevocationReason: kmip.RevocationReason{RevocationReasonCode: kmip.RevocationReasonCodeKeyCompromise}}, kmip.ResultReasonPermissionDenied, "managed over the KES API")
	denied("destroy of a KES key", &payloads.DestroyRequestPayload{UniqueIdentifier: "minio"}, kmip.ResultReasonPermissionDenied, "managed over the KES API")
	if info, err := e.keys.Describe(ctx, "minio"); err != nil || !info.State.Active() {
		t.Fatalf("KES key after revoke/destroy: %+v %v", info, err)
	}
}

// TestGetPolicyCannotExportMinIOKeys: a client allowed /kmip/get/* and
// /kmip/locate (the old vSphere example policy) gets its own keys, and
// none of MinIO's.
func TestGetPolicyCannotExportMinIOKeys(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.policies.Store(&policy.Set{
		Policies:   map[string]*policy.Policy{"vsphere": {Allow: []string{"/kmip/discover-versions", "/kmip/query", "/kmip/get/*", "/kmip/locate", "/kmip/create", "/kmip/activate/*", "/kmip/get-attributes/*"}}},
		Identities: map[string]string{idOf(e.client): "vsphere"},
	})
	c := e.dial(e.client)
	var minio []string
	for _, n := range []string{"minio-1", "minio-2", "minio-3"} {
		if err := e.keys.Create(ctx, n, "admin"); err != nil {
			t.Fatal(err)
		}
		minio = append(minio, n)
	}
	own := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	if k, err := c.Get(own).MustExec().SymmetricKey(); err != nil || len(k) != 32 {
		t.Fatalf("own key: %v", err)
	}
	for _, uid := range c.Locate().MustExec().UniqueIdentifier {
		bi := batchOne(t, c, &payloads.GetRequestPayload{UniqueIdentifier: uid})
		if uid == own {
			continue
		}
		wantReason(t, bi, kmip.ResultReasonPermissionDenied)
		if bi.ResponsePayload != nil {
			if g, ok := bi.ResponsePayload.(*payloads.GetResponsePayload); ok && g.Object != nil {
				t.Fatalf("material of %s returned", uid)
			}
		}
	}
	for _, n := range minio {
		wantReason(t, batchOne(t, c, &payloads.GetRequestPayload{UniqueIdentifier: n}), kmip.ResultReasonPermissionDenied)
		attrs := c.GetAttributes(n, kmip.AttributeNameExtractable, kmip.AttributeNameNeverExtractable, kmip.AttributeNameSensitive).MustExec()
		if attrValue(t, attrs.Attribute, kmip.AttributeNameExtractable) != false || attrValue(t, attrs.Attribute, kmip.AttributeNameNeverExtractable) != true ||
			attrValue(t, attrs.Attribute, kmip.AttributeNameSensitive) != true {
			t.Fatalf("%s attributes: %+v", n, attrs.Attribute)
		}
	}
	if e.audited(idOf(e.client), "export", "minio-1", false) {
		t.Fatal("refused Get audited as an export")
	}
	if !e.audited(idOf(e.client), "export", own, false) {
		t.Fatal("export of the client's own key not audited")
	}
}

// TestExportFlagsFromTemplate: a client may create a key that it cannot
// get back (Extractable false), and Get Attribute List names the export
// attributes.
func TestExportFlagsFromTemplate(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).WithAttribute(kmip.AttributeNameExtractable, false).MustExec().UniqueIdentifier
	wantReason(t, batchOne(t, c, &payloads.GetRequestPayload{UniqueIdentifier: id}), kmip.ResultReasonPermissionDenied)
	names := c.GetAttributeList(id).MustExec().AttributeName
	for _, n := range []kmip.AttributeName{kmip.AttributeNameCryptographicUsageMask, kmip.AttributeNameSensitive, kmip.AttributeNameAlwaysSensitive, kmip.AttributeNameExtractable, kmip.AttributeNameNeverExtractable} {
		found := false
		for _, m := range names {
			found = found || m == n
		}
		if !found {
			t.Fatalf("attribute list %v lacks %s", names, n)
		}
	}
	denied := batchOne(t, c, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id, Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameExtractable, AttributeValue: true}})
	wantReason(t, denied, kmip.ResultReasonPermissionDenied)
}
