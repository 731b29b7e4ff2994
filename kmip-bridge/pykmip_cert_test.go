// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strconv"
	"testing"
	"time"
)

// pykmipCertResult is what testdata/pykmip/certificate.py prints.
type pykmipCertResult struct {
	Steps map[string]struct {
		OK         bool              `json:"ok"`
		Reason     string            `json:"reason"`
		Message    string            `json:"message"`
		Error      string            `json:"error"`
		UID        string            `json:"uid"`
		UIDs       []string          `json:"uids"`
		ObjectType string            `json:"object_type"`
		Material   string            `json:"material_sha256"`
		Attributes map[string]string `json:"attributes"`
	} `json:"steps"`
}

// TestPyKMIPCertificate registers an X.509 certificate with PyKMIP's
// client at KMIP 1.0, 1.2 and 1.4, gets it back, reads the certificate
// attributes PyKMIP decodes, locates it by Certificate Type and destroys
// it.
func TestPyKMIPCertificate(t *testing.T) {
	requirePyKMIP(t)
	env := startPyKMIPBridge(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "pykmip certificate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	for _, version := range []string{"1.0", "1.2", "1.4", "2.0"} {
		t.Run(version, func(t *testing.T) {
			name := "pykmip-cert-" + version
			res := runPyKMIPCertificate(t, env, version, name, der)
			for _, s := range []string{"open", "register", "get", "get_attributes", "locate", "destroy"} {
				if !res.Steps[s].OK {
					t.Errorf("%s: %+v", s, res.Steps[s])
				}
			}
			if g := res.Steps["get"]; g.ObjectType != "CERTIFICATE" || g.Material != hex.EncodeToString(sum[:]) {
				t.Errorf("get returned %s with digest %s", g.ObjectType, g.Material)
			}
			want := map[string]string{
				"Object Type": "CERTIFICATE", "Certificate Type": "X_509", "Certificate Length": strconv.Itoa(len(der)),
				"Cryptographic Algorithm": "ECDSA", "Cryptographic Length": "256",
			}
			if version == "1.0" {
				// KMIP 1.1 added Certificate Length: a 1.0 client is
				// not sent it.
				want["Certificate Length"] = ""
			}
			if version == "2.0" {
				// PyKMIP 0.10 cannot decode Certificate Type in a 2.0
				// Attributes structure (create_attribute_value_by_enum in
				// kmip/core/factories/attribute_values.py raises
				// NotImplementedError), so certificate.py does not ask
				// for it; Locate by Certificate Type still runs.
				delete(want, "Certificate Type")
			}
			for k, v := range want {
				if got := res.Steps["get_attributes"].Attributes[k]; got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if l := res.Steps["locate"]; len(l.UIDs) != 1 || l.UIDs[0] != res.Steps["register"].UID {
				t.Errorf("locate: %v, want [%s]", l.UIDs, res.Steps["register"].UID)
			}
		})
	}
}

// runPyKMIPCertificate runs certificate.py as the "pykmip" client.
func runPyKMIPCertificate(t *testing.T, env *pykmipEnv, version, name string, der []byte) *pykmipCertResult {
	t.Helper()
	var res pykmipCertResult
	env.runScript(t, "pykmip", "", "certificate.py", hex.EncodeToString(der), &res, version, name)
	return &res
}
