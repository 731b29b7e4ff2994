// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kesbridge/kes/internal/emulator/emuenv"
	"github.com/kesbridge/kes/internal/emulator/emutls"
)

// Config configures an emulator.
type Config struct {
	// InstanceID is the instance GUID clients must send in the
	// bluemix-instance header. Empty means a random UUID.
	InstanceID string

	// APIKeys are the IAM API keys the token endpoint accepts. Empty
	// means one random key, available from Server.APIKey.
	APIKeys []string

	// TokenTTL is the expires_in of issued access tokens. Zero means one
	// hour, the IAM default.
	TokenTTL time.Duration

	// AllowFrequentRotation lifts the one-rotation-per-hour rule. It is
	// a test switch; the real service has no such option.
	AllowFrequentRotation bool

	// AllowEarlyEnable lifts the 30 second wait between disabling and
	// enabling a key. A test switch, like AllowFrequentRotation.
	AllowEarlyEnable bool

	// AliasReleaseDelay is how long a deleted alias stays unusable. IBM
	// documents up to five minutes; zero releases at once.
	AliasReleaseDelay time.Duration

	// KeyRings are key rings that exist besides "default".
	KeyRings []string

	// Logger receives one line per request. Nil discards.
	Logger *slog.Logger

	// EnvFile is where Run writes, once it serves, what it prints as
	// HPCS_ENDPOINT, HPCS_IAM_ENDPOINT, HPCS_INSTANCE_ID,
	// HPCS_ROOT_KEY_ID, HPCS_API_KEY and HPCS_CA lines, mode 0600, and
	// removes it when it returns. Empty means none. Start ignores it.
	EnvFile string
}

// Server is a running emulator.
type Server struct {
	instanceID string
	apiKeys    map[string]bool
	firstKey   string
	log        *slog.Logger

	ln     net.Listener
	srv    *http.Server
	caPEM  []byte
	pool   *x509.CertPool
	closed chan struct{}

	mu               sync.Mutex
	keys             map[string]*key   // by ID
	aliases          map[string]string // alias -> key ID
	releasing        map[string]time.Time
	aliasDelay       time.Duration
	rings            map[string]bool
	tokens           map[string]time.Time // access token -> expiry
	tokenTTL         time.Duration
	allowRotate      bool
	allowEarlyEnable bool
	latency          time.Duration
	failNext         int
	failStatus       int
	down             bool
	requests         int
	now              func() time.Time
}

// New starts an emulator on a free loopback port.
func New(cfg Config) (*Server, error) { return Start("127.0.0.1:0", cfg) }

// Start starts an emulator listening on addr.
func Start(addr string, cfg Config) (*Server, error) {
	s := &Server{
		instanceID:       cfg.InstanceID,
		apiKeys:          map[string]bool{},
		log:              cfg.Logger,
		closed:           make(chan struct{}),
		keys:             map[string]*key{},
		aliases:          map[string]string{},
		releasing:        map[string]time.Time{},
		aliasDelay:       cfg.AliasReleaseDelay,
		rings:            map[string]bool{"default": true},
		tokens:           map[string]time.Time{},
		tokenTTL:         cfg.TokenTTL,
		allowRotate:      cfg.AllowFrequentRotation,
		allowEarlyEnable: cfg.AllowEarlyEnable,
		now:              time.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.instanceID == "" {
		s.instanceID = newUUID()
	}
	if s.tokenTTL <= 0 {
		s.tokenTTL = time.Hour
	}
	for _, k := range cfg.APIKeys {
		s.apiKeys[k] = true
		if s.firstKey == "" {
			s.firstKey = k
		}
	}
	if len(s.apiKeys) == 0 {
		s.firstKey = randomHex(22)
		s.apiKeys[s.firstKey] = true
	}
	for _, r := range cfg.KeyRings {
		s.rings[r] = true
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("hpcs emulator: listen: %w", err)
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	certs, err := emutls.New("HPCS emulator", host)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("hpcs emulator: %w", err)
	}
	s.caPEM, s.pool = certs.CAPEM, certs.Pool
	s.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{certs.Server}, MinVersion: tls.VersionTLS12})
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.closed)
		s.srv.Serve(s.ln)
	}()
	return s, nil
}

// URL is the base URL of both the key management API and IAM, e.g.
// https://127.0.0.1:41234 (the Key Protect API lives under /api/v2/, IAM
// under /identity/token and /oidc/token).
func (s *Server) URL() string { return "https://" + s.ln.Addr().String() }

// TokenURL is the IAM token endpoint.
func (s *Server) TokenURL() string { return s.URL() + "/identity/token" }

// InstanceID is the instance GUID.
func (s *Server) InstanceID() string { return s.instanceID }

// APIKey is an API key the token endpoint accepts.
func (s *Server) APIKey() string { return s.firstKey }

// CertPool returns a pool holding only the CA of the emulator's certificate.
func (s *Server) CertPool() *x509.CertPool { return s.pool.Clone() }

// CAPEM returns the CA of the emulator's certificate in PEM form.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.caPEM...) }

// Close stops the emulator and drops open connections.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.closed
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// SetLatency delays every request by d before it is handled.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n key management requests fail with status
// (a 5xx), as a burst of server errors would.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failStatus = n, status
}

// InvalidateTokens makes every issued access token invalid, as if they
// had all expired. Clients must fetch new ones.
func (s *Server) InvalidateTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// SetDown makes the emulator drop every connection without an answer
// (down=true) or serve again (down=false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetAllowFrequentRotation lifts or restores the one-rotation-per-hour
// rule.
func (s *Server) SetAllowFrequentRotation(allow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowRotate = allow
}

// Requests reports how many HTTP requests reached the emulator.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// middleware applies the fault switches before routing.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		down, latency := s.down, s.latency
		fail := 0
		if s.failNext > 0 && strings.HasPrefix(r.URL.Path, "/api/v2/") {
			s.failNext--
			fail = s.failStatus
		}
		s.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				// The client gave up: abort, so that no empty 200 answer
				// can reach it on a connection that is still open.
				t.Stop()
				panic(http.ErrAbortHandler)
			}
		}
		if fail != 0 {
			e := errUnavailable()
			e.status = fail
			writeError(w, e)
			return
		}
		s.log.Debug("hpcs emulator", "method", r.Method, "path", r.URL.Path)
		next.ServeHTTP(w, r)
	})
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Run starts an emulator on addr, creates a root key, writes the CA
// certificate to a temporary file and prints what a kes config needs to
// out. It blocks until ctx is done, then stops the emulator.
func Run(ctx context.Context, addr string, cfg Config, out io.Writer) error {
	s, err := Start(addr, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	root, err := s.CreateRootKey("kes-root-key")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "hpcs-emulator-ca-*.pem")
	if err != nil {
		return fmt.Errorf("hpcs emulator: write CA certificate: %w", err)
	}
	caPath := f.Name()
	defer os.Remove(caPath)
	if _, err := f.Write(s.CAPEM()); err != nil {
		f.Close()
		return fmt.Errorf("hpcs emulator: write CA certificate: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("hpcs emulator: write CA certificate: %w", err)
	}
	fmt.Fprintf(out, "HPCS emulator running (test use only; keys live in memory)\n")
	fmt.Fprintf(out, "  endpoint:     %s\n", s.URL())
	fmt.Fprintf(out, "  iam endpoint: %s\n", s.URL())
	fmt.Fprintf(out, "  instance ID:  %s\n", s.InstanceID())
	fmt.Fprintf(out, "  root key ID:  %s\n", root)
	if len(cfg.APIKeys) == 0 {
		// Printed because nobody else knows it: it was generated for this
		// run of a throw-away test service.
		fmt.Fprintf(out, "  API key:      %s (generated for this run)\n", s.APIKey())
	}
	fmt.Fprintf(out, "  CA PEM:       %s\n", caPath)
	if cfg.EnvFile != "" {
		err := emuenv.Write(cfg.EnvFile, []emuenv.Var{
			{Name: "HPCS_ENDPOINT", Value: s.URL()},
			{Name: "HPCS_IAM_ENDPOINT", Value: s.URL()},
			{Name: "HPCS_INSTANCE_ID", Value: s.InstanceID()},
			{Name: "HPCS_ROOT_KEY_ID", Value: root},
			{Name: "HPCS_API_KEY", Value: s.APIKey()},
			{Name: "HPCS_CA", Value: caPath},
		})
		if err != nil {
			return err
		}
		defer emuenv.Remove(cfg.EnvFile)
		fmt.Fprintf(out, "\nThe values above are in %s (set -a; . %s; set +a).\n", cfg.EnvFile, cfg.EnvFile)
	}
	<-ctx.Done()
	return nil
}
