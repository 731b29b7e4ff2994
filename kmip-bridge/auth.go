// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
)

type userKey struct{}

// authUser is a Username/Password credential that matched Config.Users.
type authUser struct {
	name   string
	policy string
}

// itemInfo is the per-batch-item record the audit middleware reads
// (message.item).
type itemInfo struct {
	uid string
}

// authenticate checks the credentials of the request header. A message
// with a wrong credential fails as a whole.
func (s *Server) authenticate(next kmipserver.Next, ctx context.Context, req *kmip.RequestMessage) (*kmip.ResponseMessage, error) {
	if req.Header.BatchErrorContinuationOption == 0 && len(req.BatchItem) > 1 {
		// KMIP's default is Stop; the executor's is Continue.
		req.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionStop
	}
	a := req.Header.Authentication
	if a == nil {
		return next(ctx, req)
	}
	if len(stateOf(ctx).Users) == 0 {
		// No users configured: a Username/Password credential names no
		// one and is ignored (PyKMIP's default configuration sends an
		// empty one). It grants nothing either: the request is
		// authorised with the certificate identity alone.
		return next(ctx, req)
	}
	creds := append([]kmip.Credential{a.Credential}, a.AdditionalCredential...)
	var user *authUser
	for _, c := range creds {
		if c.CredentialType != kmip.CredentialTypeUsernameAndPassword || c.CredentialValue.UserPassword == nil {
			continue
		}
		up := c.CredentialValue.UserPassword
		u, ok := stateOf(ctx).Users[up.Username]
		// Compare digests so that neither the password's length nor
		// whether the user exists shows in the timing.
		given := sha256.Sum256([]byte(up.Password))
		want := sha256.Sum256([]byte(u.Password.Reveal()))
		if subtle.ConstantTimeCompare(given[:], want[:]) != 1 || !ok || u.Password.IsZero() {
			s.log.Info("kmip: authentication failed", "user", up.Username, "identity", sessionOf(ctx).identity.String())
			err := kmipserver.Errorf(kmip.ResultReasonAuthenticationNotSuccessful, "authentication failed")
			sess := sessionOf(ctx)
			s.record(AuditEvent{Identity: sess.identity.String(), Remote: sess.remote, Operation: "authenticate", Result: err})
			return nil, err
		}
		user = &authUser{name: up.Username, policy: u.Policy}
	}
	if user != nil {
		ctx = context.WithValue(ctx, userKey{}, user)
	}
	return next(ctx, req)
}

// auditItem maps handler errors to KMIP answers and reports every batch
// item to the audit hook.
func (s *Server) auditItem(next kmipserver.BatchItemNext, ctx context.Context, bi *kmip.RequestBatchItem) (*kmip.ResponseBatchItem, error) {
	info := &itemInfo{}
	if m := messageOf(ctx); m != nil {
		m.item = itemInfo{}
		info = &m.item
	}
	start := time.Now()
	resp, err := next(ctx, bi)
	took := time.Since(start)
	if err != nil {
		err = s.wireError(err)
	}
	if s.audit != nil || s.auditEv != nil {
		op, ok := opNames[bi.Operation]
		if !ok {
			op = "unsupported"
		}
		s.record(AuditEvent{Identity: clientName(ctx), Remote: sessionOf(ctx).remote, Operation: op, UID: info.uid, Result: err, Duration: took})
	}
	return resp, err
}

// auditUID records the identifier of an object an operation created.
func auditUID(ctx context.Context, uid string) {
	if m := messageOf(ctx); m != nil {
		m.item.uid = uid
	}
}

func sessionOf(ctx context.Context) *session {
	if s, ok := ctx.Value(sessionKey{}).(*session); ok {
		return s
	}
	return &session{}
}

func clientName(ctx context.Context) string {
	if u, ok := ctx.Value(userKey{}).(*authUser); ok {
		return "user:" + u.name
	}
	return sessionOf(ctx).identity.String()
}

// authorize checks whether the client may run op (a path element such as
// "get") on uid ("" for operations without a target).
func (s *Server) authorize(ctx context.Context, op, uid string) error {
	if m := messageOf(ctx); m != nil && uid != "" {
		m.item.uid = uid
	}
	path := "/kmip/" + op
	if uid != "" {
		path += "/" + uid
	}
	set := stateOf(ctx).Policies
	if set == nil {
		return errDenied
	}
	if u, ok := ctx.Value(userKey{}).(*authUser); ok {
		p, ok := set.Policies[u.policy]
		if !ok || p.Verify(path) != nil {
			return errDenied
		}
		return nil
	}
	if set.Authorize(sessionOf(ctx).identity.String(), path) != nil {
		return errDenied
	}
	return nil
}

var errDenied = kmipserver.Errorf(kmip.ResultReasonPermissionDenied, "not authorized: insufficient permissions")

// wireError is the one place where errors become KMIP result reasons and
// messages. Errors that are not already KMIP errors get a fixed, safe
// message; their details go to the log.
func (s *Server) wireError(err error) error {
	if ke := usageWireError(err); ke != nil && !errors.As(err, new(kmipserver.Error)) {
		return ke
	}
	var (
		ke kmipserver.Error
		le *keys.LimitError
	)
	switch {
	case errors.As(err, &ke):
		return ke
	case errors.Is(err, keys.ErrKeyNotFound):
		return kmipserver.Errorf(kmip.ResultReasonItemNotFound, "object not found")
	case errors.Is(err, keys.ErrKeyExists):
		return kmipserver.Errorf(kmip.ResultReasonObjectAlreadyExists, "object already exists")
	case errors.Is(err, policy.ErrNotAllowed):
		return errDenied
	case errors.Is(err, keys.ErrNotActive):
		return kmipserver.Errorf(kmip.ResultReasonPermissionDenied, "object is not active")
	case errors.As(err, &le):
		// Invalid Field: the request's content is what is refused, and
		// Server Limit Exceeded exists only from KMIP 2.0 on.
		return kmipserver.Errorf(kmip.ResultReasonInvalidField, "request refused: %s", le.Error())
	case errors.Is(err, keystore.ErrValueTooLarge):
		return kmipserver.Errorf(kmip.ResultReasonInvalidField, "request refused: object is too large for the key store")
	case errors.Is(err, keys.ErrKeyBusy):
		// KMIP has no "try again" reason; the message says it.
		return kmipserver.Errorf(kmip.ResultReasonGeneralFailure, "object is busy: another node is changing it, try again")
	case keystore.IsUnreachable(err), keystore.IsUnavailable(err):
		s.log.Warn("kmip: keystore unavailable", "err", err)
		return kmipserver.Errorf(kmip.ResultReasonGeneralFailure, "keystore unavailable")
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("kmip: operation timed out", "err", err)
		return kmipserver.Errorf(kmip.ResultReasonGeneralFailure, "operation timed out")
	default:
		s.log.Error("kmip: operation failed", slog.Any("err", err))
		return kmipserver.Errorf(kmip.ResultReasonGeneralFailure, "internal server error")
	}
}

// kerr returns a KMIP error with a fixed message.
func kerr(reason kmip.ResultReason, msg string) error {
	return kmipserver.Error{Reason: reason, Message: msg}
}
