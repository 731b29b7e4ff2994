// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	kmipbridge "github.com/kesbridge/kes/kmip-bridge"
	"github.com/kesbridge/kes/policy"
)

// ServerOptions are the parts of a running server that do not come from
// the config file.
type ServerOptions struct {
	// Stdout receives the audit log and Stderr the error log. Nil
	// discards them. An *os.File gets the audit log buffered: records
	// reach it within auditFlushDelay (50 ms), and all of them by the
	// time Shutdown or Reload returns; any other writer gets each record
	// as it is made.
	Stdout, Stderr io.Writer

	// OpenStore opens the keystore of a config. Nil means OpenKeystore.
	// Every state (start-up and each reload) calls it once and the
	// server closes the store when the state is retired.
	OpenStore func(ctx context.Context, cfg *Config, log *slog.Logger) (keystore.Store, error)

	// HealthInterval is how often the keystore's reachability is
	// checked. Zero means 10 s.
	HealthInterval time.Duration

	// WaitKeystore lets NewServer succeed when the keystore is
	// unreachable or refuses service at start: the server then answers
	// 503 on /v1/ready and on every key call, with the reason, keeps
	// connecting in the background and serves as soon as it has
	// connected; the configured keys are created then. False fails
	// NewServer instead. Reloads never wait.
	WaitKeystore bool

	// KeystoreRetry is the first delay between connection attempts of
	// WaitKeystore; it doubles up to 30 s. Zero means 1 s.
	KeystoreRetry time.Duration
}

// Server is a running KES API. It is an http.Handler; Serve runs it on a
// listener with TLS. Reload swaps its whole configuration atomically.
type Server struct {
	opts    ServerOptions
	started time.Time

	cur    atomic.Pointer[state]
	mu     sync.Mutex // serialises Reload and Shutdown
	closed bool

	errLog         *slog.Logger
	auditLog       *slog.Logger
	auditOut       io.Writer // the audit log's writer: opts.Stdout, buffered if a file
	errLevel       slog.LevelVar
	errStreamLevel slog.LevelVar
	auditLevel     slog.LevelVar
	auditHub       *hub
	errorHub       *hub
	metrics        *metrics
	routeCtxs      sync.Pool // of *chi.Context
	ops            *opsMetrics

	httpMu  sync.Mutex
	servers []*http.Server

	kmip *kmipRunner
}

// state is everything a config determines. Requests hold a reference to
// the state they started with, so a reload never changes a request half
// way, and the old key service is closed only after its last request.
type state struct {
	cfg       *Config
	keys      *keys.Service
	policies  *policy.Set
	tls       *tls.Config
	clientCAs *x509.CertPool
	kmipTLS   *tls.Config
	kmipUsers map[string]kmipbridge.User
	routes    map[string]*route
	router    *chi.Mux
	proxies   map[identity.Identity]struct{}
	loadedAt  time.Time

	refs      atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
	log       *slog.Logger
}

// NewServer opens the keystore of cfg, creates the configured keys and
// returns a server ready to Serve.
func NewServer(ctx context.Context, cfg *Config, opts ServerOptions) (*Server, error) {
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.OpenStore == nil {
		opts.OpenStore = OpenKeystore
	}
	s := &Server{opts: opts, started: time.Now()}
	s.routeCtxs.New = func() any { return chi.NewRouteContext() }
	s.metrics = newMetrics(s.started)
	s.ops = newOpsMetrics()
	s.auditHub = newHub(s.metrics.auditEvents, s.metrics.auditDropped)
	s.errorHub = newHub(s.metrics.errorEvents, s.metrics.errorDropped)
	s.errLog = slog.New(newErrorHandler(opts.Stderr, &s.errLevel, s.errorHub, &s.errStreamLevel))
	s.auditOut = newAuditOutput(opts.Stdout)
	s.auditLog = slog.New(slog.NewTextHandler(s.auditOut, &slog.HandlerOptions{Level: &s.auditLevel}))
	s.setLevels(cfg)

	st, err := s.newState(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	s.cur.Store(st)
	return s, nil
}

func (s *Server) setLevels(cfg *Config) {
	s.errLevel.Set(cfg.ErrorLevel)
	s.errStreamLevel.Set(min(cfg.ErrorLevel, slog.LevelInfo))
	s.auditLevel.Set(cfg.AuditLevel)
}

// ErrorLog returns the server's error logger: stderr at log.error's level
// and the /v1/log/error stream.
func (s *Server) ErrorLog() *slog.Logger { return s.errLog }

func (s *Server) newState(ctx context.Context, cfg *Config, initial bool) (*state, error) {
	st := &state{
		cfg:      cfg,
		routes:   make(map[string]*route, len(routes)),
		proxies:  map[identity.Identity]struct{}{},
		loadedAt: time.Now().UTC(),
		log:      s.errLog,
	}
	skipAuth := false
	for _, r := range routes {
		rt := *r
		if a, ok := cfg.API[r.Path]; ok {
			if a.Timeout > 0 {
				rt.Timeout = a.Timeout
			}
			if a.SkipAuth && rt.Auth == authPolicy {
				rt.Auth = authIdentify
				skipAuth = true
			}
		}
		st.routes[r.Path] = &rt
	}
	st.router = s.newRouter(st)
	for _, id := range cfg.TLS.ProxyIdentities {
		st.proxies[id] = struct{}{}
	}
	st.policies = &policy.Set{
		Admin:      string(cfg.Admin),
		Policies:   make(map[string]*policy.Policy, len(cfg.Policies)),
		Identities: map[string]string{},
	}
	for name, p := range cfg.Policies {
		st.policies.Policies[name] = &policy.Policy{Allow: p.Allow, Deny: p.Deny, CreatedAt: st.loadedAt, CreatedBy: string(cfg.Admin)}
		for _, id := range p.Identities {
			st.policies.Identities[string(id)] = name
		}
	}

	var err error
	st.tls, st.clientCAs, err = serverTLS(cfg, skipAuth, s.errLog)
	if err != nil {
		return nil, err
	}
	if cfg.KMIP != nil {
		// Checked before anything is opened, so that a broken kmip
		// section fails a reload instead of taking the bridge down.
		if st.kmipTLS, err = kmipTLS(cfg.KMIP); err != nil {
			return nil, err
		}
		st.kmipUsers = kmipUsers(cfg.KMIP)
	}

	cfg.Keystore.tokens = s.ops.tokenObserver(driverName(cfg))
	store, bg, err := s.openKeystore(ctx, cfg, initial)
	if err != nil {
		return nil, err
	}
	cacheCfg := cfg.Cache
	cacheCfg.Counters = s.ops.cache
	st.keys = keys.New(keys.Config{
		Store:          s.ops.instrument(store, driverName(cfg)),
		Cache:          cacheCfg,
		HealthInterval: s.opts.HealthInterval,
		Logger:         s.errLog,
		ExportPatterns: exportPatterns(cfg.KeyRules),
		Progress:       s.ops,
	})
	if bg != nil {
		go s.createKeysWhenConnected(st.keys, bg, cfg)
		return st, nil
	}
	// The configured keys are created with a bound: a keystore that
	// hangs must not hang start-up or a reload.
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, name := range cfg.Keys {
		err := st.keys.Create(kctx, name, string(cfg.Admin))
		if err != nil && !errors.Is(err, keys.ErrKeyExists) {
			st.keys.Close()
			return nil, fmt.Errorf("failed to create key '%s': %w", name, err)
		}
	}
	// Stopped when the state's key service is closed (on shutdown, or
	// when a reload replaces the state).
	st.keys.StartSchedule(keys.Schedule{Rotations: cfg.Rotations, By: string(cfg.Admin)})
	return st, nil
}

// acquire returns the current state with a reference held; release
// gives it back.
func (s *Server) acquire() *state {
	for {
		st := s.cur.Load()
		st.refs.Add(1)
		if s.cur.Load() == st {
			return st
		}
		st.release()
	}
}

func (st *state) release() {
	if st.refs.Add(-1) == 0 && st.retired.Load() {
		st.close()
	}
}

// retire marks a replaced state; it closes once its last request ends.
func (st *state) retire() {
	st.retired.Store(true)
	if st.refs.Load() == 0 {
		st.close()
	}
}

func (st *state) close() {
	st.closeOnce.Do(func() {
		if err := st.keys.Close(); err != nil {
			st.log.Warn("failed to close keystore", "keystore", st.keys.Store().String(), "err", err)
		}
	})
}

// Keys returns the current key service. It is valid until the next
// Reload.
func (s *Server) Keys() *keys.Service { return s.cur.Load().keys }

// Config returns the current configuration.
func (s *Server) Config() *Config { return s.cur.Load().cfg }

// Policies returns the current policy set.
func (s *Server) Policies() *policy.Set { return s.cur.Load().policies }

// TLSConfig returns the TLS config for the next connection; it follows
// reloads.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().tls, nil
		},
	}
}

// Serve accepts connections on ln (plain TCP: Serve does TLS) until
// Shutdown. It returns http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	// Every connection is answered or closed in bounded time:
	//   - ReadHeaderTimeout bounds the TLS handshake and the request
	//     header; IdleTimeout a connection between requests.
	//   - There is no ReadTimeout: on HTTP/1.1 it would also fire in the
	//     read net/http does behind a handler and cancel the request.
	//     Instead ServeHTTP gives each request its route's deadlines, and
	//     each write of a log stream its own. WriteTimeout is the write
	//     deadline of a route with the default timeout: net/http gives it
	//     to every HTTP/2 stream as it arrives, so that those routes need
	//     not set one (see h2WriteTimeout); every other route, every
	//     HTTP/1.1 request and the log streams set their own.
	//   - HTTP/2 runs at most MaxConcurrentStreams handlers per
	//     connection (Go's default, made explicit), and WriteByteTimeout
	//     drops a connection whose client stopped reading. The number of
	//     connections is not capped: a cap would let a few slow clients
	//     lock everybody out, while the deadlines make any connection
	//     cost its client time.
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      h2WriteTimeout,
		IdleTimeout:       90 * time.Second,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 250,
			WriteByteTimeout:     streamWriteTimeout,
		},
		ErrorLog: slog.NewLogLogger(s.errLog.Handler(), slog.LevelInfo),
	}
	s.httpMu.Lock()
	if s.closed {
		s.httpMu.Unlock()
		return http.ErrServerClosed
	}
	s.servers = append(s.servers, srv)
	s.httpMu.Unlock()
	return srv.Serve(tls.NewListener(ln, s.TLSConfig()))
}

// Reload replaces the whole configuration: a new keystore connection and
// cache, policies, TLS, log levels and the KMIP bridge's state. If cfg
// cannot be applied (including a new kmip address that cannot be
// listened on), the error is returned and the old configuration keeps
// running. The old key service is closed once its in-flight requests,
// HTTP and KMIP, have finished. KMIP connections stay open, see
// prepareKMIP.
func (s *Server) Reload(ctx context.Context, cfg *Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("server is shut down")
	}
	st, err := s.newState(ctx, cfg, false)
	if err != nil {
		return err
	}
	commitKMIP, err := s.prepareKMIP(st)
	if err != nil {
		st.close()
		return err
	}
	old := s.cur.Swap(st)
	s.setLevels(cfg)
	commitKMIP(ctx)
	old.retire()
	// The banner of the new config follows the records made before it.
	s.flushAudit()
	return nil
}

// Shutdown stops accepting requests, ends the log streams, waits for the
// requests in flight (until ctx is done), stops the KMIP bridge, closes
// the keystore and writes out the buffered audit records.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.httpMu.Lock()
	s.closed = true
	servers := s.servers
	s.httpMu.Unlock()

	s.auditHub.close()
	s.errorHub.close()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
			errs = append(errs, err)
		}
	}
	if err := s.stopKMIP(ctx); err != nil {
		errs = append(errs, err)
	}
	s.cur.Load().retire()
	// Every request and KMIP batch has ended: their records go out now.
	s.closeAudit()
	return errors.Join(errs...)
}
