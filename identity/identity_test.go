// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// The identity of an API key is SHA-256 over the fixed Ed25519 SPKI
// prefix and the public key (reference kes-api.md §2), computed here
// independently of the kes SDK.
func TestAPIKeyIdentity(t *testing.T) {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	s := "kes:v1:" + base64.StdEncoding.EncodeToString(append([]byte{0}, seed...))
	key, err := ParseAPIKey(s)
	if err != nil {
		t.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	spki := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}, pub...)
	sum := sha256.Sum256(spki)
	want := Identity(hex.EncodeToString(sum[:]))
	if got := OfAPIKey(key); got != want {
		t.Fatalf("OfAPIKey = %s, want %s", got, want)
	}
	// The certificate a client builds from the key has the same identity.
	cert, err := Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	if got := FromCertificate(leaf); got != want {
		t.Fatalf("FromCertificate = %s, want %s", got, want)
	}
	if !Valid(string(want)) {
		t.Fatal("a computed identity is not Valid")
	}
}

func TestParseAPIKeyErrors(t *testing.T) {
	secret := "kes:v1:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // type 1: unsupported
	for _, s := range []string{"", "kes:v1:", "kes:v1:AAAA", secret, "not base64 at all"} {
		_, err := ParseAPIKey(s)
		if err == nil {
			t.Fatalf("ParseAPIKey(%q) succeeded", s)
		}
		if len(s) > 10 && strings.Contains(err.Error(), s[7:]) {
			t.Fatalf("error %q echoes the key", err)
		}
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		strings.Repeat("0", 64): true, strings.Repeat("f", 64): true,
		strings.Repeat("F", 64): false, strings.Repeat("0", 63): false, "disabled": false, "_": false, "": false,
	} {
		if Valid(s) != want {
			t.Errorf("Valid(%q) = %v", s, !want)
		}
	}
}

func FuzzParseAPIKey(f *testing.F) {
	f.Add("kes:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("kes:v1:")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseAPIKey(s)
		if err != nil {
			return
		}
		if !Valid(string(OfAPIKey(k))) {
			t.Fatal("a parsed API key has an invalid identity")
		}
	})
}
