// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"
)

// kes status prints the keystore note only for a server that reports a
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
		got := keystoreNote(fetchStatusExtra(context.Background(), srv.Client(), srv.URL))
		srv.Close()
		if (got != "") != want {
			t.Errorf("status %s: note %q", body, got)
		}
	}
}

// kes status shows the keystore, its state with latency or reason, the
// seal and the KMIP bridge; --json keeps keystore_error.
func TestStatusExtras(t *testing.T) {
	body := `{"version":"v","os":"linux","arch":"amd64","uptime":5,"num_cpu":2,"num_cpu_used":2,
"keystore_unreachable":true,"keystore_unavailable":true,"keystore_error":"not connected yet: key store is not reachable",
"keystore_linearizable":true,"keystore":"keycontrol (not connected)","keystore_driver":"keycontrol","keystore_state":"connecting",
"kmip_address":"127.0.0.1:5696","kmip_connections":3,"seal":"IBM HPCS: root key r","seal_state":"unavailable","seal_error":"root key disabled"}`
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	defer srv.Close()
	x := fetchStatusExtra(context.Background(), srv.Client(), srv.URL)
	state := kes.State{Version: "v", OS: "linux", Arch: "amd64", UpTime: 5 * time.Second, CPUs: 2, UsableCPUs: 2}

	var b bytes.Buffer
	if err := printStatus(&b, "h", state, time.Millisecond, x, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Keystore keycontrol (not connected)\n",
		"State connecting: not connected yet: key store is not reachable\n",
		"Seal     IBM HPCS: root key r\n",
		"State unavailable: root key disabled\n",
		"KMIP     127.0.0.1:5696, 3 open connections\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status does not contain %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "Note") {
		t.Errorf("note for a linearizable keystore:\n%s", b.String())
	}

	b.Reset()
	x.State, x.Error = "available", ""
	state.KeyStoreLatency, state.KeyStoreReachable, state.KeystoreAvailable = 2*time.Millisecond, true, true
	printStatus(&b, "h", state, time.Millisecond, x, false, nil)
	if !strings.Contains(b.String(), "State available, 2ms\n") {
		t.Errorf("available keystore:\n%s", b.String())
	}

	var out map[string]any
	b.Reset()
	x.State, x.Error = "connecting", "not connected yet: key store is not reachable"
	if err := writeJSON(&b, statusJSON(kes.State{Version: "v"}, x)); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out["keystore_error"] != x.Error || out["kmip_connections"] != float64(3) || out["seal_error"] != "root key disabled" || out["version"] != "v" {
		t.Errorf("--json: %s", b.String())
	}
}
