// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
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
