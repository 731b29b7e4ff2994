// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/internal/testpki"
)

// TestVerifyClientConnectionRemembersChain: a chain that verified once is
// not verified again (the second check allocates next to nothing, where
// x509.Certificate.Verify allocates dozens of times), while other chains
// still get the full check.
func TestVerifyClientConnectionRemembersChain(t *testing.T) {
	p := testPKI(t)
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	verify := VerifyClientConnection(pool)
	trusted := tls.ConnectionState{PeerCertificates: []*x509.Certificate{p.issue(t, "client", false).Leaf}}
	if err := verify(trusted); err != nil {
		t.Fatalf("trusted chain refused: %v", err)
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := verify(trusted); err != nil {
			t.Fatalf("trusted chain refused the second time: %v", err)
		}
	}); n > 2 {
		t.Errorf("verifying a chain seen before allocates %v times, want at most 2", n)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	self := forge(t, "self", false, key.Public(), nil, key)
	for name, certs := range map[string][]*x509.Certificate{
		"self-signed":              {self},
		"untrusted, trusted after": {self, trusted.PeerCertificates[0]},
		"trusted, then anything":   {trusted.PeerCertificates[0], self},
	} {
		err := verify(tls.ConnectionState{PeerCertificates: certs})
		if want := name == "trusted, then anything"; (err == nil) != want {
			t.Errorf("%s: verified %v, want %v (err %v)", name, err == nil, want, err)
		}
	}
	if err := verify(tls.ConnectionState{}); err == nil {
		t.Error("no certificate verified")
	}
}

// TestVerifyClientConnectionExpiry: a remembered chain is refused once
// any of its certificates expired, here the intermediate before the leaf.
func TestVerifyClientConnectionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ca := testpki.Issue(t, "root", true, nil, caKey.Public(), nil, caKey)
		interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		// Valid for an hour from now, as every testpki certificate.
		inter := testpki.Issue(t, "intermediate", true, nil, interKey.Public(), ca, caKey)
		time.Sleep(30 * time.Minute)
		leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		// Valid until 30 minutes after the intermediate.
		leaf := testpki.Issue(t, "client", false, nil, leafKey.Public(), inter, interKey)
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		verify := VerifyClientConnection(pool)
		cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf, inter}}
		if err := verify(cs); err != nil {
			t.Fatalf("valid chain refused: %v", err)
		}
		time.Sleep(20 * time.Minute)
		if err := verify(cs); err != nil {
			t.Fatalf("valid chain refused the second time: %v", err)
		}
		time.Sleep(20 * time.Minute) // the intermediate expired, the leaf did not
		if err := verify(cs); err == nil {
			t.Fatal("chain with an expired intermediate verified")
		}
	})
}
