// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type decryptReq struct {
	Ciphertext []byte `json:"ciphertext"`
	Context    []byte `json:"context"`
	Version    string `json:"version"`
}

type bulkReq []struct {
	Ciphertext []byte `json:"ciphertext"`
	Context    []byte `json:"context"`
}

// checkFast checks the fast path against encoding/json on b: where the
// fast path decodes, encoding/json decodes the same; where it waits for
// more, encoding/json cannot decide on b either.
func checkFast(t *testing.T, b []byte) {
	t.Helper()
	var f reqFields
	st := parseFastObject(b, 0, &decryptShape, &f)
	var want decryptReq
	err := json.NewDecoder(bytes.NewReader(b)).Decode(&want)
	switch {
	case st >= 0:
		if err != nil {
			t.Fatalf("fast path decoded %q, encoding/json: %v", b, err)
		}
		got := decryptReq{f.vals[0], f.vals[1], string(f.vals[2])}
		if !equalBytesField(got.Ciphertext, want.Ciphertext) || !equalBytesField(got.Context, want.Context) || got.Version != want.Version {
			t.Fatalf("%q: fast path %+v, encoding/json %+v", b, got, want)
		}
	case st == incomplete:
		if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("fast path waits for more of %q, encoding/json decided: %v", b, err)
		}
	}

	var fs []reqFields
	st = parseFastArray(b, &bulkShape, maxBulkItems, &fs)
	var wantBulk bulkReq
	err = json.NewDecoder(bytes.NewReader(b)).Decode(&wantBulk)
	switch {
	case st >= 0:
		if err != nil {
			t.Fatalf("fast path decoded array %q, encoding/json: %v", b, err)
		}
		if len(fs) != len(wantBulk) || (wantBulk == nil) {
			t.Fatalf("%q: fast path %d items, encoding/json %d (nil: %v)", b, len(fs), len(wantBulk), wantBulk == nil)
		}
		for i := range fs {
			if !equalBytesField(fs[i].vals[0], wantBulk[i].Ciphertext) || !equalBytesField(fs[i].vals[1], wantBulk[i].Context) {
				t.Fatalf("%q item %d: fast path %q %q, encoding/json %q %q", b, i, fs[i].vals[0], fs[i].vals[1], wantBulk[i].Ciphertext, wantBulk[i].Context)
			}
		}
	case st == incomplete:
		if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("fast path waits for more of array %q, encoding/json decided: %v", b, err)
		}
	}
}

// equalBytesField compares []byte fields as encoding/json sets them:
// nil (absent) and empty ("") differ.
func equalBytesField(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

var fastSeeds = []string{
	``,
	`{}`,
	` { } `,
	`{"ciphertext":"Y3R4","context":"Y3R4"}`,
	`{"ciphertext":"Y3R4","context":"Y3R4","version":"2"}`,
	`{"ciphertext":"","context":""}`,
	`{"ciphertext":"Y3R4", "context" : "Y3R4" }trailing`,
	"{\n\t\"context\":\r\"AAAA\"}",
	`{"ciphertext":"Y3R4","ciphertext":"AAAA"}`,
	`{"Ciphertext":"Y3R4"}`,
	`{"ciphertext":null}`,
	`{"ciphertext":"Y3R"}`,
	`{"ciphertext":"Y3R4=="}`,
	`{"version":"a\"b"}`,
	`{"version":"\u0041"}`,
	`{"other":1}`,
	`{"ciphertext":"Y3R4",}`,
	`{"ciphertext":"Y3`,
	`{"ciphertext"`,
	`[`,
	`[]`,
	`[{}]`,
	`[{"ciphertext":"Y3R4","context":"Y3R4"},{"ciphertext":"AAAA"}]`,
	`[{"ciphertext":"Y3R4"},]`,
	`[{"ciphertext":"Y3R4"} {}]`,
	`null`,
	`"x"`,
}

func TestFastDecodeSeeds(t *testing.T) {
	for _, s := range fastSeeds {
		checkFast(t, []byte(s))
		for i := range len(s) {
			checkFast(t, []byte(s[:i]))
		}
	}
	// The shapes MinIO sends are decoded by the fast path.
	for _, s := range []string{`{"ciphertext":"Y3R4","context":"Y3R4"}`, `{"context":"Y3R4"}`} {
		var f reqFields
		if parseFastObject([]byte(s), 0, &decryptShape, &f) < 0 {
			t.Errorf("%s: not decoded by the fast path", s)
		}
	}
}

func FuzzFastDecode(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFast(t, b)
	})
}

// trickleBody hands out its bytes one read at a time, a byte each.
type trickleBody struct{ b []byte }

func (r *trickleBody) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], r.b = r.b[0], r.b[1:]
	return 1, nil
}

func (r *trickleBody) Close() error { return nil }

// decodeFast decodes as encoding/json does whether the body comes at once
// or a byte per read, fast-path shaped or not, and reads the body to its
// end after the value.
func TestDecodeFastAgainstJSON(t *testing.T) {
	for _, s := range fastSeeds {
		for _, trickle := range []bool{false, true} {
			var body io.ReadCloser = io.NopCloser(strings.NewReader(s))
			if trickle {
				body = &trickleBody{[]byte(s)}
			}
			r := httptest.NewRequest(http.MethodPut, "/v1/key/decrypt/k", nil)
			r.Body = body
			c := &call{r: r}
			var req decryptReq
			var f reqFields
			fast, err := c.decodeFast(&req, false, func(b []byte) int {
				f = reqFields{}
				return parseFastObject(b, 0, &decryptShape, &f)
			})
			if fast {
				req = decryptReq{f.vals[0], f.vals[1], string(f.vals[2])}
			}
			var want decryptReq
			wantErr := json.NewDecoder(strings.NewReader(s)).Decode(&want)
			if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Fatalf("%q (trickle %v): error %v, encoding/json %v", s, trickle, err, wantErr)
			}
			if err == nil && (!equalBytesField(req.Ciphertext, want.Ciphertext) || !equalBytesField(req.Context, want.Context) || req.Version != want.Version) {
				t.Fatalf("%q (trickle %v): %+v, encoding/json %+v", s, trickle, req, want)
			}
			if n, _ := body.Read(make([]byte, 1)); err == nil && n != 0 {
				t.Fatalf("%q (trickle %v): body not read to its end", s, trickle)
			}
		}
	}
}
