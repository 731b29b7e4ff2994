// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package identity

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"testing"
)

// fuzzPool returns generated certificates of every kind a chain can
// mix, made once per fuzzing process: generating them per input would
// make the fuzzer crawl.
func fuzzPool(t testing.TB) []*x509.Certificate {
	t.Helper()
	f := newForgery(t)
	k, err := GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := Certificate(k)
	if err != nil {
		t.Fatal(err)
	}
	apiLeaf, err := x509.ParseCertificate(api.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return append(certsOf([]party{f.attackerCA, f.attackerLeaf, f.attackerInter, f.attackerRoot, f.victim, f.victimByAttacker, f.victimAsCA}), apiLeaf)
}

// FuzzFromConnectionState builds random chains from generated
// certificates (and from der when it parses as one) and checks that the
// identity is always the SHA-256 of the first certificate's
// SubjectPublicKeyInfo, whatever the others are.
func FuzzFromConnectionState(f *testing.F) {
	pool := fuzzPool(f)
	f.Add([]byte{0, 4}, []byte(nil))
	f.Add([]byte{6, 1, 4}, []byte(nil))
	f.Add([]byte{2, 5, 3}, []byte(nil))
	f.Add([]byte{}, []byte(nil))
	f.Add([]byte{255, 4}, pool[0].Raw)
	f.Add([]byte{1, 255}, pool[7].Raw)
	f.Fuzz(func(t *testing.T, picks, der []byte) {
		const maxChain = 16
		if len(picks) > maxChain {
			picks = picks[:maxChain]
		}
		extra, _ := x509.ParseCertificate(der)
		var chain []*x509.Certificate
		for _, b := range picks {
			switch {
			case int(b) < len(pool):
				chain = append(chain, pool[b])
			case extra != nil:
				chain = append(chain, extra)
			}
		}
		id, err := FromConnectionState(&tls.ConnectionState{PeerCertificates: chain})
		if len(chain) == 0 {
			if !errors.Is(err, ErrNoCertificate) || id != Unknown {
				t.Fatalf("empty chain: %q %v", id, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("chain of %d: %v", len(chain), err)
		}
		sum := sha256.Sum256(chain[0].RawSubjectPublicKeyInfo)
		if want := hex.EncodeToString(sum[:]); string(id) != want {
			t.Fatalf("identity %s, want the first certificate's %s", id, want)
		}
		if !Valid(string(id)) {
			t.Fatalf("identity %q is not Valid", id)
		}
		if alone, _ := FromConnectionState(&tls.ConnectionState{PeerCertificates: chain[:1]}); alone != id {
			t.Fatal("the certificates after the first changed the identity")
		}
	})
}
