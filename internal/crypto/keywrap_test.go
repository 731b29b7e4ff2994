// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// TestKeyWrapRFC3394 checks AES Key Wrap against the test vectors of RFC
// 3394 §4.1–4.6 (every KEK size with every key size it allows).
func TestKeyWrapRFC3394(t *testing.T) {
	const (
		kek128 = "000102030405060708090A0B0C0D0E0F"
		kek192 = "000102030405060708090A0B0C0D0E0F1011121314151617"
		kek256 = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
		key128 = "00112233445566778899AABBCCDDEEFF"
		key192 = "00112233445566778899AABBCCDDEEFF0001020304050607"
		key256 = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"
	)
	for _, tc := range []struct{ name, kek, key, wrapped string }{
		{"4.1 128-bit key, 128-bit KEK", kek128, key128, "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"},
		{"4.2 128-bit key, 192-bit KEK", kek192, key128, "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"},
		{"4.3 128-bit key, 256-bit KEK", kek256, key128, "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"},
		{"4.4 192-bit key, 192-bit KEK", kek192, key192, "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2"},
		{"4.5 192-bit key, 256-bit KEK", kek256, key192, "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"},
		{"4.6 256-bit key, 256-bit KEK", kek256, key256, "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kek, key, want := unhex(t, lower(tc.kek)), unhex(t, lower(tc.key)), unhex(t, lower(tc.wrapped))
			got, err := KeyWrap(kek, key)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("KeyWrap = %x, %v; want %x", got, err, want)
			}
			back, err := KeyUnwrap(kek, want)
			if err != nil || !bytes.Equal(back, key) {
				t.Fatalf("KeyUnwrap = %x, %v", back, err)
			}
		})
	}
}

// TestKeyWrapPadRFC5649 checks AES Key Wrap with Padding against RFC 5649
// §6: a 20-octet key (two rounds of W) and a 7-octet key (the one-block
// case).
func TestKeyWrapPadRFC5649(t *testing.T) {
	kek := unhex(t, "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for _, tc := range []struct{ name, key, wrapped string }{
		{"20 octets", "c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"7 octets", "466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, want := unhex(t, tc.key), unhex(t, tc.wrapped)
			got, err := KeyWrapPad(kek, key)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("KeyWrapPad = %x, %v; want %x", got, err, want)
			}
			back, err := KeyUnwrapPad(kek, want)
			if err != nil || !bytes.Equal(back, key) {
				t.Fatalf("KeyUnwrapPad = %x, %v", back, err)
			}
		})
	}
}

// TestKeyUnwrapRefuses covers what an attacker sends: flipped bits in
// every position, truncated and extended blobs, the wrong KEK, and a
// KW blob given to KWP (and back). Each is ErrUnwrap or ErrInvalidLength
// and returns nothing.
func TestKeyUnwrapRefuses(t *testing.T) {
	kek := unhex(t, "000102030405060708090a0b0c0d0e0f")
	other := unhex(t, "0f0e0d0c0b0a09080706050403020100")
	key := unhex(t, "00112233445566778899aabbccddeeff0011223344556677")
	kw, _ := KeyWrap(kek, key)
	kwp, _ := KeyWrapPad(kek, key[:21])
	short, _ := KeyWrapPad(kek, key[:5])
	type unwrapFunc func(kek, wrapped []byte) ([]byte, error)
	for _, tc := range []struct {
		name    string
		fn      unwrapFunc
		wrapped []byte
	}{
		{"KW", KeyUnwrap, kw},
		{"KWP", KeyUnwrapPad, kwp},
		{"KWP one block", KeyUnwrapPad, short},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.wrapped {
				bad := bytes.Clone(tc.wrapped)
				bad[i] ^= 0x01
				if out, err := tc.fn(kek, bad); !errors.Is(err, ErrUnwrap) || out != nil {
					t.Fatalf("bit flipped in byte %d: %x, %v", i, out, err)
				}
			}
			if out, err := tc.fn(other, tc.wrapped); !errors.Is(err, ErrUnwrap) || out != nil {
				t.Fatalf("wrong KEK: %x, %v", out, err)
			}
			for _, n := range []int{0, 7, 8, len(tc.wrapped) - 1, len(tc.wrapped) - 8} {
				out, err := tc.fn(kek, tc.wrapped[:n])
				if err == nil || out != nil {
					t.Fatalf("truncated to %d bytes: %x, %v", n, out, err)
				}
			}
			long := append(bytes.Clone(tc.wrapped), make([]byte, 8)...)
			if out, err := tc.fn(kek, long); err == nil || out != nil {
				t.Fatalf("extended by 8 bytes: %x, %v", out, err)
			}
		})
	}
	if out, err := KeyUnwrapPad(kek, kw); !errors.Is(err, ErrUnwrap) || out != nil {
		t.Errorf("KW blob unwrapped as KWP: %x, %v", out, err)
	}
	if out, err := KeyUnwrap(kek, kwp); !errors.Is(err, ErrUnwrap) || out != nil {
		t.Errorf("KWP blob unwrapped as KW: %x, %v", out, err)
	}
}

// TestKeyWrapLengths covers the input bounds.
func TestKeyWrapLengths(t *testing.T) {
	kek := make([]byte, 32)
	for _, n := range []int{0, 8, 15, 17, KeyWrapMaxSize + 8} {
		if _, err := KeyWrap(kek, make([]byte, n)); !errors.Is(err, ErrInvalidLength) {
			t.Errorf("KeyWrap of %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, KeyWrapMaxSize + 1} {
		if _, err := KeyWrapPad(kek, make([]byte, n)); !errors.Is(err, ErrInvalidLength) {
			t.Errorf("KeyWrapPad of %d bytes: %v", n, err)
		}
	}
	if _, err := KeyWrap(make([]byte, 20), make([]byte, 16)); !errors.Is(err, ErrInvalidKeyLength) {
		t.Errorf("KeyWrap with a 20-byte KEK: %v", err)
	}
	// Every padded length round-trips.
	for n := 1; n <= 40; n++ {
		key := bytes.Repeat([]byte{byte(n)}, n)
		w, err := KeyWrapPad(kek, key)
		if err != nil || len(w) != (n+7)/8*8+8 {
			t.Fatalf("KeyWrapPad of %d bytes: %d bytes, %v", n, len(w), err)
		}
		if back, err := KeyUnwrapPad(kek, w); err != nil || !bytes.Equal(back, key) {
			t.Fatalf("KeyUnwrapPad of %d bytes: %v", n, err)
		}
	}
}

func lower(s string) string { return string(bytes.ToLower([]byte(s))) }

func FuzzKeyUnwrap(f *testing.F) {
	kek := make([]byte, 16)
	w, _ := KeyWrap(kek, make([]byte, 16))
	wp, _ := KeyWrapPad(kek, make([]byte, 5))
	f.Add(w)
	f.Add(wp)
	f.Fuzz(func(t *testing.T, b []byte) {
		if out, err := KeyUnwrap(kek, b); err == nil {
			if again, _ := KeyWrap(kek, out); !bytes.Equal(again, b) {
				t.Fatal("KeyUnwrap accepted a blob KeyWrap does not make")
			}
		}
		if out, err := KeyUnwrapPad(kek, b); err == nil {
			if again, _ := KeyWrapPad(kek, out); !bytes.Equal(again, b) {
				t.Fatal("KeyUnwrapPad accepted a blob KeyWrapPad does not make")
			}
		}
	})
}
