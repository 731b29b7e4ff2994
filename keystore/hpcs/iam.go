// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// maxIAMResponse bounds what is read from IAM; tokens are a few KiB.
const maxIAMResponse = 1 << 20

// tokenSource exchanges the API key for IAM access tokens and caches
// them. The client library has its own, but it always uses the system
// roots and no context, so this one replaces it.
type tokenSource struct {
	url     string
	apiKey  keystore.Secret
	client  *http.Client
	observe keystore.TokenObserver

	mu     sync.Mutex
	token  string // "Bearer <access token>"
	expiry time.Time
}

func tokenURL(endpoint string) string {
	endpoint = strings.TrimRight(endpoint, "/")
	if strings.HasSuffix(endpoint, "/identity/token") || strings.HasSuffix(endpoint, "/oidc/token") {
		return endpoint
	}
	return endpoint + "/identity/token"
}

// Token returns a valid authorization header value, fetching a new token
// when the cached one is about to expire.
func (t *tokenSource) Token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && time.Now().Before(t.expiry) {
		return t.token, nil
	}
	tok, ttl, err := t.fetch(ctx)
	// The first fetch is no renewal; a caller that gave up is no IAM
	// outcome.
	if !t.expiry.IsZero() && ctx.Err() == nil {
		t.observe.Observe(err)
	}
	if err != nil {
		return "", err
	}
	// Renew ahead of expiry, like the IBM SDKs do, so that a token does
	// not run out in the middle of a call.
	margin := min(time.Minute, ttl/10)
	t.token, t.expiry = tok, time.Now().Add(ttl-margin)
	return t.token, nil
}

// Invalidate drops the cached token if it is still the given one, after
// the service rejected it.
func (t *tokenSource) Invalidate(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token == token {
		t.token = ""
	}
}

func (t *tokenSource) fetch(ctx context.Context) (string, time.Duration, error) {
	form := url.Values{}
	form.Set("grant_type", "urn:ibm:params:oauth:grant-type:apikey")
	form.Set("apikey", t.apiKey.Reveal())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, fmt.Errorf("hpcs: iam request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		// url.Error carries the URL only; the API key is in the body.
		return "", 0, &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("iam: %w", err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIAMResponse+1))
	if err != nil {
		return "", 0, &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("iam: %w", err)}
	}
	if len(body) > maxIAMResponse {
		return "", 0, errors.New("hpcs: iam response is too large")
	}
	return parseTokenResponse(resp.StatusCode, body)
}

type iamTokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

type iamErrorResponse struct {
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// parseTokenResponse turns an IAM answer into an authorization header
// value and its lifetime, or into a classified error.
func parseTokenResponse(status int, body []byte) (string, time.Duration, error) {
	switch {
	case status >= 500 || status == http.StatusTooManyRequests:
		return "", 0, &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("iam: HTTP %d", status)}
	case status != http.StatusOK:
		var e iamErrorResponse
		detail := fmt.Sprintf("iam: HTTP %d", status)
		if json.Unmarshal(body, &e) == nil && e.ErrorCode != "" {
			// IAM's codes and messages name the problem, never the key.
			detail = fmt.Sprintf("iam: HTTP %d: %s %s", status, sanitize(e.ErrorCode), sanitize(e.ErrorMessage))
		}
		return "", 0, &keystore.UnavailableError{Store: storeName, Reason: reasonAuth, Err: errors.New(detail)}
	}
	var r iamTokenResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return "", 0, errors.New("hpcs: iam: malformed token response")
	}
	if r.AccessToken == "" || strings.ContainsAny(r.AccessToken, " \r\n") {
		return "", 0, errors.New("hpcs: iam: token response has no valid access token")
	}
	if !strings.EqualFold(r.TokenType, "Bearer") {
		return "", 0, errors.New("hpcs: iam: token response has an unsupported token type")
	}
	if r.ExpiresIn <= 0 || r.ExpiresIn > 7*24*3600 {
		return "", 0, errors.New("hpcs: iam: token response has an invalid lifetime")
	}
	return "Bearer " + r.AccessToken, time.Duration(r.ExpiresIn) * time.Second, nil
}

// sanitize keeps server-provided text short and printable.
func sanitize(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
