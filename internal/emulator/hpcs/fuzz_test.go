// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"encoding/base64"
	"testing"
)

func FuzzParseCiphertext(f *testing.F) {
	v := &keyVersion{id: "8e309bae-b3ec-4270-9b87-89f8697fe54f", material: make([]byte, 32)}
	ct, err := seal("key", v, []byte("dek"), []string{"a"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ct)
	// The documented rewrap example envelope.
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"ciphertext":"mIzRRF0=","iv":"lbwxXlAW2DS7+5jGz5Y1Kg==","version":"4.0.0","handle":"8e309bae-b3ec-4270-9b87-89f8697fe54f"}`)))
	f.Add("")
	f.Add("e30=")
	f.Fuzz(func(t *testing.T, s string) {
		handle, iv, sealed, err := parseCiphertext(s)
		if err != nil {
			return
		}
		if len(iv) != 12 || len(sealed) < 16 {
			t.Fatalf("accepted iv %d bytes, ciphertext %d bytes", len(iv), len(sealed))
		}
		// Whatever parses must not open under another version.
		other := &keyVersion{id: handle + "x", material: make([]byte, 32)}
		if _, _, err := open("key", []*keyVersion{other}, s, nil); err == nil {
			t.Fatal("opened a ciphertext that names another version")
		}
	})
}

func TestParseCiphertextStrict(t *testing.T) {
	v := &keyVersion{id: "8e309bae-b3ec-4270-9b87-89f8697fe54f", material: make([]byte, 32)}
	ct, err := seal("key", v, []byte("secret"), []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if pt, _, err := open("key", []*keyVersion{v}, ct, []string{"a"}); err != nil || string(pt) != "secret" {
		t.Fatalf("open: %v", err)
	}
	for i := range len(ct) {
		for bit := range 8 {
			b := []byte(ct)
			b[i] ^= 1 << bit
			if pt, _, err := open("key", []*keyVersion{v}, string(b), []string{"a"}); err == nil && string(pt) == "secret" {
				t.Fatalf("flipping bit %d of byte %d went unnoticed", bit, i)
			}
		}
	}
	if _, _, err := open("other-key", []*keyVersion{v}, ct, []string{"a"}); err == nil {
		t.Fatal("a ciphertext opened under another key ID")
	}
}

func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{"exact:std-a,", "name:std,", "alias:the-root,", "not:exact:x,", "escape:name:x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		match, err := parseSearch(s)
		if err != nil || match == nil {
			return
		}
		match(&key{name: "kes-a", aliases: []string{"kes-a"}})
	})
}
