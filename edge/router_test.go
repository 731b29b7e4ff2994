// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRouting pins what chi's router must keep of the KES answers: the
// exact 404 and 405, no redirect for a prefix route without its slash,
// routing on the decoded path, methods chi does not know, and a policy
// that sees the path as sent, never a cleaned one.
func TestRouting(t *testing.T) {
	p := newPKI(t)
	admin, minio := newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), ""))
	ctx := context.Background()
	for _, k := range []string{"minio-k", "minio-internal-1"} {
		if err := e.kms(admin).CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	ac := e.raw(apiCert(t, admin))
	mc := e.raw(apiCert(t, minio))
	for _, proto := range []string{"h2", "http/1.1"} {
		t.Run(proto, func(t *testing.T) {
			if proto == "http/1.1" {
				for _, c := range []*http.Client{ac, mc} {
					c.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
					c.Transport.(*http.Transport).ForceAttemptHTTP2 = false
					c.Transport.(*http.Transport).CloseIdleConnections()
				}
			}
			for _, tt := range []struct {
				client       *http.Client
				method, path string
				code         int
				body         string // exact
				accept       string
			}{
				{ac, "GET", "/v1/key/list", 200, `{"names":["minio-internal-1","minio-k"]}` + "\n", ""},
				{ac, "GET", "/v1/key/list/", 200, `{"names":["minio-internal-1","minio-k"]}` + "\n", ""},
				{ac, "GET", "/v1/key/list/minio-k*", 200, `{"names":["minio-k"]}` + "\n", ""},
				{ac, "POST", "/v1/key/create", 400, errorBody("key name '' is empty, too long or contains invalid characters"), ""},
				{ac, "GET", "/v1/key/describe/a%2Fb", 400, errorBody("key name 'a/b' is empty, too long or contains invalid characters"), ""},
				{ac, "GET", "/v1/key/describe//k", 400, errorBody("key name '/k' is empty, too long or contains invalid characters"), ""},
				{ac, "GET", "/v1/key%2Fdescribe/minio-k", 200, "", ""},
				{ac, "FOO", "/v1/key/create/x", 405, errorBody("received method 'FOO' expected 'PUT'"), "PUT"},
				{ac, "DELETE", "/v1/key/list/", 405, errorBody("received method 'DELETE' expected 'GET'"), "GET"},
				{ac, "PATCH", "/version", 405, errorBody("received method 'PATCH' expected 'GET'"), "GET"},
				{ac, "GET", "/version/", 404, "404 page not found\n", ""},
				{ac, "GET", "/v1/identity/self/describe/", 404, "404 page not found\n", ""},
				{ac, "GET", "/v1/key/", 404, "404 page not found\n", ""},
				{ac, "GET", "/v1//key/list/", 404, "404 page not found\n", ""},
				{ac, "FOO", "/nothing", 404, "404 page not found\n", ""},
				{ac, "GET", "/V1/key/list/", 404, "404 page not found\n", ""},
				// The policy sees the path as sent: cleaned, this one would
				// be /v1/key/generate/minio-k, which minio may use.
				{mc, "POST", "/v1/key/generate/minio-internal-1/../minio-k", 403, errorBody("not authorized: insufficient permissions"), ""},
				{mc, "POST", "/v1/key/generate/./minio-k", 403, errorBody("not authorized: insufficient permissions"), ""},
				{mc, "POST", "/v1/key/generate/minio-k/", 400, errorBody("key name 'minio-k/' is empty, too long or contains invalid characters"), ""},
				{mc, "GET", "/v1/key/list", 200, "", ""},
			} {
				r := e.do(tt.client, tt.method, tt.path, nil)
				if r.code != tt.code || (tt.body != "" && r.body != tt.body) {
					t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, r.code, r.body, tt.code, tt.body)
				}
				if got := r.header.Get("Accept"); got != tt.accept {
					t.Errorf("%s %s: Accept %q, want %q", tt.method, tt.path, got, tt.accept)
				}
				if loc := r.header.Get("Location"); loc != "" {
					t.Errorf("%s %s: redirected to %q", tt.method, tt.path, loc)
				}
			}
		})
	}
}

// TestAnswerEncoding checks that the hand-built answers of generate,
// decrypt and bulk decrypt are byte for byte what encoding/json writes.
func TestAnswerEncoding(t *testing.T) {
	values := [][]byte{nil, {}, {0}, {1, 2}, {1, 2, 3}, bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0x3e}, 77)}
	encode := func(v any) string {
		var b bytes.Buffer
		json.NewEncoder(&b).Encode(v)
		return b.String()
	}
	for _, p := range values {
		for _, ct := range values {
			b := []byte{'{'}
			b = appendBytesField(b, "plaintext", p)
			b = append(b, ',')
			b = appendBytesField(b, "ciphertext", ct)
			b = append(b, "}\n"...)
			want := encode(struct {
				Plaintext  []byte `json:"plaintext"`
				Ciphertext []byte `json:"ciphertext"`
			}{p, ct})
			if string(b) != want {
				t.Fatalf("got %q, want %q", b, want)
			}
			if n := 4 + bytesFieldSize("plaintext", p) + bytesFieldSize("ciphertext", ct); len(b) > n {
				t.Fatalf("%d bytes, more than the %d reserved", len(b), n)
			}
		}
	}
	// The handlers themselves, through the recorder of a real request.
	w := httptest.NewRecorder()
	writeBody(w, []byte(`{"plaintext":null}`+"\n"))
	if w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Content-Length") != "19" || w.Code != 200 {
		t.Fatalf("headers %v, status %d", w.Header(), w.Code)
	}
	if !strings.HasSuffix(w.Body.String(), "}\n") {
		t.Fatal(w.Body.String())
	}
}
