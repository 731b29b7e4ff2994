// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
)

// deriveWrapResult is what testdata/pykmip/derive_wrap.py prints.
type deriveWrapResult struct {
	Version string            `json:"version"`
	UIDs    map[string]string `json:"uids"`
	Steps   map[string]struct {
		OK             bool   `json:"ok"`
		Reason         string `json:"reason"`
		Message        string `json:"message"`
		Error          string `json:"error"`
		UID            string `json:"uid"`
		Wrapped        string `json:"wrapped"`
		Unwrapped      string `json:"unwrapped_sha256"`
		WrappingMethod string `json:"wrapping_method"`
		WrappingKey    string `json:"wrapping_key"`
		Mode           string `json:"mode"`
		Encoding       string `json:"encoding"`
		// ClearGetRefused: Get in the clear was refused (Permission
		// Denied).
		ClearGetRefused bool   `json:"clear_get_refused"`
		Value           string `json:"value"`
	} `json:"steps"`
}

// runDeriveWrap runs derive_wrap.py as client "pykmip" at the given KMIP
// version with kek as the wrapping key it registers.
func (env *pykmipEnv) runDeriveWrap(t *testing.T, version string, kek []byte) *deriveWrapResult {
	t.Helper()
	var res deriveWrapResult
	env.runScript(t, "pykmip", "", "derive_wrap.py", hex.EncodeToString(kek), &res, version)
	return &res
}

// TestPyKMIPDeriveAndWrap: PyKMIP's client derives keys (PBKDF2 against
// RFC 6070, counter mode against NIST CAVP, HMAC against the standard
// library), gets a key wrapped with NIST Key Wrap and AES Key Wrap with
// Padding (unwrapped here with internal/crypto and compared with the key
// service's material), and registers a key it wrapped itself.
func TestPyKMIPDeriveAndWrap(t *testing.T) {
	requirePyKMIP(t)
	env := startPyKMIPBridge(t)
	for _, version := range []string{"1.0", "1.2", "1.4", "2.0"} {
		t.Run("KMIP "+version, func(t *testing.T) {
			kek := bytes.Repeat([]byte{byte(version[2])}, 32)
			res := env.runDeriveWrap(t, version, kek)
			step := func(name string) bool {
				t.Helper()
				s, found := res.Steps[name]
				switch {
				case !found:
					t.Errorf("%s: did not run", name)
				case !s.OK:
					t.Errorf("%s: failed: %s %s %s", name, s.Reason, s.Message, s.Error)
				}
				return found && s.OK
			}
			if !step("open") || !step("register_kek") || !step("create_target") {
				t.FailNow()
			}
			want := materialOf(t, env, res.UIDs["target"])
			for name, unwrap := range map[string]func(kek, b []byte) ([]byte, error){
				"get_wrapped_kw":  crypto.KeyUnwrap,
				"get_wrapped_kwp": crypto.KeyUnwrapPad,
			} {
				if !step(name) {
					continue
				}
				s := res.Steps[name]
				// KMIP 1.1 added Encoding Option: a 1.0 answer has none.
				wantEncoding := "NO_ENCODING"
				if version == "1.0" {
					wantEncoding = "None"
				}
				if s.WrappingMethod != "ENCRYPT" || s.WrappingKey != res.UIDs["kek"] || s.Encoding != wantEncoding {
					t.Errorf("%s: key wrapping data %+v", name, s)
				}
				blob, _ := hex.DecodeString(s.Wrapped)
				got, err := unwrap(kek, blob)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: the wrapped key does not unwrap to the key service's material (%v)", name, err)
				}
				if sum := sha256.Sum256(want); s.Unwrapped != hex.EncodeToString(sum[:]) {
					t.Errorf("%s: the client's own unwrap does not give the key service's material", name)
				}
			}
			if s := res.Steps["get_wrapped_by_self"]; s.OK || s.Reason != "INVALID_FIELD" {
				t.Errorf("get wrapped by itself: %+v", s)
			}
			if step("register_wrapped") {
				s := res.Steps["register_wrapped"]
				secret := sha256.Sum256([]byte("pykmip wrapped register " + version))
				if !bytes.Equal(materialOf(t, env, s.UID), secret[:]) {
					t.Error("register_wrapped: the stored key is not the key the client wrapped")
				}
				if !s.ClearGetRefused {
					t.Error("register_wrapped: the key registered wrapped was returned in the clear")
				}
			}
			if s := res.Steps["register_wrapped_tampered"]; s.OK || s.Reason != "CRYPTOGRAPHIC_FAILURE" {
				t.Errorf("register of a tampered wrapped key: %+v", s)
			}
			if !step("bases") {
				t.FailNow()
			}
			mac := hmac.New(sha256.New, []byte("password"))
			mac.Write([]byte("context"))
			for name, want := range map[string]string{
				"derive_pbkdf2":  "4b007901b765489abead49d926f721d065a429c1", // RFC 6070, c=4096
				"derive_counter": "10621342bfb0fd40046c0e29f2cfdbf0",         // CAVP COUNT=0
				"derive_hmac":    hex.EncodeToString(mac.Sum(nil)),
			} {
				if step(name) && res.Steps[name].Value != want {
					t.Errorf("%s: derived %s, want %s", name, res.Steps[name].Value, want)
				}
			}
			if s := res.Steps["derive_too_many_iterations"]; s.OK || s.Reason != "INVALID_FIELD" {
				t.Errorf("derive with 2^31-1 iterations: %+v", s)
			}
		})
	}
}

// materialOf returns the key service's material for name.
func materialOf(t *testing.T, env *pykmipEnv, name string) []byte {
	t.Helper()
	var out []byte
	err := env.keys.With(context.Background(), name, func(o *keys.Object) error {
		use := func(b []byte) error { out = bytes.Clone(b); return nil }
		if o.Version.Key != nil {
			return o.Version.Key.Use(use)
		}
		return o.Version.Material.Use(use)
	})
	if err != nil {
		t.Fatalf("key service: %s: %v", name, err)
	}
	return out
}
