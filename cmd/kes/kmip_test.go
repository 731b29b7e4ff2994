// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	kmipbridge "github.com/kesbridge/kes/kmip-bridge"
	"github.com/kesbridge/kes/policy"
)

// runKes is runCommand for commands that need no context of their own.
func runKes(t *testing.T, args ...string) (code int, out, errOut string) {
	t.Helper()
	return runCommand(t.Context(), args...)
}

func mustRunKes(t *testing.T, args ...string) (out, errOut string) {
	t.Helper()
	code, out, errOut := runKes(t, args...)
	if code != 0 {
		t.Fatalf("kes %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out, errOut
}

func readPEMCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func readCertFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return readPEMCert(t, data)
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

var identityLine = regexp.MustCompile(`(?m)^identity: ([0-9a-f]{64})$`)

func printedIdentity(t *testing.T, s string) string {
	t.Helper()
	m := identityLine.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no 'identity: <hex>' line in %q", s)
	}
	return m[1]
}

// spkiIdentity computes an identity independently of package identity:
// the hex SHA-256 of a DER SubjectPublicKeyInfo.
func spkiIdentity(spki []byte) string {
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:])
}

// newCA creates an ECDSA CA in a temporary directory with the CLI.
func newCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	mustRunKes(t, "kmip", "ca", "init", "--dir", dir, "--key-type", "ecdsa", "--name", "Test KMS CA")
	return dir
}

func caPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCertFile(t, filepath.Join(dir, "ca.crt")))
	return pool
}

func TestKMIPCAInit(t *testing.T) {
	for _, keyType := range []string{"ecdsa", "rsa"} {
		t.Run(keyType, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			mustRunKes(t, "kmip", "ca", "init", "--dir", dir, "--name", "Example KMS CA", "--days", "10", "--key-type", keyType)

			if m := fileMode(t, filepath.Join(dir, "ca.key")); m != 0o600 {
				t.Errorf("ca.key mode = %o, want 600", m)
			}
			if m := fileMode(t, filepath.Join(dir, "ca.crt")); m != 0o644 {
				t.Errorf("ca.crt mode = %o, want 644", m)
			}
			cert := readCertFile(t, filepath.Join(dir, "ca.crt"))
			if !cert.IsCA || !cert.BasicConstraintsValid {
				t.Error("ca.crt is not a CA certificate")
			}
			if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Error("ca.crt lacks the certSign key usage")
			}
			if cert.Subject.CommonName != "Example KMS CA" {
				t.Errorf("CN = %q", cert.Subject.CommonName)
			}
			if err := cert.CheckSignatureFrom(cert); err != nil {
				t.Errorf("ca.crt is not self-signed: %v", err)
			}
			if d := time.Until(cert.NotAfter); d < 9*24*time.Hour || d > 11*24*time.Hour {
				t.Errorf("NotAfter in %v, want about 10 days", d)
			}
			wantAlg := map[string]x509.PublicKeyAlgorithm{"ecdsa": x509.ECDSA, "rsa": x509.RSA}[keyType]
			if cert.PublicKeyAlgorithm != wantAlg {
				t.Errorf("key algorithm = %v, want %v", cert.PublicKeyAlgorithm, wantAlg)
			}
			if pub, ok := cert.PublicKey.(*rsa.PublicKey); ok && pub.N.BitLen() != 3072 {
				t.Errorf("RSA key has %d bits, want 3072", pub.N.BitLen())
			}
			if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")); err != nil {
				t.Errorf("ca.key does not match ca.crt: %v", err)
			}
		})
	}

	t.Run("refuses to overwrite", func(t *testing.T) {
		dir := newCA(t)
		before, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
		code, _, errOut := runKes(t, "kmip", "ca", "init", "--dir", dir, "--key-type", "ecdsa")
		if code != 1 || !strings.Contains(errOut, "already exists") {
			t.Fatalf("exit %d, stderr %q; want 1 and 'already exists'", code, errOut)
		}
		after, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
		if !bytes.Equal(before, after) {
			t.Fatal("ca.crt changed")
		}
		mustRunKes(t, "kmip", "ca", "init", "--dir", dir, "--key-type", "ecdsa", "-f")
		after, _ = os.ReadFile(filepath.Join(dir, "ca.crt"))
		if bytes.Equal(before, after) {
			t.Fatal("ca init -f did not replace ca.crt")
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		dir := t.TempDir()
		for _, args := range [][]string{
			{"kmip", "ca", "init", "--dir", dir, "--key-type", "dsa"},
			{"kmip", "ca", "init", "--dir", dir, "--days", "0"},
			{"kmip", "ca", "init", "--dir", dir, "extra"},
			{"kmip", "ca", "init", "--bogus"},
			{"kmip", "ca", "frobnicate"},
		} {
			if code, _, _ := runKes(t, args...); code != 2 {
				t.Errorf("kes %s: exit %d, want 2", strings.Join(args, " "), code)
			}
		}
	})
}

func TestKMIPCAExport(t *testing.T) {
	dir := newCA(t)
	out, _ := mustRunKes(t, "kmip", "ca", "export", "--dir", dir)
	want, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatalf("ca export printed %q, want the contents of ca.crt", out)
	}
	code, _, errOut := runKes(t, "kmip", "ca", "export", "--dir", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "kes: error: ") {
		t.Fatalf("export of a missing CA: exit %d, %q", code, errOut)
	}
}

func TestKMIPServerCert(t *testing.T) {
	dir := newCA(t)
	tmp := t.TempDir()
	certPath, keyPath := filepath.Join(tmp, "server.crt"), filepath.Join(tmp, "server.key")
	mustRunKes(t, "kmip", "server-cert", "--dir", dir, "--dns", "kms.example.com,kms", "--ip", "10.0.0.5", "--ip", "::1",
		"--key-type", "ecdsa", "--out-cert", certPath, "--out-key", keyPath)

	if m := fileMode(t, keyPath); m != 0o600 {
		t.Errorf("key mode = %o, want 600", m)
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Fatalf("key does not match certificate: %v", err)
	}
	cert := readCertFile(t, certPath)
	if cert.Subject.CommonName != "kms.example.com" {
		t.Errorf("CN = %q, want the first DNS name", cert.Subject.CommonName)
	}
	for _, name := range []string{"kms.example.com", "kms", "10.0.0.5", "::1"} {
		_, err := cert.Verify(x509.VerifyOptions{
			DNSName:   name,
			Roots:     caPool(t, dir),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: caPool(t, dir)}); err == nil {
		t.Error("certificate verifies for a name it does not list")
	}
	if cert.IsCA {
		t.Error("server certificate is a CA")
	}

	if code, _, _ := runKes(t, "kmip", "server-cert", "--dir", dir, "--out-cert", filepath.Join(tmp, "x.crt")); code != 2 {
		t.Errorf("server-cert without --dns/--ip: exit %d, want 2", code)
	}
	if code, _, _ := runKes(t, "kmip", "server-cert", "--dir", dir, "--ip", "300.1.1.1"); code != 2 {
		t.Errorf("server-cert with a bad IP: exit %d, want 2", code)
	}
	code, _, errOut := runKes(t, "kmip", "server-cert", "--dir", dir, "--ip", "10.0.0.5", "--out-cert", certPath, "--out-key", keyPath)
	if code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("server-cert over existing files: exit %d, %q", code, errOut)
	}
	code, _, errOut = runKes(t, "kmip", "server-cert", "--dir", t.TempDir(), "--ip", "10.0.0.5",
		"--out-cert", filepath.Join(tmp, "y.crt"), "--out-key", filepath.Join(tmp, "y.key"))
	if code != 1 || !strings.Contains(errOut, "kes kmip ca init") {
		t.Errorf("server-cert without a CA: exit %d, %q", code, errOut)
	}
}

// vcenterCSR builds a certificate request shaped like the ones vCenter
// generates: a full subject, no extended key usage.
func vcenterCSR(t *testing.T) (*x509.CertificateRequest, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{
			CommonName:         "vcenter.example.com",
			Organization:       []string{"Example"},
			OrganizationalUnit: []string{"Virtualization"},
			Country:            []string{"DE"},
			ExtraNames: []pkix.AttributeTypeAndValue{
				{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: "admin@example.com"},
			},
		},
		DNSNames: []string{"vcenter.example.com"},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range csr.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 37}) {
			t.Fatal("test CSR unexpectedly carries an extended key usage")
		}
	}
	return csr, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestKMIPSignCSR(t *testing.T) {
	dir := newCA(t)
	csr, csrPEM := vcenterCSR(t)
	csrPath := filepath.Join(t.TempDir(), "vcenter.csr")
	if err := os.WriteFile(csrPath, csrPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	checkCert := func(t *testing.T, cert *x509.Certificate, printed string) {
		t.Helper()
		if !bytes.Equal(cert.RawSubject, csr.RawSubject) {
			t.Errorf("subject = %q, want the CSR's %q", cert.Subject, csr.Subject)
		}
		if !bytes.Equal(cert.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo) {
			t.Error("certificate does not carry the CSR's public key")
		}
		if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
			t.Errorf("extended key usage = %v, want [clientAuth]", cert.ExtKeyUsage)
		}
		if _, err := cert.Verify(x509.VerifyOptions{
			Roots:     caPool(t, dir),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}); err != nil {
			t.Errorf("certificate does not verify as a client certificate: %v", err)
		}
		if printed != spkiIdentity(csr.RawSubjectPublicKeyInfo) {
			t.Errorf("printed identity %s is not the SHA-256 of the CSR's SubjectPublicKeyInfo", printed)
		}
		if printed != identity.FromCertificate(cert).String() {
			t.Errorf("printed identity %s != identity of the certificate %s", printed, identity.FromCertificate(cert))
		}
	}

	t.Run("stdout", func(t *testing.T) {
		out, errOut := mustRunKes(t, "kmip", "sign-csr", csrPath, "--dir", dir, "--days", "30")
		checkCert(t, readPEMCert(t, []byte(out)), printedIdentity(t, errOut))
		if identityLine.MatchString(out) {
			t.Error("identity line mixed into the certificate on stdout")
		}
	})

	t.Run("out file", func(t *testing.T) {
		outPath := filepath.Join(t.TempDir(), "vcenter.crt")
		out, _ := mustRunKes(t, "kmip", "sign-csr", csrPath, "--dir", dir, "--out", outPath)
		checkCert(t, readCertFile(t, outPath), printedIdentity(t, out))
		if code, _, _ := runKes(t, "kmip", "sign-csr", csrPath, "--dir", dir, "--out", outPath); code != 1 {
			t.Errorf("sign-csr over an existing --out: exit %d, want 1", code)
		}
	})

	t.Run("bad signature", func(t *testing.T) {
		der := bytes.Clone(csr.Raw)
		der[len(der)-3] ^= 0x01 // inside the signature
		bad := filepath.Join(t.TempDir(), "bad.csr")
		if err := os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runKes(t, "kmip", "sign-csr", bad, "--dir", dir)
		if code != 1 || out != "" {
			t.Fatalf("exit %d, stdout %q; want 1 and no certificate", code, out)
		}
		if !strings.HasPrefix(errOut, "kes: error: ") {
			t.Errorf("stderr %q", errOut)
		}
	})

	t.Run("not a CSR", func(t *testing.T) {
		code, _, errOut := runKes(t, "kmip", "sign-csr", filepath.Join(dir, "ca.crt"), "--dir", dir)
		if code != 1 || !strings.Contains(errOut, "no PEM certificate request") {
			t.Errorf("exit %d, %q", code, errOut)
		}
	})

	t.Run("small RSA key", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "weak"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "weak.csr")
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := runKes(t, "kmip", "sign-csr", p, "--dir", dir); code != 1 || !strings.Contains(errOut, "too small") {
			t.Errorf("exit %d, %q", code, errOut)
		}
	})

	if code, _, _ := runKes(t, "kmip", "sign-csr", "--dir", dir); code != 2 {
		t.Errorf("sign-csr without a file: exit %d, want 2", code)
	}
}

func TestKMIPClientNew(t *testing.T) {
	dir := newCA(t)
	tmp := t.TempDir()
	certPath, keyPath := filepath.Join(tmp, "vc.crt"), filepath.Join(tmp, "vc.key")
	// The default key type (RSA-3072) on purpose: it is what admins get.
	out, _ := mustRunKes(t, "kmip", "client", "new", "vcenter", "--dir", dir, "--out-cert", certPath, "--out-key", keyPath)

	if m := fileMode(t, keyPath); m != 0o600 {
		t.Errorf("key mode = %o, want 600", m)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatalf("key does not match certificate: %v", err)
	}
	if _, ok := pair.PrivateKey.(*rsa.PrivateKey); !ok {
		t.Errorf("default key type is %T, want RSA", pair.PrivateKey)
	}
	cert := readCertFile(t, certPath)
	if cert.Subject.CommonName != "vcenter" {
		t.Errorf("CN = %q", cert.Subject.CommonName)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:     caPool(t, dir),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("certificate does not verify as a client certificate: %v", err)
	}
	if cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Error("RSA certificate lacks keyEncipherment")
	}
	id := printedIdentity(t, out)
	if id != identity.FromCertificate(cert).String() || id != spkiIdentity(cert.RawSubjectPublicKeyInfo) {
		t.Errorf("printed identity %s is not the certificate's", id)
	}

	t.Run("default file names", func(t *testing.T) {
		t.Chdir(t.TempDir())
		mustRunKes(t, "kmip", "client", "new", "esxi/01", "--dir", dir, "--key-type", "ecdsa")
		if _, err := tls.LoadX509KeyPair("esxi_01.crt", "esxi_01.key"); err != nil {
			t.Fatal(err)
		}
	})
}

// kmipTLSServer is a bare TLS listener that completes handshakes, reads
// the first request and closes the connection without an answer: enough
// to test the TLS errors of 'kes kmip query'.
func kmipTLSServer(t *testing.T, conf *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					io.ReadFull(c, make([]byte, 8))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// kmipPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate made with the CLI.
type kmipPKI struct {
	caDir, serverCert, serverKey, clientCert, clientKey string
}

func newKMIPPKI(t *testing.T) kmipPKI {
	t.Helper()
	p := kmipPKI{caDir: newCA(t)}
	tmp := t.TempDir()
	p.serverCert, p.serverKey = filepath.Join(tmp, "server.crt"), filepath.Join(tmp, "server.key")
	p.clientCert, p.clientKey = filepath.Join(tmp, "client.crt"), filepath.Join(tmp, "client.key")
	mustRunKes(t, "kmip", "server-cert", "--dir", p.caDir, "--ip", "127.0.0.1", "--key-type", "ecdsa",
		"--out-cert", p.serverCert, "--out-key", p.serverKey)
	mustRunKes(t, "kmip", "client", "new", "tester", "--dir", p.caDir, "--key-type", "ecdsa",
		"--out-cert", p.clientCert, "--out-key", p.clientKey)
	return p
}

func (p kmipPKI) serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    caPool(t, p.caDir),
		MinVersion:   tls.VersionTLS12,
	}
}

func TestKMIPQueryTrustErrors(t *testing.T) {
	p := newKMIPPKI(t)
	other := newKMIPPKI(t) // a second, unrelated CA
	addr := kmipTLSServer(t, p.serverTLS(t))
	_, port, _ := net.SplitHostPort(addr)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "unknown server CA",
			args: []string{addr, "--cert", p.clientCert, "--key", p.clientKey, "--ca", filepath.Join(other.caDir, "ca.crt")},
			want: "not signed by a trusted CA",
		},
		{
			name: "wrong host name",
			args: []string{net.JoinHostPort("localhost", port), "--cert", p.clientCert, "--key", p.clientKey, "--ca", filepath.Join(p.caDir, "ca.crt")},
			want: `not valid for "localhost"`,
		},
		{
			name: "client certificate rejected",
			args: []string{addr, "--cert", other.clientCert, "--key", other.clientKey, "--ca", filepath.Join(p.caDir, "ca.crt")},
			want: "server rejected the client certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"kmip", "query", "--timeout", "10s"}, tt.args...)
			code, _, errOut := runKes(t, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, errOut)
			}
			if !strings.HasPrefix(errOut, "kes: error: ") || !strings.Contains(errOut, tt.want) {
				t.Fatalf("stderr %q, want it to contain %q", errOut, tt.want)
			}
		})
	}

	t.Run("TLS 1.2 RSA suites only", func(t *testing.T) {
		// A server like PyKMIP's: TLS 1.2 and the KMIP 1.x suite
		// AES128-SHA256 only, which needs an RSA certificate.
		tmp := t.TempDir()
		cert, key := filepath.Join(tmp, "rsa.crt"), filepath.Join(tmp, "rsa.key")
		mustRunKes(t, "kmip", "server-cert", "--dir", p.caDir, "--ip", "127.0.0.1", "--out-cert", cert, "--out-key", key)
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		conf := p.serverTLS(t)
		conf.Certificates = []tls.Certificate{pair}
		conf.MaxVersion = tls.VersionTLS12
		conf.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA256}
		oldAddr := kmipTLSServer(t, conf)
		args := []string{"kmip", "query", oldAddr, "--cert", p.clientCert, "--key", p.clientKey, "--ca", filepath.Join(p.caDir, "ca.crt")}

		code, _, errOut := runKes(t, args...)
		if code != 1 || !strings.Contains(errOut, "try --cipher-suites compat") {
			t.Fatalf("default suites: exit %d, stderr %q", code, errOut)
		}
		// With compat the handshake succeeds; this server then hangs up
		// instead of answering.
		code, _, errOut = runKes(t, append(args, "--cipher-suites", "compat")...)
		if code != 1 || !strings.Contains(errOut, "closed the connection") || strings.Contains(errOut, "cipher suite") {
			t.Fatalf("compat suites: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"kmip", "query", addr},
			{"kmip", "query", addr, "--cert", p.clientCert, "--key", p.clientKey, "--version", "2.0"},
			{"kmip", "query", addr, "--cert", p.clientCert, "--key", p.clientKey, "--cipher-suites", "weak"},
		} {
			if code, _, _ := runKes(t, args...); code != 2 {
				t.Errorf("kes %s: exit %d, want 2", strings.Join(args, " "), code)
			}
		}
	})
}

// startBridge runs the KMIP bridge in-process with the TLS files of p,
// the way the server builds it from its config, and lets the identities
// in allowed use every KMIP operation.
func startBridge(t *testing.T, p kmipPKI, users map[string]kmipbridge.User, allowed ...string) string {
	t.Helper()
	tlsConf, err := kmipbridge.LoadTLSConfig(p.serverCert, p.serverKey, filepath.Join(p.caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	svc := keys.New(keys.Config{Store: keystore.NewMem()})
	t.Cleanup(func() { svc.Close() })
	set := &policy.Set{
		Policies:   map[string]*policy.Policy{"hypervisor": {Allow: []string{"/kmip/*"}}},
		Identities: map[string]string{},
	}
	for _, id := range allowed {
		set.Identities[id] = "hypervisor"
	}
	srv, err := kmipbridge.New(kmipbridge.Config{
		Keys:        svc,
		Policies:    func() *policy.Set { return set },
		TLSConfig:   tlsConf,
		Users:       users,
		ReadTimeout: 10 * time.Second,
		IdleTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, kmipbridge.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// outputField returns the value of a "Label   value" line of kmip query.
func outputField(t *testing.T, out, label string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, label+" "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("no %q line in:\n%s", label, out)
	return ""
}

func TestKMIPQueryBridge(t *testing.T) {
	p := newKMIPPKI(t)
	clientID := identity.FromCertificate(readCertFile(t, p.clientCert)).String()
	serverID := identity.FromCertificate(readCertFile(t, p.serverCert)).String()
	users := map[string]kmipbridge.User{"zstack": {Password: keystore.NewSecret("test-password"), Policy: "hypervisor"}}
	addr := startBridge(t, p, users, clientID)
	caFile := filepath.Join(p.caDir, "ca.crt")

	t.Run("negotiated", func(t *testing.T) {
		out, _ := mustRunKes(t, "kmip", "query", addr, "--cert", p.clientCert, "--key", p.clientKey, "--ca", caFile, "--timeout", "10s")
		if got := outputField(t, out, "Server identity"); got != serverID {
			t.Errorf("server identity %s, want %s", got, serverID)
		}
		if got := outputField(t, out, "Client identity"); got != clientID {
			t.Errorf("client identity %s, want %s", got, clientID)
		}
		if got := outputField(t, out, "Server trust"); !strings.HasPrefix(got, "verified") {
			t.Errorf("server trust %q", got)
		}
		if got := outputField(t, out, "TLS"); !strings.HasPrefix(got, "TLS 1.") {
			t.Errorf("TLS %q", got)
		}
		offered := strings.Split(outputField(t, out, "KMIP offered"), ", ")
		if !slices.Contains(offered, "1.1") || !slices.Contains(offered, "1.4") {
			t.Errorf("offered versions %q lack 1.1 or 1.4", offered)
		}
		// The server offers 2.1 first; the CLI's client speaks 1.0–1.4
		// and takes the server's first choice among those.
		if !slices.Contains(offered, "2.1") {
			t.Errorf("offered versions %q lack 2.1", offered)
		}
		first1 := ""
		for _, v := range offered {
			if strings.HasPrefix(v, "1.") {
				first1 = v
				break
			}
		}
		if got := outputField(t, out, "KMIP used"); got != first1 || got != "1.4" {
			t.Errorf("used %s, want the server's first 1.x choice %s (1.4)", got, first1)
		}
		if got := outputField(t, out, "Vendor"); got != kmipbridge.VendorIdentification {
			t.Errorf("vendor %q", got)
		}
		ops := strings.Split(outputField(t, out, "Operations"), ", ")
		for _, op := range []string{"DiscoverVersions", "Query", "Create", "Get", "GetAttributes", "AddAttribute", "Activate", "Locate"} {
			if !slices.Contains(ops, op) {
				t.Errorf("operation %s missing from %q", op, ops)
			}
		}
	})

	t.Run("KMIP 1.1 with compat suites", func(t *testing.T) {
		out, _ := mustRunKes(t, "kmip", "query", addr, "--cert", p.clientCert, "--key", p.clientKey, "--ca", caFile,
			"--version", "1.1", "--cipher-suites", "compat")
		if got := outputField(t, out, "KMIP used"); got != "1.1" {
			t.Errorf("used %s, want 1.1", got)
		}
	})

	t.Run("identity without policy", func(t *testing.T) {
		tmp := t.TempDir()
		cert, key := filepath.Join(tmp, "s.crt"), filepath.Join(tmp, "s.key")
		out, _ := mustRunKes(t, "kmip", "client", "new", "stranger", "--dir", p.caDir, "--key-type", "ecdsa", "--out-cert", cert, "--out-key", key)
		id := printedIdentity(t, out)
		code, _, errOut := runKes(t, "kmip", "query", addr, "--cert", cert, "--key", key, "--ca", caFile)
		if code != 1 || !strings.Contains(errOut, "denied") || !strings.Contains(errOut, id) {
			t.Fatalf("exit %d, stderr %q; want 1, a denial naming identity %s", code, errOut, id)
		}

		// The same certificate with the user's password gets the
		// user's policy.
		t.Setenv("KES_KMIP_PASSWORD", "test-password")
		out, _ = mustRunKes(t, "kmip", "query", addr, "--cert", cert, "--key", key, "--ca", caFile, "--username", "zstack", "--version", "1.1")
		if got := outputField(t, out, "Vendor"); got != kmipbridge.VendorIdentification {
			t.Errorf("vendor %q", got)
		}
		t.Setenv("KES_KMIP_PASSWORD", "wrong-password")
		code, _, errOut = runKes(t, "kmip", "query", addr, "--cert", cert, "--key", key, "--ca", caFile, "--username", "zstack")
		if code != 1 || !strings.Contains(errOut, "rejected the credentials") || strings.Contains(errOut, "wrong-password") {
			t.Fatalf("wrong password: exit %d, stderr %q", code, errOut)
		}
	})
}
