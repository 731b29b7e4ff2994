// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge_test

import (
	"testing"
)

// pykmipAttrs is what testdata/pykmip/attributes.py prints.
type pykmipAttrs struct {
	Steps map[string]struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"steps"`
	All      map[string][]string `json:"all"`
	AfterGet map[string][]string `json:"after_get"`
}

// PyKMIP's client reads the attributes it knows at its version, with the
// empty credential of its default configuration (no users configured:
// the credential is ignored, the certificate decides).
func TestPyKMIPAttributes(t *testing.T) {
	requirePyKMIP(t)
	env := startPyKMIPBridgeNoUsers(t)
	for _, tc := range []struct {
		version string
		names   []string // what the client asks for and must get
	}{
		{"1.0", []string{"Lease Time", "Initial Date", "State", "Operation Policy Name"}},
		{"1.2", []string{"Lease Time", "Fresh", "Digest", "State", "Operation Policy Name"}},
		{"1.4", []string{"Lease Time", "Fresh", "Digest", "Sensitive", "Operation Policy Name"}},
	} {
		t.Run("KMIP "+tc.version, func(t *testing.T) {
			res := env.runAttributes(t, "pykmip", tc.version, tc.names...)
			for _, step := range []string{"open", "create", "get_attributes", "get", "destroy"} {
				if s := res.Steps[step]; !s.OK {
					t.Fatalf("%s: %s", step, s.Error)
				}
			}
			for _, n := range tc.names {
				if len(res.All[n]) != 1 {
					t.Errorf("%s: %v", n, res.All[n])
				}
			}
			if p := res.All["Operation Policy Name"]; len(p) != 1 || p[0] != "default" {
				t.Errorf("Operation Policy Name %v", p)
			}
			if l := res.All["Lease Time"]; len(l) != 1 || l[0] != "3600" {
				t.Errorf("Lease Time %v", l)
			}
			if tc.version != "1.0" {
				if f := res.All["Fresh"]; len(f) != 1 || f[0] != "True" {
					t.Errorf("Fresh before Get: %v", f)
				}
				if f := res.AfterGet["Fresh"]; len(f) != 1 || f[0] != "False" {
					t.Errorf("Fresh after Get: %v", f)
				}
			}
		})
	}
	// Every attribute at 1.0, as PyKMIP's client asks for it without
	// names: its parser needs the Digest's Key Format Type.
	t.Run("KMIP 1.0 every attribute", func(t *testing.T) {
		res := env.runAttributes(t, "pykmip", "1.0")
		if s := res.Steps["get_attributes"]; !s.OK {
			t.Fatalf("get_attributes: %s", s.Error)
		}
		for _, n := range []string{"Digest", "State", "Cryptographic Algorithm", "Unique Identifier"} {
			if len(res.All[n]) != 1 {
				t.Errorf("%s: %v", n, res.All[n])
			}
		}
	})
}

// startPyKMIPBridgeNoUsers is startPyKMIPBridge without users, so that
// the empty credential PyKMIP sends is ignored.
func startPyKMIPBridgeNoUsers(t *testing.T) *pykmipEnv {
	t.Helper()
	return startPyKMIPBridgeWith(t, nil)
}

// runAttributes runs attributes.py as client at the given KMIP version.
// Empty username and password lines, as in PyKMIP's sample
// configuration, make it send an empty Username/Password credential.
func (env *pykmipEnv) runAttributes(t *testing.T, client, version string, names ...string) *pykmipAttrs {
	t.Helper()
	var res pykmipAttrs
	env.runScript(t, client, "username=\npassword=\n", "attributes.py", "", &res, append([]string{version}, names...)...)
	return &res
}
