// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseTokenResponse(t *testing.T) {
	// The login sample of the reference (token shortened there too).
	body := []byte(`{"is_user": true, "box_admin": false, "appliance_id": "ae98ee17-f1df-4ff1-be52-52c74be703c8",
		"access_token": "M2ZkMjkxYjctNTcxYS00Mjk5LThiNzQtZjZhNDM5YjZhNTE2.eyJkYXRhIjoi",
		"expires_at": "2023-03-22T16:34:34.021762Z", "admin": true, "user": "admin"}`)
	tok, exp, err := parseTokenResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "M2ZkMjkxYjctNTcxYS00Mjk5LThiNzQtZjZhNDM5YjZhNTE2.eyJkYXRhIjoi" {
		t.Errorf("token = %q", tok)
	}
	if want := time.Date(2023, 3, 22, 16, 34, 34, 21762000, time.UTC); !exp.Equal(want) {
		t.Errorf("expires_at = %v, want %v", exp, want)
	}
	for _, tt := range []struct {
		body    string
		wantErr bool
		zeroExp bool
	}{
		{`{"access_token":"t"}`, false, true},
		{`{"access_token":"t","expires_at":null}`, false, true},
		{`{"access_token":"t","expires_at":"soon"}`, false, true},
		{`{"access_token":"t","expires_at":"2023-03-22T16:34:34.021762"}`, false, false},
		{`{"access_token":"t","expires_at":1700000000}`, false, true},
		{`{"access_token":""}`, true, true},
		{`{}`, true, true},
		{`[]`, true, true},
		{`not json`, true, true},
	} {
		_, exp, err := parseTokenResponse([]byte(tt.body))
		if (err != nil) != tt.wantErr || exp.IsZero() != tt.zeroExp {
			t.Errorf("parseTokenResponse(%s) = %v, %v", tt.body, exp, err)
		}
	}
}

func TestLifetime(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name    string
		expires time.Time
		date    string
		want    time.Duration
	}{
		{"no expiry", time.Time{}, "", defaultLifetime},
		{"local clock", now.Add(30 * time.Minute), "", 30 * time.Minute},
		{"small skew ignored", now.Add(30 * time.Minute), now.Add(2 * time.Second).Format(http.TimeFormat), 30 * time.Minute},
		{"server clock ahead", now.Add(time.Hour + 30*time.Minute), now.Add(time.Hour).Format(http.TimeFormat), 30 * time.Minute},
		{"server clock behind", now.Add(-time.Hour + 30*time.Minute), now.Add(-time.Hour).Format(http.TimeFormat), 30 * time.Minute},
		{"already expired", now.Add(-time.Minute), "", defaultLifetime},
	} {
		if got := lifetime(tt.expires, tt.date, now); got != tt.want {
			t.Errorf("%s: lifetime = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseError(t *testing.T) {
	for _, tt := range []struct {
		status int
		ctype  string
		body   string
		json   bool
		msg    string
	}{
		{409, "application/json", `{"error": "Secret already exists"}`, true, "Secret already exists"},
		{404, "application/json; charset=utf-8", `{"error":"Secret not found"}`, true, "Secret not found"},
		{404, "", ``, false, ""},
		{404, "text/html", `{"error":"Secret not found"}`, false, ""},
		{500, "application/json", `{"message":"x"}`, false, ""},
		{500, "application/json", `{"error":"a\nb"}`, true, "a b"},
	} {
		e := parseError(tt.status, tt.ctype, []byte(tt.body))
		if e.JSON != tt.json || e.Message != tt.msg || e.Status != tt.status {
			t.Errorf("parseError(%d, %q, %s) = %+v", tt.status, tt.ctype, tt.body, e)
		}
	}
	if !parseError(409, "application/json", []byte(`{"error":"Secret already exists"}`)).is(409, textSecretExists) {
		t.Error("exact 409 text not recognized")
	}
	if parseError(409, "application/json", []byte(`{"error":"secret already exists"}`)).is(409, textSecretExists) {
		t.Error("matching must be case-sensitive")
	}
}

func TestDecodeSecretData(t *testing.T) {
	// Reference example: secret_data "c2VjcmV0LWJ5dGVzLWJhc2U2NA==".
	v, err := decodeSecretData([]byte(`{"secret_data":"c2VjcmV0LWJ5dGVzLWJhc2U2NA==","secret_subtype_info":{"type":"text"}}`))
	if err != nil || string(v) != "secret-bytes-base64" {
		t.Fatalf("decodeSecretData = %q, %v", v, err)
	}
	if got := encodeSecretData([]byte("secret-bytes-base64")); got != "c2VjcmV0LWJ5dGVzLWJhc2U2NA==" {
		t.Fatalf("encodeSecretData = %q", got)
	}
	for _, body := range []string{
		`{"secret_data":{"k":"v"}}`,
		`{"secret_data":"c2VjcmV0LWJ5dGVzLWJhc2U2NA"}`, // unpadded
		`{"secret_data":"!!"}`,
		`{}`,
		`nope`,
	} {
		if _, err := decodeSecretData([]byte(body)); err == nil {
			t.Errorf("decodeSecretData(%s) succeeded", body)
		}
	}
}

func TestParseListPage(t *testing.T) {
	// Reference response shape; the field name matches case-insensitively
	// as in minio/kes.
	body := []byte(`{"Secrets":[{"name":"my-key","expired":false},{"name":"my-old","expired":true},{"name":"","expired":false},{"name":"other"}],
		"next_token":"eyJib3hfaWQiOiJ0ZW5hbnQtMSIsIm5leHRfY3R4IjoibXkta2V5In0="}`)
	names, next, err := parseListPage(body, "my")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"my-key"}) {
		t.Errorf("names = %q", names)
	}
	if next != "eyJib3hfaWQiOiJ0ZW5hbnQtMSIsIm5leHRfY3R4IjoibXkta2V5In0=" {
		t.Errorf("next = %q", next)
	}
}

func FuzzParseTokenResponse(f *testing.F) {
	f.Add([]byte(`{"access_token":"t","expires_at":"2023-03-22T16:34:34.021762Z"}`))
	f.Add([]byte(`{"access_token":"t","expires_at":"2023-03-22T16:34:34"}`))
	f.Add([]byte(`{"access_token":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, _, err := parseTokenResponse(body)
		if err == nil && tok == "" {
			t.Fatal("empty token accepted")
		}
	})
}

func FuzzParseError(f *testing.F) {
	f.Add(404, "application/json", []byte(`{"error":"Secret not found"}`))
	f.Add(500, "text/html", []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, ctype string, body []byte) {
		e := parseError(status, ctype, body)
		if len(e.Message) > 204 || !utf8.ValidString(e.Message) && utf8.Valid(body) {
			t.Fatalf("message not bounded or not valid: %q", e.Message)
		}
		if strings.ContainsAny(e.Message, "\n\r\x00") {
			t.Fatalf("message has control characters: %q", e.Message)
		}
		_ = e.Error()
	})
}

func FuzzDecodeSecretData(f *testing.F) {
	f.Add([]byte(`{"secret_data":"c2VjcmV0LWJ5dGVzLWJhc2U2NA=="}`))
	f.Add([]byte(`{"secret_data":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := decodeSecretData(body)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same secret_data.
		var r struct {
			SecretData string `json:"secret_data"`
		}
		if json.Unmarshal(body, &r) != nil {
			t.Fatal("decoded a body that is not JSON")
		}
		if got := base64.StdEncoding.EncodeToString(v); got != r.SecretData {
			t.Fatalf("round trip: %q != %q", got, r.SecretData)
		}
	})
}

func FuzzParseListPage(f *testing.F) {
	f.Add([]byte(`{"secrets":[{"name":"a","expired":false}],"next_token":"x"}`), "a")
	f.Add([]byte(`{"secrets":null}`), "")
	f.Fuzz(func(t *testing.T, body []byte, prefix string) {
		names, _, err := parseListPage(body, prefix)
		if err != nil {
			return
		}
		for _, n := range names {
			if n == "" || !strings.HasPrefix(n, prefix) {
				t.Fatalf("listed %q for prefix %q", n, prefix)
			}
		}
	})
}
