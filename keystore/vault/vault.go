// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/kesbridge/kes/internal/httpstore"
	"github.com/kesbridge/kes/keystore"
)

// Store is a keystore.Store on one prefix of one KV engine of a Vault.
type Store struct {
	cfg        *settings
	kv         *vaultapi.Client // with the store's namespace
	root       *vaultapi.Client // without namespace: sys/health is root-only
	authClient *vaultapi.Client // with the namespace of the login
	transport  *http.Transport
	fixed      string // the fixed token, if no login method is set
	lockNS     string // namespace of the process-wide write locks

	tok      atomic.Pointer[token]
	loginSem chan struct{} // one login or renewal at a time
	changed  chan struct{} // wakes the refresher when a request logged in

	sealed atomic.Bool // last health answer said sealed

	ctx    context.Context // done on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

var (
	_ keystore.Store   = (*Store)(nil)
	_ keystore.Capable = (*Store)(nil)
)

// New logs in to Vault (or looks up the fixed token) and starts the
// background token refresher and health check. ctx bounds the start-up
// only. Errors say which setting is wrong and never contain a credential.
func New(ctx context.Context, cfg Config) (*Store, error) {
	c, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:      c,
		lockNS:   c.endpoint + "\x00" + c.Namespace + "\x00" + c.Engine + "\x00" + c.Prefix + "\x00",
		loginSem: make(chan struct{}, 1),
		changed:  make(chan struct{}, 1),
	}
	s.transport = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   c.Timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   c.Timeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: c.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	if c.dial != nil {
		s.transport.DialContext = c.dial
	}
	if c.ClientCert != nil {
		s.transport.TLSClientConfig.Certificates = []tls.Certificate{*c.ClientCert}
	}
	hc := &http.Client{
		Transport: limitedTransport{s.transport},
		// Vault answers with a redirect only from a standby node;
		// following one would send the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, cl := range []struct {
		p  **vaultapi.Client
		ns string
	}{{&s.kv, c.Namespace}, {&s.root, ""}, {&s.authClient, c.authNS}} {
		if *cl.p, err = newClient(c.endpoint, hc, cl.ns); err != nil {
			s.transport.CloseIdleConnections()
			return nil, err
		}
	}
	if !s.canLogin() {
		s.fixed = c.Token.Reveal()
		if s.fixed == "" {
			s.fixed = os.Getenv(vaultapi.EnvVaultToken)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	var t *token
	err = s.withRetry(ctx, func(ctx context.Context) error {
		var err error
		t, err = s.login(ctx)
		return err
	})
	if err != nil {
		s.shutdown()
		return nil, err
	}
	s.tok.Store(t)
	s.wg.Add(2)
	go s.refresher()
	go s.watchHealth()
	return s, nil
}

func newClient(endpoint string, hc *http.Client, ns string) (*vaultapi.Client, error) {
	c, err := vaultapi.NewClient(&vaultapi.Config{
		Address:          endpoint,
		HttpClient:       hc,
		MaxRetries:       0, // the driver decides what may be repeated
		DisableRedirects: true,
	})
	if err != nil {
		return nil, fmt.Errorf("vault: invalid endpoint: %w", err)
	}
	// NewClient takes VAULT_TOKEN and VAULT_NAMESPACE from the
	// environment; the configuration decides both here.
	c.ClearToken()
	if ns == "" {
		c.ClearNamespace()
	} else {
		c.SetNamespace(ns)
	}
	return c, nil
}

// String returns "Hashicorp Vault: <endpoint>".
func (s *Store) String() string { return "Hashicorp Vault: " + s.cfg.endpoint }

// Close stops the background work and releases idle connections. Calls
// after Close fail with keystore.ErrClosed. The token is not revoked: a
// token obtained by a login expires by itself, and a fixed token belongs
// to the operator.
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

// Status asks sys/health (without namespace: the path is root-only). A
// sealed Vault is an *UnreachableError: it comes back by itself once an
// operator unseals it.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	if s.closed.Load() {
		return keystore.State{}, keystore.ErrClosed
	}
	start := time.Now()
	q := url.Values{}
	for _, k := range []string{"drsecondarycode", "performancestandbycode", "sealedcode", "standbycode", "uninitcode"} {
		q.Set(k, "299")
	}
	var b []byte
	err := s.withRetry(ctx, func(ctx context.Context) error {
		var err error
		b, _, err = s.send(ctx, s.root, request{method: http.MethodGet, path: "sys/health", query: q})
		return s.classify(ctx, "health", err)
	})
	if err != nil {
		return keystore.State{}, err
	}
	var h struct {
		Initialized bool `json:"initialized"`
		Sealed      bool `json:"sealed"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return keystore.State{}, errors.New("vault: health: malformed answer")
	}
	s.setSealed(h.Sealed)
	switch {
	case h.Sealed:
		return keystore.State{}, &keystore.UnreachableError{Store: storeName, Reason: "vault is sealed", Err: errors.New("health: vault is sealed")}
	case !h.Initialized:
		return keystore.State{}, &keystore.UnavailableError{Store: storeName, Reason: "vault is not initialized"}
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

func (s *Store) setSealed(sealed bool) {
	if s.sealed.Swap(sealed) != sealed {
		if sealed {
			s.cfg.Logger.Warn("vault: vault is sealed; requests fail until it is unsealed", "endpoint", s.cfg.endpoint)
		} else {
			s.cfg.Logger.Info("vault: vault is unsealed again", "endpoint", s.cfg.endpoint)
		}
	}
}

// watchHealth polls sys/health every StatusPing and logs when Vault is
// sealed or unsealed.
func (s *Store) watchHealth() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.StatusPing)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.Status(s.ctx)
	}
}

// Capabilities reports values of up to MaxValueSize bytes, and a
// linearizable Replace on KV v2 (check-and-set) but not on KV v1.
func (s *Store) Capabilities() keystore.Capabilities {
	return keystore.Capabilities{MaxValueSize: MaxValueSize, LinearizableReplace: s.cfg.v2}
}

// MaxValueSize is the largest value the store writes: 192 KiB. Vault's
// storage limits one entry to 512 KiB on Consul and 1 MiB on integrated
// storage (max_entry_size); a value grows by at most a third as base64
// (the "kesbridge:base64:" form and transit both encode it), and the
// limit keeps even a transit-wrapped full-size value with its JSON below
// 512 KiB.
const MaxValueSize = 192 << 10

// checkName refuses names that would address another Vault path.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/?#%") {
		return fmt.Errorf("vault: invalid key name %q", name)
	}
	return nil
}

func (s *Store) dataPath(name string) string {
	if s.cfg.v2 {
		return path.Join(s.cfg.Engine, "data", s.cfg.Prefix, name)
	}
	return path.Join(s.cfg.Engine, s.cfg.Prefix, name)
}

// maxRelogins bounds how often one request logs in again and repeats
// itself after Vault rejected its token.
const maxRelogins = 3

// call sends r with the current token. If Vault says the token is
// invalid (revoked or expired) it logs in again and repeats the request
// with the new token, up to maxRelogins times. Idempotent requests are also retried on
// connection and server errors. The error is classified.
func (s *Store) call(ctx context.Context, op string, c *vaultapi.Client, r request, idempotent bool) ([]byte, error) {
	if s.closed.Load() {
		return nil, keystore.ErrClosed
	}
	var resp []byte
	attempt := func(ctx context.Context) error {
		t := s.tok.Load()
		r.token = t.value
		b, _, err := s.send(ctx, c, r)
		// A token can be revoked again while the repeated request is on
		// its way (a revocation storm, or a slow request): log in again
		// a few times, as long as each new token is rejected in turn.
		for range maxRelogins {
			if !invalidToken(err) || !s.canLogin() {
				break
			}
			if t, err = s.relogin(ctx, t); err != nil {
				return err
			}
			r.token = t.value
			b, _, err = s.send(ctx, c, r)
		}
		resp = b
		return s.classify(ctx, op, err)
	}
	if idempotent {
		return resp, s.withRetry(ctx, attempt)
	}
	return resp, attempt(ctx)
}

// withRetry runs fn and repeats it while it fails with a retryable error,
// at most Retries times, with exponential backoff.
func (s *Store) withRetry(ctx context.Context, fn func(context.Context) error) error {
	return httpstore.Retry(ctx, s.cfg.Retries, fn, s.sleep)
}

// read returns the field of name and, on KV v2, its version.
func (s *Store) read(ctx context.Context, name string) (string, int64, error) {
	op := fmt.Sprintf("get %q", name)
	b, err := s.call(ctx, op, s.kv, request{method: http.MethodGet, path: s.dataPath(name), limit: limitValue}, true)
	if isStatus(err, http.StatusNotFound) {
		return "", 0, fmt.Errorf("vault: %s: %w", op, keystore.ErrKeyNotFound)
	}
	if err != nil {
		return "", 0, err
	}
	defer clear(b)
	sb, err := parseSecret(b)
	if err != nil {
		return "", 0, fmt.Errorf("vault: %s: %w", op, err)
	}
	data := sb.Data
	var version int64
	if s.cfg.v2 {
		var d struct {
			Data     json.RawMessage `json:"data"`
			Metadata struct {
				Version int64 `json:"version"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(sb.Data, &d); err != nil {
			return "", 0, fmt.Errorf("vault: %s: malformed KV v2 answer", op)
		}
		if len(d.Data) == 0 || string(d.Data) == "null" {
			// A deleted or destroyed latest version.
			return "", 0, fmt.Errorf("vault: %s: %w", op, keystore.ErrKeyNotFound)
		}
		data, version = d.Data, d.Metadata.Version
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return "", 0, fmt.Errorf("vault: %s: malformed KV answer", op)
	}
	var field string
	if raw, ok := fields[name]; !ok || json.Unmarshal(raw, &field) != nil {
		return "", 0, fmt.Errorf("vault: %s: the entry holds no string field %q", op, name)
	}
	return field, version, nil
}

// Get returns the value stored under name.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	field, _, err := s.read(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.decode(ctx, name, field)
}

func equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// casMismatch reports Vault's answer to a KV v2 write whose cas did not
// match the current version.
func casMismatch(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusBadRequest && ae.has("check-and-set")
}

// denied reports a 403 of the policy, not of the token.
func denied(err error) bool { return isStatus(err, http.StatusForbidden) && !invalidToken(err) }

func (s *Store) writeBody(name, field string, cas int64) any {
	if s.cfg.v2 {
		return map[string]any{"options": map[string]any{"cas": cas}, "data": map[string]string{name: field}}
	}
	return map[string]string{name: field}
}

// Create stores value under name if the name is free.
//
// On KV v2 the write carries cas 0, so Vault itself refuses a second
// creator atomically; the loser gets keystore.ErrKeyExists. On KV v1 the
// driver reads, writes and reads back: a creator whose value was
// overwritten by another node reports ErrKeyExists, but two creators can
// both succeed if their writes and re-reads do not interleave, unless the
// policy lacks "update" (then Vault answers the second write 403, which
// becomes ErrKeyExists after a re-read).
//
// A write whose answer was lost is repeated after a read shows that it
// did not land; if the stored value is value, an earlier attempt of this
// call created it and Create succeeds.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	op := fmt.Sprintf("create %q", name)
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("vault: %s: %w", op, err)
	}
	if !s.cfg.v2 {
		unlock, err := nameLocks.Lock(ctx, s.lockNS+name)
		if err != nil {
			return fmt.Errorf("vault: %s: %w", op, err)
		}
		defer unlock()
	}
	switch _, _, err := s.read(ctx, name); {
	case err == nil:
		return fmt.Errorf("vault: %s: %w", op, keystore.ErrKeyExists)
	case !errors.Is(err, keystore.ErrKeyNotFound):
		return err
	}
	field, err := s.encode(ctx, name, value)
	if err != nil {
		return err
	}
	body := s.writeBody(name, field, 0)
	ambiguous := false
	for attempt := 0; ; attempt++ {
		_, err := s.call(ctx, op, s.kv, request{method: http.MethodPut, path: s.dataPath(name), body: body}, false)
		if err == nil {
			break
		}
		lost := casMismatch(err) || denied(err)
		if !lost && !httpstore.Retryable(err) {
			return err
		}
		cur, gerr := s.Get(ctx, name)
		switch {
		case gerr == nil:
			same := equal(cur, value)
			clear(cur)
			if same && ambiguous {
				return nil
			}
			return fmt.Errorf("vault: %s: %w", op, keystore.ErrKeyExists)
		case !errors.Is(gerr, keystore.ErrKeyNotFound):
			return err
		case denied(err):
			return err // no key there: the policy forbids creating
		}
		if attempt >= s.cfg.Retries {
			return err
		}
		ambiguous = ambiguous || httpstore.Retryable(err)
		if err := s.sleep(ctx, attempt); err != nil {
			return err
		}
	}
	if s.cfg.v2 {
		return nil
	}
	// KV v1: another node may have written between our read and write.
	cur, err := s.Get(ctx, name)
	if err != nil {
		return nil // ours landed; a failed re-check cannot say more
	}
	same := equal(cur, value)
	clear(cur)
	if !same {
		return fmt.Errorf("vault: %s: %w", op, keystore.ErrKeyExists)
	}
	return nil
}

// Replace swaps the value of name from old to value.
//
// On KV v2 it reads the latest version and writes with cas set to that
// version: Vault refuses the write if anyone wrote in between, so Replace
// is a compare-and-swap across nodes. On KV v1 it reads, compares, writes
// and reads back under a lock shared by the Stores of this process; two
// nodes replacing one key at the same instant can both succeed (a lost
// update). A concurrent Get sees old or value on both versions: Vault
// replaces an entry in one step.
func (s *Store) Replace(ctx context.Context, name string, old, value []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	op := fmt.Sprintf("replace %q", name)
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("vault: %s: %w", op, err)
	}
	if !s.cfg.v2 {
		unlock, err := nameLocks.Lock(ctx, s.lockNS+name)
		if err != nil {
			return fmt.Errorf("vault: %s: %w", op, err)
		}
		defer unlock()
	}
	field, version, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	cur, err := s.decode(ctx, name, field)
	if err != nil {
		return err
	}
	same := equal(cur, old)
	clear(cur)
	if !same {
		return fmt.Errorf("vault: %s: %w", op, keystore.ErrConflict)
	}
	if field, err = s.encode(ctx, name, value); err != nil {
		return err
	}
	body := s.writeBody(name, field, version)
	for attempt := 0; ; attempt++ {
		_, err := s.call(ctx, op, s.kv, request{method: http.MethodPut, path: s.dataPath(name), body: body}, false)
		if err == nil {
			break
		}
		if casMismatch(err) {
			return fmt.Errorf("vault: %s: %w", op, keystore.ErrConflict)
		}
		if !httpstore.Retryable(err) {
			return err
		}
		// The answer was lost: find out whether our write landed.
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
			return fmt.Errorf("vault: %s: %w", op, keystore.ErrConflict)
		case attempt >= s.cfg.Retries:
			return err
		}
		if err := s.sleep(ctx, attempt); err != nil {
			return err
		}
	}
	if s.cfg.v2 {
		return nil
	}
	cur, err = s.Get(ctx, name)
	if err != nil {
		return nil // ours landed; a failed re-check cannot say more
	}
	same = equal(cur, value)
	clear(cur)
	if !same {
		return fmt.Errorf("vault: %s: %w", op, keystore.ErrConflict)
	}
	return nil
}

// Delete removes name: the entry on KV v1, the metadata with every
// version on KV v2. Vault answers a delete of a missing path with
// success, so the driver reads first to report ErrKeyNotFound.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, _, err := s.read(ctx, name); err != nil {
		return err
	}
	p := s.dataPath(name)
	if s.cfg.v2 {
		p = path.Join(s.cfg.Engine, "metadata", s.cfg.Prefix, name)
	}
	// Deleting twice has the effect of deleting once: safe to retry.
	_, err := s.call(ctx, fmt.Sprintf("delete %q", name), s.kv, request{method: http.MethodDelete, path: p}, true)
	return err
}

// List returns the names under the prefix that start with prefix,
// sorted. Vault answers a LIST in one piece (read up to 32 MiB); a 404
// means an empty folder, not an error. Sub-folders are skipped: keys are
// never nested.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	p := path.Join(s.cfg.Engine, s.cfg.Prefix)
	if s.cfg.v2 {
		p = path.Join(s.cfg.Engine, "metadata", s.cfg.Prefix)
	}
	b, err := s.call(ctx, "list", s.kv, request{method: http.MethodGet, path: p + "/", query: url.Values{"list": {"true"}}, limit: limitList}, true)
	if isStatus(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sb, err := parseSecret(b)
	if err != nil {
		return nil, fmt.Errorf("vault: list: %w", err)
	}
	var d struct {
		Keys []string `json:"keys"`
	}
	if len(sb.Data) > 0 && json.Unmarshal(sb.Data, &d) != nil {
		return nil, errors.New("vault: list: malformed answer")
	}
	names := make([]string, 0, len(d.Keys))
	for _, k := range d.Keys {
		if strings.HasSuffix(k, "/") || !strings.HasPrefix(k, prefix) {
			continue
		}
		names = append(names, k)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// nameLocks serialises KV v1 writes to one key across all Stores of the
// process, e.g. the old and the new store during a configuration reload.
var nameLocks httpstore.NameLocks
