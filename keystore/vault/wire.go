// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/kesbridge/kes/internal/httpstore"
	"github.com/kesbridge/kes/keystore"
)

const storeName = "vault"

// Size limits of Vault answers. Every response body passes through
// limitedTransport, so even the client's own error decoding is bounded.
const (
	limitSmall = 64 << 10 // logins, health, token calls, errors
	limitValue = 4*MaxValueSize + 64<<10
	// limitList matches what minio/kes reads for a listing: Vault
	// answers a LIST in one piece, without paging.
	limitList = 32 << 20
)

// errTooLarge reports an answer above its size limit. It is a protocol
// error, not a transient one.
var errTooLarge = errors.New("answer exceeds the size limit")

type limitKey struct{}

func withLimit(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, limitKey{}, n)
}

// limitedTransport caps the body of every response at the limit the
// request's context carries (limitSmall if none).
type limitedTransport struct{ rt http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	limit, ok := req.Context().Value(limitKey{}).(int64)
	if !ok {
		limit = limitSmall
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, errTooLarge
	}
	resp.Body = &limitedBody{rc: resp.Body, n: limit}
	return resp, nil
}

type limitedBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		// One more byte tells an exact fit from an overflow.
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, errTooLarge
		}
		return b.rc.Read(p)
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.rc.Read(p)
	b.n -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// apiError is a non-2xx answer of Vault. Its text holds Vault's error
// strings, which name paths and reasons but never a token.
type apiError struct {
	Status int
	Errors []string
}

func (e *apiError) Error() string {
	msg := strings.Join(e.Errors, "; ")
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		return fmt.Sprintf("vault answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("vault answered %d: %s", e.Status, msg)
}

func (e *apiError) has(text string) bool {
	for _, s := range e.Errors {
		if strings.Contains(strings.ToLower(s), text) {
			return true
		}
	}
	return false
}

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// invalidToken reports whether err is Vault's answer to an expired or
// revoked token (403 with "invalid token"), as opposed to a policy that
// denies the path.
func invalidToken(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusForbidden && ae.has("invalid token")
}

func sealedError(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable && ae.has("sealed")
}

// request is one call to Vault.
type request struct {
	method string
	path   string // below /v1/, without leading slash
	query  url.Values
	body   any
	token  string
	limit  int64
}

// send performs r with c and returns the body of a 2xx answer, an
// *apiError for any other status, or a transport error.
func (s *Store) send(ctx context.Context, c *vaultapi.Client, r request) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if r.limit == 0 {
		r.limit = limitSmall
	}
	ctx = withLimit(ctx, r.limit)
	req := c.NewRequest(r.method, "/v1/"+r.path)
	req.ClientToken = r.token
	for k, v := range r.query {
		req.Params[k] = v
	}
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, 0, err
		}
		req.BodyBytes = b
		defer clear(b) // may carry a key or a credential
	}
	// The Logical helpers send the client-wide token. The driver sends
	// the token it holds for this request, so that it knows exactly which
	// token Vault rejected and logs in again once for all requests that
	// met it; only the raw request takes a per-request token.
	//lint:ignore SA1019 per-request token, see above
	resp, err := c.RawRequestWithContext(ctx, req)
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return nil, re.StatusCode, &apiError{Status: re.StatusCode, Errors: re.Errors}
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return nil, 0, err
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		clear(b)
		return nil, resp.StatusCode, err
	}
	return b, resp.StatusCode, nil
}

// classify turns a send error into what a Store method returns:
// *keystore.UnreachableError for connection errors, timeouts, server
// errors, rate limits and a sealed Vault; *keystore.UnavailableError for
// what an operator must fix (a policy that denies, an untrusted
// certificate); the caller's cancellation as is; anything else as a plain
// error. Every error is prefixed with the operation.
func (s *Store) classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *apiError
	if errors.As(err, &ae) {
		switch {
		case sealedError(err):
			return &keystore.UnreachableError{Store: storeName, Reason: "vault is sealed", Err: fmt.Errorf("%s: vault is sealed", op)}
		case ae.Status >= 500 || ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusPreconditionFailed:
			return &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("%s: %w", op, ae)}
		case ae.Status == http.StatusForbidden && ae.has("invalid token"):
			return &keystore.UnavailableError{
				Store:  storeName,
				Reason: "authentication failed",
				Err:    fmt.Errorf("%s: vault rejects the token: %w", op, ae),
			}
		case ae.Status == http.StatusForbidden:
			return &keystore.UnavailableError{
				Store:  storeName,
				Reason: "permission denied",
				Err:    fmt.Errorf("%s: the token's policy does not allow this (check the policy for engine %q, prefix %q): %w", op, s.cfg.Engine, s.cfg.Prefix, ae),
			}
		}
		return fmt.Errorf("vault: %s: %w", op, ae)
	}
	if errors.Is(err, errTooLarge) {
		return fmt.Errorf("vault: %s: %w", op, err)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("vault: %s: %w", op, context.Cause(ctx))
	}
	if httpstore.IsCertError(err) {
		return &keystore.UnavailableError{
			Store:  storeName,
			Reason: "server certificate not trusted",
			Err:    fmt.Errorf("%s: TLS with %s failed (set tls.ca to the CA that issued the Vault certificate): %w", op, s.cfg.endpoint, err),
		}
	}
	return &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("%s: %w", op, err)}
}

// secretBody is the part of a Vault answer the driver reads.
type secretBody struct {
	Data json.RawMessage `json:"data"`
	Auth *struct {
		ClientToken   string `json:"client_token"`
		LeaseDuration int64  `json:"lease_duration"`
		Renewable     bool   `json:"renewable"`
	} `json:"auth"`
}

func parseSecret(b []byte) (*secretBody, error) {
	var sb secretBody
	if err := json.Unmarshal(b, &sb); err != nil {
		return nil, errors.New("malformed answer: not a JSON object")
	}
	return &sb, nil
}
