// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

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
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kesbridge/kes/internal/emulator/emutls"
)

// Defaults used when a Config field is left empty. They are fixed, not
// random, so that an example configuration can name them.
const (
	// DefaultVaultID is the vault UUID of an emulator whose Config has
	// no VaultID.
	DefaultVaultID = "6f1c2e0a-3b7d-4c55-9a41-0d2f8e6b7c10"
	// DefaultBox is the box name of an emulator whose Config has no
	// boxes.
	DefaultBox = "kes"
	// DefaultUsername is the user of an emulator whose Config has no
	// users. Its password is random unless Config.Users sets one.
	DefaultUsername = "kes"
	// DefaultTokenTTL is the access token lifetime when Config.TokenTTL
	// is zero.
	DefaultTokenTTL = 30 * time.Minute
	// DefaultMaxItems is the server-side page size cap when
	// Config.MaxItems is zero.
	DefaultMaxItems = 1000
)

// Box describes one box of the emulated vault.
type Box struct {
	// Name is the box name; clients may address the box by Name or ID.
	Name string
	// ID is the box ID. Empty means a random UUID.
	ID string
	// Users lists the users allowed to use the box. Empty means every
	// user of the vault.
	Users []string
}

// Config configures an emulator. The zero value is a usable emulator with
// one box DefaultBox and one user DefaultUsername with a random password
// (see Server.Password).
type Config struct {
	// VaultID is the vault UUID clients put in the Login URL. Empty means
	// DefaultVaultID.
	VaultID string
	// Boxes are the boxes of the vault. Empty means one box DefaultBox.
	Boxes []Box
	// Users maps user names to passwords. Empty means one user
	// DefaultUsername with a random password.
	Users map[string]string
	// TokenTTL is the lifetime of access tokens from Login and Renew.
	// Zero means DefaultTokenTTL.
	TokenTTL time.Duration
	// MaxItems caps max_items of ListSecretIds. Zero means
	// DefaultMaxItems.
	MaxItems int
	// PathPrefix is served before /vault/1.0/, e.g. "/kc" for a
	// KeyControl behind a reverse proxy. Empty means none.
	PathPrefix string
	// Hosts are extra DNS names or IP addresses for the server
	// certificate, besides localhost, 127.0.0.1 and ::1.
	Hosts []string
	// CAFile is where Run writes the CA certificate (PEM). Empty means
	// "keycontrol-emulator-ca.pem" in the OS temporary directory.
	CAFile string
	// EnvFile is where Run writes, once it serves, what it prints as
	// KC_ENDPOINT, KC_VAULT_ID, KC_BOX, KC_USER, KC_PASSWORD and KC_CA
	// lines (the first box and user), mode 0600, and removes it when it
	// returns. Empty means none.
	EnvFile string
}

// RawSecret is a secret as the emulator stores it, for tests that seed or
// inspect the vault directly.
type RawSecret struct {
	// Name is the secret name.
	Name string
	// Data is the current version's secret_data exactly as a client sent
	// it: a JSON string or a JSON object.
	Data json.RawMessage
	// ExpiresAt is when the secret expires. Zero means never.
	ExpiresAt time.Time
	// Versions is the number of versions; the current one is the last.
	// Ignored when seeding.
	Versions int
}

type secret struct {
	id        string
	name      string
	versions  []json.RawMessage
	expiresAt time.Time
}

type box struct {
	Box
	secrets map[string]*secret // by name
}

type token struct {
	user    string
	expires time.Time
}

// Server is a running or startable emulator. Its methods are safe for
// concurrent use.
type Server struct {
	cfg    Config
	cert   tls.Certificate
	caPEM  []byte
	pool   *x509.CertPool
	prefix string

	mu       sync.Mutex
	boxes    []*box
	users    map[string]string
	tokens   map[string]token
	counts   map[string]int
	latency  time.Duration
	fail     int
	failCode int
	reset    int
	drop     int
	down     bool
	only     string
	hook     func(action string)
	conns    map[net.Conn]struct{}

	srv      *http.Server
	ln       net.Listener
	url      string
	serveErr chan error
}

// New returns an emulator for cfg. It generates the TLS certificates but
// does not listen yet; call Start.
func New(cfg Config) (*Server, error) {
	if cfg.VaultID == "" {
		cfg.VaultID = DefaultVaultID
	}
	if strings.ContainsAny(cfg.VaultID, "/?#") {
		return nil, errors.New("emulator: invalid vault ID")
	}
	if len(cfg.Boxes) == 0 {
		cfg.Boxes = []Box{{Name: DefaultBox}}
	}
	if len(cfg.Users) == 0 {
		cfg.Users = map[string]string{DefaultUsername: randomHex(12)}
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultMaxItems
	}
	prefix := strings.TrimRight(cfg.PathPrefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	s := &Server{
		cfg:    cfg,
		prefix: prefix,
		users:  map[string]string{},
		tokens: map[string]token{},
		counts: map[string]int{},
		conns:  map[net.Conn]struct{}{},
	}
	for u, p := range cfg.Users {
		s.users[u] = p
	}
	seen := map[string]bool{}
	for _, b := range cfg.Boxes {
		if b.Name == "" {
			return nil, errors.New("emulator: box without a name")
		}
		if b.ID == "" {
			b.ID = newUUID()
		}
		if seen[b.Name] || seen[b.ID] {
			return nil, fmt.Errorf("emulator: duplicate box %q", b.Name)
		}
		seen[b.Name], seen[b.ID] = true, true
		s.boxes = append(s.boxes, &box{Box: b, secrets: map[string]*secret{}})
	}
	certs, err := emutls.New("keycontrol-emulator", cfg.Hosts...)
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	s.cert, s.caPEM, s.pool = certs.Server, certs.CAPEM, certs.Pool
	return s, nil
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves HTTPS in the
// background until Close.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("emulator: already started")
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// HTTP/1.1 only: connection resets hijack the connection, which
		// HTTP/2 does not allow.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnState:    s.connState,
		// Fault injection causes handshake errors on purpose.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	s.ln = &downListener{Listener: ln, s: s}
	s.url = "https://" + ln.Addr().String() + s.prefix
	s.serveErr = make(chan error, 1)
	srv, tl := s.srv, tls.NewListener(s.ln, &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		MinVersion:   tls.VersionTLS12,
	})
	s.mu.Unlock()
	go func() { s.serveErr <- srv.Serve(tl) }()
	return nil
}

// URL is the endpoint clients configure, e.g. "https://127.0.0.1:41234"
// (plus Config.PathPrefix). It is empty before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Addr is the listen address, empty before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// VaultID returns the vault UUID clients log in to.
func (s *Server) VaultID() string { return s.cfg.VaultID }

// Password returns the password of user, e.g. the random password of
// DefaultUsername.
func (s *Server) Password(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[user]
}

// CACertPEM returns the PEM certificate of the CA that issued the server
// certificate.
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CertPool returns a pool holding only the emulator's CA.
func (s *Server) CertPool() *x509.CertPool { return s.pool.Clone() }

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Shutdown stops the server gracefully, waiting for requests in flight
// until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// SetLatency delays every following request by d before it is handled.
// The delay ends early when the client goes away.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n requests fail with the given HTTP status
// (e.g. 500 or 503) without being handled.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.failCode = n, status
}

// ResetNext makes the next n requests end with a TCP reset before they are
// handled: nothing changes on the server.
func (s *Server) ResetNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset = n
}

// DropResponseNext makes the next n requests be handled normally, but the
// connection is reset instead of sending the response: the client cannot
// know whether its request took effect.
func (s *Server) DropResponseNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = n
}

// SetFaultFilter restricts FailNext, ResetNext and DropResponseNext to
// requests for one action, e.g. "PutSecretValue"; requests for other
// actions pass untouched and do not use up the counts. Empty means every
// action.
func (s *Server) SetFaultFilter(action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.only = action
}

// SetHook installs a function that is called with the action name of
// every request before it is handled (after the fault switches), e.g. to
// let a test change a secret between two requests of a client. It may
// call the Server's methods. Nil removes the hook.
func (s *Server) SetHook(h func(action string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

// RevokeTokens invalidates every access token issued so far, as an
// administrator revoking sessions or a KeyControl restart would.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// SetDown switches down mode. While down, the server closes every open
// connection and closes each new connection right after accepting it, so
// clients see connection resets or EOF, never an HTTP answer. Stored
// secrets and issued tokens survive; SetDown(false) makes the server answer
// again on the same address at once.
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

// Count returns how many requests for action (e.g. "Login",
// "CheckoutSecret") reached the handler, including failed ones.
func (s *Server) Count(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[action]
}

// Secret returns the raw stored secret name in box (name or ID).
func (s *Server) Secret(boxID, name string) (RawSecret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.findBox(boxID)
	if b == nil {
		return RawSecret{}, false
	}
	sec := b.secrets[name]
	if sec == nil {
		return RawSecret{}, false
	}
	return RawSecret{
		Name:      sec.name,
		Data:      append(json.RawMessage(nil), sec.versions[len(sec.versions)-1]...),
		ExpiresAt: sec.expiresAt,
		Versions:  len(sec.versions),
	}, true
}

// SeedSecret stores raw in box (name or ID) as if a client had created it,
// replacing any secret of that name. Data must be a JSON string or object.
func (s *Server) SeedSecret(boxID string, raw RawSecret) error {
	if raw.Name == "" {
		return errors.New("emulator: seed secret: empty name")
	}
	if !validSecretData(raw.Data) {
		return errors.New("emulator: seed secret: data is not a JSON string or object")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.findBox(boxID)
	if b == nil {
		return fmt.Errorf("emulator: seed secret: box %q not found", boxID)
	}
	b.secrets[raw.Name] = &secret{
		id:        newUUID(),
		name:      raw.Name,
		versions:  []json.RawMessage{append(json.RawMessage(nil), raw.Data...)},
		expiresAt: raw.ExpiresAt,
	}
	return nil
}

// SecretNames returns the names of all secrets in box (name or ID), in no
// particular order.
func (s *Server) SecretNames(boxID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.findBox(boxID)
	if b == nil {
		return nil
	}
	names := make([]string, 0, len(b.secrets))
	for n := range b.secrets {
		names = append(names, n)
	}
	return names
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
		resetConn(c)
	}
}

// resetConn closes c with SO_LINGER 0 so that the peer sees a TCP reset.
func resetConn(c net.Conn) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = nc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("emulator: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("emulator: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
