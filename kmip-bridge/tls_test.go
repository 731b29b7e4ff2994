// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	if !e.refused(&other) {
		t.Fatal("certificate of an unknown CA accepted")
	}
}

// TestCompatCipherSuites: a client offering only the KMIP 1.x TLS 1.2
// authentication suite TLS_RSA_WITH_AES_128_CBC_SHA256 fails with Go's
// default suites and succeeds with CompatCipherSuites.
func TestCompatCipherSuites(t *testing.T) {
	p := testPKI(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "rsa server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}

	for _, tc := range []struct {
		name   string
		suites []uint16
		ok     bool
	}{
		{"default suites", nil, false},
		{"compat suites", CompatCipherSuites(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				c.TLSConfig = &tls.Config{Certificates: []tls.Certificate{rsaCert}, CipherSuites: tc.suites}
			})
			conf := e.tlsConfig(&e.client)
			conf.MaxVersion = tls.VersionTLS12
			conf.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA256}
			c, err := tls.Dial("tcp", e.addr, conf)
			if !tc.ok {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			wantOK(t, exchange(t, c, unhex(t, vcDiscoverVersions)).BatchItem[0])
		})
	}
}
