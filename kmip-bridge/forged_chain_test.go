// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/testpki"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
)

// forge returns a certificate for pub issued by parent with parentKey
// (parent nil: self-signed), as anyone who knows pub can make one.
func forge(t testing.TB, cn string, isCA bool, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	return testpki.Issue(t, cn, isCA, nil, pub, parent, parentKey)
}

func chainOf(key crypto.Signer, certs ...*x509.Certificate) tls.Certificate {
	c := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, x := range certs {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// verifying returns the ways the bridge is configured to check client
// chains against the test CA.
func verifying(p *pki) map[string]envOption {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return map[string]envOption{
		// LoadTLSConfig and the edge's kmip listener.
		"VerifyClientChain": func(c *Config) {
			c.TLSConfig = c.TLSConfig.Clone()
			c.TLSConfig.ClientAuth = tls.RequireAnyClientCert
			c.TLSConfig.VerifyPeerCertificate = VerifyClientChain(pool)
		},
		// New turns this into VerifyClientChain over ClientCAs.
		"VerifyClientCertIfGiven": func(c *Config) {
			c.TLSConfig = c.TLSConfig.Clone()
			c.TLSConfig.ClientAuth = tls.VerifyClientCertIfGiven
			c.TLSConfig.ClientCAs = pool
		},
		"RequireAndVerifyClientCert": func(c *Config) {
			c.TLSConfig = c.TLSConfig.Clone()
			c.TLSConfig.ClientAuth = tls.RequireAndVerifyClientCert
			c.TLSConfig.ClientCAs = pool
		},
	}
}

// wantAttacker checks that a session with cert is attackerID's: it may
// discover versions (its own policy) but not create keys, which only the
// victim e.client may, and the audit names the attacker.
func wantAttacker(t *testing.T, e *env, cert tls.Certificate, attackerID string) {
	t.Helper()
	c, err := kmipclient.Dial(e.addr, kmipclient.WithRootCAPem(e.pki.caPEM), kmipclient.WithClientCert(cert))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	resp, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt).Exec()
	if err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("create as the attacker: %+v %v", resp, err)
	}
	raw := e.raw(cert)
	create := &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey}
	wantReason(t, send(t, raw, request(kmip.V1_4, create)).BatchItem[0], kmip.ResultReasonPermissionDenied)
	if !e.audited(attackerID, "create", "", true) {
		t.Fatal("the audit does not name the first certificate's identity")
	}
	if e.audited(idOf(e.client), "create", "", false) {
		t.Fatal("a create ran as the victim")
	}
}

// TestForgedChainKMIP: a client whose first certificate is its own and
// whose later certificates carry another client's public key is itself,
// whether the bridge checks client chains or not. With a check, the
// first certificate chains to the trusted CA (the attacker holds an
// intermediate CA certificate, or a client certificate, from it) while
// the second is the victim's.
func TestForgedChainKMIP(t *testing.T) {
	p := testPKI(t)
	attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	inter := forge(t, "attacker intermediate", true, attacker.Public(), p.ca, p.caKey)
	leaf := forge(t, "attacker", false, attacker.Public(), p.ca, p.caKey)
	self := forge(t, "attacker CA", true, attacker.Public(), nil, attacker)
	attackerID := identity.FromCertificate(inter).String()

	withAttacker := func(e *env) {
		old := e.policies.Load()
		set := &policy.Set{Policies: map[string]*policy.Policy{"probe": {Allow: []string{"/kmip/discover-versions"}}}, Identities: map[string]string{attackerID: "probe"}}
		for name, pol := range old.Policies {
			set.Policies[name] = pol
		}
		for id, name := range old.Identities {
			set.Identities[id] = name
		}
		e.policies.Store(set)
	}

	// With chain checks: every forged chain starts with a trusted
	// certificate of the attacker's.
	for mode, opt := range verifying(p) {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, opt)
			withAttacker(e)
			victimByInter := forge(t, "client", false, e.client.Leaf.PublicKey, inter, attacker)
			for name, cert := range map[string]tls.Certificate{
				"intermediate first, victim's certificate":  chainOf(attacker, inter, e.client.Leaf),
				"intermediate first, victim's key under it": chainOf(attacker, inter, victimByInter, p.ca),
				"leaf first, victim's certificate":          chainOf(attacker, leaf, e.client.Leaf),
				"leaf first, victim's key as a CA":          chainOf(attacker, leaf, forge(t, "client", true, e.client.Leaf.PublicKey, inter, attacker), inter),
			} {
				t.Run(name, func(t *testing.T) { wantAttacker(t, e, cert, attackerID) })
			}
			// The chain check is on the first certificate: a trusted
			// victim certificate after an untrusted first one does not
			// get in.
			untrusted := chainOf(attacker, self, e.client.Leaf, p.ca)
			if !e.refused(&untrusted) {
				t.Fatal("untrusted first certificate accepted")
			}
		})
	}

	// Without chain checks (any certificate, identified by its key).
	t.Run("no chain check", func(t *testing.T) {
		e := newEnv(t)
		withAttacker(e)
		for name, cert := range map[string]tls.Certificate{
			"self-signed CA first":       chainOf(attacker, self, e.client.Leaf),
			"self-signed CA first, last": chainOf(attacker, self, e.client.Leaf, p.ca),
			"intermediate first":         chainOf(attacker, inter, e.client.Leaf, p.ca),
			"victim's key in the middle": chainOf(attacker, self, forge(t, "client", true, e.client.Leaf.PublicKey, self, attacker), e.client.Leaf),
		} {
			t.Run(name, func(t *testing.T) { wantAttacker(t, e, cert, attackerID) })
		}
	})
}

// TestVerifyClientChainFirstIsLeaf: VerifyClientChain checks the first
// certificate as the leaf and uses the others only as intermediates.
func TestVerifyClientChainFirstIsLeaf(t *testing.T) {
	p := testPKI(t)
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	verify := VerifyClientChain(pool)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	trusted := p.issue(t, "client", false).Leaf
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherRoot := forge(t, "other root", true, rootKey.Public(), nil, rootKey)
	self := forge(t, "self", false, key.Public(), nil, key)
	inter := forge(t, "intermediate", true, key.Public(), p.ca, p.caKey)
	viaInter := forge(t, "via intermediate", false, rootKey.Public(), inter, key)
	raw := func(certs ...*x509.Certificate) [][]byte {
		var r [][]byte
		for _, c := range certs {
			r = append(r, c.Raw)
		}
		return r
	}
	for _, tt := range []struct {
		name  string
		chain [][]byte
		ok    bool
	}{
		{"trusted leaf", raw(trusted), true},
		{"leaf through an intermediate", raw(viaInter, inter), true},
		{"intermediates in any order", raw(viaInter, otherRoot, inter), true},
		{"untrusted first, trusted after", raw(self, trusted), false},
		{"other root first, trusted after", raw(otherRoot, trusted, p.ca), false},
		{"intermediate missing", raw(viaInter), false},
		{"empty", nil, false},
		{"garbage after the leaf", append(raw(trusted), []byte("not a certificate")), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := verify(tt.chain, nil); (err == nil) != tt.ok {
				t.Fatalf("verify: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
