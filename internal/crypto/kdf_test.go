// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"errors"
	"testing"
)

// TestPBKDF2Vectors checks PBKDF2 against RFC 6070 §2 (PBKDF2-HMAC-SHA1;
// the 16777216-iteration case is left out, it takes minutes) and RFC
// 7914 §11 (PBKDF2-HMAC-SHA256).
func TestPBKDF2Vectors(t *testing.T) {
	for _, tc := range []struct {
		name           string
		h              KDFHash
		password, salt string
		iter, n        int
		want           string
	}{
		{"RFC 6070 c=1", KDFSHA1, "password", "salt", 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"},
		{"RFC 6070 c=2", KDFSHA1, "password", "salt", 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
		{"RFC 6070 c=4096", KDFSHA1, "password", "salt", 4096, 20, "4b007901b765489abead49d926f721d065a429c1"},
		{"RFC 6070 c=4096 dkLen=25", KDFSHA1, "passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 25, "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"},
		{"RFC 6070 NUL bytes", KDFSHA1, "pass\x00word", "sa\x00lt", 4096, 16, "56fa6aa75548099dcc37d7f03425e0c3"},
		{"RFC 7914 c=1", KDFSHA256, "passwd", "salt", 1, 64, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"},
		{"RFC 7914 c=80000", KDFSHA256, "Password", "NaCl", 80000, 64, "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PBKDF2(context.Background(), tc.h, []byte(tc.password), []byte(tc.salt), tc.iter, tc.n)
			if err != nil || !bytes.Equal(got, unhex(t, tc.want)) {
				t.Fatalf("PBKDF2 = %x, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// TestPBKDF2MatchesStdlib cross-checks every hash and odd lengths with
// the standard library's crypto/pbkdf2.
func TestPBKDF2MatchesStdlib(t *testing.T) {
	for _, h := range []KDFHash{KDFSHA1, KDFSHA224, KDFSHA256, KDFSHA384, KDFSHA512} {
		for _, n := range []int{1, 31, 32, 33, 100} {
			got, err := PBKDF2(context.Background(), h, []byte("base"), []byte("salt"), 5000, n)
			want, werr := pbkdf2.Key(h.New(), "base", []byte("salt"), 5000, n)
			if err != nil || werr != nil || !bytes.Equal(got, want) {
				t.Fatalf("hash %d, %d bytes: %x, %v; want %x", h, n, got, err, want)
			}
		}
	}
}

// TestPBKDF2Canceled: a large iteration count stops at the deadline.
func TestPBKDF2Canceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if out, err := PBKDF2(ctx, KDFSHA256, []byte("p"), []byte("s"), 1<<30, 32); !errors.Is(err, context.Canceled) || out != nil {
		t.Fatalf("PBKDF2 with a canceled context: %x, %v", out, err)
	}
	if _, err := PBKDF2(context.Background(), KDFSHA256, []byte("p"), []byte("s"), 0, 32); err == nil {
		t.Fatal("PBKDF2 with 0 iterations succeeded")
	}
	if _, err := PBKDF2(context.Background(), KDFHash(99), []byte("p"), []byte("s"), 1, 32); !errors.Is(err, ErrUnknownHash) {
		t.Fatalf("unknown hash: %v", err)
	}
}

// TestCounterKDFVectors checks the SP 800-108 counter-mode KDF against
// NIST CAVP vectors (KBKDF, CAVS 14.4, KDFCTR_gen.rsp, [PRF=HMAC_SHA256]
// [CTRLOCATION=BEFORE_FIXED] [RLEN=32_BITS], COUNT 0, 10, 20 and 30;
// COUNT 30 spans two PRF blocks).
func TestCounterKDFVectors(t *testing.T) {
	for _, tc := range []struct {
		name, ki, fixed string
		n               int
		ko              string
	}{
		{"COUNT 0", "dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0", "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b864a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac", 16, "10621342bfb0fd40046c0e29f2cfdbf0"},
		{"COUNT 10", "e204d6d466aad507ffaf6d6dab0a5b26152c9e21e764370464e360c8fbc765c6", "7b03b98d9f94b899e591f3ef264b71b193fba7043c7e953cde23bc5384bc1a6293580115fae3495fd845dadbd02bd6455cf48d0f62b33e62364a3a80", 32, "770dfab6a6a4a4bee0257ff335213f78d8287b4fd537d5c1fffa956910e7c779"},
		{"COUNT 20", "dc60338d884eecb72975c603c27b360605011756c697c4fc388f5176ef81efb1", "44d7aa08feba26093c14979c122c2437c3117b63b78841cd10a4bc5ed55c56586ad8986d55307dca1d198edcffbc516a8fbe6152aa428cdd800c062d", 20, "29ac07dccf1f28d506cd623e6e3fc2fa255bd60b"},
		{"COUNT 30", "c4bedbddb66493e7c7259a3bbbc25f8c7e0ca7fe284d92d431d9cd99a0d214ac", "1c69c54766791e315c2cc5c47ecd3ffab87d0d273dd920e70955814c220eacace6a5946542da3dfe24ff626b4897898cafb7db83bdff3c14fa46fd4b", 40, "1da47638d6c9c4d04d74d4640bbd42ab814d9e8cc22f4326695239f96b0693f12d0dd1152cf44430"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CounterKDF(KDFSHA256, unhex(t, tc.ki), unhex(t, tc.fixed), tc.n)
			if err != nil || !bytes.Equal(got, unhex(t, tc.ko)) {
				t.Fatalf("CounterKDF = %x, %v; want %s", got, err, tc.ko)
			}
		})
	}
}

// TestHMACKDF: the HMAC method is HMAC itself, cut to the length; longer
// than the hash is refused, not stretched.
func TestHMACKDF(t *testing.T) {
	key, data := []byte("key"), []byte("data")
	full, _ := MACSum(MACSHA256, key, data)
	got, err := HMACKDF(KDFSHA256, key, data, 16)
	if err != nil || !bytes.Equal(got, full[:16]) {
		t.Fatalf("HMACKDF = %x, %v", got, err)
	}
	if _, err := HMACKDF(KDFSHA256, key, data, 33); !errors.Is(err, ErrInvalidLength) {
		t.Fatalf("HMACKDF of 33 bytes with SHA-256: %v", err)
	}
}
