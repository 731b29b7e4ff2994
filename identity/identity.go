// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package identity

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"

	"github.com/minio/kms-go/kes"
)

// Identity identifies a client: the lowercase hex SHA-256 of the DER
// SubjectPublicKeyInfo of its certificate. It depends only on the public
// key, not on the certificate's subject, issuer or validity, so a renewed
// certificate for the same key keeps its identity.
type Identity string

// Unknown is the identity of a client that presented no certificate.
const Unknown Identity = ""

// Errors of FromConnectionState, with the texts KES answers with (400).
var (
	ErrNoTLS         = errors.New("insecure connection: TLS is required")
	ErrNoCertificate = errors.New("tls: client certificate is required")
)

// IsUnknown reports whether i is the empty identity.
func (i Identity) IsUnknown() bool { return i == Unknown }

// String returns the hex string.
func (i Identity) String() string { return string(i) }

// Valid reports whether s has the form of an identity: 64 lowercase hex
// characters. Config values such as "disabled" are not, which is how an
// admin identity is switched off.
func Valid(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// FromCertificate returns the identity of cert.
func FromCertificate(cert *x509.Certificate) Identity {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return Identity(hex.EncodeToString(sum[:]))
}

// FromConnectionState returns the identity of the client of a completed
// TLS handshake: the identity of its first certificate. That is the only
// certificate whose private key the client proved to hold (its
// CertificateVerify signature is checked against it); the certificates
// after it are at most intermediates for chain verification and never
// decide the identity, whether they are CA certificates or not. Picking
// another one would let a client that knows a public key, such as the
// admin's, claim its identity.
func FromConnectionState(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil {
		return Unknown, ErrNoTLS
	}
	if len(cs.PeerCertificates) == 0 {
		return Unknown, ErrNoCertificate
	}
	return FromCertificate(cs.PeerCertificates[0]), nil
}

// APIKey is a KES API key ("kes:v1:..."): an Ed25519 private key from which
// a client derives its certificate and hence its identity.
type APIKey = kes.APIKey

// ParseAPIKey parses a "kes:v1:" API key. Its errors never contain the key.
func ParseAPIKey(s string) (APIKey, error) {
	k, err := kes.ParseAPIKey(s)
	if err != nil {
		return nil, errors.New("identity: invalid API key")
	}
	return k, nil
}

// GenerateAPIKey returns a new random API key. A nil random means
// crypto/rand.
func GenerateAPIKey(random io.Reader) (APIKey, error) { return kes.GenerateAPIKey(random) }

// OfAPIKey returns the identity of an API key.
func OfAPIKey(k APIKey) Identity { return Identity(k.Identity()) }

// Certificate returns a self-signed client certificate for k, the one KES
// clients present when they authenticate with an API key.
func Certificate(k APIKey) (tls.Certificate, error) { return kes.GenerateCertificate(k) }
