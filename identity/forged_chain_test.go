// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/testpki"
)

// party is a key pair and a certificate around it.
type party struct {
	key  crypto.Signer
	cert *x509.Certificate
}

// spkiHash is the expected identity of p, computed without the package.
func (p party) spkiHash() Identity {
	sum := sha256.Sum256(p.cert.RawSubjectPublicKeyInfo)
	return Identity(hex.EncodeToString(sum[:]))
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// certify returns a certificate for pub signed by parent (nil:
// self-signed with key). Anyone can do this for any public key they know.
func certify(t testing.TB, cn string, isCA bool, pub crypto.PublicKey, parent *party, key crypto.Signer) *x509.Certificate {
	t.Helper()
	if parent != nil {
		return testpki.Issue(t, cn, isCA, nil, pub, parent.cert, parent.key)
	}
	return testpki.Issue(t, cn, isCA, nil, pub, nil, key)
}

// forgery is a set of certificates an attacker who holds only its own
// key can put together: its key under CA and non-CA certificates, and
// certificates over the victim's public key, which it never holds.
type forgery struct {
	attackerCA, attackerLeaf, attackerInter, attackerRoot party
	victim, victimByAttacker, victimAsCA                  party
}

func newForgery(t testing.TB) *forgery {
	t.Helper()
	f := &forgery{}
	ak := newKey(t)
	f.attackerCA = party{ak, certify(t, "attacker CA", true, ak.Public(), nil, ak)}
	f.attackerLeaf = party{ak, certify(t, "attacker", false, ak.Public(), nil, ak)}
	rk := newKey(t)
	f.attackerRoot = party{rk, certify(t, "attacker root", true, rk.Public(), nil, rk)}
	f.attackerInter = party{ak, certify(t, "attacker intermediate", true, ak.Public(), &f.attackerRoot, nil)}

	// The victim's own self-signed certificate, as a KES API key makes it,
	// seen by the attacker on the wire or in a config.
	_, vk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.victim = party{nil, certify(t, "victim", false, vk.Public(), nil, vk)}
	f.victimByAttacker = party{nil, certify(t, "victim", false, vk.Public(), &f.attackerCA, nil)}
	f.victimAsCA = party{nil, certify(t, "victim", true, vk.Public(), &f.attackerCA, nil)}
	return f
}

// chains returns every shape of forged chain; the attacker's key is the
// key of the first certificate of each.
func (f *forgery) chains() []struct {
	name  string
	chain []party
} {
	return []struct {
		name  string
		chain []party
	}{
		{"CA first", []party{f.attackerCA, f.victim}},
		{"CA first, victim issued by it", []party{f.attackerCA, f.victimByAttacker}},
		{"CA last", []party{f.attackerLeaf, f.victimAsCA}},
		{"CA first and last", []party{f.attackerCA, f.victim, f.attackerRoot}},
		{"two leaves", []party{f.attackerLeaf, f.victim}},
		{"intermediate first", []party{f.attackerInter, f.victimByAttacker, f.attackerRoot}},
		{"victim's key in the middle", []party{f.attackerCA, f.victimAsCA, f.victim, f.attackerRoot}},
		{"only a CA", []party{f.attackerCA}},
	}
}

func certsOf(chain []party) []*x509.Certificate {
	var certs []*x509.Certificate
	for _, p := range chain {
		certs = append(certs, p.cert)
	}
	return certs
}

// TestFromConnectionStateForgedChains: whatever follows the first
// certificate, the identity is the first certificate's.
func TestFromConnectionStateForgedChains(t *testing.T) {
	f := newForgery(t)
	want := f.attackerCA.spkiHash()
	if f.victim.spkiHash() == want || f.attackerLeaf.spkiHash() != want || f.attackerInter.spkiHash() != want {
		t.Fatal("test setup: the attacker's certificates must share one key, the victim's another")
	}
	for _, tt := range f.chains() {
		t.Run(tt.name, func(t *testing.T) {
			id, err := FromConnectionState(&tls.ConnectionState{PeerCertificates: certsOf(tt.chain)})
			if err != nil {
				t.Fatal(err)
			}
			if id != want {
				t.Fatalf("identity %s, want the first certificate's %s (victim: %s)", id, want, f.victim.spkiHash())
			}
		})
	}
	t.Run("victim first", func(t *testing.T) {
		// A client can only complete a handshake with the victim's
		// certificate first if it holds the victim's key: then it is the
		// victim.
		id, err := FromConnectionState(&tls.ConnectionState{PeerCertificates: certsOf([]party{f.victim, f.attackerCA})})
		if err != nil || id != f.victim.spkiHash() {
			t.Fatalf("%s %v", id, err)
		}
	})
}

func TestFromConnectionStateErrors(t *testing.T) {
	if _, err := FromConnectionState(nil); !errors.Is(err, ErrNoTLS) {
		t.Fatalf("nil state: %v", err)
	}
	for _, certs := range [][]*x509.Certificate{nil, {}} {
		if _, err := FromConnectionState(&tls.ConnectionState{PeerCertificates: certs}); !errors.Is(err, ErrNoCertificate) {
			t.Fatalf("no certificate: %v", err)
		}
	}
}

// TestHandshakeProvesFirstCertificate runs real TLS handshakes with each
// forged chain: the server's connection state yields the attacker's
// identity, and a client that puts the victim's certificate first
// without the victim's key fails the handshake. That failure is what
// makes the first certificate, and only it, a proven identity.
func TestHandshakeProvesFirstCertificate(t *testing.T) {
	f := newForgery(t)
	for _, tt := range f.chains() {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := handshake(t, tt.chain, tt.chain[0].key)
			if err != nil {
				t.Fatal(err)
			}
			id, err := FromConnectionState(cs)
			if err != nil || id != f.attackerCA.spkiHash() {
				t.Fatalf("identity %s %v, want the attacker's %s", id, err, f.attackerCA.spkiHash())
			}
		})
	}
	t.Run("victim first, attacker's key", func(t *testing.T) {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			if _, err := handshakeVersion(t, []party{f.victim, f.attackerCA}, f.attackerCA.key, v); err == nil {
				t.Fatalf("%s: handshake succeeded without the first certificate's key", tls.VersionName(v))
			}
		}
	})
}

func handshake(t *testing.T, chain []party, key crypto.Signer) (*tls.ConnectionState, error) {
	return handshakeVersion(t, chain, key, tls.VersionTLS13)
}

// handshakeVersion performs a TLS handshake over a pipe in which the
// client presents chain and signs with key, and returns the server's
// state. The server accepts any certificate, as tls.auth "off" does.
func handshakeVersion(t *testing.T, chain []party, key crypto.Signer, version uint16) (*tls.ConnectionState, error) {
	t.Helper()
	sk := newKey(t)
	srvCert := certify(t, "server", false, sk.Public(), nil, sk)
	cert := tls.Certificate{PrivateKey: key}
	for _, p := range chain {
		cert.Certificate = append(cert.Certificate, p.cert.Raw)
	}
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The client side is the attacker's: it does not care whom it talks to.
	client := tls.Client(cc, &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version,
		Certificates: []tls.Certificate{cert}})
	server := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: sk}},
		ClientAuth: tls.RequireAnyClientCert, MinVersion: version, MaxVersion: version, SessionTicketsDisabled: true})
	done := make(chan error, 1)
	go func() {
		err := client.HandshakeContext(ctx)
		if err == nil {
			// A TLS 1.3 client finishes before the server has checked
			// its proof: read until the server's verdict closes the pipe.
			_, err = client.Read(make([]byte, 1))
		}
		done <- err
		cc.Close()
	}()
	err := server.HandshakeContext(ctx)
	if err != nil {
		sc.Close()
		<-done
		return nil, err
	}
	cs := server.ConnectionState()
	sc.Close()
	<-done
	return &cs, nil
}
