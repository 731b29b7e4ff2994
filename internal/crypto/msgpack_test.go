// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// The MessagePack format (reference kes-api.md §5.3) carries the same
// iv, nonce and sealed bytes as the binary format. The upstream binary
// vector re-framed as MessagePack by hand must decrypt to the same
// plaintext, whatever algorithm name it carries.
func TestMsgpackCiphertext(t *testing.T) {
	binary := b64(t, "zwdDgHeRlIFRnJ7+DIhs/ka7GFK2CFSfDELqg1VCyTQzZ58o7MAdupMLk3ZjlMo2ZUDwldL2o41nAWDc")
	n := len(binary) - 28
	sealed, iv, nonce := binary[:n], binary[n:n+16], binary[n+16:]

	frame := func(alg string, binHeader func(int) []byte) []byte {
		var b bytes.Buffer
		b.WriteByte(0x95)                  // fixarray of 5
		b.WriteByte(0xa0 | byte(len(alg))) // fixstr
		b.WriteString(alg)
		b.WriteByte(0xd9) // str8 key id
		b.WriteByte(32)
		b.WriteString("0123456789abcdef0123456789abcdef")
		for _, part := range [][]byte{iv, nonce, sealed} {
			b.Write(binHeader(len(part)))
			b.Write(part)
		}
		return b.Bytes()
	}
	bin8 := func(n int) []byte { return []byte{0xc4, byte(n)} }
	bin16 := func(n int) []byte { return []byte{0xc5, byte(n >> 8), byte(n)} }

	key, err := NewSecretKey(AES256, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	defer key.Destroy()
	for _, ct := range [][]byte{
		frame("AES256-GCM_SHA256", bin8),
		frame("XCHACHA20-POLY1305", bin8), // the name is ignored: the key's type decides
		frame("AES256", bin16),
	} {
		got, err := key.Decrypt(ct, nil)
		if err != nil {
			t.Fatalf("Decrypt of a MessagePack ciphertext: %v", err)
		}
		if !bytes.Equal(got, make([]byte, 16)) {
			t.Fatalf("Decrypt = %x, want 16 zero bytes", got)
		}
	}

	// Trailing bytes, a wrong iv size or a truncated frame are rejected.
	good := frame("AES256", bin8)
	for name, bad := range map[string][]byte{
		"trailing byte": append(bytes.Clone(good), 0),
		"truncated":     good[:len(good)-1],
		"unknown alg":   frame("DES", bin8),
	} {
		if _, err := key.Decrypt(bad, nil); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: got %v, want ErrDecrypt", name, err)
		}
	}
}
