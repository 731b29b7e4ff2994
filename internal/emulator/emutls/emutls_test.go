// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package emutls

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

// TestChain checks that a client trusting only the CA accepts the
// server certificate for every host it was made for, and not for others.
func TestChain(t *testing.T) {
	c, err := New("test emulator", "kc.example", "192.0.2.7", "")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}
	leaf, err := x509.ParseCertificate(c.Server.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*x509.CertPool{pool, c.Pool} {
		for _, host := range []string{"localhost", "127.0.0.1", "::1", "kc.example", "192.0.2.7"} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: p}); err != nil {
				t.Errorf("verify for %s: %v", host, err)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: p}); err == nil {
			t.Error("verify for other.example succeeded")
		}
	}
	if leaf.IsCA {
		t.Error("the server certificate is a CA")
	}
}

// TestHandshake runs a real TLS handshake on loopback against the pool.
func TestHandshake(t *testing.T) {
	c, err := New("test emulator")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{c.Server}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			err = conn.(*tls.Conn).Handshake()
			conn.Close()
		}
		done <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: c.Pool})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
}
