// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// TestObjectNotFoundReason: an identifier that names no object is Object
// Not Found at KMIP 2.0 and 2.1 (BL-M-4-21), Item Not Found at 1.x; an
// attribute that is not there keeps its own reason.
func TestObjectNotFoundReason(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	for _, tc := range []struct {
		major, minor int32
		reason       kmip.ResultReason
	}{{1, 4, kmip.ResultReasonItemNotFound}, {2, 0, reasonObjectNotFound}, {2, 1, reasonObjectNotFound}} {
		for _, o := range []v2op{
			op(kmip.OperationGet, text(kmip.TagUniqueIdentifier, "no-such-key")),
			op(kmip.OperationDestroy, text(kmip.TagUniqueIdentifier, "no-such-key")),
			// A version identifier of a key that does not exist.
			op(kmip.OperationGet, text(kmip.TagUniqueIdentifier, "no-such-key/7")),
		} {
			v2Fails(t, items(v2Exchange(t, c, versionRequest(tc.major, tc.minor, o)))[0], tc.reason)
		}
	}
	// An existing key without the attribute asked for: not Object Not
	// Found.
	uid := get(*v2OK(t, items(v2Exchange(t, c, v2Request(1, sklcCreate("onf"))))[0]), kmip.TagUniqueIdentifier).Value.(string)
	resp := v2Exchange(t, c, v2Request(1, op(kmip.OperationDeleteAttribute, text(kmip.TagUniqueIdentifier, uid), aref(kmip.TagContactInformation))))
	v2Fails(t, items(resp)[0], reasonAttributeNotFound)
}

// TestDecryptWithoutIVReason: a CBC Decrypt without an IV is Invalid
// Message at KMIP 2.1, as CS-BC-M-11/12/13-21 expect, and Missing Data
// at 1.x and 2.0, which have no such vector.
func TestDecryptWithoutIVReason(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	uid := get(*v2OK(t, items(v2Exchange(t, c, v2Request(1, sklcCreate("cbc-no-iv"))))[0]), kmip.TagUniqueIdentifier).Value.(string)
	v2OK(t, items(v2Exchange(t, c, v2Request(1, op(kmip.OperationActivate, text(kmip.TagUniqueIdentifier, uid)))))[0])
	for _, tc := range []struct {
		major, minor int32
		reason       kmip.ResultReason
	}{{1, 4, kmip.ResultReasonMissingData}, {2, 0, kmip.ResultReasonMissingData}, {2, 1, kmip.ResultReasonInvalidMessage}} {
		decrypt := op(kmip.OperationDecrypt, text(kmip.TagUniqueIdentifier, uid),
			st(kmip.TagCryptographicParameters, enum(kmip.TagBlockCipherMode, uint32(kmip.BlockCipherModeCBC)),
				enum(kmip.TagPaddingMethod, uint32(kmip.PaddingMethodPKCS5))),
			tv{Tag: kmip.TagData, Value: make([]byte, 32)})
		v2Fails(t, items(v2Exchange(t, c, versionRequest(tc.major, tc.minor, decrypt)))[0], tc.reason)
	}
}

// TestDecryptWithRandomIV: Random IV has the server draw the IV of an
// Encrypt; the Decrypt of that ciphertext, with the same parameters and
// the IV Encrypt answered, succeeds (CS-BC-M-13-21 step 4). An Encrypt
// that brings its own IV under Random IV is still refused.
func TestDecryptWithRandomIV(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	uid := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	c.Activate(uid).MustExec()
	random := true
	cp := kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeCBC, PaddingMethod: kmip.PaddingMethodPKCS5, RandomIV: &random}
	plaintext := []byte("random IV interop message")
	enc := c.Encrypt(uid).WithCryptographicParameters(cp).Data(plaintext).MustExec()
	if len(enc.IVCounterNonce) != 16 {
		t.Fatalf("server IV: %d bytes", len(enc.IVCounterNonce))
	}
	dec, err := c.Decrypt(uid).WithCryptographicParameters(cp).WithIvCounterNonce(enc.IVCounterNonce).Data(enc.Data).Exec()
	if err != nil {
		t.Fatalf("decrypt under Random IV: %v", err)
	}
	if string(dec.Data) != string(plaintext) {
		t.Fatalf("decrypt: %q", dec.Data)
	}
	bi := batchOne(t, c, &payloads.EncryptRequestPayload{UniqueIdentifier: uid, CryptographicParameters: &cp, Data: plaintext, IVCounterNonce: make([]byte, 16)})
	wantReason(t, bi, kmip.ResultReasonInvalidField)
}

// TestGetAnswersRegisteredFormat: a Get without a Key Format Type answers
// the format the object was registered in (BL-M-3-21, BL-M-4-21), also
// after an attribute change rewrote the record; created keys keep Raw,
// and a Get that names a format gets that one.
func TestGetAnswersRegisteredFormat(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	material := []byte("0123456789abcdef0123456789abcdef")
	transparent := c.Register().Object(&kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{
		KeyFormatType:          kmip.KeyFormatTypeTransparentSymmetricKey,
		CryptographicAlgorithm: kmip.CryptographicAlgorithmAES, CryptographicLength: 256,
		KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{
			TransparentSymmetricKey: &kmip.TransparentSymmetricKey{Key: material}}}},
	}}).MustExec().UniqueIdentifier
	rawSecret := c.Register().Object(&kmip.SecretData{SecretDataType: kmip.SecretDataTypePassword, KeyBlock: kmip.KeyBlock{
		KeyFormatType: kmip.KeyFormatTypeRaw,
		KeyValue:      &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &material}}},
	}}).MustExec().UniqueIdentifier
	opaqueSecret := c.Register().Object(&kmip.SecretData{SecretDataType: kmip.SecretDataTypePassword, KeyBlock: kmip.KeyBlock{
		KeyFormatType: kmip.KeyFormatTypeOpaque,
		KeyValue:      &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &material}}},
	}}).MustExec().UniqueIdentifier
	created := c.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	// An attribute change stores the record again.
	c.AddAttribute(transparent, kmip.AttributeNameContactInformation, "ops").MustExec()

	format := func(uid string, want kmip.KeyFormatType) kmip.KeyFormatType {
		t.Helper()
		switch o := c.Get(uid).WithKeyFormat(want).MustExec().Object.(type) {
		case *kmip.SymmetricKey:
			return o.KeyBlock.KeyFormatType
		case *kmip.SecretData:
			return o.KeyBlock.KeyFormatType
		default:
			t.Fatalf("get %s: %T", uid, o)
			return 0
		}
	}
	for _, tc := range []struct {
		name      string
		uid       string
		ask, want kmip.KeyFormatType
	}{
		{"transparent symmetric key", transparent, 0, kmip.KeyFormatTypeTransparentSymmetricKey},
		{"transparent symmetric key as raw", transparent, kmip.KeyFormatTypeRaw, kmip.KeyFormatTypeRaw},
		{"raw secret data", rawSecret, 0, kmip.KeyFormatTypeRaw},
		{"raw secret data as opaque", rawSecret, kmip.KeyFormatTypeOpaque, kmip.KeyFormatTypeOpaque},
		{"secret data registered opaque", opaqueSecret, 0, kmip.KeyFormatTypeOpaque},
		{"created key", created, 0, kmip.KeyFormatTypeRaw},
	} {
		if got := format(tc.uid, tc.ask); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAddOwnNameReason: Add Attribute of a Name the object already has
// is Non Unique Name Attribute at KMIP 2.x (BL-M-8-21), Illegal Operation
// at 1.x, which lacks that reason.
func TestAddOwnNameReason(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	uid := get(*v2OK(t, items(v2Exchange(t, c, v2Request(1, sklcCreate("own-name"))))[0]), kmip.TagUniqueIdentifier).Value.(string)
	name := func(tag int) tv {
		return st(tag, text(kmip.TagNameValue, "own-name"), enum(kmip.TagNameType, uint32(kmip.NameTypeUninterpretedTextString)))
	}
	id := text(kmip.TagUniqueIdentifier, uid)
	v1 := op(kmip.OperationAddAttribute, id, st(kmip.TagAttribute, text(kmip.TagAttributeName, "Name"), name(kmip.TagAttributeValue)))
	v2Fails(t, items(v2Exchange(t, c, versionRequest(1, 4, v1)))[0], kmip.ResultReasonIllegalOperation)
	v2 := op(kmip.OperationAddAttribute, id, st(tagNewAttribute, name(kmip.TagName)))
	for _, minor := range []int32{0, 1} {
		v2Fails(t, items(v2Exchange(t, c, v2Request(minor, v2)))[0], reasonNonUniqueName)
	}
	// Another name is added.
	other := op(kmip.OperationAddAttribute, id, st(tagNewAttribute, st(kmip.TagName, text(kmip.TagNameValue, "second-name"),
		enum(kmip.TagNameType, uint32(kmip.NameTypeUninterpretedTextString)))))
	v2OK(t, items(v2Exchange(t, c, v2Request(1, other)))[0])
}

// TestKeyFormatTypeAttribute: KMIP 2.x clients read the Key Format Type
// attribute (AKLC-M-1-21): the format a Get without one answers. It is
// read-only, not in listings, and not a 1.x attribute.
func TestKeyFormatTypeAttribute(t *testing.T) {
	e := newEnv(t)
	oc := e.dial(e.client)
	material := []byte("0123456789abcdef")
	transparent := oc.Register().Object(&kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{
		KeyFormatType:          kmip.KeyFormatTypeTransparentSymmetricKey,
		CryptographicAlgorithm: kmip.CryptographicAlgorithmAES, CryptographicLength: 128,
		KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{
			TransparentSymmetricKey: &kmip.TransparentSymmetricKey{Key: material}}}},
	}}).MustExec().UniqueIdentifier
	created := oc.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	secret := oc.Register().Object(&kmip.SecretData{SecretDataType: kmip.SecretDataTypePassword, KeyBlock: kmip.KeyBlock{
		KeyFormatType: kmip.KeyFormatTypeOpaque,
		KeyValue:      &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &material}}},
	}}).MustExec().UniqueIdentifier
	rsaPair := oc.CreateKeyPair().RSA(2048, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).MustExec()
	ecPair := oc.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).MustExec()
	opaque := oc.Register().Object(&kmip.OpaqueObject{OpaqueDataType: 0x80000001, OpaqueDataValue: []byte("opaque")}).MustExec().UniqueIdentifier

	c := e.raw(e.client)
	for uid, want := range map[string]kmip.KeyFormatType{
		transparent: kmip.KeyFormatTypeTransparentSymmetricKey, created: kmip.KeyFormatTypeRaw, secret: kmip.KeyFormatTypeOpaque,
		rsaPair.PrivateKeyUniqueIdentifier: kmip.KeyFormatTypePKCS_1, rsaPair.PublicKeyUniqueIdentifier: kmip.KeyFormatTypePKCS_1,
		ecPair.PrivateKeyUniqueIdentifier: kmip.KeyFormatTypeTransparentECPrivateKey, ecPair.PublicKeyUniqueIdentifier: kmip.KeyFormatTypeTransparentECPublicKey,
	} {
		for _, minor := range []int32{0, 1} {
			resp := v2Exchange(t, c, v2Request(minor, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, uid), aref(kmip.TagKeyFormatType))))
			a := get(*v2OK(t, items(resp)[0]), tagAttributes, kmip.TagKeyFormatType)
			if a == nil || a.Value != ttlv.Enum(want) {
				t.Errorf("2.%d: %s: key format type %v, want %v", minor, uid, a, want)
			}
		}
		// The Get without a format answers the same.
		resp := v2Exchange(t, c, v2Request(1, op(kmip.OperationGet, text(kmip.TagUniqueIdentifier, uid))))
		pl := v2OK(t, items(resp)[0])
		var block *tv
		for _, tag := range []int{kmip.TagSymmetricKey, kmip.TagSecretData, kmip.TagPrivateKey, kmip.TagPublicKey} {
			if b := get(*pl, tag, kmip.TagKeyBlock, kmip.TagKeyFormatType); b != nil {
				block = b
			}
		}
		if block == nil || block.Value != ttlv.Enum(want) {
			t.Errorf("get %s: key block format %v, want %v", uid, block, want)
		}
	}
	// An opaque object has no Key Block.
	resp := v2Exchange(t, c, v2Request(1, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, opaque), aref(kmip.TagKeyFormatType))))
	if pl := v2OK(t, items(resp)[0]); get(*pl, tagAttributes, kmip.TagKeyFormatType) != nil {
		t.Errorf("opaque object: %v", pl)
	}
	// Listings leave it out; clients cannot set it.
	resp = v2Exchange(t, c, v2Request(1, op(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, created))))
	if pl := v2OK(t, items(resp)[0]); get(*pl, tagAttributes, kmip.TagKeyFormatType) != nil {
		t.Errorf("listing carries Key Format Type: %v", pl)
	}
	set := v2Request(1, op(kmip.OperationAddAttribute, text(kmip.TagUniqueIdentifier, created),
		st(tagNewAttribute, enum(kmip.TagKeyFormatType, uint32(kmip.KeyFormatTypeOpaque)))))
	if s := get(items(v2Exchange(t, c, set))[0], kmip.TagResultStatus); s == nil || s.Value != ttlv.Enum(kmip.ResultStatusOperationFailed) {
		t.Errorf("add of Key Format Type: status %v", s)
	}
	// KMIP 1.x has no such attribute.
	if got := oc.GetAttributes(created, nameKeyFormatType).MustExec().Attribute; len(got) != 0 {
		t.Errorf("1.4 answers Key Format Type: %+v", got)
	}
}
