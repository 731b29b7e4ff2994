// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"

	"github.com/kesbridge/kes/identity"
)

// TestKMIPBridge starts the bridge beside the HTTP API and uses it with
// the ovh KMIP client and a vCenter-like certificate (CA-issued, no
// clientAuth EKU): a key created over KMIP is a key of the KES API, the
// KMIP call is audited, and the bridge serves the new key service after
// a reload.
func TestKMIPBridge(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	clientCert := p.issue(t, "", "", x509.ExtKeyUsageServerAuth, nil)
	kid := string(identity.FromCertificate(clientCert.Leaf))
	yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)),
		"kmip:\n  address: 127.0.0.1:0\n  tls:\n    key: "+p.keyFile+"\n    cert: "+p.certFile+"\n    ca: "+p.caFile+"\n    cipher_suites: compat\n")
	yaml = strings.Replace(yaml, "policy:\n", "policy:\n  kmip:\n    allow: [/kmip/*]\n    identities: ["+kid+"]\n", 1)
	e := start(t, p, admin, yaml)
	ctx := context.Background()
	if err := e.srv.StartKMIP(ctx); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() *kmipclient.Client {
		t.Helper()
		c, err := kmipclient.Dial(e.srv.KMIPAddr().String(), kmipclient.WithRootCAPem(caPEM), kmipclient.WithClientCert(clientCert))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial()
	created, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).Exec()
	if err != nil {
		t.Fatal(err)
	}
	id := created.UniqueIdentifier
	if _, err := e.kms(admin).DescribeKey(ctx, id); err != nil {
		t.Fatalf("KMIP key %q not visible over the KES API: %v", id, err)
	}
	eventually(t, "kmip audit", func() bool { return strings.Contains(e.stdout.String(), "req.path=/kmip/create") })

	// A failed batch item is audited with its KMIP result reason and the
	// status the HTTP API gives for the same failure.
	if _, err := c.Get("no-such-key").Exec(); err == nil {
		t.Fatal("Get of a missing key succeeded")
	}
	eventually(t, "kmip failure audit", func() bool {
		for _, l := range strings.Split(e.stdout.String(), "\n") {
			if strings.Contains(l, "req.path=/kmip/get/no-such-key ") {
				return strings.Contains(l, " req.identity="+kid+" res.code=404 res.kmip_reason=ItemNotFound ")
			}
		}
		return false
	})

	cfg, err := ReadConfig(e.yamlPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := dial().GetAttributes(id, kmip.AttributeNameState).Exec(); err != nil {
		t.Fatalf("after reload: %v", err)
	}

	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.StartKMIP(ctx); err == nil || e.srv.KMIPAddr() != nil {
		t.Fatalf("bridge started after shutdown: %v", err)
	}
}
