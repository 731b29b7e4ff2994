// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/binary"
	"strings"
	"sync"
	"testing"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
)

// The tests below check wrapped keys with a reference AES Key Wrap
// written here from the text of RFC 3394 §2.2 and RFC 5649 §4, as
// directly as it reads (arrays A, R, the index t), independent of
// internal/crypto. refWrapTest checks it against the RFCs' vectors.

// refW is the wrapping process of RFC 3394 §2.2.1 with initial value iv.
func refW(kek []byte, iv [8]byte, p []byte) []byte {
	b, _ := aes.NewCipher(kek)
	n := len(p) / 8
	a := iv
	r := make([][8]byte, n+1)
	for i := 1; i <= n; i++ {
		copy(r[i][:], p[8*(i-1):])
	}
	for j := 0; j <= 5; j++ {
		for i := 1; i <= n; i++ {
			var in, out [16]byte
			copy(in[:8], a[:])
			copy(in[8:], r[i][:])
			b.Encrypt(out[:], in[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(out[:8])^t)
			copy(r[i][:], out[8:])
		}
	}
	c := append([]byte{}, a[:]...)
	for i := 1; i <= n; i++ {
		c = append(c, r[i][:]...)
	}
	return c
}

// refUnW is the unwrapping process of RFC 3394 §2.2.2; it returns the
// recovered initial value and the plaintext.
func refUnW(kek, c []byte) ([8]byte, []byte) {
	b, _ := aes.NewCipher(kek)
	n := len(c)/8 - 1
	var a [8]byte
	copy(a[:], c[:8])
	r := make([][8]byte, n+1)
	for i := 1; i <= n; i++ {
		copy(r[i][:], c[8*i:])
	}
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			var in, out [16]byte
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(in[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(in[8:], r[i][:])
			b.Decrypt(out[:], in[:])
			copy(a[:], out[:8])
			copy(r[i][:], out[8:])
		}
	}
	var p []byte
	for i := 1; i <= n; i++ {
		p = append(p, r[i][:]...)
	}
	return a, p
}

var refKWIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// refKWPWrap is RFC 5649 §4.1.
func refKWPWrap(kek, p []byte) []byte {
	var aiv [8]byte
	copy(aiv[:], []byte{0xA6, 0x59, 0x59, 0xA6})
	binary.BigEndian.PutUint32(aiv[4:], uint32(len(p)))
	padded := append(bytes.Clone(p), make([]byte, (8-len(p)%8)%8)...)
	if len(padded) == 8 {
		b, _ := aes.NewCipher(kek)
		out := make([]byte, 16)
		b.Encrypt(out, append(aiv[:], padded...))
		return out
	}
	return refW(kek, aiv, padded)
}

// refKWPUnwrap is RFC 5649 §4.2; ok is false when the checks fail.
func refKWPUnwrap(kek, c []byte) ([]byte, bool) {
	var a [8]byte
	var p []byte
	if len(c) == 16 {
		b, _ := aes.NewCipher(kek)
		out := make([]byte, 16)
		b.Decrypt(out, c)
		copy(a[:], out[:8])
		p = out[8:]
	} else {
		a, p = refUnW(kek, c)
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if !bytes.Equal(a[:4], []byte{0xA6, 0x59, 0x59, 0xA6}) || mli <= len(p)-8 || mli > len(p) {
		return nil, false
	}
	for _, x := range p[mli:] {
		if x != 0 {
			return nil, false
		}
	}
	return p[:mli], true
}

// TestReferenceKeyWrap checks the reference against RFC 3394 §4.1, §4.6
// and RFC 5649 §6.
func TestReferenceKeyWrap(t *testing.T) {
	kek := unhex(t, "000102030405060708090A0B0C0D0E0F")
	if got := refW(kek, refKWIV, unhex(t, "00112233445566778899AABBCCDDEEFF")); !bytes.Equal(got, unhex(t, "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")) {
		t.Fatalf("RFC 3394 4.1: %x", got)
	}
	kek256 := unhex(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	want := unhex(t, "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
	if a, p := refUnW(kek256, want); a != refKWIV || !bytes.Equal(p, unhex(t, "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")) {
		t.Fatalf("RFC 3394 4.6: %x %x", a, p)
	}
	kwpKEK := unhex(t, "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for key, wrapped := range map[string]string{
		"c37b7e6492584340bed12207808941155068f738": "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
		"466f7250617369": "afbeb0f07dfbf5419200f2ccb50bb24f",
	} {
		if got := refKWPWrap(kwpKEK, unhex(t, key)); !bytes.Equal(got, unhex(t, wrapped)) {
			t.Fatalf("RFC 5649 wrap of %s: %x", key, got)
		}
		if got, ok := refKWPUnwrap(kwpKEK, unhex(t, wrapped)); !ok || !bytes.Equal(got, unhex(t, key)) {
			t.Fatalf("RFC 5649 unwrap of %s: %x", wrapped, got)
		}
	}
}

// wrapEnv is a bridge with a wrapping key whose material the test
// knows, and the audit events it records.
type wrapEnv struct {
	*env
	c      *kmipclient.Client
	kek    string
	kekRaw []byte

	mu     sync.Mutex
	events []AuditEvent
}

func newWrapEnv(t *testing.T) *wrapEnv {
	t.Helper()
	w := &wrapEnv{}
	w.env = newEnv(t, func(c *Config) {
		c.AuditEvent = func(e AuditEvent) {
			w.mu.Lock()
			w.events = append(w.events, e)
			w.mu.Unlock()
		}
	})
	w.c = w.dial(w.client)
	// The server makes the wrapping key, Sensitive, as a Sensitive key's
	// wrapping key must be; the test reads its material from the key
	// service to check the blobs.
	w.kek = w.c.Create().AES(256, kmip.CryptographicUsageWrapKey|kmip.CryptographicUsageUnwrapKey).WithAttribute(kmip.AttributeNameSensitive, true).MustExec().UniqueIdentifier
	w.kekRaw = w.material(t, w.kek)
	w.c.Activate(w.kek).MustExec()
	return w
}

// material returns the key service's material of uid.
func (w *wrapEnv) material(t *testing.T, uid string) []byte {
	t.Helper()
	var out []byte
	err := w.keys.With(context.Background(), uid, func(o *keys.Object) error {
		use := func(b []byte) error { out = bytes.Clone(b); return nil }
		if o.Version.Key != nil {
			return o.Version.Key.Use(use)
		}
		return o.Version.Material.Use(use)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wrappedExport reports whether an export of uid wrapped by kek was
// audited.
func (w *wrapEnv) wrappedExport(uid, kek string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		if e.Operation == "export" && e.UID == uid && e.WrappingKey == kek && e.Result == nil {
			return true
		}
	}
	return false
}

func wrapSpec(kek string, mode kmip.BlockCipherMode, enc kmip.EncodingOption) kmip.KeyWrappingSpecification {
	return kmip.KeyWrappingSpecification{
		WrappingMethod: kmip.WrappingMethodEncrypt,
		EncryptionKeyInformation: &kmip.EncryptionKeyInformation{
			UniqueIdentifier:        kek,
			CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: mode},
		},
		EncodingOption: enc,
	}
}

// TestGetWrapped: a sensitive key leaves only wrapped, in every mode and
// encoding; the test unwraps it with the reference and finds the key
// service's material.
func TestGetWrapped(t *testing.T) {
	ctx := context.Background()
	w := newWrapEnv(t)
	key := w.c.Create().AES(128, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).WithAttribute(kmip.AttributeNameSensitive, true).MustExec().UniqueIdentifier
	var want []byte
	w.keys.With(ctx, key, func(o *keys.Object) error {
		return o.Version.Material.Use(func(b []byte) error { want = bytes.Clone(b); return nil })
	})

	// In the clear: refused, it is sensitive.
	req, _ := w.c.Get(key).Build()
	if bi := batchOne(t, w.c, req); bi.ResultReason != kmip.ResultReasonPermissionDenied || !strings.Contains(bi.ResultMessage, "only wrapped") {
		t.Fatalf("clear get of a sensitive key: %v %q", bi.ResultReason, bi.ResultMessage)
	}
	for _, tc := range []struct {
		name string
		mode kmip.BlockCipherMode
		enc  kmip.EncodingOption
	}{
		{"NIST key wrap, no encoding", kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding},
		{"NIST key wrap, TTLV", kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionTTLVEncoding},
		{"key wrap with padding, no encoding", kmip.BlockCipherModeAESKeyWrapPadding, kmip.EncodingOptionNoEncoding},
		{"key wrap with padding, default encoding", kmip.BlockCipherModeAESKeyWrapPadding, 0},
		{"GCM, no encoding", kmip.BlockCipherModeGCM, kmip.EncodingOptionNoEncoding},
		{"GCM, TTLV", kmip.BlockCipherModeGCM, kmip.EncodingOptionTTLVEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := w.c.Get(key).WithKeyWrapping(wrapSpec(w.kek, tc.mode, tc.enc)).MustExec()
			sk, ok := resp.Object.(*kmip.SymmetricKey)
			if !ok || resp.ObjectType != kmip.ObjectTypeSymmetricKey {
				t.Fatalf("object %T", resp.Object)
			}
			kb := sk.KeyBlock
			kwd := kb.KeyWrappingData
			if kwd == nil || kwd.WrappingMethod != kmip.WrappingMethodEncrypt || kwd.EncryptionKeyInformation == nil ||
				kwd.EncryptionKeyInformation.UniqueIdentifier != w.kek || kwd.EncryptionKeyInformation.CryptographicParameters.BlockCipherMode != tc.mode {
				t.Fatalf("key wrapping data %+v", kwd)
			}
			if kb.CryptographicAlgorithm != kmip.CryptographicAlgorithmAES || kb.CryptographicLength != 128 || kb.KeyFormatType != kmip.KeyFormatTypeRaw {
				t.Fatalf("key block %v %d %v", kb.CryptographicAlgorithm, kb.CryptographicLength, kb.KeyFormatType)
			}
			var blob []byte
			if tc.enc == kmip.EncodingOptionNoEncoding {
				if kwd.EncodingOption != kmip.EncodingOptionNoEncoding || kb.KeyValue.Plain == nil || kb.KeyValue.Plain.KeyMaterial.Bytes == nil {
					t.Fatal("no encoding: the key value is not a structure with the wrapped bytes")
				}
				blob = *kb.KeyValue.Plain.KeyMaterial.Bytes
			} else {
				if kwd.EncodingOption != kmip.EncodingOptionTTLVEncoding || kb.KeyValue.Wrapped == nil {
					t.Fatal("TTLV encoding: the key value is not a byte string")
				}
				blob = *kb.KeyValue.Wrapped
			}
			var plain []byte
			switch tc.mode {
			case kmip.BlockCipherModeNISTKeyWrap:
				a, p := refUnW(w.kekRaw, blob)
				if a != refKWIV {
					t.Fatal("RFC 3394 integrity check fails under the wrapping key")
				}
				plain = p
			case kmip.BlockCipherModeAESKeyWrapPadding:
				p, ok := refKWPUnwrap(w.kekRaw, blob)
				if !ok {
					t.Fatal("RFC 5649 integrity check fails under the wrapping key")
				}
				plain = p
			case kmip.BlockCipherModeGCM:
				if len(kwd.IVCounterNonce) != 12 {
					t.Fatalf("GCM IV of %d bytes", len(kwd.IVCounterNonce))
				}
				n := len(blob) - 16
				p, err := crypto.GCMOpen(w.kekRaw, kwd.IVCounterNonce, blob[:n], blob[n:], nil)
				if err != nil {
					t.Fatal(err)
				}
				plain = p
			}
			if tc.enc == kmip.EncodingOptionNoEncoding {
				if !bytes.Equal(plain, want) {
					t.Fatal("unwrapped material differs from the key service's")
				}
			} else {
				kv, err := decodeKeyValue(kmip.KeyFormatTypeRaw, plain)
				if err != nil || kv.Plain.KeyMaterial.Bytes == nil || !bytes.Equal(*kv.Plain.KeyMaterial.Bytes, want) {
					t.Fatalf("unwrapped TTLV key value: %v", err)
				}
			}
		})
	}
	if !w.wrappedExport(key, w.kek) {
		t.Error("wrapped export not audited as an export naming the wrapping key")
	}
	if w.audited(idOf(w.client), "export", key, false) != true {
		t.Error("wrapped export not on the audit hook")
	}
	// The key stays Always Sensitive: it never left in the clear.
	attrs := w.c.GetAttributes(key, kmip.AttributeNameAlwaysSensitive).MustExec()
	if len(attrs.Attribute) != 1 || attrs.Attribute[0].AttributeValue != true {
		t.Fatalf("Always Sensitive after wrapped exports: %+v", attrs.Attribute)
	}
}

// TestGetWrappedOASIS replays the key material of the OASIS test cases
// TC_141_12 (KMIP 1.2, "Key Wrapping using AES Key Wrap and No
// Encoding") and TC-WRAP-1-14: a Wrap-Key-only KEK 000102…0f, the key
// 0011…ff, NIST Key Wrap, No Encoding; the wrapped value is RFC 3394
// §4.1's. TC_141_12 encodes that Key Value as a byte string, TC-WRAP-1-14
// as a structure with the wrapped Key Material: the bridge sends the
// structure, which PyKMIP also needs, and reads both.
func TestGetWrappedOASIS(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	kek := c.Register().SymmetricKey(kmip.CryptographicAlgorithmAES, kmip.CryptographicUsageWrapKey, unhex(t, "000102030405060708090a0b0c0d0e0f")).MustExec().UniqueIdentifier
	c.Activate(kek).MustExec()
	key := c.Register().SymmetricKey(kmip.CryptographicAlgorithmAES, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt, unhex(t, "00112233445566778899aabbccddeeff")).MustExec().UniqueIdentifier
	resp := c.Get(key).WithKeyWrapping(wrapSpec(kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding)).MustExec()
	kb := resp.Object.(*kmip.SymmetricKey).KeyBlock
	if got := *kb.KeyValue.Plain.KeyMaterial.Bytes; !bytes.Equal(got, unhex(t, "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5")) {
		t.Fatalf("wrapped key %x", got)
	}
	if kb.KeyWrappingData.EncodingOption != kmip.EncodingOptionNoEncoding || kb.KeyWrappingData.EncryptionKeyInformation.UniqueIdentifier != kek {
		t.Fatalf("key wrapping data %+v", kb.KeyWrappingData)
	}
}

// TestGetWrappedRefuses covers what an attacker or a confused client
// asks.
func TestGetWrappedRefuses(t *testing.T) {
	ctx := context.Background()
	w := newWrapEnv(t)
	key := w.c.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	locked := w.c.Create().AES(256, kmip.CryptographicUsageEncrypt).WithAttribute(kmip.AttributeNameExtractable, false).MustExec().UniqueIdentifier
	noWrap := w.c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	w.c.Activate(noWrap).MustExec()
	both := w.c.Create().AES(256, kmip.CryptographicUsageWrapKey|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	w.c.Activate(both).MustExec()
	opaque := w.c.Register().Object(&kmip.OpaqueObject{OpaqueDataType: 0x80000001, OpaqueDataValue: []byte("opaque")}).MustExec().UniqueIdentifier
	if err := w.keys.Create(ctx, "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	kw := wrapSpec(w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding)
	with := func(f func(s *kmip.KeyWrappingSpecification)) kmip.KeyWrappingSpecification {
		s := wrapSpec(w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding)
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name   string
		uid    string
		spec   kmip.KeyWrappingSpecification
		format kmip.KeyFormatType
		want   kmip.ResultReason
		msg    string
	}{
		{"wrapping key lacks Wrap Key", key, wrapSpec(noWrap, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding), 0, kmip.ResultReasonPermissionDenied, "wrap key"},
		{"wrapping key is the key", w.kek, kw, 0, kmip.ResultReasonInvalidField, "by itself"},
		{"not extractable", locked, kw, 0, kmip.ResultReasonPermissionDenied, "not extractable"},
		{"KES key", "minio", kw, 0, kmip.ResultReasonPermissionDenied, "KES API"},
		{"unknown wrapping key", key, wrapSpec("no-such-key", kmip.BlockCipherModeNISTKeyWrap, 0), 0, kmip.ResultReasonItemNotFound, "wrapping key not found"},
		{"MAC sign", key, with(func(s *kmip.KeyWrappingSpecification) { s.WrappingMethod = kmip.WrappingMethodMACSign }), 0, kmip.ResultReasonFeatureNotSupported, "wrapping method"},
		{"encrypt then MAC", key, with(func(s *kmip.KeyWrappingSpecification) { s.WrappingMethod = kmip.WrappingMethodEncryptThenMACSign }), 0, kmip.ResultReasonFeatureNotSupported, "wrapping method"},
		{"MAC key information", key, with(func(s *kmip.KeyWrappingSpecification) {
			s.MACSignatureKeyInformation = &kmip.MACSignatureKeyInformation{UniqueIdentifier: w.kek}
		}), 0, kmip.ResultReasonFeatureNotSupported, "MAC/signature"},
		{"no wrapping method", key, with(func(s *kmip.KeyWrappingSpecification) { s.WrappingMethod = 0 }), 0, kmip.ResultReasonMissingData, "wrapping method"},
		{"no key information", key, with(func(s *kmip.KeyWrappingSpecification) { s.EncryptionKeyInformation = nil }), 0, kmip.ResultReasonMissingData, "encryption key information"},
		{"CBC", key, wrapSpec(w.kek, kmip.BlockCipherModeCBC, 0), 0, kmip.ResultReasonFeatureNotSupported, "block cipher mode"},
		{"attributes", key, with(func(s *kmip.KeyWrappingSpecification) { s.AttributeName = []kmip.AttributeName{kmip.AttributeNameName} }), 0, kmip.ResultReasonFeatureNotSupported, "attributes"},
		{"unknown encoding", key, wrapSpec(w.kek, kmip.BlockCipherModeNISTKeyWrap, 7), 0, kmip.ResultReasonEncodingOptionError, "encoding"},
		{"transparent without encoding", key, kw, kmip.KeyFormatTypeTransparentSymmetricKey, kmip.ResultReasonEncodingOptionError, "Raw"},
		{"opaque object", opaque, kw, 0, kmip.ResultReasonInvalidField, "can be wrapped"},
		{"GCM with a key that also decrypts", key, wrapSpec(both, kmip.BlockCipherModeGCM, 0), 0, kmip.ResultReasonPermissionDenied, "Encrypt or Decrypt"},
		{"key wrap with a key that also decrypts", key, wrapSpec(both, kmip.BlockCipherModeNISTKeyWrap, 0), 0, kmip.ResultReasonPermissionDenied, "Encrypt or Decrypt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &payloads.GetRequestPayload{UniqueIdentifier: tc.uid, KeyFormatType: tc.format, KeyWrappingSpecification: &tc.spec}
			bi := batchOne(t, w.c, req)
			wantReason(t, bi, tc.want)
			if !strings.Contains(bi.ResultMessage, tc.msg) {
				t.Fatalf("message %q does not say %q", bi.ResultMessage, tc.msg)
			}
		})
	}
	// A wrapped export of a key that may never leave did not make it
	// exportable.
	attrs := w.c.GetAttributes(locked, kmip.AttributeNameNeverExtractable).MustExec()
	if len(attrs.Attribute) != 1 || attrs.Attribute[0].AttributeValue != true {
		t.Fatalf("Never Extractable after refused exports: %+v", attrs.Attribute)
	}

	// The wrapping key needs its own policy path.
	w.policies.Store(&policy.Set{
		Policies:   map[string]*policy.Policy{"kmip": {Allow: []string{"/kmip/*"}, Deny: []string{"/kmip/wrap/" + w.kek}}},
		Identities: map[string]string{idOf(w.client): "kmip"},
	})
	bi := batchOne(t, w.c, &payloads.GetRequestPayload{UniqueIdentifier: key, KeyWrappingSpecification: &kw})
	wantReason(t, bi, kmip.ResultReasonPermissionDenied)
	// And As Registered cannot be served: keys are stored unwrapped.
	bi = batchOne(t, w.c, &payloads.GetRequestPayload{UniqueIdentifier: key, KeyWrapType: kmip.AsRegistered})
	wantReason(t, bi, kmip.ResultReasonFeatureNotSupported)
}

// registerWrapped registers a wrapped AES key and returns the batch
// item.
func registerWrapped(t *testing.T, c *kmipclient.Client, kek string, mode kmip.BlockCipherMode, enc kmip.EncodingOption, kv *kmip.KeyValue, iv []byte, length int32) kmip.ResponseBatchItem {
	t.Helper()
	req := &payloads.RegisterRequestPayload{
		ObjectType: kmip.ObjectTypeSymmetricKey,
		TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt},
		}},
		Object: &kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{
			KeyFormatType:          kmip.KeyFormatTypeRaw,
			KeyValue:               kv,
			CryptographicAlgorithm: kmip.CryptographicAlgorithmAES,
			CryptographicLength:    length,
			KeyWrappingData: &kmip.KeyWrappingData{
				WrappingMethod: kmip.WrappingMethodEncrypt,
				EncryptionKeyInformation: &kmip.EncryptionKeyInformation{
					UniqueIdentifier:        kek,
					CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: mode},
				},
				IVCounterNonce: iv,
				EncodingOption: enc,
			},
		}},
	}
	return batchOne(t, c, req)
}

func plainValue(b []byte) *kmip.KeyValue {
	return &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &b}}}
}

func wrappedValue(b []byte) *kmip.KeyValue { return &kmip.KeyValue{Wrapped: &b} }

// TestRegisterWrapped: a key wrapped by the client (with the reference
// key wrap, or AES-GCM) is unwrapped on the server and stored like any
// registered key; what does not verify is refused and stores nothing.
func TestRegisterWrapped(t *testing.T) {
	ctx := context.Background()
	w := newWrapEnv(t)
	secret := bytes.Repeat([]byte{0x5a}, 32)
	kvTTLV := keyValueTTLV(kmip.KeyMaterial{Bytes: &secret})
	iv := bytes.Repeat([]byte{1}, 12)
	gcmCT, gcmTag, _ := crypto.GCMSeal(w.kekRaw, iv, secret, nil, 16)
	gcmBlob := append(gcmCT, gcmTag...)
	for _, tc := range []struct {
		name string
		mode kmip.BlockCipherMode
		enc  kmip.EncodingOption
		kv   *kmip.KeyValue
		iv   []byte
	}{
		{"NIST key wrap, no encoding", kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(refW(w.kekRaw, refKWIV, secret)), nil},
		{"NIST key wrap, TTLV", kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionTTLVEncoding, wrappedValue(refW(w.kekRaw, refKWIV, kvTTLV)), nil},
		{"key wrap with padding, default encoding", kmip.BlockCipherModeAESKeyWrapPadding, 0, wrappedValue(refKWPWrap(w.kekRaw, kvTTLV)), nil},
		{"GCM, no encoding", kmip.BlockCipherModeGCM, kmip.EncodingOptionNoEncoding, plainValue(gcmBlob), iv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bi := registerWrapped(t, w.c, w.kek, tc.mode, tc.enc, tc.kv, tc.iv, 256)
			wantOK(t, bi)
			uid := bi.ResponsePayload.(*payloads.RegisterResponsePayload).UniqueIdentifier
			var got []byte
			w.keys.With(ctx, uid, func(o *keys.Object) error {
				return o.Version.Key.Use(func(b []byte) error { got = bytes.Clone(b); return nil })
			})
			if !bytes.Equal(got, secret) {
				t.Fatal("stored material is not the unwrapped key")
			}
			// Registered wrapped, it stays wrapped: Sensitive.
			req, _ := w.c.Get(uid).Build()
			if bi := batchOne(t, w.c, req); bi.ResultReason != kmip.ResultReasonPermissionDenied || !strings.Contains(bi.ResultMessage, "only wrapped") {
				t.Fatalf("clear get of a key registered wrapped: %v %q", bi.ResultReason, bi.ResultMessage)
			}
		})
	}

	kw := refW(w.kekRaw, refKWIV, secret)
	flipped := bytes.Clone(kw)
	flipped[3] ^= 0x80
	badTag := bytes.Clone(gcmBlob)
	badTag[len(badTag)-1] ^= 1
	noUnwrap := w.c.Create().AES(256, kmip.CryptographicUsageWrapKey).MustExec().UniqueIdentifier
	w.c.Activate(noUnwrap).MustExec()
	garbage := refW(w.kekRaw, refKWIV, bytes.Repeat([]byte{0x42}, 24))
	before := len(listKeys(t, w.keys))
	for _, tc := range []struct {
		name string
		kek  string
		mode kmip.BlockCipherMode
		enc  kmip.EncodingOption
		kv   *kmip.KeyValue
		iv   []byte
		want kmip.ResultReason
	}{
		{"flipped bit", w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(flipped), nil, kmip.ResultReasonCryptographicFailure},
		{"truncated blob", w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(kw[:len(kw)-8]), nil, kmip.ResultReasonCryptographicFailure},
		{"odd-length blob", w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(kw[:len(kw)-3]), nil, kmip.ResultReasonCryptographicFailure},
		{"bad GCM tag", w.kek, kmip.BlockCipherModeGCM, kmip.EncodingOptionNoEncoding, plainValue(badTag), iv, kmip.ResultReasonCryptographicFailure},
		{"GCM without IV", w.kek, kmip.BlockCipherModeGCM, kmip.EncodingOptionNoEncoding, plainValue(gcmBlob), nil, kmip.ResultReasonInvalidField},
		{"wrong mode", w.kek, kmip.BlockCipherModeAESKeyWrapPadding, kmip.EncodingOptionNoEncoding, plainValue(kw), nil, kmip.ResultReasonCryptographicFailure},
		{"unknown wrapping key", "no-such-key", kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(kw), nil, kmip.ResultReasonItemNotFound},
		{"wrapping key lacks Unwrap Key", noUnwrap, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(kw), nil, kmip.ResultReasonPermissionDenied},
		{"unsupported mode", w.kek, kmip.BlockCipherModeCBC, kmip.EncodingOptionNoEncoding, plainValue(kw), nil, kmip.ResultReasonFeatureNotSupported},
		{"TTLV that is not a key value", w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionTTLVEncoding, wrappedValue(garbage), nil, kmip.ResultReasonInvalidField},
		{"structure with TTLV encoding", w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionTTLVEncoding, plainValue(kw), nil, kmip.ResultReasonInvalidField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantReason(t, registerWrapped(t, w.c, tc.kek, tc.mode, tc.enc, tc.kv, tc.iv, 256), tc.want)
		})
	}
	// MAC-only wrapping data.
	req := &payloads.RegisterRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, Object: &kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{
		KeyFormatType: kmip.KeyFormatTypeRaw, KeyValue: plainValue(secret), CryptographicAlgorithm: kmip.CryptographicAlgorithmAES, CryptographicLength: 256,
		KeyWrappingData: &kmip.KeyWrappingData{WrappingMethod: kmip.WrappingMethodMACSign, MACSignatureKeyInformation: &kmip.MACSignatureKeyInformation{UniqueIdentifier: w.kek}, MACSignature: []byte("sig")},
	}}}
	wantReason(t, batchOne(t, w.c, req), kmip.ResultReasonFeatureNotSupported)
	if after := len(listKeys(t, w.keys)); after != before {
		t.Fatalf("refused registrations stored %d keys", after-before)
	}
	// The unwrapping key needs its own policy path.
	w.policies.Store(&policy.Set{
		Policies:   map[string]*policy.Policy{"kmip": {Allow: []string{"/kmip/*"}, Deny: []string{"/kmip/unwrap/*"}}},
		Identities: map[string]string{idOf(w.client): "kmip"},
	})
	wantReason(t, registerWrapped(t, w.c, w.kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding, plainValue(kw), nil, 256), kmip.ResultReasonPermissionDenied)
}

func listKeys(t *testing.T, svc *keys.Service) []string {
	t.Helper()
	names, err := svc.Store().List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// FuzzDecodeKeyValue: what an unwrapped blob holds is the client's; it is
// decoded or refused, never a panic.
func FuzzDecodeKeyValue(f *testing.F) {
	k := bytes.Repeat([]byte{7}, 16)
	f.Add(uint32(kmip.KeyFormatTypeRaw), keyValueTTLV(kmip.KeyMaterial{Bytes: &k}))
	f.Add(uint32(kmip.KeyFormatTypeTransparentSymmetricKey), keyValueTTLV(kmip.KeyMaterial{TransparentSymmetricKey: &kmip.TransparentSymmetricKey{Key: k}}))
	f.Fuzz(func(t *testing.T, format uint32, b []byte) {
		kv, err := decodeKeyValue(kmip.KeyFormatType(format), b)
		if err == nil && (kv == nil || kv.Plain == nil) {
			t.Fatal("decoded without a plaintext key value")
		}
	})
}
