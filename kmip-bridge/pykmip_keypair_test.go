// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"slices"
	"testing"
)

// pykmipKeyPairResult is what testdata/pykmip/keypair.py prints.
type pykmipKeyPairResult struct {
	UIDs  map[string]string `json:"uids"`
	Steps map[string]struct {
		OK         bool              `json:"ok"`
		Reason     string            `json:"reason"`
		Message    string            `json:"message"`
		Error      string            `json:"error"`
		UIDs       []string          `json:"uids"`
		State      string            `json:"state"`
		ObjectType string            `json:"object_type"`
		Algorithm  string            `json:"algorithm"`
		Length     int               `json:"length"`
		Format     string            `json:"format"`
		Material   string            `json:"material"`
		Attributes map[string]string `json:"attributes"`
		Signature  string            `json:"mac"`
	} `json:"steps"`
}

func (env *pykmipEnv) runKeyPair(t *testing.T, version, prefix string) *pykmipKeyPairResult {
	t.Helper()
	var res pykmipKeyPairResult
	env.runScript(t, "pykmip", "", "keypair.py", "", &res, version, prefix)
	return &res
}

// TestPyKMIPKeyPair: PyKMIP at KMIP 1.0, 1.2 and 1.4 creates an RSA key
// pair, reads both halves (PKCS#1 by default), signs with PSS and
// PKCS#1 v1.5 (the signatures verify with crypto/rsa), verifies, and
// revokes and destroys each half without touching the other.
func TestPyKMIPKeyPair(t *testing.T) {
	requirePyKMIP(t)
	env := startPyKMIPBridge(t)
	for _, version := range []string{"1.0", "1.2", "1.4", "2.0"} {
		t.Run(version, func(t *testing.T) {
			res := env.runKeyPair(t, version, "pair"+version)
			steps := res.Steps
			for _, s := range []string{"open", "create", "get_public", "get_private", "attributes_public", "attributes_private",
				"locate_public", "locate_private", "activate_private", "activate_public", "sign_pss", "sign_pkcs1",
				"verify_pss", "verify_pkcs1", "verify_tampered", "revoke_public", "destroy_public", "state_private",
				"revoke_private", "destroy_private"} {
				if !steps[s].OK {
					t.Errorf("%s: %+v", s, steps[s])
				}
			}
			priv, pub := res.UIDs["private"], res.UIDs["public"]
			if got := steps["get_public"]; got.ObjectType != "PUBLIC_KEY" || got.Algorithm != "RSA" || got.Length != 2048 || got.Format != "PKCS_1" {
				t.Errorf("public key: %+v", got)
			}
			if got := steps["get_private"]; got.ObjectType != "PRIVATE_KEY" || got.Format != "PKCS_1" {
				t.Errorf("private key: %+v", got)
			}
			a := steps["attributes_private"].Attributes
			if a["State"] != "PRE_ACTIVE" || a["Name"] != "pair"+version+"-private" || a["Cryptographic Usage Mask"] != "1" || a["Object Type"] != "PRIVATE_KEY" {
				t.Errorf("private key attributes: %v", a)
			}
			if a := steps["attributes_public"].Attributes; a["Cryptographic Usage Mask"] != "2" || a["Cryptographic Length"] != "2048" {
				t.Errorf("public key attributes: %v", a)
			}
			if !slices.Equal(steps["locate_private"].UIDs, []string{priv}) || !slices.Equal(steps["locate_public"].UIDs, []string{pub}) {
				t.Errorf("locate: %v %v", steps["locate_private"].UIDs, steps["locate_public"].UIDs)
			}

			// The signatures are RSA signatures of the public key PyKMIP
			// read, checked here with Go's crypto/rsa.
			der, _ := hex.DecodeString(steps["get_public"].Material)
			key, err := x509.ParsePKCS1PublicKey(der)
			if err != nil {
				t.Fatalf("public key PyKMIP read: %v", err)
			}
			digest := sha256.Sum256([]byte("pykmip key pair interop message"))
			pss, _ := hex.DecodeString(steps["sign_pss"].Signature)
			pkcs1, _ := hex.DecodeString(steps["sign_pkcs1"].Signature)
			if err := rsa.VerifyPSS(key, crypto.SHA256, digest[:], pss, nil); err != nil {
				t.Errorf("PSS signature: %v", err)
			}
			if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], pkcs1); err != nil {
				t.Errorf("PKCS#1 v1.5 signature: %v", err)
			}
			for s, want := range map[string]string{"verify_pss": "VALID", "verify_pkcs1": "VALID", "verify_tampered": "INVALID",
				"revoke_public": "DEACTIVATED", "state_private": "ACTIVE", "revoke_private": "DEACTIVATED"} {
				if steps[s].State != want {
					t.Errorf("%s: %q, want %q", s, steps[s].State, want)
				}
			}
			// KMIP 2.0 added Object Not Found for an identifier that
			// names no object.
			notFound := "ITEM_NOT_FOUND"
			if version == "2.0" {
				notFound = "OBJECT_NOT_FOUND"
			}
			for s, reason := range map[string]string{"sign_preactive": "PERMISSION_DENIED", "sign_with_public": "PERMISSION_DENIED",
				"destroy_active": "PERMISSION_DENIED", "get_destroyed": notFound} {
				if got := steps[s]; got.OK || got.Reason != reason {
					t.Errorf("%s: %+v, want %s", s, got, reason)
				}
			}
		})
	}
}
