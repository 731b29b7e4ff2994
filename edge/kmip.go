// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	kmipbridge "github.com/kesbridge/kes/kmip-bridge"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/ttlv"
)

// kmipRunner is a started KMIP bridge. It lives across reloads: the
// bridge reads the server's current state for every TLS handshake and
// every request message, so a reload changes what it serves without
// touching its connections.
type kmipRunner struct {
	srv  *kmipbridge.Server
	addr string       // the kmip.address that ln listens on
	ln   net.Listener // the listener that accepts new connections
	wg   sync.WaitGroup
	// limits are fixed for the bridge's lifetime.
	limits kmipLimits
}

// kmipLimits are the settings of a kmip section that a running bridge
// cannot change: every connection reads and answers messages under them.
type kmipLimits struct {
	maxMessageSize int
	read, idle     time.Duration
}

func limitsOf(k *KMIPConfig) kmipLimits {
	return kmipLimits{k.MaxMessageSize, k.ReadTimeout, k.IdleTimeout}
}

// kmipTLS builds the bridge's TLS config: the kmip certificate, client
// certificates required and verified against kmip.tls.ca. The chain is
// verified without demanding the clientAuth extended key usage, which
// vCenter's client certificates lack.
func kmipTLS(cfg *KMIPConfig) (*tls.Config, error) {
	cert, err := loadCertificate(cfg.CertFile, cfg.KeyFile, noPassword)
	if err != nil {
		return nil, fmt.Errorf("kmip: %w", err)
	}
	b, err := readFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("kmip: failed to read CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("kmip: no certificate in '%s'", cfg.CAFile)
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// RequireAnyClientCert plus our own verification instead of
		// RequireAndVerifyClientCert, whose check insists on the
		// clientAuth EKU.
		ClientAuth: tls.RequireAnyClientCert,
		ClientCAs:  pool,
		// On the certificates crypto/tls parsed, and for resumed
		// sessions too.
		VerifyConnection: kmipbridge.VerifyClientConnection(pool),
	}
	if cfg.Compat {
		conf.CipherSuites = kmipbridge.CompatCipherSuites()
	}
	return conf, nil
}

// StartKMIP starts the KMIP bridge of the current config, if it has a
// kmip section. Run calls it after NewServer; Reload starts, moves and
// stops the bridge by itself. After Shutdown it fails: nothing would
// stop the bridge.
func (s *Server) StartKMIP(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("kmip: server is shut down")
	}
	if s.kmip != nil {
		return nil
	}
	k := s.cur.Load().cfg.KMIP
	if k == nil {
		return nil
	}
	r, err := s.newKMIPRunner(k)
	if err != nil {
		return err
	}
	s.kmip = r
	s.ops.setKMIP(r)
	r.serve(s, r.ln)
	return nil
}

// KMIPAddr returns the address the KMIP bridge accepts new connections
// on, or nil.
func (s *Server) KMIPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kmip == nil {
		return nil
	}
	return s.kmip.ln.Addr()
}

// prepareKMIP does what can fail of bringing the bridge to next's kmip
// section, before the reload swaps states: a new listener when the
// section is added or its address changes. The returned function, run
// after the swap, cannot fail. On error nothing has changed. The caller
// holds s.mu.
//
// With an unchanged address only the connection limit is set: the
// running bridge picks up the rest of next at its next handshake and
// request. A lower limit refuses new connections until enough of the
// open ones have ended; none is closed for it. When the address changes,
// the old listener stops accepting once the new one is up, and the
// connections it accepted stay open, served with the new state, until
// their client closes them or they reach the idle timeout: a client is
// moved to the new address by its next reconnect, never cut off.
func (s *Server) prepareKMIP(next *state) (func(context.Context), error) {
	k, r := next.cfg.KMIP, s.kmip
	switch {
	case k == nil && r == nil:
		return func(context.Context) {}, nil
	case k == nil:
		// Nothing serves KMIP any more: its connections are closed.
		return func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
			defer cancel()
			if err := s.stopKMIP(ctx); err != nil {
				s.errLog.Warn("failed to stop KMIP bridge", "err", err)
			}
		}, nil
	case r == nil:
		nr, err := s.newKMIPRunner(k)
		if err != nil {
			return nil, err
		}
		return func(context.Context) {
			s.kmip = nr
			s.ops.setKMIP(nr)
			nr.serve(s, nr.ln)
		}, nil
	case limitsOf(k) != r.limits:
		// Refused rather than ignored, so that the running config
		// always says what the bridge does.
		return nil, errors.New("kmip: max_message_size and timeout cannot change on reload: restart the server")
	case k.Addr == r.addr:
		return func(context.Context) { r.setLimit(k) }, nil
	}
	ln, err := net.Listen("tcp", k.Addr)
	if err != nil {
		return nil, fmt.Errorf("kmip: failed to listen on the new address: %w", err)
	}
	return func(context.Context) {
		old := r.ln
		r.setLimit(k)
		r.ln, r.addr = ln, k.Addr
		s.ops.setKMIP(r)
		r.serve(s, ln)
		// Closing the listener ends its Serve; its connections belong
		// to the bridge, not to the listener, and keep running.
		old.Close()
	}, nil
}

// stopKMIP stops the running bridge, if any, closing its connections.
// The caller holds s.mu.
func (s *Server) stopKMIP(ctx context.Context) error {
	if s.kmip == nil {
		return nil
	}
	r := s.kmip
	s.kmip = nil
	s.ops.setKMIP(nil)
	err := r.srv.Shutdown(ctx)
	r.wg.Wait()
	return err
}

// kmipAudit records a KMIP batch item like an API call: on stdout and on
// the audit stream, with the client's address, its identity, the path
// the policy checked (/kmip/<op>/<uid>: operation and object), the
// result and the item's duration. It also counts the item in the KMIP
// metrics.
func (s *Server) kmipAudit(e kmipbridge.AuditEvent) {
	path := "/kmip/" + e.Operation
	if e.UID != "" {
		path += "/" + e.UID
	}
	if e.WrappingKey != "" {
		// A wrapped export names the key that wrapped it.
		path += "/wrapped-by/" + e.WrappingKey
	}
	code, reason := http.StatusOK, ""
	if e.Result != nil {
		code, reason = kmipResult(e.Result)
	}
	var ip net.IP
	if host, _, err := net.SplitHostPort(e.Remote); err == nil {
		ip = net.ParseIP(host)
	}
	s.auditRecord("kmip call", path, ip, e.Identity, code, reason, e.Duration)
	s.ops.kmipItem(e.Operation, reason, e.Duration)
}

// kmipRefused records a connection the bridge refused at its connection
// limit: one audit record per report, with the client's address, path
// /kmip/connect and code 503. The bridge reports at most 10 refusals at
// once and then one a second, so a flood of connections cannot flood the
// audit log; the bridge's warning on the error log says how many were
// left out, and kes_kmip_connections_refused_total counts them all.
func (s *Server) kmipRefused(e kmipbridge.ConnRefusal) {
	var ip net.IP
	if host, _, err := net.SplitHostPort(e.Remote); err == nil {
		ip = net.ParseIP(host)
	}
	s.auditRecord("kmip connection refused", kmipConnectPath, ip, "", http.StatusServiceUnavailable, "", 0)
}

// kmipConnectPath is the audit path of a refused KMIP connection. It is
// no policy path: the refusal comes before any identity is known.
const kmipConnectPath = "/kmip/connect"

// setLimit applies the connection limit of k to the running bridge.
func (r *kmipRunner) setLimit(k *KMIPConfig) {
	// The config was validated: the limit is not negative.
	_ = r.srv.SetMaxConnections(k.MaxConnections)
}

// kmipResult returns, for a failed KMIP batch item, the HTTP status of
// the audit record's code and the name of the KMIP result reason. The
// bridge hands the audit hook KMIP errors, never the errors of the key
// service, so wireError cannot classify them.
func kmipResult(err error) (int, string) {
	var ke kmipserver.Error
	if !errors.As(err, &ke) {
		return http.StatusInternalServerError, ttlv.EnumStr(kmip.ResultReasonGeneralFailure)
	}
	code := http.StatusBadRequest
	switch ke.Reason {
	case kmip.ResultReasonItemNotFound:
		code = http.StatusNotFound
	case kmip.ResultReasonAuthenticationNotSuccessful:
		code = http.StatusUnauthorized
	case kmip.ResultReasonPermissionDenied:
		code = http.StatusForbidden
	case kmip.ResultReasonGeneralFailure:
		// Keystore failures and timeouts, as the HTTP API's 502.
		code = http.StatusBadGateway
	}
	return code, ttlv.EnumStr(ke.Reason)
}

// newKMIPRunner creates a bridge for the kmip section k and listens on
// its address; it does not serve yet. The bridge takes everything that
// a reload may change from the server's current state: the key service,
// policies and users per request message, holding a reference to the
// state until the message is answered so that a reload does not close
// the key service under it, and the certificate and CAs per TLS
// handshake. Its message size limit and timeouts are those of k, for
// its lifetime.
func (s *Server) newKMIPRunner(k *KMIPConfig) (*kmipRunner, error) {
	b, err := kmipbridge.New(kmipbridge.Config{
		State: s.kmipState,
		TLSConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			GetConfigForClient: s.kmipHandshake,
		},
		MaxMessageSize: k.MaxMessageSize,
		ReadTimeout:    k.ReadTimeout,
		IdleTimeout:    k.IdleTimeout,
		MaxConnections: k.MaxConnections,
		Logger:         s.errLog.With("component", "kmip"),
		AuditEvent:     s.kmipAudit,
		ConnRefused:    s.kmipRefused,
	})
	if err != nil {
		return nil, fmt.Errorf("kmip: %w", err)
	}
	ln, err := net.Listen("tcp", k.Addr)
	if err != nil {
		return nil, fmt.Errorf("kmip: failed to listen: %w", err)
	}
	return &kmipRunner{srv: b, addr: k.Addr, ln: ln, limits: limitsOf(k)}, nil
}

// serve runs the bridge on ln until ln is closed or the bridge shuts
// down.
func (r *kmipRunner) serve(s *Server, ln net.Listener) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := r.srv.Serve(ln)
		if err != nil && !errors.Is(err, kmipbridge.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.errLog.Error("KMIP bridge stopped", "err", err)
		}
	}()
}

// kmipState is the bridge's kmipbridge.Config.State: the current state,
// referenced until the bridge releases it.
func (s *Server) kmipState() (*kmipbridge.State, func()) {
	st := s.acquire()
	return &kmipbridge.State{Keys: st.keys, Policies: st.policies, Users: st.kmipUsers}, st.release
}

// kmipHandshake returns the TLS config of the current kmip section for a
// new connection.
func (s *Server) kmipHandshake(*tls.ClientHelloInfo) (*tls.Config, error) {
	if c := s.cur.Load().kmipTLS; c != nil {
		return c, nil
	}
	// The kmip section was just removed and the bridge is stopping.
	return nil, errors.New("kmip: no kmip section")
}

// kmipUsers returns the bridge's users of the kmip section k.
func kmipUsers(k *KMIPConfig) map[string]kmipbridge.User {
	users := make(map[string]kmipbridge.User, len(k.Users))
	for name, u := range k.Users {
		users[name] = kmipbridge.User{Password: u.Password, Policy: u.Policy}
	}
	return users
}
