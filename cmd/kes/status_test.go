// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// kes status prints the keystore line only for a server that reports a
// keystore whose compare-and-swap holds within one node.
func TestKeystoreNote(t *testing.T) {
	for body, want := range map[string]bool{
		`{"version":"v","keystore_linearizable":false}`: true,
		`{"version":"v","keystore_linearizable":true}`:  false,
		`{"version":"v"}`:           false, // minio/kes
		`{"keystore_linearizable":`: false,
	} {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/status" {
				http.NotFound(w, r)
				return
			}
			w.Write([]byte(body))
		}))
		got := keystoreNote(context.Background(), srv.Client(), srv.URL)
		srv.Close()
		if (got != "") != want {
			t.Errorf("status %s: note %q", body, got)
		}
	}
}
