// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package pkcs11

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseBlob(t *testing.T) {
	iv := bytes.Repeat([]byte{0x11}, 12)
	tag := bytes.Repeat([]byte{0x22}, 16)
	valid := append(append([]byte{0x01}, iv...), tag...) // empty plaintext
	for _, tt := range []struct {
		name string
		in   []byte
		err  error
	}{
		{"empty", nil, errMalformed},
		{"version only", []byte{0x01}, errMalformed},
		{"one byte short", valid[:len(valid)-1], errMalformed},
		{"version 0", append([]byte{0x00}, valid[1:]...), errBlobVersion},
		{"version 2", append([]byte{0x02}, valid[1:]...), errBlobVersion},
		{"empty plaintext", valid, nil},
		{"with ciphertext", append(append([]byte{}, valid...), 0xAA, 0xBB), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gotIV, ct, err := parseBlob(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(gotIV, iv) || !bytes.Equal(ct, tt.in[13:]) {
				t.Fatalf("IV %x, ciphertext %x", gotIV, ct)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	b := marshalRecord(0x0102030405060708, []byte("sealed"))
	if !bytes.Equal(b, []byte("\x01\x02\x03\x04\x05\x06\x07\x08sealed")) {
		t.Fatalf("record = %x", b)
	}
	seq, sealed, err := parseRecord(b)
	if err != nil || seq != 0x0102030405060708 || string(sealed) != "sealed" {
		t.Fatalf("parseRecord = %d, %q, %v", seq, sealed, err)
	}
	if _, _, err := parseRecord(b[:7]); err == nil {
		t.Fatal("parseRecord of 7 bytes succeeded")
	}
}

func FuzzParseBlob(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x01})
	f.Add(append([]byte{0x01}, make([]byte, 28)...))
	f.Add(append([]byte{0x02}, make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		iv, ct, err := parseBlob(b)
		if err != nil {
			if iv != nil || ct != nil {
				t.Fatal("parseBlob returned data with an error")
			}
			return
		}
		if len(iv) != ivSize || len(ct) < tagSize {
			t.Fatalf("IV of %d bytes, ciphertext of %d", len(iv), len(ct))
		}
		if !bytes.Equal(marshalBlob(iv, ct), b) {
			t.Fatal("marshalBlob(parseBlob(b)) != b")
		}
		seq, sealed, err := parseRecord(b)
		if err == nil && !bytes.Equal(marshalRecord(seq, sealed), b) {
			t.Fatal("marshalRecord(parseRecord(b)) != b")
		}
	})
}
