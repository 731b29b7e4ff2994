// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func testVersion(t *testing.T, n uint32, id string, fill byte) *KeyVersion {
	t.Helper()
	key, err := NewSecretKey(AES256, bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	hk, err := NewHMACKey(bytes.Repeat([]byte{fill + 1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &KeyVersion{Key: key, HMACKey: hk, CreatedAt: time.Unix(1700000000+int64(n), 0).UTC(), CreatedBy: "me", Number: n, ID: id}
}

// minioView decodes a stored value the way minio/kes v0.24.0 does
// (reference kes-api.md §5.1): fields 1-4 of the KeyVersion message, every
// other field skipped as proto3 skips unknown fields. It returns the
// secret key bytes and the creation time.
func minioView(t *testing.T, text []byte) (key []byte, sec uint64) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil {
		t.Fatal(err)
	}
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			t.Fatal("bad tag")
		}
		raw = raw[n:]
		n = protowire.ConsumeFieldValue(num, typ, raw)
		if n < 0 {
			t.Fatal("bad field")
		}
		field := raw[:n]
		raw = raw[n:]
		if typ != protowire.BytesType {
			continue
		}
		body, _ := protowire.ConsumeBytes(field)
		switch num {
		case 1:
			b, _, err := parseKeyMessage(body)
			if err != nil {
				t.Fatal(err)
			}
			key = b
		case 3:
			_, _, n := protowire.ConsumeTag(body)
			sec, _ = protowire.ConsumeVarint(body[n:])
		}
	}
	return key, sec
}

// A rotated key keeps its newest version in fields 1-4, where a decoder
// of minio/kes's format finds it, and its older versions round-trip.
func TestStoredVersions(t *testing.T) {
	newest := testVersion(t, 3, "6b7600010000000300000000000000cc", 3)
	newest.Older = []*KeyVersion{
		testVersion(t, 1, "6b7600010000000100000000000000aa", 1),
		testVersion(t, 2, "6b7600010000000200000000000000bb", 2),
	}
	newest.Older[0].State = "Retired"
	defer newest.Destroy()
	text, err := newest.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	key, sec := minioView(t, text)
	if !bytes.Equal(key, bytes.Repeat([]byte{3}, 32)) || sec != 1700000003 {
		t.Fatalf("minio/kes's view of a rotated key: key %x, created %d; want the newest version", key, sec)
	}

	v, err := ParseKeyVersion(text)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Destroy()
	if v.VersionNumber() != 3 || v.ID != newest.ID || len(v.Older) != 2 {
		t.Fatalf("parsed version %d id %q with %d older; want 3, %q, 2", v.VersionNumber(), v.ID, len(v.Older), newest.ID)
	}
	for i, o := range v.Older {
		want := newest.Older[i]
		if o.Number != want.Number || o.ID != want.ID || o.State != want.State || !o.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("older version %d: got %d/%q/%q/%v", i, o.Number, o.ID, o.State, o.CreatedAt)
		}
		var got []byte
		o.Key.Use(func(b []byte) error { got = bytes.Clone(b); return nil })
		if !bytes.Equal(got, bytes.Repeat([]byte{byte(i + 1)}, 32)) {
			t.Fatalf("older version %d has the wrong key", i)
		}
	}
	again, err := v.MarshalText()
	if err != nil || !bytes.Equal(again, text) {
		t.Fatalf("re-encoding a rotated key is not stable: %v", err)
	}
}

// A never-rotated version 1 writes none of the version fields.
func TestVersionOneWritesNoVersionFields(t *testing.T) {
	v := testVersion(t, 0, "", 7)
	defer v.Destroy()
	plain, err := v.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	v.Number = 1
	one, err := v.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, one) {
		t.Fatal("an explicit version 1 changed the stored value")
	}
	raw, _ := base64.StdEncoding.DecodeString(string(plain))
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		raw = raw[n:]
		if num > 4 {
			t.Fatalf("field %d written for a never-rotated key", num)
		}
		raw = raw[protowire.ConsumeFieldValue(num, typ, raw):]
	}
}

func TestStoredVersionsMalformed(t *testing.T) {
	encode := func(v *KeyVersion) []byte {
		t.Helper()
		defer v.Destroy()
		text, err := v.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	outOfOrder := testVersion(t, 3, "c", 3)
	outOfOrder.Older = []*KeyVersion{testVersion(t, 2, "b", 2), testVersion(t, 1, "a", 1)}
	notOlder := testVersion(t, 2, "b", 2)
	notOlder.Older = []*KeyVersion{testVersion(t, 2, "a", 1)}
	for name, text := range map[string][]byte{
		"out of order": encode(outOfOrder),
		"not older":    encode(notOlder),
	} {
		if _, err := ParseKeyVersion(text); err == nil || !strings.Contains(err.Error(), "out of order") {
			t.Errorf("%s: got %v, want an error", name, err)
		}
	}
	nested := testVersion(t, 2, "b", 2)
	inner := testVersion(t, 1, "a", 1)
	inner.Older = []*KeyVersion{testVersion(t, 1, "z", 9)}
	nested.Older = []*KeyVersion{inner}
	defer nested.Destroy()
	if _, err := nested.MarshalText(); err == nil {
		t.Error("an older version holding versions was encoded")
	}
}

// EncryptWithID writes format 2 exactly as reference kes-api.md §5.3
// lays it out: fixarray of 5; algorithm str; key id str; iv bin (16);
// nonce bin (12); sealed bin. The sealed bytes, iv and nonce re-framed
// as format 1 (sealed ‖ iv ‖ nonce) must decrypt too.
func TestEncryptWithIDLayout(t *testing.T) {
	for _, typ := range []KeyType{AES256, ChaCha20} {
		key, err := NewSecretKey(typ, bytes.Repeat([]byte{9}, 32))
		if err != nil {
			t.Fatal(err)
		}
		defer key.Destroy()
		const id = "6b760001000000020123456789abcdef"
		ct, err := key.EncryptWithID([]byte("a data key"), []byte("ctx"), id)
		if err != nil {
			t.Fatal(err)
		}
		alg := typ.String()
		var want bytes.Buffer
		want.WriteByte(0x95)
		want.WriteByte(0xa0 | byte(len(alg)))
		want.WriteString(alg)
		want.Write([]byte{0xd9, 32})
		want.WriteString(id)
		want.Write([]byte{0xc4, 16})
		if !bytes.HasPrefix(ct, want.Bytes()) {
			t.Fatalf("%s: format 2 header\n got %x\nwant %x", typ, ct[:want.Len()], want.Bytes())
		}
		rest := ct[want.Len():]
		iv, rest := rest[:16], rest[16:]
		if rest[0] != 0xc4 || rest[1] != 12 {
			t.Fatalf("%s: nonce header %x", typ, rest[:2])
		}
		nonce, rest := rest[2:14], rest[14:]
		if rest[0] != 0xc4 || int(rest[1]) != len(rest)-2 || len(rest)-2 != len("a data key")+16 {
			t.Fatalf("%s: sealed header %x for %d bytes", typ, rest[:2], len(rest)-2)
		}
		sealed := rest[2:]
		format1 := append(append(bytes.Clone(sealed), iv...), nonce...)
		for name, c := range map[string][]byte{"format 2": ct, "format 1": format1} {
			pt, err := key.Decrypt(c, []byte("ctx"))
			if err != nil || string(pt) != "a data key" {
				t.Fatalf("%s: Decrypt of %s: %q, %v", typ, name, pt, err)
			}
		}
		if got, ok := CiphertextID(ct); !ok || got != id {
			t.Fatalf("CiphertextID = %q, %v", got, ok)
		}
		if _, ok := CiphertextID(format1); ok {
			t.Fatal("CiphertextID found an id in a format 1 ciphertext")
		}
		if _, err := key.Decrypt(ct, []byte("other")); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("wrong context: %v", err)
		}
	}
}

// The key id of the reference's format-2 layout, framed by hand around
// the upstream binary vector (§5.7), is what CiphertextID reads.
func TestCiphertextIDOfReferenceLayout(t *testing.T) {
	binary := b64(t, "zwdDgHeRlIFRnJ7+DIhs/ka7GFK2CFSfDELqg1VCyTQzZ58o7MAdupMLk3ZjlMo2ZUDwldL2o41nAWDc")
	n := len(binary) - 28
	var b bytes.Buffer
	b.Write([]byte{0x95, 0xb1})
	b.WriteString("AES256-GCM_SHA256")
	b.Write([]byte{0xd9, 32})
	b.WriteString("00112233445566778899aabbccddeeff")
	b.Write([]byte{0xc4, 16})
	b.Write(binary[n : n+16])
	b.Write([]byte{0xc4, 12})
	b.Write(binary[n+16:])
	b.Write([]byte{0xc4, byte(n)})
	b.Write(binary[:n])
	if id, ok := CiphertextID(b.Bytes()); !ok || id != "00112233445566778899aabbccddeeff" {
		t.Fatalf("CiphertextID = %q, %v", id, ok)
	}
	key, _ := NewSecretKey(AES256, make([]byte, 32))
	defer key.Destroy()
	if pt, err := key.Decrypt(b.Bytes(), nil); err != nil || !bytes.Equal(pt, make([]byte, 16)) {
		t.Fatalf("Decrypt: %x, %v", pt, err)
	}
}
