// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
)

// registerBase registers material as Secret Data (a password) or, with
// an algorithm, a symmetric key, with the given usage, and activates it.
func registerBase(t *testing.T, c *kmipclient.Client, alg kmip.CryptographicAlgorithm, mask kmip.CryptographicUsageMask, material []byte) string {
	t.Helper()
	var uid string
	if alg == 0 {
		uid = c.Register().Secret(kmip.SecretDataTypePassword, material).WithAttribute(kmip.AttributeNameCryptographicUsageMask, mask).MustExec().UniqueIdentifier
	} else {
		uid = c.Register().SymmetricKey(alg, mask, material).MustExec().UniqueIdentifier
	}
	c.Activate(uid).MustExec()
	return uid
}

func deriveReq(base string, typ kmip.ObjectType, m DerivationMethod, p DerivationParameters, attrs ...kmip.Attribute) *DeriveKeyRequestPayload {
	return &DeriveKeyRequestPayload{ObjectType: typ, UniqueIdentifier: []string{base}, DerivationMethod: m, DerivationParameters: p, TemplateAttribute: kmip.TemplateAttribute{Attribute: attrs}}
}

func attrLength(n int32) kmip.Attribute {
	return kmip.Attribute{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: n}
}

func attrAES() kmip.Attribute {
	return kmip.Attribute{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES}
}

func hashParams(h kmip.HashingAlgorithm) *kmip.CryptographicParameters {
	return &kmip.CryptographicParameters{HashingAlgorithm: h}
}

// derived returns the material of a derived object as Get returns it.
func derived(t *testing.T, c *kmipclient.Client, bi kmip.ResponseBatchItem) (string, []byte) {
	t.Helper()
	wantOK(t, bi)
	uid := bi.ResponsePayload.(*DeriveKeyResponsePayload).UniqueIdentifier
	g := c.Get(uid).MustExec()
	var kb kmip.KeyBlock
	switch o := g.Object.(type) {
	case *kmip.SymmetricKey:
		kb = o.KeyBlock
	case *kmip.SecretData:
		kb = o.KeyBlock
	default:
		t.Fatalf("derived object %T", g.Object)
	}
	return uid, *kb.KeyValue.Plain.KeyMaterial.Bytes
}

// TestDeriveKeyVectors derives over KMIP and checks the results against
// published vectors: RFC 6070 §2 (PBKDF2-HMAC-SHA1), RFC 7914 §11
// (PBKDF2-HMAC-SHA256) and NIST CAVP KBKDF counter mode (KDFCTR_gen.rsp,
// HMAC_SHA256, BEFORE_FIXED, 32-bit counter, COUNT 0 and 30), the OASIS
// KMIP 1.4 test case TC-DERIVEKEY-1-10 (Hash); HMAC and Encrypt against
// the standard library.
func TestDeriveKeyVectors(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	b := func(s string) []byte { return []byte(s) }
	password := registerBase(t, c, 0, kmip.CryptographicUsageDeriveKey, b("password"))
	passwd := registerBase(t, c, 0, kmip.CryptographicUsageDeriveKey, b("passwd"))
	ki0 := registerBase(t, c, 0, kmip.CryptographicUsageDeriveKey, unhex(t, "dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0"))
	ki30 := registerBase(t, c, 0, kmip.CryptographicUsageDeriveKey, unhex(t, "c4bedbddb66493e7c7259a3bbbc25f8c7e0ca7fe284d92d431d9cd99a0d214ac"))
	// OASIS KMIP 1.4 test case TC-DERIVEKEY-1-10: an AES key that may
	// also encrypt and decrypt, Hash with SHA-256.
	oasis := registerBase(t, c, kmip.CryptographicAlgorithmAES, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt|kmip.CryptographicUsageDeriveKey, unhex(t, "00112233445566778899aabbccddeeff"))
	aesRaw := bytes.Repeat([]byte{0x33}, 16)
	aesBase := registerBase(t, c, kmip.CryptographicAlgorithmAES, kmip.CryptographicUsageDeriveKey, aesRaw)
	iv := bytes.Repeat([]byte{0x11}, 16)
	data32 := bytes.Repeat([]byte("0123456789abcdef"), 2)
	hm := hmac.New(sha256.New, b("password"))
	hm.Write(b("context"))
	hmacWant := hm.Sum(nil)
	cbcWant, _ := crypto.CBCEncrypt(aesRaw, iv, data32)
	for _, tc := range []struct {
		name string
		req  *DeriveKeyRequestPayload
		want []byte
	}{
		{"RFC 6070 c=4096", deriveReq(password, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_1), Salt: b("salt"), IterationCount: 4096}, attrLength(160)),
			unhex(t, "4b007901b765489abead49d926f721d065a429c1")},
		{"RFC 6070 c=2", deriveReq(password, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_1), Salt: b("salt"), IterationCount: 2}, attrLength(160)),
			unhex(t, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957")},
		{"RFC 7914 c=1", deriveReq(passwd, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256), Salt: b("salt"), IterationCount: 1}, attrLength(512)),
			unhex(t, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")},
		{"RFC 7914 c=1 as an AES key", deriveReq(passwd, kmip.ObjectTypeSymmetricKey, DerivationMethodPBKDF2,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256), Salt: b("salt"), IterationCount: 1}, attrAES(), attrLength(256)),
			unhex(t, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")},
		{"CAVP counter COUNT 0", deriveReq(ki0, kmip.ObjectTypeSymmetricKey, DerivationMethodNIST800_108C,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256),
				DerivationData: unhex(t, "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b864a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac")}, attrAES(), attrLength(128)),
			unhex(t, "10621342bfb0fd40046c0e29f2cfdbf0")},
		{"CAVP counter COUNT 30", deriveReq(ki30, kmip.ObjectTypeSecretData, DerivationMethodNIST800_108C,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256),
				DerivationData: unhex(t, "1c69c54766791e315c2cc5c47ecd3ffab87d0d273dd920e70955814c220eacace6a5946542da3dfe24ff626b4897898cafb7db83bdff3c14fa46fd4b")}, attrLength(320)),
			unhex(t, "1da47638d6c9c4d04d74d4640bbd42ab814d9e8cc22f4326695239f96b0693f12d0dd1152cf44430")},
		{"OASIS TC-DERIVEKEY-1-10 (Hash, SHA-256)", deriveReq(oasis, kmip.ObjectTypeSymmetricKey, DerivationMethodHash,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256)}, attrAES(), attrLength(128)),
			unhex(t, "a8faed6abbf35c12a4b26e40f6feb19d")},
		{"HMAC-SHA256", deriveReq(password, kmip.ObjectTypeSymmetricKey, DerivationMethodHMAC,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256), DerivationData: b("context")}, attrAES(), attrLength(256)),
			hmacWant},
		{"Encrypt AES-CBC", deriveReq(aesBase, kmip.ObjectTypeSymmetricKey, DerivationMethodEncrypt,
			DerivationParameters{CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeCBC, PaddingMethod: kmip.PaddingMethodNone}, InitializationVector: iv, DerivationData: data32}, attrAES(), attrLength(256)),
			cbcWant[:32]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, got := derived(t, c, batchOne(t, c, tc.req))
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("derived %x, want %x", got, tc.want)
			}
			// Linked both ways, Pre-Active.
			base := tc.req.UniqueIdentifier[0]
			attrs := c.GetAttributes(uid, kmip.AttributeNameLink, kmip.AttributeNameState).MustExec().Attribute
			if !hasLink(attrs, kmip.LinkTypeDerivationBaseObjectLink, base) {
				t.Fatalf("derived object's links: %+v", attrs)
			}
			if !hasAttr(attrs, kmip.AttributeNameState, kmip.StatePreActive) {
				t.Fatalf("derived object's state: %+v", attrs)
			}
			if !hasLink(c.GetAttributes(base, kmip.AttributeNameLink).MustExec().Attribute, kmip.LinkTypeDerivedKeyLink, uid) {
				t.Fatal("the base object does not link to the derived key")
			}
		})
	}
}

func hasLink(attrs []kmip.Attribute, typ kmip.LinkType, uid string) bool {
	return hasAttr(attrs, kmip.AttributeNameLink, kmip.Link{LinkType: typ, LinkedObjectIdentifier: uid})
}

func hasAttr(attrs []kmip.Attribute, name kmip.AttributeName, v any) bool {
	for _, a := range attrs {
		if a.AttributeName == name && a.AttributeValue == v {
			return true
		}
	}
	return false
}

// TestDeriveKeyRefuses covers the caps and what an attacker sends.
func TestDeriveKeyRefuses(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.dial(e.client)
	base := registerBase(t, c, 0, kmip.CryptographicUsageDeriveKey, []byte("password"))
	noDerive := registerBase(t, c, 0, kmip.CryptographicUsageEncrypt, []byte("password"))
	macKey := registerBase(t, c, kmip.CryptographicAlgorithmHMACSHA256, kmip.CryptographicUsageDeriveKey|kmip.CryptographicUsageMACGenerate, bytes.Repeat([]byte{1}, 32))
	if err := e.keys.Create(ctx, "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	pbkdf2 := func(iter int32) DerivationParameters {
		return DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256), Salt: []byte("salt"), IterationCount: iter}
	}
	huge := make([]byte, keys.MaxDeriveData+1)
	for _, tc := range []struct {
		name string
		req  *DeriveKeyRequestPayload
		want kmip.ResultReason
		msg  string
	}{
		{"iteration count 2^31", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(-1<<31), attrLength(256)), kmip.ResultReasonInvalidField, "iteration count"},
		{"iteration count 2^31-1", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(1<<31-1), attrLength(256)), kmip.ResultReasonInvalidField, "iteration count"},
		{"no iteration count", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(0), attrLength(256)), kmip.ResultReasonInvalidField, "iteration count"},
		{"huge derivation data", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodNIST800_108C,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256), DerivationData: huge}, attrLength(256)), kmip.ResultReasonInvalidField, "at most"},
		{"no length", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(1)), kmip.ResultReasonMissingData, "length"},
		{"length over 4096 bits", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(1), attrLength(4104)), kmip.ResultReasonInvalidField, "length"},
		{"length not in bytes", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(1), attrLength(100)), kmip.ResultReasonInvalidField, "length"},
		{"AES key of a wrong length", deriveReq(base, kmip.ObjectTypeSymmetricKey, DerivationMethodPBKDF2, pbkdf2(1), attrAES(), attrLength(200)), kmip.ResultReasonInvalidField, "AES"},
		{"no algorithm", deriveReq(base, kmip.ObjectTypeSymmetricKey, DerivationMethodPBKDF2, pbkdf2(1), attrLength(256)), kmip.ResultReasonMissingData, "algorithm"},
		{"no hash", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodHMAC, DerivationParameters{DerivationData: []byte("x")}, attrLength(256)), kmip.ResultReasonMissingData, "hashing algorithm"},
		{"MD5", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodHMAC, DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmMD5), DerivationData: []byte("x")}, attrLength(128)), kmip.ResultReasonInvalidField, "hashing algorithm"},
		{"feedback mode", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodNIST800_108F, pbkdf2(1), attrLength(256)), kmip.ResultReasonFeatureNotSupported, "derivation method"},
		{"hash with derivation data", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodHash,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256), DerivationData: []byte("x")}, attrLength(256)), kmip.ResultReasonInvalidField, "no derivation data"},
		{"hash longer than the hash", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodHash,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256)}, attrLength(264)), kmip.ResultReasonInvalidField, "at most 32 bytes"},
		{"no method", deriveReq(base, kmip.ObjectTypeSecretData, 0, pbkdf2(1), attrLength(256)), kmip.ResultReasonMissingData, "derivation method"},
		{"private key", deriveReq(base, kmip.ObjectTypePrivateKey, DerivationMethodPBKDF2, pbkdf2(1), attrLength(256)), kmip.ResultReasonInvalidField, "symmetric keys and secret data"},
		{"base without Derive Key", deriveReq(noDerive, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(1), attrLength(256)), kmip.ResultReasonPermissionDenied, "derive key"},
		{"KES key as base", deriveReq("minio", kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(1), attrLength(256)), kmip.ResultReasonPermissionDenied, "derive key"},
		{"MAC key as HMAC base", deriveReq(macKey, kmip.ObjectTypeSecretData, DerivationMethodHMAC,
			DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256), DerivationData: []byte("x")}, attrLength(256)), kmip.ResultReasonPermissionDenied, "usage mask"},
		{"encrypt without IV", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodEncrypt,
			DerivationParameters{CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeCBC}, DerivationData: make([]byte, 32)}, attrLength(256)), kmip.ResultReasonMissingData, "initialization vector"},
		{"encrypt with GCM", deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodEncrypt,
			DerivationParameters{CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeGCM}, DerivationData: make([]byte, 32)}, attrLength(256)), kmip.ResultReasonFeatureNotSupported, "CBC"},
		{"two bases", &DeriveKeyRequestPayload{ObjectType: kmip.ObjectTypeSecretData, UniqueIdentifier: []string{base, base}, DerivationMethod: DerivationMethodPBKDF2, DerivationParameters: pbkdf2(1), TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{attrLength(256)}}}, kmip.ResultReasonFeatureNotSupported, "several"},
		{"missing base", deriveReq("no-such-key", kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(1), attrLength(256)), kmip.ResultReasonItemNotFound, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bi := batchOne(t, c, tc.req)
			wantReason(t, bi, tc.want)
			if !strings.Contains(bi.ResultMessage, tc.msg) {
				t.Fatalf("message %q does not say %q", bi.ResultMessage, tc.msg)
			}
		})
	}

	// Derive Key needs /kmip/derive-key/<base> and /kmip/create.
	for _, deny := range []string{"/kmip/create", "/kmip/derive-key/" + base} {
		e.policies.Store(&policy.Set{
			Policies:   map[string]*policy.Policy{"kmip": {Allow: []string{"/kmip/*"}, Deny: []string{deny}}},
			Identities: map[string]string{idOf(e.client): "kmip"},
		})
		bi := batchOne(t, c, deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, pbkdf2(1), attrLength(256)))
		wantReason(t, bi, kmip.ResultReasonPermissionDenied)
	}
}

// TestDeriveKeyBatchWork: a batch cannot multiply the PBKDF2 cap of one
// derivation; the item over it fails before any work is done.
func TestDeriveKeyBatchWork(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	base := registerBase(t, c, 0, kmip.CryptographicUsageEncrypt, []byte("password"))
	half := int32(keys.MaxDeriveWork / 2)
	// Two items of half the cap each fit; the third does not. Each
	// names one output block of SHA-256 and a base without Derive Key,
	// refused after the budget is charged, so that the test does no
	// PBKDF2 work.
	item := deriveReq(base, kmip.ObjectTypeSecretData, DerivationMethodPBKDF2, DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256), Salt: []byte("salt"), IterationCount: half}, attrLength(256))
	br, err := c.BatchOpt(context.Background(), []kmip.OperationPayload{item, item, item}, kmipclient.OnBatchErr(kmip.BatchErrorContinuationOptionContinue))
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, br[0], kmip.ResultReasonPermissionDenied)
	wantReason(t, br[1], kmip.ResultReasonPermissionDenied)
	wantReason(t, br[2], kmip.ResultReasonInvalidField)
	if !strings.Contains(br[2].ResultMessage, "one message") {
		t.Fatalf("item 3: %q", br[2].ResultMessage)
	}
}

// TestDeriveKeyPlaceholder: a derived key serves the later items of its
// batch, as a created one does.
func TestDeriveKeyPlaceholder(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	base := registerBase(t, c, 0, kmip.CryptographicUsageDeriveKey, []byte("password"))
	br, err := c.Batch(context.Background(),
		deriveReq(base, kmip.ObjectTypeSymmetricKey, DerivationMethodPBKDF2, DerivationParameters{CryptographicParameters: hashParams(kmip.HashingAlgorithmSHA_256), Salt: []byte("salt"), IterationCount: 10}, attrAES(), attrLength(128)),
		&payloads.ActivateRequestPayload{})
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, br[0])
	wantOK(t, br[1])
}
