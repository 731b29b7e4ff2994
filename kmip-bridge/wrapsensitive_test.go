// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// wantClearGetRefused checks that Get returns uid's material only
// wrapped.
func wantClearGetRefused(t *testing.T, w *wrapEnv, uid string) {
	t.Helper()
	req, _ := w.c.Get(uid).Build()
	if bi := batchOne(t, w.c, req); bi.ResultReason != kmip.ResultReasonPermissionDenied || !strings.Contains(bi.ResultMessage, "only wrapped") {
		t.Fatalf("clear get of %s: %v %q", uid, bi.ResultReason, bi.ResultMessage)
	}
}

// TestWrappedRegisterStaysSensitive: a Sensitive key got wrapped and
// registered back under the same wrapping key is a Sensitive copy, not a
// way to read the key in the clear; a template that asks for Sensitive
// false is refused.
func TestWrappedRegisterStaysSensitive(t *testing.T) {
	w := newWrapEnv(t)
	key := w.c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).WithAttribute(kmip.AttributeNameSensitive, true).MustExec().UniqueIdentifier
	want := w.material(t, key)
	wantClearGetRefused(t, w, key)
	resp := w.c.Get(key).WithKeyWrapping(wrapSpec(w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding)).MustExec()
	blob := *resp.Object.(*kmip.SymmetricKey).KeyBlock.KeyValue.Plain.KeyMaterial.Bytes

	bi := registerWrapped(t, w.c, w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(blob), nil, 256)
	wantOK(t, bi)
	copyUID := bi.ResponsePayload.(*payloads.RegisterResponsePayload).UniqueIdentifier
	if !bytes.Equal(w.material(t, copyUID), want) {
		t.Fatal("the registered copy does not hold the unwrapped key")
	}
	wantClearGetRefused(t, w, copyUID)
	attrs := w.c.GetAttributes(copyUID, kmip.AttributeNameSensitive).MustExec()
	if attrValue(t, attrs.Attribute, kmip.AttributeNameSensitive) != true {
		t.Fatalf("the copy is not Sensitive: %+v", attrs.Attribute)
	}

	// Asking for Sensitive false is refused, and stores nothing.
	before := len(listKeys(t, w.keys))
	req := wrappedRegisterRequest(w.kek, blob, false)
	bi = batchOne(t, w.c, req)
	wantReason(t, bi, kmip.ResultReasonPermissionDenied)
	if !strings.Contains(bi.ResultMessage, "stays sensitive") {
		t.Fatalf("refusal message %q", bi.ResultMessage)
	}
	if after := len(listKeys(t, w.keys)); after != before {
		t.Fatalf("a refused registration stored %d keys", after-before)
	}
}

// wrappedRegisterRequest is registerWrapped's request (NIST key wrap, no
// encoding) with a Sensitive attribute in the template.
func wrappedRegisterRequest(kek string, blob []byte, sensitive bool) *payloads.RegisterRequestPayload {
	return &payloads.RegisterRequestPayload{
		ObjectType: kmip.ObjectTypeSymmetricKey,
		TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt},
			{AttributeName: kmip.AttributeNameSensitive, AttributeValue: sensitive},
		}},
		Object: &kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{
			KeyFormatType:          kmip.KeyFormatTypeRaw,
			KeyValue:               plainValue(blob),
			CryptographicAlgorithm: kmip.CryptographicAlgorithmAES,
			CryptographicLength:    256,
			KeyWrappingData: &kmip.KeyWrappingData{
				WrappingMethod: kmip.WrappingMethodEncrypt,
				EncryptionKeyInformation: &kmip.EncryptionKeyInformation{
					UniqueIdentifier:        kek,
					CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeNISTKeyWrap},
				},
				EncodingOption: kmip.EncodingOptionNoEncoding,
			},
		}},
	}
}

// TestWrapSensitiveNeedsSealedKEK: a Sensitive key is wrapped only by a
// wrapping key the server made and that never left it in the clear. A
// wrapping key the client registered (it knows the bytes), or one the
// server made Extractable and not Sensitive, is refused and the key
// stays Never Extractable; a key that is not Sensitive may use either.
func TestWrapSensitiveNeedsSealedKEK(t *testing.T) {
	w := newWrapEnv(t)
	usage := kmip.CryptographicUsageWrapKey | kmip.CryptographicUsageUnwrapKey
	registered := w.c.Register().SymmetricKey(kmip.CryptographicAlgorithmAES, usage, bytes.Repeat([]byte{0x4b}, 32)).WithAttribute(kmip.AttributeNameSensitive, true).MustExec().UniqueIdentifier
	exportable := w.c.Create().AES(256, usage).MustExec().UniqueIdentifier
	locked := w.c.Create().AES(256, usage).WithAttribute(kmip.AttributeNameExtractable, false).MustExec().UniqueIdentifier
	for _, k := range []string{registered, exportable, locked} {
		w.c.Activate(k).MustExec()
	}
	key := w.c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).WithAttribute(kmip.AttributeNameSensitive, true).MustExec().UniqueIdentifier
	for name, kek := range map[string]string{"registered": registered, "created extractable": exportable} {
		t.Run(name, func(t *testing.T) {
			req, _ := w.c.Get(key).WithKeyWrapping(wrapSpec(kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding)).Build()
			bi := batchOne(t, w.c, req)
			wantReason(t, bi, kmip.ResultReasonPermissionDenied)
			if !strings.Contains(bi.ResultMessage, "never left it in the clear") {
				t.Fatalf("refusal message %q", bi.ResultMessage)
			}
		})
	}
	attrs := w.c.GetAttributes(key, kmip.AttributeNameNeverExtractable, kmip.AttributeNameFresh).MustExec()
	if attrValue(t, attrs.Attribute, kmip.AttributeNameFresh) != true {
		t.Fatalf("a refused wrap marked the key exported: %+v", attrs.Attribute)
	}
	// The server's own wrapping keys, Sensitive or not Extractable, wrap it.
	for _, kek := range []string{w.kek, locked} {
		w.c.Get(key).WithKeyWrapping(wrapSpec(kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding)).MustExec()
	}
	// A key that is not Sensitive leaves in the clear anyway: any
	// wrapping key will do.
	plain := w.c.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	w.c.Get(plain).WithKeyWrapping(wrapSpec(registered, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding)).MustExec()
}

// TestRegisterWrappedCompromisedKEK: a wrapping key unwraps while Active
// or Deactivated; once Compromised, Register of a key wrapped by it is
// refused as a key in the wrong state and stores nothing.
func TestRegisterWrappedCompromisedKEK(t *testing.T) {
	w := newWrapEnv(t)
	secret := bytes.Repeat([]byte{0x5a}, 32)
	blob := refW(w.kekRaw, refKWIV, secret)
	wantOK(t, registerWrapped(t, w.c, w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(blob), nil, 256))
	w.c.Revoke(w.kek).WithRevocationReasonCode(kmip.RevocationReasonCodeKeyCompromise).MustExec()
	before := len(listKeys(t, w.keys))
	bi := registerWrapped(t, w.c, w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(blob), nil, 256)
	wantReason(t, bi, kmip.ResultReasonPermissionDenied)
	if !strings.Contains(bi.ResultMessage, "compromised wrapping key") {
		t.Fatalf("refusal message %q", bi.ResultMessage)
	}
	if after := len(listKeys(t, w.keys)); after != before {
		t.Fatalf("a refused registration stored %d keys", after-before)
	}
}

// TestRegisterWrappedDeactivatedKEK: a Deactivated wrapping key still
// unwraps what it wrapped while Active.
func TestRegisterWrappedDeactivatedKEK(t *testing.T) {
	w := newWrapEnv(t)
	blob := refW(w.kekRaw, refKWIV, bytes.Repeat([]byte{0x5b}, 32))
	w.c.Revoke(w.kek).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
	wantOK(t, registerWrapped(t, w.c, w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(blob), nil, 256))
}
