// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package testpki makes X.509 certificates for tests, in particular the
// forged chains an attacker can build: a certificate needs only the
// public key it certifies and the key of its issuer.
package testpki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// Issue returns a certificate for pub with common name cn and extended
// key usages eku, valid from an hour ago to an hour from now, issued by
// parent with parentKey (parent nil: self-signed with parentKey). A CA
// certificate (isCA) may sign certificates. Issue fails t on error.
func Issue(t testing.TB, cn string, isCA bool, eku []x509.ExtKeyUsage, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
