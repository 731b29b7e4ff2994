// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/testpki"
	kesgo "github.com/minio/kes-go"
	"github.com/minio/kms-go/kes"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
)

// A client proves in the TLS handshake that it holds the key of the first
// certificate it sends, and of no other. These tests send chains in which
// the first certificate is the attacker's and a later one carries the
// admin's or another client's public key, over every kind of client, and
// check that the server sees the attacker.

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func spkiID(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// presenting is the client certificate of a client that sends chain and
// signs with key.
func presenting(key crypto.Signer, chain ...*x509.Certificate) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: key}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

type forgedChain struct {
	name string
	cert *tls.Certificate
}

// forgedChains returns every shape of chain an attacker holding only
// attacker can build around the public keys of admin and victim: its
// key first, under a CA or a leaf certificate, the victims' keys after.
func forgedChains(t testing.TB, attacker *ecdsa.PrivateKey, admin, victim kes.APIKey) []forgedChain {
	t.Helper()
	ca := testpki.Issue(t, "attacker CA", true, nil, attacker.Public(), nil, attacker)
	leaf := testpki.Issue(t, "attacker", false, nil, attacker.Public(), nil, attacker)
	rootKey := ecKey(t)
	root := testpki.Issue(t, "attacker root", true, nil, rootKey.Public(), nil, rootKey)
	inter := testpki.Issue(t, "attacker intermediate", true, nil, attacker.Public(), root, rootKey)
	parse := func(c *tls.Certificate) *x509.Certificate {
		x, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	// The victims' own API key certificates, as seen on the wire.
	adminCert, victimCert := parse(apiCert(t, admin)), parse(apiCert(t, victim))
	adminByCA := testpki.Issue(t, "admin", false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, admin.Public(), ca, attacker)
	adminAsCA := testpki.Issue(t, "admin", true, nil, admin.Public(), ca, attacker)
	adminByInter := testpki.Issue(t, "admin", false, nil, admin.Public(), inter, attacker)
	return []forgedChain{
		{"CA first", presenting(attacker, ca, adminCert)},
		{"CA first, policy victim", presenting(attacker, ca, victimCert)},
		{"CA first, admin issued by it", presenting(attacker, ca, adminByCA)},
		{"CA last", presenting(attacker, leaf, adminAsCA)},
		{"CA first and last", presenting(attacker, ca, adminCert, root)},
		{"two leaves", presenting(attacker, leaf, adminCert)},
		{"two leaves, policy victim", presenting(attacker, leaf, victimCert)},
		{"intermediate first", presenting(attacker, inter, adminByInter, root)},
		{"admin in the middle", presenting(attacker, ca, adminAsCA, adminCert, victimCert, root)},
		{"second carries the admin's key", presenting(attacker, leaf, adminByCA)},
	}
}

// attackerConfig is baseConfig with victim as the minio identity and a
// policy that lets the attacker see /v1/status only, so that
// self-describe answers it.
func attackerConfig(p *pki, admin, victim kes.APIKey, attackerID string) string {
	return strings.Replace(baseConfig(p, identityOf(admin), identityOf(victim), ""), "policy:\n",
		"policy:\n  attacker:\n    allow:\n    - /v1/status\n    identities:\n    - "+attackerID+"\n", 1)
}

// selfIdentity decodes the identity of a self-describe answer.
func selfIdentity(t testing.TB, body string) (string, bool) {
	t.Helper()
	var v struct {
		Identity string `json:"identity"`
		Admin    bool   `json:"admin"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("self describe: %v: %q", err, body)
	}
	return v.Identity, v.Admin
}

// exchange is one request over some client; it returns the status, the
// body and the HTTP major version.
type exchange func(method, path string, header http.Header) (int, string, int)

// checkAttacker asserts that requests over do are the attacker's: it
// describes itself as attackerID, and the admin's and the victim's
// routes answer 403.
func checkAttacker(t *testing.T, do exchange, attackerID string, proto int) {
	t.Helper()
	code, body, major := do("GET", "/v1/identity/self/describe", nil)
	if major != proto {
		t.Fatalf("HTTP/%d, want HTTP/%d", major, proto)
	}
	if code != 200 {
		t.Fatalf("self describe: %d %q", code, body)
	}
	if id, admin := selfIdentity(t, body); id != attackerID || admin {
		t.Fatalf("self describe: identity %s (admin %v), want the first certificate's %s", id, admin, attackerID)
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/identity/list/*"},          // the admin's
		{"GET", "/v1/policy/list/*"},            // the admin's
		{"POST", "/v1/key/create/minio-forged"}, // the victim's
	} {
		if code, body, _ := do(r.method, r.path, nil); code != 403 || body != errorBody("not authorized: insufficient permissions") {
			t.Fatalf("%s %s: %d %q, want 403", r.method, r.path, code, body)
		}
	}
	if code, body, _ := do("GET", "/v1/status", nil); code != 200 {
		t.Fatalf("the attacker's own route: %d %q", code, body)
	}
}

// viaHTTPClient sends requests with an http.Client.
func viaHTTPClient(t testing.TB, e *env, c *http.Client) exchange {
	return func(method, path string, header http.Header) (int, string, int) {
		t.Helper()
		req, err := http.NewRequest(method, e.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b), resp.ProtoMajor
	}
}

// viaRawHTTP1 sends each request over a new crypto/tls connection that
// negotiates HTTP/1.1 only, written by hand.
func viaRawHTTP1(t testing.TB, e *env, cert *tls.Certificate) exchange {
	return func(method, path string, _ http.Header) (int, string, int) {
		t.Helper()
		conf := e.clientTLS(cert)
		conf.NextProtos = []string{"http/1.1"}
		c, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), conf)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Fatalf("negotiated %q", p)
		}
		if _, err := io.WriteString(c, method+" "+path+" HTTP/1.1\r\nHost: kes\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b), resp.ProtoMajor
	}
}

// TestForgedChainHTTP sends every forged chain with tls.auth off (the
// default) over kms-go, kes-go, a raw HTTP/1.1 connection and HTTP/2.
func TestForgedChainHTTP(t *testing.T) {
	p := newPKI(t)
	admin, victim := newAPIKey(t), newAPIKey(t)
	attacker := ecKey(t)
	attackerID := spkiID(testpki.Issue(t, "attacker", false, nil, attacker.Public(), nil, attacker))
	e := start(t, p, admin, attackerConfig(p, admin, victim, attackerID))
	ctx := context.Background()

	for _, fc := range forgedChains(t, attacker, admin, victim) {
		t.Run(fc.name, func(t *testing.T) {
			t.Run("kms-go", func(t *testing.T) {
				c := kes.NewClientWithConfig(e.url, e.clientTLS(fc.cert))
				defer c.HTTPClient.CloseIdleConnections()
				info, _, err := c.DescribeSelf(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if info.Identity.String() != attackerID || info.IsAdmin || info.Policy != "attacker" {
					t.Fatalf("DescribeSelf: %+v, want %s", info, attackerID)
				}
				if _, _, err := c.ListIdentities(ctx, "", 0); err != kes.ErrNotAllowed {
					t.Fatalf("ListIdentities: %v", err)
				}
				if err := c.CreateKey(ctx, "minio-forged"); err != kes.ErrNotAllowed {
					t.Fatalf("CreateKey: %v", err)
				}
			})
			t.Run("kes-go", func(t *testing.T) {
				c := kesgo.NewClientWithConfig(e.url, e.clientTLS(fc.cert))
				defer c.HTTPClient.CloseIdleConnections()
				info, _, err := c.DescribeSelf(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if info.Identity.String() != attackerID || info.IsAdmin || info.Policy != "attacker" {
					t.Fatalf("DescribeSelf: %+v, want %s", info, attackerID)
				}
				if err := c.CreateKey(ctx, "minio-forged"); err != kesgo.ErrNotAllowed {
					t.Fatalf("CreateKey: %v", err)
				}
			})
			t.Run("HTTP/1.1", func(t *testing.T) {
				checkAttacker(t, viaRawHTTP1(t, e, fc.cert), attackerID, 1)
			})
			t.Run("HTTP/2", func(t *testing.T) {
				checkAttacker(t, viaHTTPClient(t, e, e.raw(fc.cert)), attackerID, 2)
			})
		})
	}
	// The admin itself, with the attacker's CA after its certificate: the
	// extra certificate does not take the admin's identity away.
	t.Run("admin with extra certificates", func(t *testing.T) {
		ca := testpki.Issue(t, "attacker CA", true, nil, attacker.Public(), nil, attacker)
		cert := apiCert(t, admin)
		cert.Certificate = append(cert.Certificate, ca.Raw)
		code, body, _ := viaHTTPClient(t, e, e.raw(cert))("GET", "/v1/identity/self/describe", nil)
		if id, isAdmin := selfIdentity(t, body); code != 200 || id != identityOf(admin) || !isAdmin {
			t.Fatalf("%d %q", code, body)
		}
	})
}

// TestForgedChainVerifiedClients: with tls.auth on, the first
// certificate is what the chain check verifies and what the identity is
// taken from. An attacker holding an intermediate CA the server trusts
// still gets its own identity, and a trusted victim certificate after an
// untrusted first one does not pass the handshake.
func TestForgedChainVerifiedClients(t *testing.T) {
	p := newPKI(t)
	admin, victim := newAPIKey(t), newAPIKey(t)
	attacker := ecKey(t)
	inter := testpki.Issue(t, "attacker intermediate", true, nil, attacker.Public(), p.caCert, p.caKey)
	leaf := testpki.Issue(t, "attacker", false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, attacker.Public(), p.caCert, p.caKey)
	attackerID := spkiID(inter)
	e := start(t, p, admin, strings.Replace(attackerConfig(p, admin, victim, attackerID),
		"tls:\n", "tls:\n  auth: on\n  ca: "+p.caFile+"\n", 1))

	adminByInter := testpki.Issue(t, "admin", false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, admin.Public(), inter, attacker)
	victimByInter := testpki.Issue(t, "victim", false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, victim.Public(), inter, attacker)
	for _, fc := range []forgedChain{
		{"trusted intermediate first", presenting(attacker, inter, adminByInter)},
		{"trusted intermediate first, policy victim", presenting(attacker, inter, victimByInter, p.caCert)},
		{"trusted leaf first", presenting(attacker, leaf, adminByInter, inter)},
	} {
		t.Run(fc.name, func(t *testing.T) {
			checkAttacker(t, viaRawHTTP1(t, e, fc.cert), attackerID, 1)
			checkAttacker(t, viaHTTPClient(t, e, e.raw(fc.cert)), attackerID, 2)
		})
	}

	t.Run("untrusted first, trusted victim after", func(t *testing.T) {
		self := testpki.Issue(t, "attacker CA", true, nil, attacker.Public(), nil, attacker)
		trusted := p.issue(t, "", "", x509.ExtKeyUsageClientAuth, nil)
		cert := presenting(attacker, self, trusted.Leaf)
		req, _ := http.NewRequest("GET", e.url+"/v1/identity/self/describe", nil)
		if resp, err := e.raw(cert).Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("handshake passed: %d", resp.StatusCode)
		}
	})
}

// TestForgedChainProxy: the proxy is identified by its first certificate
// like any client, so a chain that merely contains the proxy's
// certificate cannot forward a forged client certificate; and the
// header carries exactly one certificate.
func TestForgedChainProxy(t *testing.T) {
	p := newPKI(t)
	admin, victim, proxy := newAPIKey(t), newAPIKey(t), newAPIKey(t)
	attacker := ecKey(t)
	ca := testpki.Issue(t, "attacker CA", true, nil, attacker.Public(), nil, attacker)
	attackerID := spkiID(ca)
	e := start(t, p, admin, strings.Replace(attackerConfig(p, admin, victim, attackerID),
		"tls:\n", "tls:\n  proxy:\n    identities: ["+identityOf(proxy)+"]\n", 1))
	forward := func(ders ...[]byte) http.Header {
		var b []byte
		for _, d := range ders {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
		}
		return http.Header{"X-Tls-Client-Cert": {url.QueryEscape(string(b))}}
	}
	adminDER := apiCert(t, admin).Certificate[0]
	proxyDER := apiCert(t, proxy).Certificate[0]

	t.Run("chain containing the proxy", func(t *testing.T) {
		for _, chain := range [][][]byte{{ca.Raw, proxyDER}, {ca.Raw, adminDER, proxyDER}} {
			cert := &tls.Certificate{Certificate: chain, PrivateKey: attacker}
			do := viaHTTPClient(t, e, e.raw(cert))
			withHeader := func(m, path string, _ http.Header) (int, string, int) { return do(m, path, forward(adminDER)) }
			checkAttacker(t, withHeader, attackerID, 2)
		}
	})
	t.Run("proxy with extra certificates", func(t *testing.T) {
		cert := apiCert(t, proxy)
		cert.Certificate = append(cert.Certificate, ca.Raw, adminDER)
		do := viaHTTPClient(t, e, e.raw(cert))
		code, body, _ := do("GET", "/v1/identity/self/describe", forward(apiCert(t, victim).Certificate[0]))
		if id, _ := selfIdentity(t, body); code != 200 || id != identityOf(victim) {
			t.Fatalf("forwarded victim: %d %q", code, body)
		}
	})
	t.Run("forwarded chain", func(t *testing.T) {
		do := viaHTTPClient(t, e, e.raw(apiCert(t, proxy)))
		for _, ders := range [][][]byte{{ca.Raw, adminDER}, {adminDER, ca.Raw}, {apiCert(t, victim).Certificate[0], adminDER}} {
			code, body, _ := do("GET", "/v1/status", forward(ders...))
			if code != 400 || body != errorBody("tls: invalid forwarded client certificate") {
				t.Fatalf("forwarded chain of %d: %d %q", len(ders), code, body)
			}
		}
	})
}

// TestForgedChainKMIPListener: the server's KMIP listener, which checks
// client chains against kmip.tls.ca, takes the identity from the first
// certificate too. The attacker holds an intermediate CA certificate
// issued by that CA and sends the victim's certificate after it.
func TestForgedChainKMIPListener(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	victim := p.issue(t, "", "", x509.ExtKeyUsageServerAuth, nil)
	attacker := ecKey(t)
	inter := testpki.Issue(t, "attacker intermediate", true, nil, attacker.Public(), p.caCert, p.caKey)
	yaml := baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)),
		"kmip:\n  address: 127.0.0.1:0\n  tls:\n    key: "+p.keyFile+"\n    cert: "+p.certFile+"\n    ca: "+p.caFile+"\n")
	yaml = strings.Replace(yaml, "policy:\n", "policy:\n  kmip:\n    allow: [/kmip/*]\n    identities: ["+spkiID(victim.Leaf)+"]\n", 1)
	e := start(t, p, admin, yaml)
	if err := e.srv.StartKMIP(context.Background()); err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.caCert.Raw})
	victimByInter := testpki.Issue(t, "victim", false, nil, victim.Leaf.PublicKey, inter, attacker)
	for name, cert := range map[string]*tls.Certificate{
		"victim's certificate":       presenting(attacker, inter, victim.Leaf),
		"victim's key, issued by it": presenting(attacker, inter, victimByInter, p.caCert),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := kmipclient.Dial(e.srv.KMIPAddr().String(), kmipclient.WithRootCAPem(caPEM), kmipclient.WithClientCert(*cert),
				kmipclient.EnforceVersion(kmip.V1_4))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if resp, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt).Exec(); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
				t.Fatalf("create as the attacker: %+v %v", resp, err)
			}
		})
	}
	eventually(t, "kmip audit of the attacker", func() bool {
		return strings.Contains(e.stdout.String(), "req.identity="+spkiID(inter))
	})
	if strings.Contains(e.stdout.String(), "req.identity="+spkiID(victim.Leaf)) {
		t.Fatalf("a KMIP call ran as the victim:\n%s", e.stdout.String())
	}
}
