// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// Defaults for zero Config fields.
const (
	DefaultEngine           = "kv"
	DefaultAppRoleEngine    = "approle"
	DefaultKubernetesEngine = "kubernetes"
	DefaultTransitEngine    = "transit"

	// DefaultStatusPing is how often the health of Vault is checked;
	// minio/kes uses the same period.
	DefaultStatusPing = 15 * time.Second
	// DefaultTimeout bounds one HTTP request to Vault.
	DefaultTimeout = 10 * time.Second
	// DefaultRetries is how often a failed idempotent request is
	// repeated.
	DefaultRetries = 2
	// DefaultRetryDelay is the first backoff delay of retries and of the
	// background token refresher.
	DefaultRetryDelay = time.Second
	// DefaultMaxRetryDelay caps the backoff of the token refresher,
	// which retries forever.
	DefaultMaxRetryDelay = 30 * time.Second
)

// KV engine versions.
const (
	V1 = "v1"
	V2 = "v2"
)

// AppRole is the AppRole login: PUT auth/<Engine>/login with the role
// and secret ID.
type AppRole struct {
	// Engine is the mount path of the AppRole method. Empty means
	// DefaultAppRoleEngine.
	Engine string
	// Namespace is the namespace of the login. Empty means the store's
	// Namespace; "/" means the root namespace.
	Namespace string
	// ID is the role ID.
	ID string
	// Secret is the secret ID.
	Secret keystore.Secret
}

// Kubernetes is the Kubernetes login: PUT auth/<Engine>/login with the
// role and a service account JWT.
type Kubernetes struct {
	// Engine is the mount path of the Kubernetes method. Empty means
	// DefaultKubernetesEngine.
	Engine string
	// Namespace is the namespace of the login. Empty means the store's
	// Namespace; "/" means the root namespace.
	Namespace string
	// Role is the Vault role.
	Role string
	// JWT is the service account token itself or, if it contains a
	// '/', the path of a file holding it. The file is read again at
	// every login (Kubernetes rotates projected tokens) and sent as
	// read, untrimmed, as minio/kes does.
	JWT keystore.Secret
}

// Transit wraps every stored value with a transit key.
type Transit struct {
	// Engine is the mount path of the transit engine. Empty means
	// DefaultTransitEngine.
	Engine string
	// Key is the name of the transit key. Required.
	Key string
}

// Config is the configuration of a Vault store. Endpoint and one way to
// authenticate (AppRole, Kubernetes or Token) are required.
type Config struct {
	// Endpoint is the URL of Vault, e.g. "https://vault.example.com:8200".
	Endpoint string
	// Engine is the mount path of the KV engine. Empty means
	// DefaultEngine.
	Engine string
	// Version is the KV engine version, V1 or V2. Empty means V1, as in
	// minio/kes.
	Version string
	// Namespace is sent as X-Vault-Namespace on every request but the
	// root-only health check. Empty means the root namespace.
	Namespace string
	// Prefix is the folder under the engine that holds the keys. Empty
	// means the top of the engine.
	Prefix string

	// AppRole and Kubernetes are the login methods; at most one may be
	// set.
	AppRole    *AppRole
	Kubernetes *Kubernetes
	// Token is a fixed token, used when neither login method is set. It
	// is renewed while it is renewable; when it expires nothing can
	// replace it. Empty means the VAULT_TOKEN environment variable, as
	// the official client reads it.
	Token keystore.Secret

	// Transit, if set, wraps every stored value.
	Transit *Transit

	// RootCAs are the CAs trusted for Vault's certificate. Nil means the
	// system roots.
	RootCAs *x509.CertPool
	// ClientCert, if set, is presented to Vault (TLS certificate auth or
	// a proxy that requires it).
	ClientCert *tls.Certificate

	// StatusPing is the period of the background health check. Zero
	// means DefaultStatusPing.
	StatusPing time.Duration
	// Timeout bounds every single HTTP request. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Retries is how often an idempotent request is repeated after a
	// connection error or a server error. Zero means DefaultRetries;
	// negative means never.
	Retries int
	// RetryDelay is the first backoff delay of the token refresher; it
	// doubles per attempt. Retries of single requests start at a tenth
	// of it.
	// Zero means DefaultRetryDelay.
	RetryDelay time.Duration
	// MaxRetryDelay caps the backoff of the token refresher. Zero means
	// DefaultMaxRetryDelay.
	MaxRetryDelay time.Duration
	// Logger receives session and health messages. Nil discards them.
	// Nothing secret is ever logged.
	Logger *slog.Logger
	// TokenObserver is told the outcome of every token renewal (a
	// renewal, or a new login when renewal fails). Nil means none.
	TokenObserver keystore.TokenObserver

	// dial replaces the network dialer in tests (in-memory connections
	// in a testing/synctest bubble).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// settings is a validated Config with its defaults filled in.
type settings struct {
	Config
	endpoint string
	v2       bool
	authNS   string
}

func (c Config) validate() (*settings, error) {
	u, err := url.Parse(c.Endpoint)
	switch {
	case c.Endpoint == "":
		return nil, errors.New("vault: no endpoint specified")
	case err != nil:
		return nil, errors.New("vault: invalid endpoint: not a URL")
	case (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return nil, errors.New("vault: invalid endpoint: must be an https:// or http:// URL")
	case u.User != nil:
		return nil, errors.New("vault: invalid endpoint: must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("vault: invalid endpoint: must not have a query or fragment")
	case c.AppRole != nil && c.Kubernetes != nil:
		return nil, errors.New("vault: more than one authentication method specified: approle and kubernetes")
	case c.AppRole != nil && (c.AppRole.ID == "" || c.AppRole.Secret.IsZero()):
		return nil, errors.New("vault: approle: role ID and secret ID are required")
	case c.Kubernetes != nil && (c.Kubernetes.Role == "" || c.Kubernetes.JWT.IsZero()):
		return nil, errors.New("vault: kubernetes: role and JWT are required")
	case c.Transit != nil && c.Transit.Key == "":
		return nil, errors.New("vault: transit: no key specified")
	}
	s := &settings{Config: c, endpoint: strings.TrimRight(u.String(), "/")}
	switch c.Version {
	case "", V1:
		s.Version = V1
	case V2:
		s.Version, s.v2 = V2, true
	default:
		return nil, errors.New("vault: invalid KV engine version: must be v1 or v2")
	}
	s.Engine = strings.Trim(c.Engine, "/")
	if s.Engine == "" {
		s.Engine = DefaultEngine
	}
	s.Prefix = strings.Trim(c.Prefix, "/")
	s.Namespace = strings.Trim(c.Namespace, "/")
	for _, p := range []string{s.Engine, s.Prefix, s.Namespace} {
		if badPath(p) {
			return nil, errors.New("vault: engine, prefix and namespace must not contain '.', '..' or empty path elements")
		}
	}
	authNS := ""
	if a := c.AppRole; a != nil {
		a := *a
		if a.Engine = strings.Trim(a.Engine, "/"); a.Engine == "" {
			a.Engine = DefaultAppRoleEngine
		}
		s.AppRole, authNS = &a, a.Namespace
	}
	if k := c.Kubernetes; k != nil {
		k := *k
		if k.Engine = strings.Trim(k.Engine, "/"); k.Engine == "" {
			k.Engine = DefaultKubernetesEngine
		}
		s.Kubernetes, authNS = &k, k.Namespace
	}
	switch authNS {
	case "":
		s.authNS = s.Namespace
	case "/":
		s.authNS = ""
	default:
		s.authNS = strings.Trim(authNS, "/")
	}
	if t := c.Transit; t != nil {
		t := *t
		if t.Engine = strings.Trim(t.Engine, "/"); t.Engine == "" {
			t.Engine = DefaultTransitEngine
		}
		s.Transit = &t
	}
	if s.StatusPing <= 0 {
		s.StatusPing = DefaultStatusPing
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	switch {
	case s.Retries == 0:
		s.Retries = DefaultRetries
	case s.Retries < 0:
		s.Retries = 0
	}
	if s.RetryDelay <= 0 {
		s.RetryDelay = DefaultRetryDelay
	}
	if s.MaxRetryDelay <= 0 {
		s.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// badPath reports whether p, a slash-separated path without leading or
// trailing slash, has elements that Vault would resolve elsewhere.
func badPath(p string) bool {
	if p == "" {
		return false
	}
	for _, e := range strings.Split(p, "/") {
		if e == "" || e == "." || e == ".." {
			return true
		}
	}
	return false
}
