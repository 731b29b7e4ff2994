// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// countingReader is a deterministic reader that counts what it gave.
type countingReader struct {
	n    int
	next byte
}

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	r.n += len(p)
	return len(p), nil
}

func newKMIP(t *testing.T, s *Service, spec NewObject) string {
	t.Helper()
	if spec.Meta == nil {
		spec.Meta = func(string, *crypto.KeyVersion) (Metadata, error) {
			return Metadata{KMIP: json.RawMessage(`{"v":1}`)}, nil
		}
	}
	uid, err := s.CreateKMIP(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// TestCreateKMIPUsesConfigRand: key material, HMAC keys and identifiers
// of KMIP objects come from Config.Rand, nothing else.
func TestCreateKMIPUsesConfigRand(t *testing.T) {
	r := &countingReader{}
	s, _ := newService(t, Config{Rand: r})
	ctx := context.Background()
	uid := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 128, Mask: UsageEncrypt | UsageDecrypt})
	// 16 bytes of key, then 16 of identifier.
	if r.n != 32 || uid != "10111213-1415-4617-9819-1a1b1c1d1e1f" {
		t.Fatalf("read %d bytes, uid %s", r.n, uid)
	}
	var key []byte
	err := s.Export(ctx, uid, func(o *Object) error {
		return o.Version.Material.Use(func(b []byte) error { key = bytes.Clone(b); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	if !bytes.Equal(key, want) {
		t.Fatalf("key = %x, want the reader's bytes", key)
	}
	// A 256-bit AES key is a KES key: 32 bytes of key, 32 of HMAC key, 16
	// of identifier.
	before := r.n
	newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256})
	if r.n-before != 80 {
		t.Fatalf("AES-256 create read %d bytes, want 80", r.n-before)
	}
}

func TestUsageDefaults(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{})
	if err := s.Create(ctx, "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	info, err := s.Describe(ctx, "minio")
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{Origin: OriginKES, Algorithm: AlgorithmAES, Mask: UsageEncrypt | UsageDecrypt | UsageMACGenerate | UsageMACVerify,
		Sensitive: true, AlwaysSensitive: true, NeverExtractable: true}
	if info.Usage != want {
		t.Fatalf("KES key usage = %+v, want %+v", info.Usage, want)
	}
	// Derived, not written: the stored value is minio/kes's.
	v, _ := store.Get(ctx, "minio")
	kv, err := crypto.ParseKeyVersion(v)
	if err != nil || kv.Meta != nil {
		t.Fatalf("KES key stores metadata %q, %v", kv.Meta, err)
	}
	err = s.Export(ctx, "minio", func(*Object) error { t.Fatal("exported"); return nil })
	var ee *ExportError
	if !errors.As(err, &ee) || !errors.Is(err, ErrNotExtractable) {
		t.Fatalf("Export of a KES key: %v", err)
	}

	uid := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageEncrypt})
	info, _ = s.Describe(ctx, uid)
	if u := info.Usage; u.Origin != OriginKMIP || !u.Extractable || u.NeverExtractable || u.Sensitive || u.Mask != UsageEncrypt {
		t.Fatalf("KMIP key usage = %+v", u)
	}
	no := false
	uid2 := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 128, Extractable: &no})
	if err := s.Export(ctx, uid2, func(*Object) error { return nil }); !errors.Is(err, ErrNotExtractable) {
		t.Fatalf("Export of a non-extractable KMIP key: %v", err)
	}
	info, _ = s.Describe(ctx, uid2)
	if !info.Usage.NeverExtractable {
		t.Fatalf("usage = %+v", info.Usage)
	}
}

// TestAllowExport: the admin switch, per key and per pattern; the first
// export clears Never Extractable and Always Sensitive for good.
func TestAllowExport(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{ExportPatterns: []string{"backup-*"}})
	for _, n := range []string{"minio", "backup-1"} {
		if err := s.Create(ctx, n, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	exported := 0
	export := func(o *Object) error { exported++; return nil }
	if err := s.Export(ctx, "minio", export); !errors.Is(err, ErrNotExtractable) {
		t.Fatal(err)
	}
	// The pattern applies without writing anything until the export.
	if info, _ := s.Describe(ctx, "backup-1"); !info.Usage.Exportable() || !info.Usage.NeverExtractable {
		t.Fatalf("pattern usage = %+v", info.Usage)
	}
	if err := s.Export(ctx, "backup-1", export); err != nil || exported != 1 {
		t.Fatalf("pattern export: %v", err)
	}
	if info, _ := s.Describe(ctx, "backup-1"); info.Usage.NeverExtractable || info.Usage.AlwaysSensitive {
		t.Fatalf("after export: %+v", info.Usage)
	}

	if err := s.AllowExport(ctx, "minio", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, "minio", export); err != nil || exported != 2 {
		t.Fatalf("allowed export: %v", err)
	}
	if err := s.AllowExport(ctx, "minio", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, "minio", export); !errors.Is(err, ErrNotExtractable) {
		t.Fatalf("after export-deny: %v", err)
	}
	info, _ := s.Describe(ctx, "minio")
	if info.Usage.Origin != OriginKES || info.Usage.NeverExtractable {
		t.Fatalf("usage = %+v", info.Usage)
	}
	// Another node (a new Service on the same store) sees the switch.
	if err := s.AllowExport(ctx, "minio", true); err != nil {
		t.Fatal(err)
	}
	s2 := New(Config{Store: store})
	defer s2.Close()
	if err := s2.Export(ctx, "minio", export); err != nil {
		t.Fatalf("second node: %v", err)
	}
	if err := s.AllowExport(ctx, "missing", true); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}

// TestKMIPRecordKeepsKESOrigin: a KMIP client adding an attribute to a
// KES key (which gives it a KMIP record) must not make it exportable.
func TestKMIPRecordKeepsKESOrigin(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	if err := s.Create(ctx, "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, "minio", func(o *Object) error {
		o.Meta.KMIP = json.RawMessage(`{"v":1,"type":2}`)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, "minio", func(*Object) error { return nil }); !errors.Is(err, ErrNotExtractable) {
		t.Fatalf("export after KMIP record: %v", err)
	}
	var o *Object
	s.With(ctx, "minio", func(x *Object) error { o = x; return CheckKMIPStateChange(x) })
	if err := CheckKMIPStateChange(o); !errors.Is(err, ErrKESManaged) {
		t.Fatalf("state change: %v", err)
	}
}

func TestLifecycleDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	// KES keys are deleted in any state, as minio/kes does.
	if err := s.Create(ctx, "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "minio"); err != nil {
		t.Fatal(err)
	}
	// An Active KMIP key is not.
	active := func(string, *crypto.KeyVersion) (Metadata, error) {
		return Metadata{State: StateActive, KMIP: json.RawMessage(`{"v":1}`)}, nil
	}
	uid := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Meta: active})
	if err := s.Delete(ctx, uid); !errors.Is(err, ErrActiveKMIPKey) {
		t.Fatalf("delete of an active KMIP key: %v", err)
	}
	if _, err := s.Describe(ctx, uid); err != nil {
		t.Fatalf("key gone: %v", err)
	}
	if err := s.Update(ctx, uid, func(o *Object) error { o.Meta.State = StateDeactivated; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, uid); err != nil {
		t.Fatalf("delete of a deactivated KMIP key: %v", err)
	}
	if err := s.Delete(ctx, uid); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// TestKMIPCipher checks EncryptKMIP/DecryptKMIP against the standard
// library's AES-GCM and AES-CBC with the same raw key: a KES AES-256 key
// is used as the raw AES-256 key.
func TestKMIPCipher(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	if err := s.AllowExport(ctx, "x", true); !errors.Is(err, ErrKeyNotFound) {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	s.With(ctx, "minio", func(o *Object) error {
		return o.Version.Key.Use(func(b []byte) error { raw = bytes.Clone(b); return nil })
	})
	// GCM takes no client IV: an encrypt-only client could repeat the
	// IV of a ciphertext it was given and learn its keystream.
	if _, err := s.EncryptKMIP(ctx, "minio", CipherParams{Mode: ModeGCM, IV: bytes.Repeat([]byte{7}, 12)}, []byte("hello")); !errors.Is(err, ErrClientIV) {
		t.Fatalf("GCM encrypt with a client IV: %v", err)
	}
	sealed, err := s.EncryptKMIP(ctx, "minio", CipherParams{Mode: ModeGCM, AAD: []byte("aad")}, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	iv := sealed.IV
	block, _ := aes.NewCipher(raw)
	g, _ := cipher.NewGCM(block)
	if len(iv) != g.NonceSize() {
		t.Fatalf("server IV of %d bytes", len(iv))
	}
	want := g.Seal(nil, iv, []byte("hello"), []byte("aad"))
	if got := append(bytes.Clone(sealed.Ciphertext), sealed.Tag...); !bytes.Equal(got, want) {
		t.Fatalf("GCM = %x, want %x", got, want)
	}
	pt, err := s.DecryptKMIP(ctx, "minio", CipherParams{Mode: ModeGCM, IV: iv, AAD: []byte("aad"), Tag: sealed.Tag}, sealed.Ciphertext)
	if err != nil || string(pt) != "hello" {
		t.Fatalf("GCM decrypt: %q %v", pt, err)
	}
	if _, err := s.DecryptKMIP(ctx, "minio", CipherParams{Mode: ModeGCM, IV: iv, AAD: []byte("other"), Tag: sealed.Tag}, sealed.Ciphertext); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("GCM with wrong AAD: %v", err)
	}
	// Server-chosen IV for CBC.
	sealed, err = s.EncryptKMIP(ctx, "minio", CipherParams{Mode: ModeCBC}, []byte("hello"))
	if err != nil || len(sealed.IV) != 16 || len(sealed.Ciphertext) != 16 {
		t.Fatalf("CBC: %+v %v", sealed, err)
	}
	pt, err = s.DecryptKMIP(ctx, "minio", CipherParams{Mode: ModeCBC, IV: sealed.IV}, sealed.Ciphertext)
	if err != nil || string(pt) != "hello" {
		t.Fatalf("CBC decrypt: %q %v", pt, err)
	}
	// The KES HMAC and the KMIP MAC of a KES key agree.
	sum, _ := s.HMAC(ctx, "minio", []byte("m"))
	mac, err := s.MAC(ctx, "minio", 0, []byte("m"))
	if err != nil || !bytes.Equal(sum, mac) {
		t.Fatalf("MAC: %v", err)
	}
	if ok, err := s.VerifyMAC(ctx, "minio", crypto.MACSHA256, []byte("m"), mac); !ok || err != nil {
		t.Fatalf("VerifyMAC: %v %v", ok, err)
	}
	if _, err := s.MAC(ctx, "minio", crypto.MACSHA512, []byte("m")); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("HMAC-SHA512 with a KES key: %v", err)
	}
}

// TestUsageMaskEnforced: an encrypt-only key cannot MAC or decrypt, an
// HMAC key cannot encrypt, and states are checked before anything.
func TestUsageMaskEnforced(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	active := func(string, *crypto.KeyVersion) (Metadata, error) {
		return Metadata{State: StateActive, KMIP: json.RawMessage(`{"v":1}`)}, nil
	}
	enc := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Mask: UsageEncrypt, Meta: active})
	if _, err := s.MAC(ctx, enc, 0, []byte("m")); !errors.Is(err, ErrUsageNotAllowed) {
		t.Fatalf("MAC with an encrypt-only key: %v", err)
	}
	if _, err := s.VerifyMAC(ctx, enc, 0, []byte("m"), make([]byte, 32)); !errors.Is(err, ErrUsageNotAllowed) {
		t.Fatalf("MAC verify with an encrypt-only key: %v", err)
	}
	sealed, err := s.EncryptKMIP(ctx, enc, CipherParams{Mode: ModeGCM}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecryptKMIP(ctx, enc, CipherParams{Mode: ModeGCM, IV: sealed.IV, Tag: sealed.Tag}, sealed.Ciphertext); !errors.Is(err, ErrUsageNotAllowed) {
		t.Fatalf("decrypt with an encrypt-only key: %v", err)
	}

	mac := newKMIP(t, s, NewObject{Algorithm: AlgorithmHMACSHA384, Bits: 384, Mask: UsageMACGenerate | UsageMACVerify | UsageEncrypt, Meta: active})
	if _, err := s.EncryptKMIP(ctx, mac, CipherParams{Mode: ModeGCM}, []byte("x")); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("encrypt with an HMAC key: %v", err)
	}
	sum, err := s.MAC(ctx, mac, 0, []byte("m"))
	if err != nil || len(sum) != 48 {
		t.Fatalf("HMAC-SHA384: %d bytes, %v", len(sum), err)
	}
	if _, err := s.MAC(ctx, mac, crypto.MACSHA256, []byte("m")); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("HMAC-SHA256 with an HMAC-SHA384 key: %v", err)
	}

	pre := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 128, Mask: UsageEncrypt | UsageDecrypt,
		Meta: func(string, *crypto.KeyVersion) (Metadata, error) {
			return Metadata{State: StatePreActive, KMIP: json.RawMessage(`{"v":1}`)}, nil
		}})
	if _, err := s.EncryptKMIP(ctx, pre, CipherParams{Mode: ModeGCM}, []byte("x")); !errors.Is(err, ErrNotActive) {
		t.Fatalf("encrypt with a pre-active key: %v", err)
	}
	// A deactivated key decrypts but does not encrypt.
	if err := s.Update(ctx, enc, func(o *Object) error {
		o.Meta.State = StateDeactivated
		o.Meta.Usage.Mask |= UsageDecrypt
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EncryptKMIP(ctx, enc, CipherParams{Mode: ModeGCM}, []byte("x")); !errors.Is(err, ErrNotActive) {
		t.Fatalf("encrypt with a deactivated key: %v", err)
	}
	if pt, err := s.DecryptKMIP(ctx, enc, CipherParams{Mode: ModeGCM, IV: sealed.IV, Tag: sealed.Tag}, sealed.Ciphertext); err != nil || string(pt) != "x" {
		t.Fatalf("decrypt with a deactivated key: %v", err)
	}
	if _, err := s.CreateKMIP(ctx, NewObject{Algorithm: AlgorithmAES, Bits: 100, CreatedAt: time.Now()}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("AES-100: %v", err)
	}
	if _, err := s.CreateKMIP(ctx, NewObject{Algorithm: AlgorithmAES, Material: make([]byte, 20), CreatedAt: time.Now()}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("20-byte AES key: %v", err)
	}
}

// TestPreUsageRecordOrigin: a value stored before usage attributes
// existed has a KMIP record but no usage. A KES key a KMIP client gave
// attributes (or revoked) then stays a KES key: not exportable, its
// lifecycle not changeable over KMIP, HMAC allowed. A key the bridge made
// then, named by the bridge's generated identifier, is a KMIP key.
func TestPreUsageRecordOrigin(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	record := Metadata{State: StateActive, KMIP: json.RawMessage(`{"v":1,"type":2,"alg":3,"len":256}`)}
	kesVersion := func() *crypto.KeyVersion {
		k, err := crypto.GenerateSecretKey(crypto.AES256, nil)
		if err != nil {
			t.Fatal(err)
		}
		hk, err := crypto.GenerateHMACKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		return &crypto.KeyVersion{Key: k, HMACKey: hk, CreatedAt: time.Now().UTC(), CreatedBy: "admin"}
	}
	// Names a KES client chose, including UUID look-alikes the bridge
	// never generated (upper case, not version 4).
	for _, name := range []string{"minio", "5D8A2C1E-3B4F-4A6D-9E7C-0F1A2B3C4D5E", "5d8a2c1e-3b4f-1a6d-9e7c-0f1a2b3c4d5e"} {
		if err := s.CreateObject(ctx, name, kesVersion(), record); err != nil {
			t.Fatal(err)
		}
		info, err := s.Describe(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if u := info.Usage; u.Origin != OriginKES || u.Exportable() || u.Mask&UsageMACGenerate == 0 {
			t.Fatalf("%s: usage = %+v, want a KES key's", name, u)
		}
		if err := s.Export(ctx, name, func(*Object) error { return nil }); !errors.Is(err, ErrNotExtractable) {
			t.Fatalf("%s: export: %v", name, err)
		}
		err = s.With(ctx, name, CheckKMIPStateChange)
		if !errors.Is(err, ErrKESManaged) {
			t.Fatalf("%s: state change: %v", name, err)
		}
		if _, err := s.HMAC(ctx, name, []byte("msg")); err != nil {
			t.Fatalf("%s: HMAC: %v", name, err)
		}
	}
	// A key the bridge made: 128-bit AES material under a generated UUID.
	uid := "5d8a2c1e-3b4f-4a6d-9e7c-0f1a2b3c4d5e"
	v := &crypto.KeyVersion{Material: crypto.NewSecretBytes(make([]byte, 16)), CreatedAt: time.Now().UTC()}
	if err := s.CreateObject(ctx, uid, v, Metadata{State: StateActive, KMIP: json.RawMessage(`{"v":1,"type":2,"alg":3,"len":128}`)}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Describe(ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	if u := info.Usage; u.Origin != OriginKMIP || !u.Exportable() || u.Algorithm != AlgorithmAES {
		t.Fatalf("KMIP key usage = %+v", u)
	}
	if err := s.Export(ctx, uid, func(*Object) error { return nil }); err != nil {
		t.Fatalf("export of a KMIP key: %v", err)
	}
	if err := s.With(ctx, uid, CheckKMIPStateChange); err != nil {
		t.Fatalf("state change of a KMIP key: %v", err)
	}
}

// TestLifecycleDeleteOlderActive: HTTP delete removes every version, so
// it is refused while any version of a KMIP key is Active, not only the
// newest.
func TestLifecycleDeleteOlderActive(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	active := func(string, *crypto.KeyVersion) (Metadata, error) {
		return Metadata{State: StateActive, KMIP: json.RawMessage(`{"v":1}`)}, nil
	}
	uid := newKMIP(t, s, NewObject{Algorithm: AlgorithmAES, Bits: 256, Meta: active})
	if _, err := s.RekeyKMIP(ctx, uid, "me"); err != nil {
		t.Fatal(err)
	}
	revoke := func(n uint32) {
		t.Helper()
		if err := s.UpdateVersion(ctx, uid, n, func(o *Object) error { o.Meta.State = StateDeactivated; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	revoke(2)
	if err := s.Delete(ctx, uid); !errors.Is(err, ErrActiveKMIPKey) {
		t.Fatalf("delete with an active older version: %v", err)
	}
	if err := s.With(ctx, VersionRef(uid, 1), func(o *Object) error {
		if o.Meta.State != StateActive {
			t.Errorf("version 1 is %s", o.Meta.State)
		}
		return nil
	}); err != nil {
		t.Fatalf("version 1 gone: %v", err)
	}
	revoke(1)
	if err := s.Delete(ctx, uid); err != nil {
		t.Fatalf("delete with no active version: %v", err)
	}
}

// TestPublicMaterial: a certificate (NewObject.Public) is exportable
// whatever the template and the admin's switch say, and exporting it
// records nothing.
func TestPublicMaterial(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	yes, no := true, false
	uid := newKMIP(t, s, NewObject{Material: []byte("certificate"), Public: true, Sensitive: &yes, Extractable: &no})
	info, err := s.Describe(ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	if u := info.Usage; !u.Public || u.Sensitive || !u.Extractable || u.AlwaysSensitive || u.NeverExtractable {
		t.Fatalf("usage = %+v", u)
	}
	if err := s.AllowExport(ctx, uid, false); err != nil {
		t.Fatal(err)
	}
	exported := 0
	if err := s.Export(ctx, uid, func(*Object) error { exported++; return nil }); err != nil || exported != 1 {
		t.Fatalf("export after export-deny: %v", err)
	}
	if info, _ := s.Describe(ctx, uid); !info.Usage.Extractable {
		t.Fatalf("usage after export-deny = %+v", info.Usage)
	}
}
