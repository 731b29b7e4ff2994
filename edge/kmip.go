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

	kmipbridge "github.com/kesbridge/kes/kmip-bridge"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/ttlv"
)

// kmipRunner is a started KMIP bridge.
type kmipRunner struct {
	ln       net.Listener
	shutdown func(context.Context) error
	done     chan struct{}
}

// kmipTLS builds the bridge's TLS config: the kmip certificate, client
// certificates required and verified against kmip.tls.ca. The chain is
// verified without demanding the clientAuth extended key usage, which
// vCenter's client certificates lack.
func kmipTLS(cfg *KMIPConfig) (*tls.Config, error) {
	cert, err := loadCertificate(cfg.CertFile, cfg.KeyFile, noPassword)
	if err != nil {
		return nil, fmt.Errorf("edge: kmip: %w", err)
	}
	b, err := readFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("edge: kmip: failed to read CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("edge: kmip: no certificate in '%s'", cfg.CAFile)
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// RequireAnyClientCert plus our own verification instead of
		// RequireAndVerifyClientCert, whose check insists on the
		// clientAuth EKU.
		ClientAuth:            tls.RequireAnyClientCert,
		ClientCAs:             pool,
		VerifyPeerCertificate: kmipbridge.VerifyClientChain(pool),
	}
	if cfg.Compat {
		conf.CipherSuites = kmipbridge.CompatCipherSuites()
	}
	return conf, nil
}

// StartKMIP starts the KMIP bridge of the current config, if it has a
// kmip section. Run calls it after NewServer; Reload restarts the bridge
// by itself. After Shutdown it fails: nothing would stop the bridge.
func (s *Server) StartKMIP(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("edge: kmip: server is shut down")
	}
	if s.kmip != nil {
		return nil
	}
	return s.startKMIP(ctx, s.cur.Load())
}

// KMIPAddr returns the address the KMIP bridge listens on, or nil.
func (s *Server) KMIPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kmip == nil {
		return nil
	}
	return s.kmip.ln.Addr()
}

// startKMIP starts a bridge over the key service of st. The caller holds
// s.mu.
func (s *Server) startKMIP(ctx context.Context, st *state) error {
	if st.cfg.KMIP == nil {
		return nil
	}
	r, err := s.newKMIPBridge(ctx, st)
	if err != nil {
		return err
	}
	s.kmip = r
	return nil
}

// stopKMIP stops the running bridge, if any. The caller holds s.mu.
func (s *Server) stopKMIP(ctx context.Context) error {
	if s.kmip == nil {
		return nil
	}
	r := s.kmip
	s.kmip = nil
	err := r.shutdown(ctx)
	<-r.done
	return err
}

// kmipAudit records a KMIP batch item like an API call: on stdout and on
// the audit stream, with the path the policy checked (/kmip/<op>/<uid>).
func (s *Server) kmipAudit(id, operation, uid string, result error) {
	path := "/kmip/" + operation
	if uid != "" {
		path += "/" + uid
	}
	code, reason := http.StatusOK, ""
	if result != nil {
		code, reason = kmipResult(result)
	}
	s.auditRecord("kmip call", path, nil, id, code, reason, 0)
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

// newKMIPBridge starts the bridge on the kmip address over the key
// service of st. Policies are read from the current state for every
// request, so a reload takes effect at once.
func (s *Server) newKMIPBridge(_ context.Context, st *state) (*kmipRunner, error) {
	k := st.cfg.KMIP
	users := make(map[string]kmipbridge.User, len(k.Users))
	for name, u := range k.Users {
		users[name] = kmipbridge.User{Password: u.Password.Reveal(), Policy: u.Policy}
	}
	b, err := kmipbridge.New(kmipbridge.Config{
		Keys:           st.keys,
		Policies:       s.Policies,
		TLSConfig:      st.kmipTLS,
		Users:          users,
		MaxMessageSize: k.MaxMessageSize,
		ReadTimeout:    k.ReadTimeout,
		IdleTimeout:    k.IdleTimeout,
		Logger:         s.errLog.With("component", "kmip"),
		Audit:          s.kmipAudit,
	})
	if err != nil {
		return nil, fmt.Errorf("edge: kmip: %w", err)
	}
	ln, err := net.Listen("tcp", k.Addr)
	if err != nil {
		return nil, fmt.Errorf("edge: kmip: failed to listen: %w", err)
	}
	r := &kmipRunner{ln: ln, shutdown: b.Shutdown, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := b.Serve(ln); err != nil && !errors.Is(err, kmipbridge.ErrServerClosed) {
			s.errLog.Error("KMIP bridge stopped", "err", err)
		}
	}()
	return r, nil
}
