// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"crypto/x509"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// DefaultIAMEndpoint is the IBM Cloud IAM service.
const DefaultIAMEndpoint = "https://iam.cloud.ibm.com"

// DefaultTimeout bounds one call to the service, retries included.
const DefaultTimeout = 15 * time.Second

// Config says how to reach an HPCS or Key Protect instance.
type Config struct {
	// Endpoint is the key management API base URL, e.g.
	// https://<instance>.api.us-south.hs-crypto.appdomain.cloud or
	// https://us-south.kms.cloud.ibm.com. Required.
	Endpoint string

	// InstanceID is the service instance GUID. Required.
	InstanceID string

	// RootKeyID is the ID (or alias) of the root key that seals every
	// value. Required.
	RootKeyID string

	// KeyRing is the key ring for new standard keys and lookups. Empty
	// means none is sent, and the service uses "default".
	KeyRing string

	// IAMEndpoint is the IAM base URL; tokens come from
	// <IAMEndpoint>/identity/token. Empty means DefaultIAMEndpoint.
	IAMEndpoint string

	// APIKey is the service ID's API key. Required. It is sent only to
	// IAMEndpoint; its type keeps it out of logs and printed configs.
	APIKey keystore.Secret

	// RootCAs verifies the certificates of both Endpoint and
	// IAMEndpoint. Nil means the system roots. A pool for a private CA
	// must also trust IAM's CA when IAMEndpoint is IBM's public one, so
	// build it on x509.SystemCertPool.
	RootCAs *x509.CertPool

	// Timeout bounds each call, retries included. Zero means
	// DefaultTimeout.
	Timeout time.Duration

	// Logger receives warnings (failed write-backs). Nil discards them.
	Logger *slog.Logger

	// TokenObserver is told the outcome of every IAM token renewal:
	// each fetch after the first, ahead of expiry or after IAM
	// rejected the token. Nil means none.
	TokenObserver keystore.TokenObserver
}

func (c *Config) check() error {
	switch {
	case c.Endpoint == "":
		return errors.New("hpcs: no endpoint")
	case c.InstanceID == "":
		return errors.New("hpcs: no instance ID")
	case c.RootKeyID == "":
		return errors.New("hpcs: no root key ID")
	case c.APIKey.IsZero():
		return errors.New("hpcs: no API key")
	case strings.ContainsAny(c.RootKeyID, "/?#"):
		return errors.New("hpcs: invalid root key ID")
	}
	for _, u := range []string{c.Endpoint, c.iamEndpoint()} {
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || (p.Scheme != "https" && p.Scheme != "http") {
			return errors.New("hpcs: invalid endpoint URL " + strings.TrimSpace(u))
		}
	}
	return nil
}

func (c *Config) iamEndpoint() string {
	if c.IAMEndpoint == "" {
		return DefaultIAMEndpoint
	}
	return c.IAMEndpoint
}

func (c *Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}
