// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"bytes"
	"testing"
)

func FuzzDecrypt(f *testing.F) {
	f.Add([]byte(`{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}`))
	f.Add([]byte{0x95, 0xa6, 'A', 'E', 'S', '2', '5', '6', 0xa0, 0xc4, 16})
	f.Add(make([]byte, 76))
	key, err := NewSecretKey(AES256, make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := key.Decrypt(ct, nil)
		if err == nil && len(pt) > len(ct) {
			t.Fatalf("plaintext longer than ciphertext")
		}
	})
}

func FuzzParseKeyVersion(f *testing.F) {
	f.Add([]byte("CiQKIMQrD3aHBH2z7EPmvKqcP8MKwQTDeUQkn+TfEyotvhMTEAESJAogMhSywaBOkm+8jk7gaYADYYZmgSERzq/UPTxkOlXQ9wYQARoMCOKakdgGEJ7Br/ECIkA3OTA1YjkzOGIxNzA3ODM3MmNiNjE4OTMzOTEwMzY1ODBjMjkzMzQ5OTU2NDk2MGYxMjU3NTNiMjI3ZGFlNGY0"))
	f.Add([]byte(`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"AES256"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseKeyVersion(b)
		if err != nil {
			return
		}
		defer v.Destroy()
		text, err := v.MarshalText()
		if err != nil {
			if v.Key != nil && v.HMACKey == nil {
				return // legacy keys have no HMAC key and cannot be re-encoded as protobuf
			}
			t.Fatalf("MarshalText of a parsed value: %v", err)
		}
		w, err := ParseKeyVersion(text)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		defer w.Destroy()
		again, _ := w.MarshalText()
		if !bytes.Equal(text, again) {
			t.Fatal("encoding is not stable")
		}
	})
}
