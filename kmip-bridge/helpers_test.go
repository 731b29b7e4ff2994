// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/ttlv"
)

// pki is a test CA with a server certificate for 127.0.0.1.
type pki struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	server tls.Certificate
}

var testPKI = func() func(t testing.TB) *pki {
	var p atomic.Pointer[pki]
	return func(t testing.TB) *pki {
		t.Helper()
		if v := p.Load(); v != nil {
			return v
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "test CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		ca, _ := x509.ParseCertificate(der)
		v := &pki{ca: ca, caKey: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
		v.server = v.issue(t, "kmip server", true)
		p.Store(v)
		return v
	}
}()

// issue returns a certificate signed by the CA. Client certificates have
// no extended key usage at all, like the ones vCenter generates.
func (p *pki) issue(t testing.TB, cn string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func idOf(c tls.Certificate) string { return identity.FromCertificate(c.Leaf).String() }

// env is a running bridge with a client identity allowed everything
// under /kmip/.
type env struct {
	t        testing.TB
	srv      *Server
	addr     string
	keys     *keys.Service
	pki      *pki
	client   tls.Certificate
	policies atomic.Pointer[policy.Set]
	audit    atomic.Int64

	mu      sync.Mutex
	records []auditRecord
}

type auditRecord struct {
	identity, operation, uid string
	err                      error
}

// audited reports whether the audit hook saw a matching call.
func (e *env) audited(identity, operation, uid string, failed bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.records {
		if r.identity == identity && r.operation == operation && r.uid == uid && (r.err != nil) == failed {
			return true
		}
	}
	return false
}

type envOption func(*Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	p := testPKI(t)
	e := &env{t: t, pki: p, client: p.issue(t, "client", false)}
	_, bench := t.(*testing.B)
	e.keys = keys.New(keys.Config{Store: keystore.NewMem()})
	t.Cleanup(func() { e.keys.Close() })
	e.policies.Store(&policy.Set{
		Policies:   map[string]*policy.Policy{"kmip": {Allow: []string{"/kmip/*"}}},
		Identities: map[string]string{idOf(e.client): "kmip"},
	})
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	cfg := Config{
		Keys:      e.keys,
		Policies:  func() *policy.Set { return e.policies.Load() },
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{p.server}, CipherSuites: CompatCipherSuites()},
		Audit: func(id, op, uid string, err error) {
			e.audit.Add(1)
			if bench {
				// A benchmark's millions of records would measure
				// this slice, not the server.
				return
			}
			e.mu.Lock()
			e.records = append(e.records, auditRecord{id, op, uid, err})
			e.mu.Unlock()
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != ErrServerClosed {
			t.Errorf("serve: %v", err)
		}
	})
	e.srv, e.addr = srv, ln.Addr().String()
	return e
}

// dial returns an ovh kmipclient that negotiates the version.
func (e *env) dial(cert tls.Certificate, opts ...kmipclient.Option) *kmipclient.Client {
	e.t.Helper()
	opts = append([]kmipclient.Option{kmipclient.WithRootCAPem(e.pki.caPEM), kmipclient.WithClientCert(cert)}, opts...)
	c, err := kmipclient.Dial(e.addr, opts...)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

func (e *env) tlsConfig(cert *tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(e.pki.ca)
	c := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// refused reports whether the bridge refuses a session with cert (nil:
// no certificate). With TLS 1.3 the server's refusal shows only on the
// first read.
func (e *env) refused(cert *tls.Certificate) bool {
	e.t.Helper()
	c, err := tls.Dial("tcp", e.addr, e.tlsConfig(cert))
	if err != nil {
		return true
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err = c.Write(unhex(e.t, vcDiscoverVersions)); err == nil {
		_, err = c.Read(make([]byte, 8))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		e.t.Fatal("the bridge neither answered nor closed the session")
	}
	return err != nil
}

// raw opens a TLS connection for hand-made messages.
func (e *env) raw(cert tls.Certificate) *tls.Conn {
	e.t.Helper()
	return e.rawFor(e.t, cert)
}

// rawFor is raw for a test other than the one that started the server.
func (e *env) rawFor(t testing.TB, cert tls.Certificate) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", e.addr, e.tlsConfig(&cert))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// readMessage reads one TTLV message.
func readMessage(t testing.TB, r io.Reader) []byte {
	t.Helper()
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(r, hdr); err != nil {
		t.Fatalf("read response: %v", err)
	}
	n := int(hdr[4])<<24 | int(hdr[5])<<16 | int(hdr[6])<<8 | int(hdr[7])
	msg := make([]byte, 8+n)
	copy(msg, hdr)
	if _, err := io.ReadFull(r, msg[8:]); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return msg
}

// exchange sends raw bytes and decodes the response.
func exchange(t testing.TB, c net.Conn, req []byte) *kmip.ResponseMessage {
	t.Helper()
	if _, err := c.Write(req); err != nil {
		t.Fatalf("write: %v", err)
	}
	var resp kmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(readMessage(t, c), &resp); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return &resp
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send encodes and sends a request message.
func send(t testing.TB, c net.Conn, msg *kmip.RequestMessage) *kmip.ResponseMessage {
	t.Helper()
	return exchange(t, c, ttlv.MarshalTTLV(msg))
}

func request(v kmip.ProtocolVersion, pls ...kmip.OperationPayload) *kmip.RequestMessage {
	m := kmip.NewRequestMessage(v, pls...)
	return &m
}

func wantOK(t testing.TB, bi kmip.ResponseBatchItem) {
	t.Helper()
	if bi.ResultStatus != kmip.ResultStatusSuccess {
		t.Fatalf("%s failed: reason %s: %s", ttlv.EnumStr(bi.Operation), ttlv.EnumStr(bi.ResultReason), bi.ResultMessage)
	}
}

func wantReason(t testing.TB, bi kmip.ResponseBatchItem, reason kmip.ResultReason) {
	t.Helper()
	if bi.ResultStatus != kmip.ResultStatusOperationFailed || bi.ResultReason != reason {
		t.Fatalf("%s: got status %s reason %s (%q), want failure %s", ttlv.EnumStr(bi.Operation), ttlv.EnumStr(bi.ResultStatus),
			ttlv.EnumStr(bi.ResultReason), bi.ResultMessage, ttlv.EnumStr(reason))
	}
}

// sessionContext returns a context as a connection of e.client has it.
func sessionContext(e *env) context.Context {
	return context.WithValue(context.Background(), sessionKey{}, &session{identity: identity.Identity(idOf(e.client))})
}

// selfSigned returns a self-signed client certificate, as a KES API key
// produces.
func (*pki) selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "self"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
