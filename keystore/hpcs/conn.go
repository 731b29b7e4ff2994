// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	kp "github.com/IBM/keyprotect-go-client"

	"github.com/kesbridge/kes/keystore"
)

const (
	storeName = "hpcs"

	reasonAuth         = "authentication failed"
	reasonDenied       = "access denied"
	reasonDisabled     = "root key disabled"
	reasonDeleted      = "root key deleted"
	reasonNotFound     = "root key not found"
	reasonExpired      = "root key expired"
	reasonNotRoot      = "root key is not a root key"
	reasonNotAvailable = "root key not usable"

	// maxResponse bounds every response body from the key management
	// API. The largest is a page of key metadata.
	maxResponse = 16 << 20
)

var (
	errClosed       = errors.New("hpcs: closed")
	errNotAuthentic = errors.New("hpcs: unseal failed: sealed value is not authentic")

	// errTooLarge reports an answer above maxResponse: a protocol
	// error, not an outage, so it must not switch the cache offline.
	errTooLarge = errors.New("hpcs: answer exceeds the size limit")
)

// conn is what the Sealer and the Store share: one client, one token
// cache, one transport.
type conn struct {
	client     *kp.Client // root key actions
	ringClient *kp.Client // stored keys, in Config.KeyRing
	tokens     *tokenSource
	transport  *http.Transport
	timeout    time.Duration
	endpoint   string
	rootKeyID  string
	log        *slog.Logger
	closed     atomic.Bool
}

func newConn(cfg Config) (*conn, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.timeout(),
		ForceAttemptHTTP2:     true,
	}
	newClient := func(ring string) (*kp.Client, error) {
		c, err := kp.NewWithLogger(kp.ClientConfig{
			BaseURL:    strings.TrimRight(cfg.Endpoint, "/"),
			InstanceID: cfg.InstanceID,
			KeyRing:    ring,
			Timeout:    cfg.timeout().Seconds(),
			// Authorization is set per call from our own token source;
			// the client's own source is never used.
			APIKey: "",
		}, limitTransport{transport}, kp.NewLogger(func(...any) {}))
		if err != nil {
			return nil, fmt.Errorf("hpcs: %w", err)
		}
		return c, nil
	}
	// The root key is addressed without a key ring, so the service finds
	// it in whatever ring it lives; only the stored keys use KeyRing.
	client, err := newClient("")
	if err != nil {
		return nil, err
	}
	ringClient, err := newClient(cfg.KeyRing)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &conn{
		client:     client,
		ringClient: ringClient,
		tokens: &tokenSource{
			url:     tokenURL(cfg.iamEndpoint()),
			apiKey:  cfg.APIKey,
			client:  &http.Client{Transport: transport, Timeout: cfg.timeout()},
			observe: cfg.TokenObserver,
		},
		transport: transport,
		timeout:   cfg.timeout(),
		endpoint:  cfg.Endpoint,
		rootKeyID: cfg.RootKeyID,
		log:       log,
	}, nil
}

// limitTransport caps every response body, since the client library
// reads bodies without a limit.
type limitTransport struct{ rt http.RoundTripper }

func (l limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{r: io.LimitReader(resp.Body, maxResponse+1), c: resp.Body}
	return resp, nil
}

type limitedBody struct {
	r io.Reader
	c io.Closer
	n int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > maxResponse {
		return n, errTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.c.Close() }

// do runs fn with a bounded context and a valid token. A 401 is answered
// once with a fresh token: the service may have dropped a token that our
// cache still considers valid.
func (c *conn) do(ctx context.Context, fn func(context.Context) error) error {
	if c.closed.Load() {
		return errClosed
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.Token(ctx)
		if err != nil {
			if ctx.Err() != nil && !keystore.IsUnreachable(err) && !keystore.IsUnavailable(err) {
				return &keystore.UnreachableError{Store: storeName, Err: ctx.Err()}
			}
			return err
		}
		err = fn(kp.NewContextWithAuth(ctx, tok))
		if attempt == 0 && statusOf(err) == http.StatusUnauthorized {
			c.tokens.Invalidate(tok)
			continue
		}
		return c.classify(ctx, err)
	}
}

func statusOf(err error) int {
	var e *kp.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func reasonOf(err error) string {
	var e *kp.Error
	if errors.As(err, &e) && len(e.Reasons) > 0 {
		return e.Reasons[0].Code
	}
	return ""
}

// classify maps transport and server errors to the keystore error types.
// Client errors (4xx) stay *kp.Error so that callers can branch on the
// status; they carry no secret (the client never echoes request bodies).
func (c *conn) classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var kerr *kp.Error
	if errors.As(err, &kerr) {
		switch s := kerr.StatusCode; {
		case s >= 500 || s == http.StatusTooManyRequests:
			return &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("HTTP %d from %s", s, c.endpoint)}
		case s == http.StatusUnauthorized:
			return &keystore.UnavailableError{Store: storeName, Reason: reasonAuth,
				Err: errors.New("the key management API rejected a fresh token: check the instance ID and the service ID's access")}
		case s == http.StatusForbidden:
			return &keystore.UnavailableError{Store: storeName, Reason: reasonDenied, Err: errors.New(sanitize(kerr.Message))}
		}
		return fmt.Errorf("hpcs: %w", err)
	}
	if keystore.IsUnreachable(err) || keystore.IsUnavailable(err) || errors.Is(err, errTooLarge) {
		return err
	}
	var uerr *kp.URLError
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w: %v", ctx.Err(), err)
	}
	return &keystore.UnreachableError{Store: storeName, Err: err}
}

// rootKeyError turns an action's failure into the operator-facing root
// key reasons. For a state conflict it asks the service for the state.
func (c *conn) rootKeyError(ctx context.Context, err error) error {
	switch statusOf(err) {
	case http.StatusNotFound:
		return &keystore.UnavailableError{Store: storeName, Reason: reasonNotFound}
	case http.StatusGone:
		return &keystore.UnavailableError{Store: storeName, Reason: reasonDeleted}
	case http.StatusUnprocessableEntity:
		return errNotAuthentic
	case http.StatusBadRequest:
		switch reasonOf(err) {
		case "KEY_EXPIRED_ERR":
			return &keystore.UnavailableError{Store: storeName, Reason: reasonExpired}
		case "KEY_ROOT_REQ_ERR":
			return &keystore.UnavailableError{Store: storeName, Reason: reasonNotRoot}
		case "INVALID_FIELD_ERR":
			// Our ciphertexts are always valid base64, so a field error
			// on unwrap means the stored value was changed.
			return errNotAuthentic
		}
	case http.StatusConflict:
		if _, serr := c.rootKeyState(ctx); serr != nil {
			return serr
		}
		return &keystore.UnavailableError{Store: storeName, Reason: reasonNotAvailable, Err: errors.New(sanitize(reasonOf(err)))}
	}
	return err
}

// rootKeyState fetches the root key's metadata and reports a state that
// prevents service as an UnavailableError.
func (c *conn) rootKeyState(ctx context.Context) (time.Duration, error) {
	var key *kp.Key
	start := time.Now()
	err := c.do(ctx, func(ctx context.Context) (err error) {
		key, err = c.client.GetKeyMetadata(ctx, c.rootKeyID)
		return err
	})
	latency := time.Since(start)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return 0, &keystore.UnavailableError{Store: storeName, Reason: reasonNotFound}
		}
		return 0, err
	}
	switch {
	case key.Extractable:
		return 0, &keystore.UnavailableError{Store: storeName, Reason: reasonNotRoot}
	case key.State == int(kp.Active):
		return latency, nil
	case key.State == int(kp.Suspended):
		return 0, &keystore.UnavailableError{Store: storeName, Reason: reasonDisabled}
	case key.State == int(kp.Destroyed) || (key.Deleted != nil && *key.Deleted):
		return 0, &keystore.UnavailableError{Store: storeName, Reason: reasonDeleted}
	case key.State == int(kp.Deactivated):
		return 0, &keystore.UnavailableError{Store: storeName, Reason: reasonExpired}
	default:
		return 0, &keystore.UnavailableError{Store: storeName, Reason: reasonNotAvailable, Err: fmt.Errorf("state %d", key.State)}
	}
}

func (c *conn) close() {
	if c.closed.CompareAndSwap(false, true) {
		c.transport.CloseIdleConnections()
	}
}

func (c *conn) String() string {
	return "IBM HPCS: " + c.endpoint + " (root key " + c.rootKeyID + ")"
}
