// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kesbridge/kes/internal/emulator/emutls"
)

// Defaults used when a Config field is empty.
const (
	DefaultKVMount      = "kv"
	DefaultTransitMount = "transit"
	DefaultTransitKey   = "kes"
	DefaultAppRoleMount = "approle"
	DefaultK8sMount     = "kubernetes"
	DefaultK8sRole      = "kes"
	DefaultPolicy       = "kes"
	DefaultTokenTTL     = time.Hour
	DefaultTokenMaxTTL  = 24 * time.Hour
)

// KVMount is a KV secrets engine.
type KVMount struct {
	// Namespace is the namespace of the mount; empty is the root.
	Namespace string
	// Path is the mount path, e.g. "kv".
	Path string
	// Version is 1 or 2.
	Version int
}

// TransitMount is a transit secrets engine with its keys.
type TransitMount struct {
	Namespace string
	Path      string
	// Keys are created at start, each at version 1.
	Keys []string
}

// Rule grants capabilities ("create", "read", "update", "delete",
// "list", "deny") on a path relative to the token's namespace. A path
// ending in '*' matches every path with that prefix.
type Rule struct {
	Path         string
	Capabilities []string
}

// AppRole is a role of an AppRole auth mount.
type AppRole struct {
	Namespace, Mount string
	RoleID, SecretID string
	Policies         []string
}

// KubernetesRole is a role of a Kubernetes auth mount. Logins must
// present exactly JWT.
type KubernetesRole struct {
	Namespace, Mount string
	Role, JWT        string
	Policies         []string
}

// Config configures an emulator. The zero value is a usable emulator
// with a KV v2 engine "kv", a transit engine "transit" with key "kes",
// one AppRole and one Kubernetes role with random credentials, and a
// policy "kes" that grants both everything on kv/* and the use of the
// transit key.
type Config struct {
	// Namespaces are the namespaces besides the root, e.g. "tenant-1"
	// or "org/team". Parents of nested namespaces are added.
	Namespaces []string
	// KV are the KV engines. Nil means one KV v2 engine DefaultKVMount.
	KV []KVMount
	// Transit are the transit engines. Nil means DefaultTransitMount
	// with DefaultTransitKey.
	Transit []TransitMount
	// Policies are the ACL policies by name. Nil means DefaultPolicy.
	// "root" is built in and allows everything.
	Policies map[string][]Rule
	// AppRoles are the AppRole roles. Nil means one role on
	// DefaultAppRoleMount, in the namespace of the first KV engine, with
	// random IDs and DefaultPolicy.
	AppRoles []AppRole
	// KubernetesRoles are the Kubernetes roles. Nil means DefaultK8sRole
	// on DefaultK8sMount, in the namespace of the first KV engine, with a
	// random JWT and DefaultPolicy.
	KubernetesRoles []KubernetesRole
	// RootToken is a token with the root policy that never expires.
	// Empty means a random one.
	RootToken string
	// TokenTTL and TokenMaxTTL are the lease and the maximum life of
	// tokens from logins. Zero means DefaultTokenTTL and
	// DefaultTokenMaxTTL.
	TokenTTL, TokenMaxTTL time.Duration
	// Hosts are extra names or loopback addresses for the certificate.
	Hosts []string
	// CAFile is where Run writes the CA certificate.
	CAFile string
	// EnvFile is where Run writes, once it serves, what it prints as
	// VAULT_ENDPOINT, VAULT_ROLE_ID, VAULT_SECRET_ID (the first AppRole),
	// VAULT_CA and, with a namespace, VAULT_NAMESPACE lines, mode 0600,
	// and removes it when it returns. Empty means none.
	EnvFile string
}

type kvVersion struct {
	data    map[string]any
	created time.Time
	deleted bool
}

type kvEntry struct {
	data     map[string]any // KV v1
	versions map[int]*kvVersion
	current  int
}

type kvEngine struct {
	version int
	entries map[string]*kvEntry
}

type transitKey struct {
	versions [][]byte // AES-256 keys; version N is versions[N-1]
}

type tokenInfo struct {
	ns         string
	policies   []string
	created    time.Time
	expires    time.Time // zero: never
	maxExpires time.Time
	renewable  bool
}

// Server is an emulator. Its methods are safe for concurrent use.
type Server struct {
	cfg   Config
	cert  tls.Certificate
	caPEM []byte
	pool  *x509.CertPool

	mu         sync.Mutex
	namespaces map[string]bool
	kv         map[string]*kvEngine // by mountKey
	transit    map[string]map[string]*transitKey
	tokens     map[string]*tokenInfo
	ttl        time.Duration
	maxTTL     time.Duration
	counts     map[string]int
	latency    time.Duration
	fail       int
	failCode   int
	down       bool
	sealed     bool
	conns      map[net.Conn]struct{}

	srv      *http.Server
	ln       net.Listener
	url      string
	serveErr chan error
}

func mountKey(ns, path string) string {
	return strings.Trim(ns, "/") + "\x00" + strings.Trim(path, "/")
}

// New returns an emulator for cfg. It does not listen yet; call Start.
func New(cfg Config) (*Server, error) {
	if cfg.KV == nil {
		cfg.KV = []KVMount{{Path: DefaultKVMount, Version: 2}}
	}
	if len(cfg.KV) == 0 {
		return nil, errors.New("emulator: no KV engine")
	}
	if cfg.Transit == nil {
		cfg.Transit = []TransitMount{{Path: DefaultTransitMount, Keys: []string{DefaultTransitKey}}}
	}
	if cfg.Policies == nil {
		cfg.Policies = map[string][]Rule{DefaultPolicy: {
			{Path: DefaultKVMount + "/*", Capabilities: []string{"create", "read", "update", "delete", "list"}},
			{Path: DefaultTransitMount + "/encrypt/" + DefaultTransitKey, Capabilities: []string{"update"}},
			{Path: DefaultTransitMount + "/decrypt/" + DefaultTransitKey, Capabilities: []string{"update"}},
		}}
	}
	// The default logins live where the first KV engine lives.
	home := cfg.KV[0].Namespace
	if cfg.AppRoles == nil {
		cfg.AppRoles = []AppRole{{Namespace: home, Mount: DefaultAppRoleMount, RoleID: newUUID(), SecretID: newUUID(), Policies: []string{DefaultPolicy}}}
	}
	if cfg.KubernetesRoles == nil {
		cfg.KubernetesRoles = []KubernetesRole{{Namespace: home, Mount: DefaultK8sMount, Role: DefaultK8sRole, JWT: "eyJhbGciOiJSUzI1NiJ9." + randomHex(32) + ".sig", Policies: []string{DefaultPolicy}}}
	}
	if cfg.RootToken == "" {
		cfg.RootToken = "hvs." + randomHex(12)
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.TokenMaxTTL <= 0 {
		cfg.TokenMaxTTL = DefaultTokenMaxTTL
	}
	s := &Server{
		cfg:        cfg,
		namespaces: map[string]bool{"": true},
		kv:         map[string]*kvEngine{},
		transit:    map[string]map[string]*transitKey{},
		tokens:     map[string]*tokenInfo{},
		ttl:        cfg.TokenTTL,
		maxTTL:     cfg.TokenMaxTTL,
		counts:     map[string]int{},
		conns:      map[net.Conn]struct{}{},
	}
	for _, ns := range cfg.Namespaces {
		ns = strings.Trim(ns, "/")
		for ns != "" {
			s.namespaces[ns] = true
			i := strings.LastIndex(ns, "/")
			if i < 0 {
				break
			}
			ns = ns[:i]
		}
	}
	checkNS := func(ns string) error {
		if !s.namespaces[strings.Trim(ns, "/")] {
			return fmt.Errorf("emulator: namespace %q is not in Config.Namespaces", ns)
		}
		return nil
	}
	for _, m := range cfg.KV {
		if err := checkNS(m.Namespace); err != nil {
			return nil, err
		}
		if m.Version != 1 && m.Version != 2 {
			return nil, fmt.Errorf("emulator: KV mount %q: version must be 1 or 2", m.Path)
		}
		s.kv[mountKey(m.Namespace, m.Path)] = &kvEngine{version: m.Version, entries: map[string]*kvEntry{}}
	}
	for _, m := range cfg.Transit {
		if err := checkNS(m.Namespace); err != nil {
			return nil, err
		}
		keys := map[string]*transitKey{}
		for _, k := range m.Keys {
			keys[k] = &transitKey{versions: [][]byte{randomBytes(32)}}
		}
		s.transit[mountKey(m.Namespace, m.Path)] = keys
	}
	for _, r := range cfg.AppRoles {
		if err := checkNS(r.Namespace); err != nil {
			return nil, err
		}
	}
	for _, r := range cfg.KubernetesRoles {
		if err := checkNS(r.Namespace); err != nil {
			return nil, err
		}
	}
	s.tokens[cfg.RootToken] = &tokenInfo{policies: []string{"root"}, created: time.Now()}
	certs, err := emutls.New("vault-emulator", cfg.Hosts...)
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	s.cert, s.caPEM, s.pool = certs.Server, certs.CAPEM, certs.Pool
	return s, nil
}

// Start listens on addr, which must be a loopback address (e.g.
// "127.0.0.1:0"), and serves HTTPS in the background until Close.
func (s *Server) Start(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("emulator: invalid listen address: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("emulator: listens on loopback addresses only")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve serves HTTPS on ln in the background until Close, like Start.
// Tests hand in an in-memory listener to run client and emulator in a
// testing/synctest bubble.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("emulator: already started")
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         s.connState,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	s.ln = &downListener{Listener: ln, s: s}
	s.url = "https://" + ln.Addr().String()
	s.serveErr = make(chan error, 1)
	srv, tl := s.srv, tls.NewListener(s.ln, &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	})
	s.mu.Unlock()
	go func() { s.serveErr <- srv.Serve(tl) }()
	return nil
}

// URL is the endpoint clients configure; empty before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// CACertPEM returns the PEM certificate of the CA of the server.
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CertPool returns a pool holding only the emulator's CA.
func (s *Server) CertPool() *x509.CertPool { return s.pool.Clone() }

// RootToken returns the root token.
func (s *Server) RootToken() string { return s.cfg.RootToken }

// AppRoles returns the configured AppRole roles with their credentials.
func (s *Server) AppRoles() []AppRole { return slices.Clone(s.cfg.AppRoles) }

// KubernetesRoles returns the configured Kubernetes roles with their JWTs.
func (s *Server) KubernetesRoles() []KubernetesRole { return slices.Clone(s.cfg.KubernetesRoles) }

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the server gracefully, waiting until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// SetLatency delays every following request by d. The delay ends early
// when the client goes away.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n requests fail with status (e.g. 500)
// without being handled.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.failCode = n, status
}

// SetSealed seals or unseals Vault. While sealed, every request but
// sys/health is answered 503 "Vault is sealed". Tokens survive, as they
// do in Vault's storage.
func (s *Server) SetSealed(sealed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = sealed
}

// RevokeTokens revokes every token except the root token, as an operator
// revoking leases would.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := range s.tokens {
		if v != s.cfg.RootToken {
			delete(s.tokens, v)
		}
	}
}

// SetTokenTTL sets the lease and maximum life of tokens issued or
// renewed from now on.
func (s *Server) SetTokenTTL(ttl, maxTTL time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl, s.maxTTL = ttl, maxTTL
}

// SetDown switches down mode: open connections are closed and new ones
// are closed right after accept, so clients see resets, never an answer.
// Data and tokens survive.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	var open []net.Conn
	if down {
		for c := range s.conns {
			open = append(open, c)
		}
	}
	s.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// Count returns how many requests of a kind reached the handler:
// "login", "renew", "lookup", "revoke", "health", "kv", "transit".
func (s *Server) Count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

// Tokens returns how many tokens are valid, the root token included.
func (s *Server) Tokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}

// SeedKV writes data at path (below the mount, e.g. "kes/my-key") of a
// KV engine, as a client with the root token would: on KV v2 it adds a
// version. Tests use it to lay out entries exactly as another writer
// would have.
func (s *Server) SeedKV(ns, mount, path string, data map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.kv[mountKey(ns, mount)]
	if e == nil {
		return fmt.Errorf("emulator: no KV engine %q in namespace %q", mount, ns)
	}
	e.put(strings.Trim(path, "/"), maps.Clone(data), time.Now())
	return nil
}

// ReadKV returns the data at path of a KV engine (the latest version on
// KV v2) and the version (0 on KV v1).
func (s *Server) ReadKV(ns, mount, path string) (map[string]any, int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.kv[mountKey(ns, mount)]
	if e == nil {
		return nil, 0, false
	}
	ent := e.entries[strings.Trim(path, "/")]
	if ent == nil {
		return nil, 0, false
	}
	if e.version == 1 {
		return maps.Clone(ent.data), 0, true
	}
	v := ent.versions[ent.current]
	if v == nil || v.deleted {
		return nil, ent.current, false
	}
	return maps.Clone(v.data), ent.current, true
}

// RotateTransitKey adds a version to a transit key; new ciphertexts use
// it, old ones still decrypt.
func (s *Server) RotateTransitKey(ns, mount, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.transit[mountKey(ns, mount)][key]
	if k == nil {
		return fmt.Errorf("emulator: no transit key %q", key)
	}
	k.versions = append(k.versions, randomBytes(32))
	return nil
}

// maxVersions is how many versions KV v2 keeps per key. Assumed: the
// mount's max_versions is left at its default (0, which Vault treats as
// 10).
const maxVersions = 10

func (e *kvEngine) put(path string, data map[string]any, now time.Time) int {
	ent := e.entries[path]
	if ent == nil {
		ent = &kvEntry{versions: map[int]*kvVersion{}}
		e.entries[path] = ent
	}
	if e.version == 1 {
		ent.data = data
		return 0
	}
	ent.current++
	ent.versions[ent.current] = &kvVersion{data: data, created: now}
	delete(ent.versions, ent.current-maxVersions)
	return ent.current
}

func (s *Server) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

// downListener drops connections while the server is down.
type downListener struct {
	net.Listener
	s *Server
}

func (l *downListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.mu.Lock()
		down := l.s.down
		l.s.mu.Unlock()
		if !down {
			return c, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("emulator: crypto/rand failed: " + err.Error())
	}
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func newUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// writeJSON sends v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errors":["internal error"]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
