// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad base64 in test vector: %v", err)
	}
	return b
}

// Vectors from reference kes-api.md §5.7 (upstream key_test.go data and an
// end-to-end vector from a running minio/kes server).
func TestDecryptVectors(t *testing.T) {
	zero := make([]byte, 32)
	tests := []struct {
		name       string
		typ        KeyType
		key        []byte
		ciphertext []byte
		ad         []byte
		plaintext  []byte
	}{
		{
			name:       "JSON/AES256",
			typ:        AES256,
			key:        zero,
			ciphertext: []byte(`{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}`),
			plaintext:  make([]byte, 16),
		},
		{
			name:       "Binary/AES256",
			typ:        AES256,
			key:        zero,
			ciphertext: b64(t, "zwdDgHeRlIFRnJ7+DIhs/ka7GFK2CFSfDELqg1VCyTQzZ58o7MAdupMLk3ZjlMo2ZUDwldL2o41nAWDc"),
			plaintext:  make([]byte, 16),
		},
		{
			name:       "Binary/ChaCha20/AD",
			typ:        ChaCha20,
			key:        b64(t, "dDHbTWgo+Yh3u804SYB5OyVMy6RiLeJYBQth1f6KlEU="),
			ciphertext: b64(t, "gO4woRIswAJdjUjW7z2ApsSQxJlwB24yjLrmH4eI7sB0uh5nfEJfk9ybTPFft5FRFaZCVBmzhx7OJs9n0WWtxH3sySIxecIK"),
			ad:         make([]byte, 16),
			plaintext:  b64(t, "CLcJoykFCWZDkEIiUq9bJRqwCwW9ZDvdgu8EMA=="),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := NewSecretKey(tt.typ, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			defer key.Destroy()
			got, err := key.Decrypt(tt.ciphertext, tt.ad)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Fatalf("Decrypt = %x, want %x", got, tt.plaintext)
			}
			// Any other context must fail.
			if _, err := key.Decrypt(tt.ciphertext, []byte("other")); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Decrypt with a wrong context: got %v, want ErrDecrypt", err)
			}
		})
	}
}

// The stored key and DEK of reference §5.7, written by minio/kes.
func TestStoredKeyVector(t *testing.T) {
	stored := "CiQKIMQrD3aHBH2z7EPmvKqcP8MKwQTDeUQkn+TfEyotvhMTEAESJAogMhSywaBOkm+8jk7gaYADYYZmgSERzq/UPTxkOlXQ9wYQARoMCOKakdgGEJ7Br/ECIkA3OTA1YjkzOGIxNzA3ODM3MmNiNjE4OTMzOTEwMzY1ODBjMjkzMzQ5OTU2NDk2MGYxMjU3NTNiMjI3ZGFlNGY0"
	v, err := ParseKeyVersion([]byte(stored))
	if err != nil {
		t.Fatalf("ParseKeyVersion: %v", err)
	}
	defer v.Destroy()
	if v.Key.Type() != AES256 {
		t.Fatalf("key type = %v, want AES256", v.Key.Type())
	}
	if v.CreatedBy != "7905b938b17078372cb61893391036580c2933499564960f125753b227dae4f4" {
		t.Fatalf("created_by = %q", v.CreatedBy)
	}
	if v.CreatedAt.IsZero() || v.CreatedAt.Year() < 2024 {
		t.Fatalf("created_at = %v", v.CreatedAt)
	}
	dek, err := v.Key.Decrypt(
		b64(t, "NnCrF1dniumqsCkG5GzVtnQjqz9NFrlkmrB1F3CPhEhazI13eWNVVgDf7a8JjwWAg8yLhod0yo6M52IjMmxpCZaq5YKNSOa1NMA7pQ=="),
		b64(t, "eyJ4LW1pbmlvLWJ1Y2tldCI6ImIxIn0="))
	if err != nil {
		t.Fatalf("Decrypt DEK: %v", err)
	}
	if want := b64(t, "y7ksiX9azDblHnZhYiZ8fPVFdvarJ0t/o7Iu/VMitv4="); !bytes.Equal(dek, want) {
		t.Fatalf("DEK = %x, want %x", dek, want)
	}
	mac, err := v.HMACKey.Sum([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if want := b64(t, "MTWh+3h7iar9pTH6SEXgwU8E0gs/5IdVzUvYDSnjk8U="); !bytes.Equal(mac, want) {
		t.Fatalf("HMAC = %x, want %x", mac, want)
	}
	// Re-encoding must give minio/kes's bytes back: same fields, same order.
	again, err := v.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != stored {
		t.Fatalf("re-encoded stored key differs:\n got %s\nwant %s", again, stored)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, typ := range []KeyType{AES256, ChaCha20} {
		t.Run(typ.String(), func(t *testing.T) {
			key, err := GenerateSecretKey(typ, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer key.Destroy()
			for _, pt := range [][]byte{nil, {}, make([]byte, 32), bytes.Repeat([]byte("x"), 1000)} {
				ct, err := key.Encrypt(pt, []byte("ctx"))
				if err != nil {
					t.Fatal(err)
				}
				if len(ct) != len(pt)+Overhead {
					t.Fatalf("ciphertext length %d, want %d", len(ct), len(pt)+Overhead)
				}
				got, err := key.Decrypt(ct, []byte("ctx"))
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Decrypt(Encrypt(x)) = %x, %v", got, err)
				}
				for i := range ct {
					bad := bytes.Clone(ct)
					bad[i] ^= 0x80
					if _, err := key.Decrypt(bad, []byte("ctx")); !errors.Is(err, ErrDecrypt) {
						t.Fatalf("flipped byte %d: got %v, want ErrDecrypt", i, err)
					}
				}
			}
		})
	}
}

func TestDestroyedKey(t *testing.T) {
	key, err := GenerateSecretKey(AES256, nil)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := key.Encrypt([]byte("x"), nil)
	key.Destroy()
	if _, err := key.Encrypt([]byte("x"), nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Fatalf("Encrypt after Destroy: %v", err)
	}
	if _, err := key.Decrypt(ct, nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Fatalf("Decrypt after Destroy: %v", err)
	}
}

func TestLegacyStoredKey(t *testing.T) {
	for _, tt := range []struct {
		json string
		typ  KeyType
	}{
		{`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"AES256-GCM_SHA256","created_at":"2021-06-01T10:00:00Z","created_by":"abc"}`, AES256},
		{`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","created_at":"2021-06-01T10:00:00Z"}`, AES256},
		{`{"bytes":"dDHbTWgo+Yh3u804SYB5OyVMy6RiLeJYBQth1f6KlEU=","algorithm":"XCHACHA20-POLY1305"}`, ChaCha20},
	} {
		v, err := ParseKeyVersion([]byte(tt.json))
		if err != nil {
			t.Fatalf("ParseKeyVersion(%s): %v", tt.json, err)
		}
		if v.Key.Type() != tt.typ || v.HMACKey != nil {
			t.Fatalf("ParseKeyVersion(%s): type %v, hmac %v", tt.json, v.Key.Type(), v.HMACKey != nil)
		}
		v.Destroy()
	}
	// The JSON vector of §5.7 decrypts with a legacy zero key.
	v, err := ParseKeyVersion([]byte(`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"AES256"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Key.Decrypt([]byte(`{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}`), nil)
	if err != nil || !bytes.Equal(got, make([]byte, 16)) {
		t.Fatalf("Decrypt with legacy key: %x, %v", got, err)
	}
	for _, bad := range []string{`{"bytes":"AAAA"}`, `{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"DES"}`, `{`, `not base64!`, ``} {
		if _, err := ParseKeyVersion([]byte(bad)); err == nil {
			t.Fatalf("ParseKeyVersion(%q) succeeded", bad)
		}
	}
}

func TestMetaAndMaterial(t *testing.T) {
	key, _ := GenerateSecretKey(ChaCha20, nil)
	hk, _ := GenerateHMACKey(nil)
	v := &KeyVersion{Key: key, HMACKey: hk, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), CreatedBy: "me", Meta: []byte(`{"state":"Active"}`)}
	text, err := v.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	w, err := ParseKeyVersion(text)
	if err != nil {
		t.Fatal(err)
	}
	if string(w.Meta) != `{"state":"Active"}` || !w.CreatedAt.Equal(v.CreatedAt) || w.CreatedBy != "me" || w.Key.Type() != ChaCha20 {
		t.Fatalf("round trip lost fields: %+v", w)
	}
	ct, _ := v.Key.Encrypt([]byte("hi"), nil)
	if pt, err := w.Key.Decrypt(ct, nil); err != nil || string(pt) != "hi" {
		t.Fatalf("decoded key differs: %v", err)
	}

	m := &KeyVersion{Material: NewSecretBytes([]byte("0123456789abcdef")), CreatedAt: time.Unix(1, 0)}
	text, err = m.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseKeyVersion(text)
	if err != nil {
		t.Fatal(err)
	}
	m2.Material.Use(func(b []byte) error {
		if string(b) != "0123456789abcdef" {
			t.Fatalf("material = %q", b)
		}
		return nil
	})
}

// TestParseErrorWipesKeys checks that a stored value that fails to parse
// after its secret key was read gives that key's memory back.
func TestParseErrorWipesKeys(t *testing.T) {
	var sk, hk, raw []byte
	sk = protowire.AppendTag(sk, 1, protowire.BytesType)
	sk = protowire.AppendBytes(sk, make([]byte, KeySize))
	sk = protowire.AppendTag(sk, 2, protowire.VarintType)
	sk = protowire.AppendVarint(sk, uint64(AES256))
	hk = protowire.AppendTag(hk, 1, protowire.BytesType)
	hk = protowire.AppendBytes(hk, make([]byte, KeySize))
	hk = protowire.AppendTag(hk, 2, protowire.VarintType)
	hk = protowire.AppendVarint(hk, 7) // not SHA-256
	raw = protowire.AppendTag(raw, fieldKey, protowire.BytesType)
	raw = protowire.AppendBytes(raw, sk)
	raw = protowire.AppendTag(raw, fieldHMACKey, protowire.BytesType)
	raw = protowire.AppendBytes(raw, hk)

	locked, unlocked := MemoryStats()
	if v, err := ParseKeyVersion([]byte(base64.StdEncoding.EncodeToString(raw))); err == nil {
		v.Destroy()
		t.Fatal("ParseKeyVersion accepted an unknown HMAC hash")
	}
	if l, u := MemoryStats(); l != locked || u != unlocked {
		t.Fatalf("key slots in use after a failed parse: %d locked, %d unlocked; want %d, %d", l, u, locked, unlocked)
	}
}
