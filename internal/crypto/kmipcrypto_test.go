// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGCMKnownAnswers checks AES-256-GCM against the test cases of
// McGrew and Viega, "The Galois/Counter Mode of Operation (GCM)" (the
// revised submission to NIST that SP 800-38D standardises), Appendix B,
// test cases 13, 14 and 16.
func TestGCMKnownAnswers(t *testing.T) {
	zero32 := make([]byte, 32)
	tc16key := "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
	for _, tc := range []struct {
		name                      string
		key, iv, pt, aad, ct, tag string
	}{
		{"13", hex.EncodeToString(zero32), "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
		{"14", hex.EncodeToString(zero32), "000000000000000000000000", "00000000000000000000000000000000", "",
			"cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
		{"16", tc16key, "cafebabefacedbaddecaf888",
			"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
			"feedfacedeadbeeffeedfacedeadbeefabaddad2",
			"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
			"76fc6ece0f4e1768cddf8853bb2d551b"},
	} {
		key, iv, pt, aad := unhex(t, tc.key), unhex(t, tc.iv), unhex(t, tc.pt), unhex(t, tc.aad)
		ct, tag, err := GCMSeal(key, iv, pt, aad, 16)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if hex.EncodeToString(ct) != tc.ct || hex.EncodeToString(tag) != tc.tag {
			t.Fatalf("%s: got %x / %x", tc.name, ct, tag)
		}
		got, err := GCMOpen(key, iv, unhex(t, tc.ct), unhex(t, tc.tag), aad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: open: %v", tc.name, err)
		}
		// A truncated tag is the leading bytes of the full one
		// (SP 800-38D §5.2.1.2).
		_, short, err := GCMSeal(key, iv, pt, aad, 12)
		if err != nil || hex.EncodeToString(short) != tc.tag[:24] {
			t.Fatalf("%s: 96-bit tag %x, %v", tc.name, short, err)
		}
		bad := unhex(t, tc.tag)
		bad[0] ^= 1
		if _, err := GCMOpen(key, iv, unhex(t, tc.ct), bad, aad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%s: wrong tag: %v", tc.name, err)
		}
	}
}

// TestCBCKnownAnswers checks AES-256-CBC against SP 800-38A, Appendix
// F.2.5 (CBC-AES256.Encrypt). The padding block PKCS#5 appends to the
// block-aligned plaintext is checked by decryption.
func TestCBCKnownAnswers(t *testing.T) {
	key := unhex(t, "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
	iv := unhex(t, "000102030405060708090a0b0c0d0e0f")
	pt := unhex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
	want := "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"
	ct, err := CBCEncrypt(key, iv, pt)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != len(pt)+16 || hex.EncodeToString(ct[:len(pt)]) != want {
		t.Fatalf("got %x", ct)
	}
	got, err := CBCDecrypt(key, iv, ct)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("decrypt: %v", err)
	}
	// Without the padding block the last block's padding is wrong.
	if _, err := CBCDecrypt(key, iv, ct[:len(pt)]); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("unpadded: %v", err)
	}
	for _, n := range []int{0, 1, 15, 17, 31} {
		p := bytes.Repeat([]byte{'a'}, n)
		c, err := CBCEncrypt(key, iv, p)
		if err != nil || len(c) != (n/16+1)*16 {
			t.Fatalf("%d: %d bytes, %v", n, len(c), err)
		}
		if d, err := CBCDecrypt(key, iv, c); err != nil || !bytes.Equal(d, p) {
			t.Fatalf("%d: %v", n, err)
		}
	}
	for _, n := range []int{0, 15, 17} {
		if _, err := CBCDecrypt(key, iv, make([]byte, n)); !errors.Is(err, ErrInvalidLength) {
			t.Fatalf("%d-byte ciphertext: %v", n, err)
		}
	}
	if _, err := CBCEncrypt(key, iv[:15], pt); !errors.Is(err, ErrInvalidIV) {
		t.Fatalf("short IV: %v", err)
	}
	if _, err := CBCEncrypt(key[:31], iv, pt); !errors.Is(err, ErrInvalidKeyLength) {
		t.Fatalf("short key: %v", err)
	}
}

// TestMACKnownAnswers checks HMAC-SHA256/384/512 against RFC 4231, test
// case 2 ("Jefe").
func TestMACKnownAnswers(t *testing.T) {
	key, msg := []byte("Jefe"), []byte("what do ya want for nothing?")
	for h, want := range map[MACHash]string{
		MACSHA256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		MACSHA384: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
		MACSHA512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
	} {
		sum, err := MACSum(h, key, msg)
		if err != nil || hex.EncodeToString(sum) != want {
			t.Fatalf("%v: %x, %v", h, sum, err)
		}
		if ok, err := MACVerify(h, key, msg, unhex(t, want)); !ok || err != nil {
			t.Fatalf("%v: verify: %v %v", h, ok, err)
		}
		if ok, _ := MACVerify(h, key, msg, unhex(t, want)[:16]); ok {
			t.Fatalf("%v: truncated MAC verified", h)
		}
	}
}

func TestGCMParameterBounds(t *testing.T) {
	key := make([]byte, 32)
	for _, n := range []int{0, 1, 8, 11, 129, 4096} {
		if _, _, err := GCMSeal(key, make([]byte, n), nil, nil, 16); !errors.Is(err, ErrInvalidIV) {
			t.Fatalf("%d-byte IV: %v", n, err)
		}
	}
	for _, n := range []int{0, 4, 8, 11, 17, 32} {
		if _, _, err := GCMSeal(key, make([]byte, 12), nil, nil, n); !errors.Is(err, ErrInvalidTagLength) {
			t.Fatalf("%d-byte tag: %v", n, err)
		}
		if _, err := GCMOpen(key, make([]byte, 12), nil, make([]byte, n), nil); !errors.Is(err, ErrInvalidTagLength) {
			t.Fatalf("open with %d-byte tag: %v", n, err)
		}
	}
	// A 16-byte IV works with the full tag, not with a short one.
	ct, tag, err := GCMSeal(key, make([]byte, 16), []byte("x"), nil, 16)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := GCMOpen(key, make([]byte, 16), ct, tag, nil); err != nil || string(p) != "x" {
		t.Fatalf("16-byte IV: %v", err)
	}
	if _, _, err := GCMSeal(key, make([]byte, 16), nil, nil, 12); !errors.Is(err, ErrInvalidTagLength) {
		t.Fatalf("16-byte IV, 12-byte tag: %v", err)
	}
}
