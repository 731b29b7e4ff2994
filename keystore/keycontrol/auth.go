// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/kesbridge/kes/internal/httpstore"
	"github.com/kesbridge/kes/keystore"
)

// login exchanges username and password for an access token.
func (s *Store) login(ctx context.Context) (*authToken, error) {
	body, err := json.Marshal(map[string]string{"username": s.username, "password": s.password.Reveal()})
	if err != nil {
		return nil, fmt.Errorf("keycontrol: login: %w", err)
	}
	defer clear(body) // holds the password
	action := "Login/" + url.PathEscape(s.vaultID)
	resp, hdr, err := s.post(ctx, action, "", body, limitSmall)
	var ae *apiError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
			return nil, &keystore.UnavailableError{
				Store:  storeName,
				Reason: "authentication failed",
				Err:    fmt.Errorf("login as user %q rejected (check credentials.username and credentials.password): %w", s.username, ae),
			}
		case ae.Status == http.StatusNotFound && ae.JSON:
			return nil, &keystore.UnavailableError{
				Store:  storeName,
				Reason: "vault not found",
				Err:    fmt.Errorf("login: no vault %q at %s (check vault_id): %w", s.vaultID, s.endpoint, ae),
			}
		}
	}
	if err != nil {
		return nil, s.classify(ctx, "login", err)
	}
	return s.newToken("login", resp, hdr)
}

// renew exchanges the current token for a fresh one.
func (s *Store) renew(ctx context.Context, cur *authToken) (*authToken, error) {
	resp, hdr, err := s.post(ctx, "Renew", cur.value, []byte("{}"), limitSmall)
	if err != nil {
		return nil, s.classify(ctx, "renew token", err)
	}
	return s.newToken("renew token", resp, hdr)
}

func (s *Store) newToken(op string, resp []byte, hdr http.Header) (*authToken, error) {
	value, expires, err := parseTokenResponse(resp)
	clear(resp)
	if err != nil {
		return nil, fmt.Errorf("keycontrol: %s: %w", op, err)
	}
	now := time.Now()
	life := lifetime(expires, hdr.Get("Date"), now)
	if expires.IsZero() {
		s.log.Warn("keycontrol: access token has no usable expires_at; renewing as if it lived 5 minutes")
	}
	return &authToken{value: value, obtained: now, renewAt: now.Add(life / 2)}, nil
}

// lifetime is how long a token expiring at expires lives from now. If the
// server's Date header shows that its clock and ours differ by more than a
// few seconds, the lifetime is measured on the server's clock. A missing
// or already passed expiry counts as defaultLifetime; a request that
// meets an expired token logs in again anyway.
func lifetime(expires time.Time, date string, now time.Time) time.Duration {
	if expires.IsZero() {
		return defaultLifetime
	}
	life := expires.Sub(now)
	if d, err := http.ParseTime(date); err == nil {
		if skew := now.Sub(d); skew > 5*time.Second || skew < -5*time.Second {
			life = expires.Sub(d)
		}
	}
	if life <= 0 {
		return defaultLifetime
	}
	return life
}

// relogin logs in again after a request met a rejected token. Concurrent
// callers that saw the same rejected token share one login; a caller
// whose token was already replaced just uses the new one.
func (s *Store) relogin(ctx context.Context, rejected *authToken) (*authToken, error) {
	select {
	case s.loginSem <- struct{}{}:
	case <-ctx.Done():
		return nil, &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("login: %w", context.Cause(ctx))}
	}
	defer func() { <-s.loginSem }()
	if cur := s.tok.Load(); cur != rejected {
		return cur, nil
	}
	tok, err := s.login(ctx)
	if err != nil {
		return nil, err
	}
	s.setToken(tok)
	return tok, nil
}

func (s *Store) setToken(t *authToken) {
	s.tok.Store(t)
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// refresher keeps the token fresh until Close: it renews at half the
// token's lifetime, logs in again when renewal fails, and when both fail
// retries with exponential backoff, capped at maxRetryDelay, forever.
func (s *Store) refresher() {
	defer s.wg.Done()
	r := httpstore.Refresher{
		Changed: s.changed, // a request logged in again: schedule from the new token
		Due: func() (time.Duration, bool) {
			return time.Until(s.tok.Load().renewAt), true
		},
		Refresh:       s.refresh,
		Observe:       s.observe,
		RetryDelay:    s.retryDelay,
		MaxRetryDelay: s.maxRetryDelay,
		Failed: func(attempt int, retryIn time.Duration, err error) {
			s.log.Warn("keycontrol: cannot refresh the access token; will retry",
				"attempt", attempt, "retry_in", retryIn, "err", err)
		},
		Recovered: func(failures int) {
			s.log.Info("keycontrol: access token refreshed again", "failed_attempts", failures)
		},
	}
	r.Run(s.ctx)
}

// refresh renews the token, or logs in again if renewal fails.
func (s *Store) refresh() error {
	select {
	case s.loginSem <- struct{}{}:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	defer func() { <-s.loginSem }()
	tok, err := s.renew(s.ctx, s.tok.Load())
	if err != nil {
		s.log.Warn("keycontrol: cannot renew the access token; logging in again", "err", err)
		if tok, err = s.login(s.ctx); err != nil {
			return err
		}
	}
	s.tok.Store(tok)
	// Drain a wake-up this refresh may have caused; the loop reads the
	// new token anyway.
	select {
	case <-s.changed:
	default:
	}
	return nil
}
