// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kesbridge/kes/internal/httpstore"
	"github.com/kesbridge/kes/keystore"
)

const storeName = "keycontrol"

// Defaults for zero Config fields.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultPageSize      = 1000
	DefaultRetries       = 3
	DefaultRetryDelay    = 100 * time.Millisecond
	DefaultMaxRetryDelay = 30 * time.Second

	// defaultLifetime is assumed for a token without a usable
	// expires_at, as minio/kes does.
	defaultLifetime = 5 * time.Minute
)

// Config is the configuration of a KeyControl store. Endpoint, VaultID,
// BoxID, Username and Password are required.
type Config struct {
	// Endpoint is the https URL of KeyControl, e.g.
	// "https://keycontrol.example.com". It may carry a path prefix
	// ("https://proxy.example.com/kc"); API paths are appended to it.
	Endpoint string
	// VaultID is the UUID of the PASM vault (from its API login URL).
	VaultID string
	// BoxID is the name or ID of the box that holds the keys.
	BoxID string
	// Username and Password are the credentials of a vault user with the
	// Vault User role on the box. A personal access token may stand in
	// for the password. The Password's type keeps it out of logs and
	// printed configs.
	Username string
	Password keystore.Secret
	// RootCAs are the CAs trusted for the KeyControl certificate. Nil
	// means the system roots.
	RootCAs *x509.CertPool
	// Timeout bounds every single HTTP request to KeyControl (one attempt
	// of one vault action, including login and renewal). Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Logger receives token renewal problems and recoveries. Nil means
	// no logging. Nothing secret is ever logged.
	Logger *slog.Logger
	// PageSize is max_items of ListSecretIds. Zero means DefaultPageSize
	// (the server may cap it lower; the driver follows next_token).
	PageSize int
	// Retries is how often a failed idempotent request is repeated after
	// a connection error or a server error. Zero means DefaultRetries;
	// negative means never.
	Retries int
	// RetryDelay is the first backoff delay; it doubles per attempt.
	// Zero means DefaultRetryDelay.
	RetryDelay time.Duration
	// MaxRetryDelay caps the backoff of the background token refresher,
	// which retries forever. Zero means DefaultMaxRetryDelay.
	MaxRetryDelay time.Duration
	// TokenObserver is told the outcome of every token renewal (a
	// renewal, or a new login when renewal fails). Nil means none.
	TokenObserver keystore.TokenObserver
}

// authToken is an access token and when to renew it. Tokens are
// immutable; a new token replaces the pointer.
type authToken struct {
	value    string
	obtained time.Time
	renewAt  time.Time
}

// freshToken is the age below which a 403 is taken as a missing
// permission rather than a stale token: logging in again would not help,
// and doing it for every request would flood KeyControl with logins.
const freshToken = time.Second

// Store is a keystore.Store on one box of a KeyControl PASM vault.
type Store struct {
	endpoint string // for String and messages; without credentials
	base     string // endpoint + "/vault/1.0/"
	vaultID  string
	boxID    string
	username string
	password keystore.Secret // not a string: fmt would print it with the Store
	lockNS   string          // namespace of the process-wide Replace locks

	client        *http.Client
	transport     *http.Transport
	log           *slog.Logger
	timeout       time.Duration
	pageSize      int
	retries       int
	retryDelay    time.Duration
	maxRetryDelay time.Duration
	observe       keystore.TokenObserver

	tok      atomic.Pointer[authToken]
	loginSem chan struct{} // one login or renewal at a time
	changed  chan struct{} // wakes the refresher when the token changed

	ctx    context.Context // done on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

var _ keystore.Store = (*Store)(nil)

// New logs in to KeyControl, checks that the box exists and is usable,
// and starts the background token refresher. ctx bounds the start-up only.
// Errors say which setting is wrong (credentials, vault ID, box, TLS
// trust, endpoint) and never contain the password or a token.
func New(ctx context.Context, cfg Config) (*Store, error) {
	u, err := url.Parse(cfg.Endpoint)
	switch {
	case cfg.Endpoint == "":
		return nil, errors.New("keycontrol: no endpoint specified")
	case err != nil:
		return nil, errors.New("keycontrol: invalid endpoint: not a URL")
	case u.Scheme != "https" || u.Host == "":
		return nil, errors.New("keycontrol: invalid endpoint: must be an https:// URL")
	case u.User != nil:
		return nil, errors.New("keycontrol: invalid endpoint: must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("keycontrol: invalid endpoint: must not have a query or fragment")
	case cfg.VaultID == "":
		return nil, errors.New("keycontrol: no vault ID specified")
	case cfg.BoxID == "":
		return nil, errors.New("keycontrol: no box ID specified")
	case cfg.Username == "":
		return nil, errors.New("keycontrol: no username specified")
	case cfg.Password.IsZero():
		return nil, errors.New("keycontrol: no password specified")
	}
	endpoint := strings.TrimRight(u.String(), "/")

	s := &Store{
		endpoint:      endpoint,
		base:          endpoint + "/vault/1.0/",
		vaultID:       cfg.VaultID,
		boxID:         cfg.BoxID,
		username:      cfg.Username,
		password:      cfg.Password,
		lockNS:        endpoint + "\x00" + cfg.VaultID + "\x00" + cfg.BoxID + "\x00",
		log:           cfg.Logger,
		timeout:       cfg.Timeout,
		pageSize:      cfg.PageSize,
		retries:       cfg.Retries,
		retryDelay:    cfg.RetryDelay,
		maxRetryDelay: cfg.MaxRetryDelay,
		observe:       cfg.TokenObserver,
		loginSem:      make(chan struct{}, 1),
		changed:       make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.pageSize <= 0 {
		s.pageSize = DefaultPageSize
	}
	switch {
	case s.retries == 0:
		s.retries = DefaultRetries
	case s.retries < 0:
		s.retries = 0
	}
	if s.retryDelay <= 0 {
		s.retryDelay = DefaultRetryDelay
	}
	if s.maxRetryDelay <= 0 {
		s.maxRetryDelay = DefaultMaxRetryDelay
	}
	s.transport = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   s.timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig: &tls.Config{
			RootCAs:    cfg.RootCAs,
			MinVersion: tls.VersionTLS12,
		},
		TLSHandshakeTimeout:   s.timeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: s.timeout,
		ExpectContinueTimeout: time.Second,
	}
	s.client = &http.Client{
		Transport: s.transport,
		// The vault API never redirects; following one would resend
		// the request, and with it a token, somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	var tok *authToken
	err = s.withRetry(ctx, func(ctx context.Context) error {
		var err error
		tok, err = s.login(ctx)
		return err
	})
	if err != nil {
		s.shutdown()
		return nil, err
	}
	s.tok.Store(tok)
	if err := s.checkBox(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	s.wg.Add(1)
	go s.refresher()
	return s, nil
}

// String returns "Entrust KeyControl: <endpoint>".
func (s *Store) String() string { return "Entrust KeyControl: " + s.endpoint }

// Close stops the token refresher and releases idle connections. Calls
// after Close fail with keystore.ErrClosed.
func (s *Store) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		s.shutdown()
	}
	return nil
}

func (s *Store) shutdown() {
	s.cancel()
	s.wg.Wait()
	s.transport.CloseIdleConnections()
}

// Status measures one GetBox round trip (retried like every read).
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	if err := s.checkBox(ctx); err != nil {
		return keystore.State{}, err
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

func (s *Store) checkBox(ctx context.Context) error {
	_, err := s.do(ctx, "get box", "GetBox", map[string]string{"box_id": s.boxID}, limitSmall, true)
	return err
}

type secretRequest struct {
	BoxID    string `json:"box_id"`
	SecretID string `json:"secret_id"`
}

// Get checks the secret name out and returns its value.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	op := fmt.Sprintf("get %q", name)
	body, err := s.do(ctx, op, "CheckoutSecret", secretRequest{BoxID: s.boxID, SecretID: name}, limitCheckout, true)
	if isAPI(err, http.StatusNotFound, textSecretNotFound) {
		return nil, fmt.Errorf("keycontrol: %s: %w", op, keystore.ErrKeyNotFound)
	}
	if err != nil {
		return nil, err
	}
	value, err := decodeSecretData(body)
	clear(body)
	if err != nil {
		return nil, fmt.Errorf("keycontrol: %s: %w", op, err)
	}
	return value, nil
}

// Create creates the secret name with value. KeyControl refuses a second
// secret of the same name atomically, so of several nodes creating one
// name exactly one succeeds and the others get keystore.ErrKeyExists.
//
// A create whose answer was lost (connection error, server error) may
// have taken effect. It is repeated, and if the repetition finds the name
// taken, the stored value decides: if it is value, the earlier attempt of
// this call created it and Create succeeds; otherwise another writer won
// and Create reports ErrKeyExists. A create that timed out is not
// repeated; its error is an *UnreachableError and the key may or may not
// exist.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if name == "" {
		return errors.New("keycontrol: create: empty key name")
	}
	op := fmt.Sprintf("create %q", name)
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("keycontrol: %s: %w", op, err)
	}
	req := struct {
		BoxID      string `json:"box_id"`
		Name       string `json:"name"`
		SecretData string `json:"secret_data"`
	}{s.boxID, name, encodeSecretData(value)}
	ambiguous := false
	for attempt := 0; ; attempt++ {
		_, err := s.do(ctx, op, "CreateSecret", req, limitSmall, false)
		if err == nil {
			return nil
		}
		if isAPI(err, http.StatusConflict, textSecretExists) {
			if !ambiguous {
				return fmt.Errorf("keycontrol: %s: %w", op, keystore.ErrKeyExists)
			}
			cur, gerr := s.Get(ctx, name)
			switch {
			case gerr == nil:
				same := subtle.ConstantTimeCompare(cur, value) == 1
				clear(cur)
				if same {
					return nil
				}
				return fmt.Errorf("keycontrol: %s: %w", op, keystore.ErrKeyExists)
			case errors.Is(gerr, keystore.ErrKeyNotFound):
				// Deleted in between: creating again is still correct.
				err = gerr
			default:
				return gerr
			}
		} else if !httpstore.Retryable(err) {
			return err
		}
		if attempt >= s.retries {
			return err
		}
		ambiguous = true
		if err := s.sleep(ctx, attempt); err != nil {
			return err
		}
	}
}

// Delete deletes the secret name with all its versions. A delete whose
// answer was lost is repeated; if the repetition finds no secret, the
// earlier attempt deleted it and Delete succeeds.
func (s *Store) Delete(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete %q", name)
	req := secretRequest{BoxID: s.boxID, SecretID: name}
	ambiguous := false
	for attempt := 0; ; attempt++ {
		_, err := s.do(ctx, op, "DeleteSecret", req, limitSmall, false)
		if err == nil {
			return nil
		}
		if isAPI(err, http.StatusNotFound, textSecretNotFound) {
			if ambiguous {
				return nil
			}
			return fmt.Errorf("keycontrol: %s: %w", op, keystore.ErrKeyNotFound)
		}
		if !httpstore.Retryable(err) || attempt >= s.retries {
			return err
		}
		ambiguous = true
		if err := s.sleep(ctx, attempt); err != nil {
			return err
		}
	}
}

// Replace swaps the value of name from old to value.
//
// KeyControl has no compare-and-swap, so Replace is:
//
//  1. take a lock on the name, shared by every Store of this process on
//     the same endpoint, vault and box;
//  2. check the secret out and compare it with old (ErrKeyNotFound,
//     ErrConflict);
//  3. PutSecretValue: KeyControl adds value as a new version of the
//     secret, which becomes current in one step, so a concurrent Get sees
//     old or value and the key never disappears;
//  4. check the secret out again: if it is not value, another writer
//     stored a version after ours and Replace reports ErrConflict.
//
// Within one process this is a true compare-and-swap. Between processes
// (several nodes on one box) there is a race window: if another node's
// step 2 runs after our step 2 and its step 3 after our step 4, both
// Replaces succeed and the later version silently supersedes the earlier
// one (a lost update). The window is one round trip wide and only opens
// when two nodes change the same key at the same moment. Step 4 also
// reports ErrConflict when another node legitimately replaced our value
// before we could re-check; callers then re-read and decide again. Older
// versions stay in the secret's version history (subject to the box's
// max_secret_versions).
func (s *Store) Replace(ctx context.Context, name string, old, value []byte) error {
	op := fmt.Sprintf("replace %q", name)
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("keycontrol: %s: %w", op, err)
	}
	unlock, err := nameLocks.Lock(ctx, s.lockNS+name)
	if err != nil {
		return fmt.Errorf("keycontrol: %s: %w", op, err)
	}
	defer unlock()

	equal := func(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
	cur, err := s.Get(ctx, name)
	if err != nil {
		return err
	}
	same := equal(cur, old)
	clear(cur)
	if !same {
		return fmt.Errorf("keycontrol: %s: %w", op, keystore.ErrConflict)
	}

	req := struct {
		BoxID      string `json:"box_id"`
		SecretID   string `json:"secret_id"`
		SecretData string `json:"secret_data"`
	}{s.boxID, name, encodeSecretData(value)}
	for attempt := 0; ; attempt++ {
		_, err := s.do(ctx, op, "PutSecretValue", req, limitSmall, false)
		if err == nil {
			break
		}
		if isAPI(err, http.StatusNotFound, textSecretNotFound) {
			return fmt.Errorf("keycontrol: %s: %w", op, keystore.ErrKeyNotFound)
		}
		if !httpstore.Retryable(err) {
			return err
		}
		// The answer was lost: find out whether our version landed.
		cur, gerr := s.Get(ctx, name)
		if gerr != nil {
			return err
		}
		landed, untouched := equal(cur, value), equal(cur, old)
		clear(cur)
		switch {
		case landed:
			return nil
		case !untouched:
			return fmt.Errorf("keycontrol: %s: %w", op, keystore.ErrConflict)
		case attempt >= s.retries:
			return err
		}
		if err := s.sleep(ctx, attempt); err != nil {
			return err
		}
	}

	cur, err = s.Get(ctx, name)
	if err != nil {
		// Our version was stored (200). A failed re-check cannot tell
		// whether someone wrote after us, and a delete after us is a
		// later operation: the Replace itself happened.
		return nil
	}
	same = equal(cur, value)
	clear(cur)
	if !same {
		return fmt.Errorf("keycontrol: %s: %w", op, keystore.ErrConflict)
	}
	return nil
}

// List returns the names of all unexpired secrets in the box that start
// with prefix, sorted. It follows next_token until the last page and
// filters by prefix itself: the server-side prefix filter of KeyControl is
// not documented, so the driver does not depend on it.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	type listRequest struct {
		BoxID     string `json:"box_id"`
		MaxItems  int    `json:"max_items"`
		NextToken string `json:"next_token,omitempty"` // must be omitted when empty
	}
	var (
		names []string
		seen  = map[string]bool{}
		req   = listRequest{BoxID: s.boxID, MaxItems: s.pageSize}
	)
	for {
		body, err := s.do(ctx, "list", "ListSecretIds", req, limitList, true)
		if err != nil {
			return nil, err
		}
		page, next, err := parseListPage(body, prefix)
		if err != nil {
			return nil, fmt.Errorf("keycontrol: list: %w", err)
		}
		names = append(names, page...)
		if next == "" {
			break
		}
		if seen[next] {
			return nil, errors.New("keycontrol: list: the server repeated a next_token")
		}
		seen[next] = true
		req.NextToken = next
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// do sends one vault action and returns the body of its 200 answer.
// Errors are classified (see classify); an *apiError stays reachable with
// errors.As for sentinel mapping. Idempotent actions are retried on
// connection errors and server errors.
func (s *Store) do(ctx context.Context, op, action string, req any, limit int64, idempotent bool) ([]byte, error) {
	if s.closed.Load() {
		return nil, keystore.ErrClosed
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("keycontrol: %s: %w", op, err)
	}
	defer clear(body) // CreateSecret and PutSecretValue carry a key
	var resp []byte
	attempt := func(ctx context.Context) error {
		var err error
		resp, err = s.authorized(ctx, op, action, body, limit)
		return err
	}
	if idempotent {
		err = s.withRetry(ctx, attempt)
	} else {
		err = attempt(ctx)
	}
	return resp, err
}

// authorized sends one request with the current token. If the server
// rejects the token (401 or 403) it logs in again, once, and repeats the
// request with the new token.
func (s *Store) authorized(ctx context.Context, op, action string, body []byte, limit int64) ([]byte, error) {
	tok := s.tok.Load()
	resp, _, err := s.post(ctx, action, tok.value, body, limit)
	if !isAuthError(err) {
		return resp, s.classify(ctx, op, err)
	}
	// Whether KeyControl answers a stale token with 401 or 403 is not
	// documented, so both lead to one new login, except a 403 right
	// after a login.
	if !isAPIStatus(err, http.StatusForbidden) || time.Since(tok.obtained) >= freshToken {
		if tok, err = s.relogin(ctx, tok); err != nil {
			return nil, err
		}
		resp, _, err = s.post(ctx, action, tok.value, body, limit)
	}
	if isAuthError(err) {
		var ae *apiError
		errors.As(err, &ae)
		reason := "authentication failed"
		if ae.Status == http.StatusForbidden {
			reason = "permission denied"
		}
		return nil, &keystore.UnavailableError{
			Store:  storeName,
			Reason: reason,
			Err:    fmt.Errorf("%s as user %q in box %q (check the user's Vault User role on the box): %w", op, s.username, s.boxID, ae),
		}
	}
	return resp, s.classify(ctx, op, err)
}

func isAuthError(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden)
}

func isAPIStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

func isAPI(err error, status int, text string) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.is(status, text)
}

// post sends one POST request and reads the answer: the body of a 200
// answer, an *apiError for any other status, or a transport error. The
// request is bounded by s.timeout and the body of the answer by limit.
func (s *Store) post(ctx context.Context, action, token string, body []byte, limit int64) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+action+"/", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("X-Vault-Auth", token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := readLimited(resp, limitError)
		return nil, resp.Header, parseError(resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	b, err := readLimited(resp, limit)
	if err != nil {
		return nil, nil, err
	}
	return b, resp.Header, nil
}

// errTooLarge reports an answer above the size limit. It is a protocol
// error, not a transient one.
var errTooLarge = errors.New("answer exceeds the size limit")

func readLimited(resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, errTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		clear(b)
		return nil, errTooLarge
	}
	return b, nil
}

// classify turns a post error into the error a Store method returns:
// *keystore.UnreachableError for connection errors, timeouts and server
// errors (5xx, 429), *keystore.UnavailableError for what an operator must
// fix (an untrusted certificate, a missing box), the caller's
// cancellation as is, and anything else as a plain error. Every error is
// prefixed with the operation.
func (s *Store) classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *apiError
	if errors.As(err, &ae) {
		switch {
		case ae.Status >= 500 || ae.Status == http.StatusTooManyRequests:
			return &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("%s: %w", op, ae)}
		case ae.Status == http.StatusNotFound && ae.JSON && strings.Contains(strings.ToLower(ae.Message), "box"):
			return &keystore.UnavailableError{
				Store:  storeName,
				Reason: "box not found",
				Err:    fmt.Errorf("%s: no box %q in vault %q (check box_id): %w", op, s.boxID, s.vaultID, ae),
			}
		case ae.Status == http.StatusNotFound && !ae.JSON:
			return &keystore.UnavailableError{
				Store:  storeName,
				Reason: "vault API not found",
				Err:    fmt.Errorf("%s: %s does not serve the KeyControl vault API (check the endpoint; KeyControl 5.2 or newer is needed): %w", op, s.endpoint, ae),
			}
		}
		return fmt.Errorf("keycontrol: %s: %w", op, ae)
	}
	if errors.Is(err, errTooLarge) {
		return fmt.Errorf("keycontrol: %s: %w", op, err)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("keycontrol: %s: %w", op, context.Cause(ctx))
	}
	if httpstore.IsCertError(err) {
		return &keystore.UnavailableError{
			Store:  storeName,
			Reason: "server certificate not trusted",
			Err:    fmt.Errorf("%s: TLS with %s failed (set tls.ca to the CA that issued the KeyControl certificate): %w", op, s.endpoint, err),
		}
	}
	return &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("%s: %w", op, err)}
}

// withRetry runs fn and repeats it while it fails with a retryable error,
// at most s.retries times, with exponential backoff.
func (s *Store) withRetry(ctx context.Context, fn func(context.Context) error) error {
	return httpstore.Retry(ctx, s.retries, fn, s.sleep)
}

// sleep waits the backoff delay of attempt (0-based) or until ctx is done.
func (s *Store) sleep(ctx context.Context, attempt int) error {
	return httpstore.Wait(ctx, storeName, httpstore.Backoff(s.retryDelay, attempt, s.maxRetryDelay))
}

// nameLocks serializes Replace calls on one key across all Stores of the
// process, e.g. the old and the new store during a configuration reload.
var nameLocks httpstore.NameLocks
