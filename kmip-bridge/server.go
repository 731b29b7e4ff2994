// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/kesbridge/kes/keystore"
	"io"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/ttlv"
)

// User is a Username/Password credential a KMIP client may send in its
// request header.
type User struct {
	// Password is compared in constant time. It redacts itself when
	// printed, so a Config or State can be logged.
	Password keystore.Secret
	// Policy names the policy in Config.Policies() (or State.Policies)
	// that authorises the user's requests.
	Policy string
}

// State is what one request message runs with. A Server takes one
// snapshot per message, so the items of a batch never see half of a
// reload.
type State struct {
	// Keys is the key service the message's operations use. Required.
	Keys *keys.Service
	// Policies authorise the message's batch items. Nil denies every
	// item.
	Policies *policy.Set
	// Users are the Username/Password credentials by user name. Nil
	// means none. The server only reads it.
	Users map[string]User
}

// Config configures a Server.
type Config struct {
	// Keys is the key service the bridge serves. Required unless State
	// is set.
	Keys *keys.Service

	// Policies returns the current policy set; it is called for every
	// request message so that a reload takes effect at once. Required
	// unless State is set.
	Policies func() *policy.Set

	// TLSConfig is the server TLS configuration. Required, with at least
	// one certificate. It is cloned; if it does not demand a client
	// certificate, the clone requires one (any certificate: the identity
	// is its public key, as on the HTTPS API). VerifyClientCertIfGiven
	// with ClientCAs becomes a required certificate that must chain to
	// ClientCAs, with any extended key usage.
	TLSConfig *tls.Config

	// Users are optional Username/Password credentials by user name. The
	// map is copied.
	Users map[string]User

	// MaxMessageSize bounds a request message, header included. Zero
	// means 1,000,000 bytes.
	MaxMessageSize int

	// MaxResponseSize bounds a response message. A client's Maximum
	// Response Size (request header) below it takes its place for that
	// request. A batch item whose answer would not fit fails with
	// Response Too Large while the others keep theirs. Zero means
	// DefaultMaxResponseSize; values below 4096 bytes are refused.
	MaxResponseSize int

	// ReadTimeout bounds reading one message once its first bytes
	// arrived, writing the response and each operation's keystore calls.
	// Zero means 30 s.
	ReadTimeout time.Duration

	// HandshakeTimeout bounds the TLS handshake of a new connection,
	// which a client without a certificate can hold. Zero means
	// DefaultHandshakeTimeout, or ReadTimeout if that is shorter.
	HandshakeTimeout time.Duration

	// IdleTimeout is how long a connection may wait for its next message.
	// Zero means 5 min.
	IdleTimeout time.Duration

	// MaxConnections bounds the client connections served at once,
	// those in the TLS handshake included. A connection over it is
	// closed right after accept, before its handshake; open ones are not
	// affected. Zero means DefaultMaxConnections (there is no unlimited
	// setting); negative values are refused. Server.SetMaxConnections
	// changes it later.
	MaxConnections int

	// ConnRefused, if not nil, is called for connections refused at the
	// MaxConnections limit, at most 10 times at once and then once a
	// second; the refusals in between are counted in the next call's
	// Suppressed and in Server.Refused. It is called from the accept
	// loop and must not block.
	ConnRefused func(ConnRefusal)

	// Logger receives connection and error events. Nil discards them. No
	// key material or password is ever logged.
	Logger *slog.Logger

	// State, if not nil, replaces Keys, Policies and Users (which must
	// then be unset): it is called once per request message, before the
	// first batch item, and returns the state the message runs with and
	// a function (nil: none) that the server calls exactly once when the
	// message's operations are done. It must never return a nil State.
	// A caller that swaps key services on reload uses the release
	// function to keep the old service open until its last message ends.
	// It is called from many connections at once.
	State func() (*State, func())

	// Audit, if not nil, is called once per batch item with the client
	// identity (the certificate identity, or "user:<name>" for a
	// Username/Password credential), the operation's path name (for
	// example "get", or "unsupported"), the object's unique identifier
	// if any (for Create and Register the new object's), and the result
	// (nil on success). A message rejected for a wrong Username/Password
	// is reported once, as operation "authenticate". A failed result is
	// a kmipserver.Error: its Reason is the item's KMIP Result Reason and
	// its message is safe to record. It is called from many connections
	// at once.
	Audit func(identity, operation, uid string, result error)

	// AuditEvent, if not nil, is called when Audit would be, with the
	// same facts plus the client's address and the item's duration. Both
	// may be set; each is called.
	AuditEvent func(AuditEvent)
}

// AuditEvent is one batch item (or one rejected authentication) as
// Config.AuditEvent receives it.
type AuditEvent struct {
	// Identity is the client: the certificate identity, or
	// "user:<name>" for a Username/Password credential.
	Identity string
	// Remote is the client's address (host:port).
	Remote string
	// Operation is the operation's path name ("get", "unsupported",
	// "authenticate").
	Operation string
	// UID is the object's unique identifier, if any.
	UID string
	// WrappingKey is, for an export of wrapped key material
	// (Operation "export"), the unique identifier of the wrapping key.
	WrappingKey string
	// Result is nil on success, else a kmipserver.Error.
	Result error
	// Duration is how long the item took to run.
	Duration time.Duration
}

// Defaults for zero Config fields.
const (
	DefaultMaxMessageSize = 1_000_000
	DefaultReadTimeout    = 30 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("kmip: server closed")

// Server is a KMIP server over a keys.Service.
type Server struct {
	state   func() (*State, func())
	tls     *tls.Config
	maxSize int
	maxResp int
	readTO  time.Duration
	idleTO  time.Duration
	log     *slog.Logger
	audit   func(identity, operation, uid string, result error)
	auditEv func(AuditEvent)
	exec    *kmipserver.BatchExecutor
	limit   connLimit
	answers answerCache // remembered Discover Versions answers
	// inflight is the budget of large messages across connections.
	inflight inflight

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	open      atomic.Int64 // connections being served, for Connections
	closing   bool
	wg        sync.WaitGroup
	done      chan struct{}
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	state := cfg.State
	switch {
	case state != nil && (cfg.Keys != nil || cfg.Policies != nil || cfg.Users != nil):
		return nil, errors.New("kmip: invalid config: State with Keys, Policies or Users")
	case state == nil && cfg.Keys == nil:
		return nil, errors.New("kmip: invalid config: no key service")
	case state == nil && cfg.Policies == nil:
		return nil, errors.New("kmip: invalid config: no policies")
	}
	if cfg.TLSConfig == nil || len(cfg.TLSConfig.Certificates) == 0 && cfg.TLSConfig.GetCertificate == nil && cfg.TLSConfig.GetConfigForClient == nil {
		return nil, errors.New("kmip: invalid config: no TLS server certificate")
	}
	if cfg.MaxResponseSize < 0 || cfg.MaxResponseSize > 0 && cfg.MaxResponseSize < minMaxResponseSize {
		return nil, fmt.Errorf("kmip: invalid config: maximum response size below %d bytes", minMaxResponseSize)
	}
	for name, u := range cfg.Users {
		if name == "" || u.Password.IsZero() {
			return nil, errors.New("kmip: invalid config: user with empty name or password")
		}
	}
	tc := cfg.TLSConfig.Clone()
	switch tc.ClientAuth {
	case tls.RequireAnyClientCert, tls.RequireAndVerifyClientCert:
	case tls.VerifyClientCertIfGiven:
		// Keep verifying against the CAs, but without crypto/tls's
		// clientAuth extended key usage requirement, which
		// certificates generated by vCenter do not meet.
		tc.ClientAuth = tls.RequireAnyClientCert
		if tc.ClientCAs != nil && tc.VerifyPeerCertificate == nil && tc.VerifyConnection == nil {
			tc.VerifyConnection = VerifyClientConnection(tc.ClientCAs)
		}
	default:
		tc.ClientAuth = tls.RequireAnyClientCert
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	if state == nil {
		ks, policies, users := cfg.Keys, cfg.Policies, maps.Clone(cfg.Users)
		state = func() (*State, func()) {
			return &State{Keys: ks, Policies: policies(), Users: users}, nil
		}
	}
	s := &Server{
		state:     state,
		tls:       tc,
		maxSize:   cfg.MaxMessageSize,
		maxResp:   cfg.MaxResponseSize,
		readTO:    cfg.ReadTimeout,
		inflight:  newInflight(),
		idleTO:    cfg.IdleTimeout,
		log:       cfg.Logger,
		audit:     cfg.Audit,
		auditEv:   cfg.AuditEvent,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		done:      make(chan struct{}),
	}
	if s.maxSize <= 0 {
		s.maxSize = DefaultMaxMessageSize
	}
	if s.maxResp == 0 {
		s.maxResp = DefaultMaxResponseSize
	}
	if s.readTO <= 0 {
		s.readTO = DefaultReadTimeout
	}
	if s.idleTO <= 0 {
		s.idleTO = DefaultIdleTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.limit.init(&cfg); err != nil {
		return nil, err
	}
	s.exec = s.newExecutor()
	return s, nil
}

// Serve accepts connections on ln (a plain TCP listener: the server does
// the TLS handshake) until Shutdown, which closes ln. It returns
// ErrServerClosed after Shutdown, and the listener's error if ln was
// closed by someone else; other accept errors (such as running out of
// file descriptors) are retried with a backoff.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors and similar: wait and retry
				// rather than stop serving.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("kmip: accept failed", "err", err)
				select {
				case <-time.After(backoff):
				case <-s.done:
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		cn := &conn{srv: s, raw: c}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		if !s.admit(cn, s.open.Load()) {
			s.mu.Unlock()
			s.refuse(c)
			continue
		}
		s.conns[cn] = struct{}{}
		s.open.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go cn.serve()
	}
}

// Shutdown stops accepting connections, closes idle ones, and waits for
// connections that are processing a message to answer it and close. When
// ctx ends first, the remaining connections are closed and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()

	finished := make(chan struct{})
	go func() { s.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.raw.Close()
		}
		s.mu.Unlock()
		<-finished
		return ctx.Err()
	}
}

// Connections returns the number of client connections open right now,
// including those still in the TLS handshake. It does not lock: metrics
// read it on every scrape.
func (s *Server) Connections() int { return int(s.open.Load()) }

// record reports one audit event to the hooks that are set.
func (s *Server) record(e AuditEvent) {
	if s.audit != nil {
		s.audit(e.Identity, e.Operation, e.UID, e.Result)
	}
	if s.auditEv != nil {
		s.auditEv(e)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// conn is one client connection.
type conn struct {
	srv *Server
	raw net.Conn

	mu   sync.Mutex
	busy bool
}

func (c *conn) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy {
		c.raw.Close()
	}
}

// setBusy marks whether a message is being processed. It reports false if
// the server is shutting down: the connection must then close rather than
// wait for or start a message. Shutdown closes connections it finds idle;
// one that turns idle after that sees the shutdown here.
func (c *conn) setBusy(busy bool) bool {
	c.mu.Lock()
	c.busy = busy
	c.mu.Unlock()
	return !c.srv.isClosing()
}

type sessionKey struct{}

// messageKey carries the *message being handled.
type messageKey struct{}

// message is what the operations of one request message share: the
// state snapshot, the response budget and the record of the running
// batch item. Batch items run one after the other, so one value per
// message serves them all, with one context value and one allocation
// instead of one of each per purpose and item. It is itself the context
// that carries it (Value), and holds the decoded request, which saves
// two more allocations per message.
type message struct {
	// Context is the session's context, which the message's extends.
	context.Context
	req   kmip.RequestMessage
	state *State
	// budget is valid once limitMessage admitted the message.
	budget  budget
	limited bool
	// item is the running batch item's record for the audit hook.
	item itemInfo
	// version is the message's protocol version, set with the budget.
	version kmip.ProtocolVersion
	// items holds the encodings of the answers in kept, one after the
	// other (assemble.go); it may hold key material and is wiped once
	// the response is assembled.
	items []byte
	kept  []kmip.ResponseBatchItem
	// keptLen is the length of m.items the last kept answer ended at.
	keptLen int
	// keptBuf holds kept for a message of one item without another
	// allocation.
	keptBuf [1]kmip.ResponseBatchItem
}

// Value answers messageKey with m, and every other key from the
// session's context.
func (m *message) Value(key any) any {
	if _, ok := key.(messageKey); ok {
		return m
	}
	return m.Context.Value(key)
}

// messageOf returns the message being handled, or nil outside one.
func messageOf(ctx context.Context) *message {
	m, _ := ctx.Value(messageKey{}).(*message)
	return m
}

// stateOf returns the state handleMessage took for the message.
func stateOf(ctx context.Context) *State {
	if m := messageOf(ctx); m != nil {
		return m.state
	}
	// Unreachable: every operation runs below handleMessage.
	panic("kmip: no request state")
}

// session is what the bridge knows about the client of a connection.
type session struct {
	identity identity.Identity
	remote   string
	// wipe collects buffers holding key material, cleared once the
	// response is written.
	wipe [][]byte
	// v1Shaped is set once the client sent a 1.x-shaped payload in a
	// KMIP 2.x message (v2.go).
	v1Shaped bool
}

func (c *conn) serve() {
	s := c.srv
	defer func() {
		c.raw.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		// Off the closing list before the open count: admit subtracts
		// one from the other, and the other order would count this
		// connection as gone twice for a moment.
		s.limit.left(c)
		s.open.Add(-1)
		s.wg.Done()
	}()
	remote := c.raw.RemoteAddr().String()
	// The logger is built only for the rare connection that logs.
	log := func() *slog.Logger { return s.log.With("remote", remote) }

	tc := tls.Server(c.raw, s.tls)
	c.setBusy(true)
	if err := s.handshake(c, tc); err != nil {
		log().Debug("kmip: TLS handshake failed", "err", err)
		return
	}
	cs := tc.ConnectionState()
	id, err := identity.FromConnectionState(&cs)
	if err != nil {
		log().Info("kmip: rejected client certificate", "err", err)
		return
	}
	sess := &session{identity: id, remote: remote}
	base := context.WithValue(context.Background(), sessionKey{}, sess)

	// tls.Conn buffers a whole record: reading from it directly costs
	// no more than from a bufio.Reader.
	r := tc
	var hdr [8]byte
	// small holds the messages that fit, one after the other (most do:
	// a Get is about 100 bytes), instead of an allocation for each. It
	// is wiped after each message, as a larger one's buffer is.
	small := new([smallMessage]byte)
	for {
		if !c.setBusy(false) {
			return
		}
		if err := tc.SetReadDeadline(time.Now().Add(s.idleTO)); err != nil {
			return
		}
		if _, err := io.ReadFull(r, hdr[:1]); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log().Debug("kmip: connection closed", "err", err)
			}
			return
		}
		if !c.setBusy(true) {
			return
		}
		deadline := time.Now().Add(s.readTO)
		if err := tc.SetDeadline(deadline); err != nil {
			return
		}
		if _, err := io.ReadFull(r, hdr[1:]); err != nil {
			log().Debug("kmip: truncated message header", "err", err)
			c.write(tc, invalidMessage(nil, "truncated message"))
			return
		}
		n := binary.BigEndian.Uint32(hdr[4:8])
		if hdr[0] != 0x42 || hdr[1] != 0x00 || hdr[2] != 0x78 || hdr[3] != byte(ttlv.TypeStructure) || int64(n)+8 > int64(s.maxSize) {
			// The stream cannot be resynchronised: answer and close.
			msg := "malformed message header"
			if int64(n)+8 > int64(s.maxSize) {
				msg = fmt.Sprintf("message exceeds the limit of %d bytes", s.maxSize)
			}
			log().Info("kmip: invalid message", "reason", msg)
			c.write(tc, invalidMessage(hdr[:], msg))
			return
		}
		held, err := s.inflight.hold(8+int(n), deadline)
		if err != nil {
			// The stream cannot be resynchronised: answer and close.
			log().Info("kmip: message refused", "reason", "too many large messages at once")
			c.write(tc, failedMessage(hdr[:], kmip.ResultReasonGeneralFailure, "server busy: too many large messages at once, try again later"))
			return
		}
		var buf []byte
		if 8+int(n) <= len(small) {
			buf = small[:8+n]
		} else {
			buf = make([]byte, 8+int(n))
		}
		copy(buf, hdr[:])
		if got, err := io.ReadFull(r, buf[8:]); err != nil {
			// Answer what we can, then close: the stream cannot be
			// resynchronised.
			log().Debug("kmip: truncated message", "err", err)
			c.write(tc, invalidMessage(buf[:8+got], "truncated message"))
			clear(buf)
			s.inflight.release(held)
			return
		}
		resp := s.handleMessage(base, buf)
		clear(buf)
		ok := c.write(tc, resp)
		s.inflight.release(held)
		for _, b := range sess.wipe {
			clear(b)
		}
		sess.wipe = sess.wipe[:0]
		if !ok {
			return
		}
	}
}

// smallMessage is the size of the buffer a connection keeps for the
// messages it reads.
const smallMessage = 512

func (c *conn) write(tc *tls.Conn, resp []byte) bool {
	defer clear(resp)
	if err := tc.SetWriteDeadline(time.Now().Add(c.srv.readTO)); err != nil {
		return false
	}
	_, err := tc.Write(resp)
	return err == nil
}

// handleMessage decodes one request message, runs it and returns the
// encoded response. It never fails: undecodable messages get an Invalid
// Message response.
func (s *Server) handleMessage(ctx context.Context, msg []byte) (out []byte) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("kmip: panic while handling a message", "panic", fmt.Sprint(r))
			out = invalidMessage(msg, "internal error")
		}
	}()
	if out, ok := s.cachedAnswer(ctx, msg); ok {
		return out
	}
	m := &message{}
	req := &m.req
	var v2 *v2Message
	if isV2(msg) {
		tr, vm, err := fromV2(msg, sessionOf(ctx))
		if err != nil {
			return invalidMessage(msg, "message could not be decoded")
		}
		msg, v2 = tr, vm
		defer clear(tr)
		vm.req = req
		ctx = context.WithValue(ctx, v2Key{}, vm)
	}
	if err := checkTTLV(msg); err != nil {
		return invalidMessage(msg, "message could not be decoded")
	}
	if decodeGet(msg, req) {
		// The common Get, decoded without reflection.
	} else if err := ttlv.UnmarshalTTLV(msg, req); err != nil {
		s.log.Debug("kmip: undecodable message", "err", err)
		return invalidMessage(msg, "message could not be decoded")
	}
	// One snapshot for the whole batch, released once its operations
	// are done (the response holds copies, not the key service's
	// memory).
	st, release := s.state()
	if release != nil {
		defer release()
	}
	m.state = st
	defer m.release()
	m.Context = ctx
	ctx = m
	resp := s.exec.HandleRequest(ctx, req)
	out = m.assembleResponse(resp)
	if v2 != nil {
		out = toV2(out, v2)
	}
	out = s.checkResponseSize(req, resp, out)
	s.rememberAnswer(msg, req, resp, out)
	return out
}

// invalidMessage returns an encoded response with one failed batch item,
// Invalid Message, in the protocol version found at the start of msg if
// any.
func invalidMessage(msg []byte, text string) []byte {
	return failedMessage(msg, kmip.ResultReasonInvalidMessage, text)
}

// failedMessage is invalidMessage with another Result Reason.
func failedMessage(msg []byte, reason kmip.ResultReason, text string) []byte {
	resp := kmip.ResponseMessage{
		Header: kmip.ResponseHeader{
			ProtocolVersion: requestVersion(msg),
			TimeStamp:       time.Now().Truncate(time.Second),
			BatchCount:      1,
		},
		BatchItem: []kmip.ResponseBatchItem{{
			ResultStatus:  kmip.ResultStatusOperationFailed,
			ResultReason:  reason,
			ResultMessage: text,
		}},
	}
	return ttlv.MarshalTTLV(&resp)
}

// requestVersion reads the Protocol Version at its fixed place in a
// request message, or returns 1.0.
func requestVersion(msg []byte) kmip.ProtocolVersion {
	// Request Message(8) Request Header(8) Protocol Version(8)
	// Major(16) Minor(16)
	if len(msg) < 52 {
		return kmip.V1_0
	}
	be := binary.BigEndian
	if be.Uint32(msg[24:28]) != 0x42006A02 || be.Uint32(msg[40:44]) != 0x42006B02 {
		return kmip.V1_0
	}
	v := kmip.ProtocolVersion{
		ProtocolVersionMajor: int32(be.Uint32(msg[32:36])),
		ProtocolVersionMinor: int32(be.Uint32(msg[48:52])),
	}
	for _, sv := range supportedVersions {
		if v == sv {
			return v
		}
	}
	return kmip.V1_0
}
