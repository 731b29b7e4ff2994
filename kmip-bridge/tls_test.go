// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// TestLoadTLSConfig serves with a config built from PEM files that trusts
// only the test CA, and checks that a client certificate without any
// extended key usage is accepted while one from another CA is not.
func TestLoadTLSConfig(t *testing.T) {
	p := testPKI(t)
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.server.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	conf, err := LoadTLSConfig(write("server.crt", "CERTIFICATE", p.server.Certificate[0]), write("server.key", "PRIVATE KEY", keyDER), write("ca.crt", "CERTIFICATE", p.ca.Raw))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.TLSConfig = conf })
	wantOK(t, send(t, e.raw(e.client), request(kmip.V1_1, &payloads.DiscoverVersionsRequestPayload{})).BatchItem[0])

	other := (&pki{}).selfSigned(t)
	c, err := tls.Dial("tcp", e.addr, e.tlsConfig(&other))
	if err == nil {
		defer c.Close()
		_, err = c.Write(unhex(t, vcDiscoverVersions))
		if err == nil {
			_, err = c.Read(make([]byte, 8))
		}
	}
	if err == nil {
		t.Fatal("certificate of an unknown CA accepted")
	}
}
