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
	"os"
	"path"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/kesbridge/kes/internal/httpstore"
	"github.com/kesbridge/kes/keystore"
)

// token is a Vault token and what the driver knows about its life.
// Tokens are immutable; a new token replaces the pointer.
type token struct {
	value     string
	obtained  time.Time
	ttl       time.Duration // 0: does not expire
	renewable bool
}

// renewAt is when the refresher acts: at 80 % of the TTL.
func (t *token) renewAt() time.Time { return t.obtained.Add(t.ttl / 5 * 4) }

// maxJWTSize bounds the Kubernetes service account token file.
const maxJWTSize = 64 << 10

// canLogin reports whether the store can get a new token by itself.
func (s *Store) canLogin() bool { return s.cfg.AppRole != nil || s.cfg.Kubernetes != nil }

// login authenticates with AppRole or Kubernetes and returns the new
// token. With a fixed token it looks the token up instead.
func (s *Store) login(ctx context.Context) (*token, error) {
	var (
		engine string
		body   map[string]string
	)
	switch {
	case s.cfg.AppRole != nil:
		engine = s.cfg.AppRole.Engine
		body = map[string]string{"role_id": s.cfg.AppRole.ID, "secret_id": s.cfg.AppRole.Secret.Reveal()}
	case s.cfg.Kubernetes != nil:
		jwt, err := s.jwt()
		if err != nil {
			return nil, err
		}
		engine = s.cfg.Kubernetes.Engine
		body = map[string]string{"role": s.cfg.Kubernetes.Role, "jwt": jwt}
	default:
		return s.lookupSelf(ctx, s.fixed)
	}
	defer clear(body)
	now := time.Now()
	resp, _, err := s.send(ctx, s.authClient, request{method: http.MethodPut, path: path.Join("auth", engine, "login"), body: body})
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusForbidden || ae.Status == http.StatusUnauthorized) {
		return nil, &keystore.UnavailableError{
			Store:  storeName,
			Reason: "authentication failed",
			Err:    fmt.Errorf("login at auth/%s rejected (check the role and its credentials): %w", engine, ae),
		}
	}
	if err != nil {
		return nil, s.classify(ctx, "login", err)
	}
	t, err := authToken(resp, now)
	clear(resp)
	if err != nil {
		return nil, fmt.Errorf("vault: login: %w", err)
	}
	return t, nil
}

// jwt reads the Kubernetes JWT: the value itself or, if it contains a
// '/', the file it names, read anew for every login.
func (s *Store) jwt() (string, error) {
	v := s.cfg.Kubernetes.JWT.Reveal()
	if !strings.Contains(v, "/") {
		return v, nil
	}
	// A FIFO or device would block the login or never end.
	fi, err := os.Stat(v)
	if err != nil {
		return "", &keystore.UnavailableError{Store: storeName, Reason: "authentication failed", Err: fmt.Errorf("kubernetes: cannot read the JWT file: %w", err)}
	}
	if !fi.Mode().IsRegular() {
		return "", &keystore.UnavailableError{Store: storeName, Reason: "authentication failed", Err: errors.New("kubernetes: the JWT file is not a regular file")}
	}
	f, err := os.Open(v)
	if err != nil {
		return "", &keystore.UnavailableError{Store: storeName, Reason: "authentication failed", Err: fmt.Errorf("kubernetes: cannot read the JWT file: %w", err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJWTSize+1))
	if err == nil && len(b) > maxJWTSize {
		err = errors.New("larger than 64 KiB")
	}
	if err != nil {
		return "", &keystore.UnavailableError{Store: storeName, Reason: "authentication failed", Err: fmt.Errorf("kubernetes: cannot read the JWT file: %w", err)}
	}
	return string(b), nil
}

// lookupSelf learns the TTL of a fixed token.
func (s *Store) lookupSelf(ctx context.Context, value string) (*token, error) {
	if value == "" {
		return nil, errors.New("vault: no authentication method specified: set approle, kubernetes or VAULT_TOKEN")
	}
	now := time.Now()
	resp, _, err := s.send(ctx, s.kv, request{method: http.MethodGet, path: "auth/token/lookup-self", token: value})
	if err != nil {
		return nil, s.classify(ctx, "look up token", err)
	}
	defer clear(resp)
	sb, err := parseSecret(resp)
	if err != nil {
		return nil, fmt.Errorf("vault: look up token: %w", err)
	}
	var d struct {
		TTL       int64 `json:"ttl"`
		Renewable bool  `json:"renewable"`
	}
	if err := json.Unmarshal(sb.Data, &d); err != nil || d.TTL < 0 {
		return nil, errors.New("vault: look up token: malformed answer")
	}
	return &token{value: value, obtained: now, ttl: time.Duration(d.TTL) * time.Second, renewable: d.Renewable}, nil
}

// renew extends the lease of t.
func (s *Store) renew(ctx context.Context, t *token) (*token, error) {
	now := time.Now()
	resp, _, err := s.send(ctx, s.authClientFor(), request{method: http.MethodPut, path: "auth/token/renew-self", body: map[string]any{}, token: t.value})
	if err != nil {
		return nil, s.classify(ctx, "renew token", err)
	}
	nt, err := authToken(resp, now)
	clear(resp)
	if err != nil {
		return nil, fmt.Errorf("vault: renew token: %w", err)
	}
	if nt.value == "" {
		nt.value = t.value
	}
	return nt, nil
}

// authClientFor is the client for token calls: the login namespace when
// the token came from a login, the store's otherwise.
func (s *Store) authClientFor() *vaultapi.Client {
	if s.canLogin() {
		return s.authClient
	}
	return s.kv
}

func authToken(resp []byte, now time.Time) (*token, error) {
	sb, err := parseSecret(resp)
	if err != nil {
		return nil, err
	}
	if sb.Auth == nil || sb.Auth.LeaseDuration < 0 {
		return nil, errors.New("malformed answer: no auth section")
	}
	return &token{
		value:     sb.Auth.ClientToken,
		obtained:  now,
		ttl:       time.Duration(sb.Auth.LeaseDuration) * time.Second,
		renewable: sb.Auth.Renewable,
	}, nil
}

// relogin gets a new token after a request met a rejected one.
// Concurrent callers that saw the same rejected token share one login; a
// caller whose token was already replaced just uses the new one.
func (s *Store) relogin(ctx context.Context, rejected *token) (*token, error) {
	select {
	case s.loginSem <- struct{}{}:
	case <-ctx.Done():
		return nil, &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("login: %w", context.Cause(ctx))}
	}
	defer func() { <-s.loginSem }()
	if cur := s.tok.Load(); cur != rejected {
		return cur, nil
	}
	t, err := s.login(ctx)
	if err != nil {
		return nil, err
	}
	s.setToken(t)
	s.cfg.Logger.Info("vault: logged in again after vault rejected the token")
	return t, nil
}

func (s *Store) setToken(t *token) {
	s.tok.Store(t)
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// refresher keeps the token alive until Close: it renews at 80 % of the
// TTL, logs in again when renewal fails or cannot extend the token, and
// when that fails too retries with exponential backoff, capped at
// MaxRetryDelay, forever.
func (s *Store) refresher() {
	defer s.wg.Done()
	r := httpstore.Refresher{
		Changed: s.changed,
		Due: func() (time.Duration, bool) {
			t := s.tok.Load()
			// A token without TTL never expires: wait for a change only.
			return time.Until(t.renewAt()), t.ttl > 0
		},
		Refresh:       s.refresh,
		Observe:       s.cfg.TokenObserver,
		RetryDelay:    s.cfg.RetryDelay,
		MaxRetryDelay: s.cfg.MaxRetryDelay,
		Failed: func(attempt int, retryIn time.Duration, err error) {
			s.cfg.Logger.Warn("vault: cannot renew the token or log in; will retry",
				"attempt", attempt, "retry_in", retryIn, "err", err)
		},
		Recovered: func(failures int) {
			s.cfg.Logger.Info("vault: token refreshed again", "failed_attempts", failures)
		},
	}
	r.Run(s.ctx)
}

// refresh renews the token, or logs in again when renewal fails or
// returns a lease shorter than half the last one (the token nears its
// maximum TTL, and the next renewal would leave too little time).
func (s *Store) refresh() error {
	select {
	case s.loginSem <- struct{}{}:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	defer func() { <-s.loginSem }()
	cur := s.tok.Load()
	var (
		nt  *token
		err error
	)
	if cur.renewable {
		nt, err = s.renew(s.ctx, cur)
		if err == nil && nt.ttl < cur.ttl/2 && s.canLogin() {
			s.cfg.Logger.Info("vault: the token nears its maximum TTL; logging in again", "ttl", nt.ttl)
			nt, err = nil, errors.New("token nears its maximum TTL")
		}
	} else {
		err = errors.New("token is not renewable")
	}
	if err != nil {
		if !s.canLogin() {
			return err
		}
		if nt, err = s.login(s.ctx); err != nil {
			return err
		}
	}
	s.tok.Store(nt)
	// Drain a wake-up this refresh may have caused.
	select {
	case <-s.changed:
	default:
	}
	return nil
}

// sleep waits the backoff delay of attempt (0-based) or until ctx is done.
func (s *Store) sleep(ctx context.Context, attempt int) error {
	return httpstore.Wait(ctx, storeName, httpstore.Backoff(s.cfg.RetryDelay/10, attempt, s.cfg.MaxRetryDelay))
}
