// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestWriteBodyHeaders checks the headers of writeBody's answers, whose
// values are shared between answers, for lengths on both sides of the
// cached ones: the same as Header.Set would give, and unchanged by what
// one answer's writer does to its own header afterwards.
func TestWriteBodyHeaders(t *testing.T) {
	for _, n := range []int{0, 1, 99, 100, 200, 1023, 1024, 1025, 5000} {
		for range 2 { // made, then from the cache
			body := bytes.Repeat([]byte{'x'}, n)
			w := httptest.NewRecorder()
			writeBody(w, bytes.Clone(body))
			h := w.Result().Header
			if got := h.Values("Content-Type"); len(got) != 1 || got[0] != "application/json" {
				t.Fatalf("n=%d: Content-Type %q", n, got)
			}
			if got := h.Values("Content-Length"); len(got) != 1 || got[0] != strconv.Itoa(n) {
				t.Fatalf("n=%d: Content-Length %q", n, got)
			}
			if !bytes.Equal(w.Body.Bytes(), body) {
				t.Fatalf("n=%d: body differs", n)
			}
			// A writer that adds to its header after the answer must
			// not change the shared values.
			w.Header().Add("Content-Type", "text/plain")
			w.Header().Add("Content-Length", "7")
		}
	}
	if v := jsonType; len(v) != 1 || v[0] != "application/json" {
		t.Fatalf("jsonType changed: %q", v)
	}
	if v := contentLength(200); len(v) != 1 || v[0] != "200" {
		t.Fatalf("contentLength(200) changed: %q", v)
	}
	if n := testing.AllocsPerRun(100, func() { contentLength(200) }); n != 0 {
		t.Errorf("a cached Content-Length allocates %v times", n)
	}
}
