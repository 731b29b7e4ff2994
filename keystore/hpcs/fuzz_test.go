// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"bytes"
	"testing"
)

func FuzzParseSealed(f *testing.F) {
	f.Add(sealedValue{format: formatDirect, wrapped: []byte("ciphertext")}.marshal())
	f.Add(sealedValue{format: formatEnvelope, wrapped: []byte("wrapped"), nonce: make([]byte, gcmNonce), data: make([]byte, 40)}.marshal())
	f.Add([]byte{})
	f.Add([]byte{formatEnvelope, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseSealed(b)
		if err != nil {
			return
		}
		if !bytes.Equal(v.marshal(), b) {
			t.Fatal("parse and marshal do not round-trip")
		}
	})
}

func FuzzParseHead(f *testing.F) {
	f.Add(head{gen: 7, inline: []byte("sealed")}.marshal())
	f.Add(head{gen: 1, parts: []string{"02fd6835-6001-4482-a892-13bd2085f75d", "12e8c9c2-a162-472d-b7d6-8b9a86b815a6"}}.marshal())
	f.Add([]byte{headParts, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHead(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.marshal(), b) {
			t.Fatal("parse and marshal do not round-trip")
		}
	})
}

func FuzzParseTokenResponse(f *testing.F) {
	// The reference's IAM samples.
	f.Add(200, []byte(`{"access_token":"eyJraWQi","refresh_token":"dGhpcyBj","token_type":"Bearer","expires_in":3600,"expiration":1512161390}`))
	f.Add(400, []byte(`{"errorCode":"BXNIM0415E","errorMessage":"Provided API key could not be found.","context":{"requestId":"abc"}}`))
	f.Add(503, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		tok, ttl, err := parseTokenResponse(status, body)
		if err != nil {
			return
		}
		if status != 200 || ttl <= 0 || len(tok) <= len("Bearer ") || bytes.ContainsAny([]byte(tok), "\r\n") {
			t.Fatalf("accepted status %d: %q, %v", status, tok, ttl)
		}
	})
}

func TestParseTokenResponse(t *testing.T) {
	tok, ttl, err := parseTokenResponse(200, []byte(`{"access_token":"eyJraWQi","refresh_token":"dGhpcyBj","token_type":"Bearer","expires_in":3600,"expiration":1512161390}`))
	if err != nil || tok != "Bearer eyJraWQi" || ttl.Seconds() != 3600 {
		t.Fatalf("got %q, %v, %v", tok, ttl, err)
	}
	for _, body := range []string{
		`{"access_token":"x","token_type":"MAC","expires_in":3600}`,
		`{"access_token":"","token_type":"Bearer","expires_in":3600}`,
		`{"access_token":"x y","token_type":"Bearer","expires_in":3600}`,
		`{"access_token":"x","token_type":"Bearer","expires_in":0}`,
		`not json`,
	} {
		if _, _, err := parseTokenResponse(200, []byte(body)); err == nil {
			t.Errorf("accepted %s", body)
		}
	}
}
