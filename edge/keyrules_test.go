// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"

	"github.com/kesbridge/kes/identity"
)

// TestExportSwitch: KES keys are not extractable over KMIP unless a
// keys: entry (name or pattern) or the admin's export-allow call allows
// it; every export is its own audit event; describe shows the usage;
// HTTP delete and KMIP Revoke/Destroy follow the one lifecycle.
func TestExportSwitch(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	minio := newAPIKey(t)
	clientCert := p.issue(t, "", "", x509.ExtKeyUsageServerAuth, nil)
	kid := string(identity.FromCertificate(clientCert.Leaf))
	yaml := baseConfig(p, identityOf(admin), identityOf(minio),
		"kmip:\n  address: 127.0.0.1:0\n  tls:\n    key: "+p.keyFile+"\n    cert: "+p.certFile+"\n    ca: "+p.caFile+"\n    cipher_suites: compat\n"+
			"keys:\n- name: minio-sse\n- name: backup-*\n  export: true\n")
	yaml = strings.Replace(yaml, "policy:\n", "policy:\n  kmip:\n    allow: [/kmip/*]\n    identities: ["+kid+"]\n", 1)
	// The minio policy may do everything under /v1/key/, yet not use
	// the export switch.
	yaml = strings.Replace(yaml, "    - /v1/key/create/minio-*\n", "    - /v1/key/*\n", 1)
	e := start(t, p, admin, yaml)
	ctx := context.Background()
	if err := e.srv.StartKMIP(ctx); err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(p.caFile)
	c, err := kmipclient.Dial(e.srv.KMIPAddr().String(), kmipclient.WithRootCAPem(caPEM), kmipclient.WithClientCert(clientCert))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get := func(uid string) kmip.ResponseBatchItem {
		t.Helper()
		br, err := c.Batch(ctx, &payloads.GetRequestPayload{UniqueIdentifier: uid})
		if err != nil {
			t.Fatal(err)
		}
		return br[0]
	}
	kc := e.kms(admin)
	if err := kc.CreateKey(ctx, "backup-1"); err != nil {
		t.Fatal(err)
	}

	// minio-sse was created at start-up and is not extractable.
	if bi := get("minio-sse"); bi.ResultReason != kmip.ResultReasonPermissionDenied || !strings.HasPrefix(bi.ResultMessage, "key is not extractable") {
		t.Fatalf("get of minio-sse: %v %q", bi.ResultReason, bi.ResultMessage)
	}
	// backup-* is allowed by the config.
	if bi := get("backup-1"); bi.ResultStatus != kmip.ResultStatusSuccess {
		t.Fatalf("get of backup-1: %v %q", bi.ResultReason, bi.ResultMessage)
	}
	eventually(t, "export audit", func() bool {
		return strings.Contains(e.stdout.String(), "req.path=/kmip/export/backup-1 ")
	})
	if strings.Contains(e.stdout.String(), "req.path=/kmip/export/minio-sse ") {
		t.Fatal("refused Get audited as an export")
	}
	// A wrapped export names its wrapping key.
	kek := c.Create().AES(256, kmip.CryptographicUsageWrapKey).MustExec().UniqueIdentifier
	c.Activate(kek).MustExec()
	c.Get("backup-1").WithKeyWrapping(kmip.KeyWrappingSpecification{
		WrappingMethod:           kmip.WrappingMethodEncrypt,
		EncryptionKeyInformation: &kmip.EncryptionKeyInformation{UniqueIdentifier: kek},
	}).MustExec()
	eventually(t, "wrapped export audit", func() bool {
		return strings.Contains(e.stdout.String(), "req.path=/kmip/export/backup-1/wrapped-by/"+kek+" ")
	})

	// describe shows the usage.
	raw := e.raw(apiCert(t, admin))
	r := e.do(raw, "GET", "/v1/key/describe/minio-sse", nil)
	var info struct {
		Name        string   `json:"name"`
		Origin      string   `json:"origin"`
		State       string   `json:"state"`
		Usage       []string `json:"usage"`
		Extractable bool     `json:"extractable"`
		Never       bool     `json:"never_extractable"`
	}
	if err := json.Unmarshal([]byte(r.body), &info); err != nil || r.code != 200 {
		t.Fatalf("describe: %d %s", r.code, r.body)
	}
	if info.Origin != "kes" || info.State != "Active" || info.Extractable || !info.Never || len(info.Usage) != 4 {
		t.Fatalf("describe: %+v", info)
	}
	// The halves of a key pair show what they do.
	pair := c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).MustExec()
	for uid, want := range map[string]string{pair.PrivateKeyUniqueIdentifier: "sign", pair.PublicKeyUniqueIdentifier: "verify"} {
		r := e.do(raw, "GET", "/v1/key/describe/"+uid, nil)
		var half struct {
			Usage []string `json:"usage"`
		}
		if err := json.Unmarshal([]byte(r.body), &half); err != nil || r.code != 200 || len(half.Usage) != 1 || half.Usage[0] != want {
			t.Fatalf("describe of a key pair half: %d %s, want usage %s", r.code, r.body, want)
		}
	}

	// The export switch: not for the minio identity, whose policy says
	// /v1/key/*; for the admin.
	mraw := e.raw(apiCert(t, minio))
	if r := e.do(mraw, "PUT", "/v1/key/export-allow/minio-sse", nil); r.code != 403 {
		t.Fatalf("export-allow by minio: %d %s", r.code, r.body)
	}
	if r := e.do(raw, "PUT", "/v1/key/export-allow/minio-sse", nil); r.code != 200 {
		t.Fatalf("export-allow by admin: %d %s", r.code, r.body)
	}
	if bi := get("minio-sse"); bi.ResultStatus != kmip.ResultStatusSuccess {
		t.Fatalf("get after export-allow: %v %q", bi.ResultReason, bi.ResultMessage)
	}
	if r := e.do(raw, "PUT", "/v1/key/export-allow/minio-sse", strings.NewReader(`{"allow":false}`)); r.code != 200 {
		t.Fatalf("export-allow false: %d %s", r.code, r.body)
	}
	if bi := get("minio-sse"); bi.ResultReason != kmip.ResultReasonPermissionDenied {
		t.Fatalf("get after export-deny: %v", bi.ResultReason)
	}
	if r := e.do(raw, "PUT", "/v1/key/export-allow/missing", nil); r.code != 404 {
		t.Fatalf("export-allow of a missing key: %d", r.code)
	}
	if r := e.do(raw, "GET", "/v1/api", nil); !strings.Contains(r.body, `"/v1/key/export-allow/"`) {
		t.Fatalf("/v1/api lacks export-allow: %s", r.body)
	}

	// One lifecycle: KMIP cannot revoke or destroy a KES key.
	for _, req := range []kmip.OperationPayload{
		&payloads.RevokeRequestPayload{UniqueIdentifier: "minio-sse", RevocationReason: kmip.RevocationReason{RevocationReasonCode: kmip.RevocationReasonCodeCessationOfOperation}},
		&payloads.DestroyRequestPayload{UniqueIdentifier: "minio-sse"},
	} {
		br, err := c.Batch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		bi := br[0]
		if bi.ResultReason != kmip.ResultReasonPermissionDenied || !strings.Contains(bi.ResultMessage, "managed over the KES API") {
			t.Fatalf("%v of a KES key: %v %q", bi.Operation, bi.ResultReason, bi.ResultMessage)
		}
	}
	if _, err := e.kms(minio).GenerateKey(ctx, "minio-sse", nil); err != nil {
		t.Fatalf("generate after refused revoke: %v", err)
	}
	// HTTP delete of an Active KMIP key is refused until it is revoked.
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	if r := e.do(raw, "DELETE", "/v1/key/delete/"+id, nil); r.code != 409 || !strings.Contains(r.body, "revoke it over KMIP") {
		t.Fatalf("delete of an active KMIP key: %d %s", r.code, r.body)
	}
	c.Revoke(id).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
	if r := e.do(raw, "DELETE", "/v1/key/delete/"+id, nil); r.code != 200 {
		t.Fatalf("delete of a revoked KMIP key: %d %s", r.code, r.body)
	}
	// KES keys are deleted as minio/kes deletes them.
	if r := e.do(raw, "DELETE", "/v1/key/delete/minio-sse", nil); r.code != 200 {
		t.Fatalf("delete of a KES key: %d %s", r.code, r.body)
	}
}

func TestKeyEntries(t *testing.T) {
	p := newPKI(t)
	base := baseConfig(p, identityOf(newAPIKey(t)), identityOf(newAPIKey(t)), "")
	for _, tc := range []struct {
		keys string
		err  string
	}{
		{"- name: a\n- name: b-*\n  export: true\n- name: c\n  export: true\n", ""},
		{"- name: a*b*\n  export: true\n", "malformed"},
		{"- name: b-*\n  export: true\n- name: b-*\n  export: true\n", "listed twice"},
		{"- name: b-*\n", "neither rotate nor export"},
		{"- name: a\n  exprot: true\n", "exprot"},
	} {
		path := t.TempDir() + "/c.yaml"
		os.WriteFile(path, []byte(base+"keys:\n"+tc.keys), 0o600)
		cfg, err := ReadConfig(path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("%q: %v, want %q", tc.keys, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(cfg.Keys, ",") != "a,c" || strings.Join(exportPatterns(cfg.KeyRules), ",") != "b-*,c" {
			t.Fatalf("keys %v, rules %+v", cfg.Keys, cfg.KeyRules)
		}
	}
}
