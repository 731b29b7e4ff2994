// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovh/kmip-go"
)

// Discover Versions answers.
//
// Clients such as vCenter open a connection for a few operations and send
// Discover Versions first, always with the same bytes. Decoding that
// message and encoding its answer cost as much as a Get, a large part of
// what the bridge adds to the TLS handshake of a new connection. The
// answer is a function of the request's bytes alone, but for its time
// stamp, as long as the request carries no credential (whose check may
// change) and the client may discover versions (checked every time). So
// the server remembers the answers to a few such requests, by their
// exact bytes, and answers a request it has seen with a copy under the
// current time; the policy check and the audit record are those of the
// full path. Only KMIP 1.x requests and answers are remembered.

const (
	// maxCachedAnswers bounds the remembered answers: clients send one
	// or two shapes of the request, and more distinct ones (every
	// Unique Batch Item ID makes one) are served by the full path.
	maxCachedAnswers = 8
	// maxCachedRequest bounds the size of a remembered request.
	maxCachedRequest = 512
)

// answerCache holds remembered answers: a map that is never changed
// once published, so that the per-message look-up takes no lock.
type answerCache struct {
	m  atomic.Pointer[map[string][]byte]
	mu sync.Mutex // serialises publishers
}

// stampOffset is where the time stamp's value is in a response
// message: Response Message (8), Response Header (8), Protocol Version
// (8 + 16 + 16), Time Stamp's tag, type and length (8).
const stampOffset = 64

// stampField is the tag, type and length of the Time Stamp before its
// value.
var stampField = []byte{0x42, 0x00, 0x92, byte(0x09), 0, 0, 0, 8}

// cachedAnswer answers msg from the remembered answers, if it is one of
// their requests and the client may discover versions. It reports false
// otherwise: the full path then answers, and refuses if it must.
func (s *Server) cachedAnswer(ctx context.Context, msg []byte) ([]byte, bool) {
	if len(msg) > maxCachedRequest {
		return nil, false
	}
	m := s.answers.m.Load()
	if m == nil {
		return nil, false
	}
	answer, ok := (*m)[string(msg)]
	if !ok {
		return nil, false
	}
	start := time.Now()
	st, release := s.state()
	if release != nil {
		defer release()
	}
	ctx = context.WithValue(ctx, messageKey{}, &message{state: st})
	if s.authorize(ctx, "discover-versions", "") != nil {
		return nil, false
	}
	// The caller wipes what it writes: it gets a copy.
	out := slices.Clone(answer)
	binary.BigEndian.PutUint64(out[stampOffset:], uint64(start.Unix()))
	s.record(AuditEvent{Identity: clientName(ctx), Remote: sessionOf(ctx).remote, Operation: "discover-versions", Duration: time.Since(start)})
	return out, true
}

// rememberAnswer keeps out, the full path's answer to msg (decoded as
// req; its answer resp), if msg is a KMIP 1.x Discover Versions request
// without credentials that succeeded, and the cache has room.
func (s *Server) rememberAnswer(msg []byte, req *kmip.RequestMessage, resp *kmip.ResponseMessage, out []byte) {
	if len(msg) > maxCachedRequest || req.Header.Authentication != nil ||
		len(req.BatchItem) != 1 || req.BatchItem[0].Operation != kmip.OperationDiscoverVersions ||
		len(resp.BatchItem) != 1 || resp.BatchItem[0].ResultStatus != kmip.ResultStatusSuccess ||
		!isVersion1(msg) || !isVersion1(out) || len(out) < stampOffset+8 || !bytes.Equal(out[stampOffset-8:stampOffset], stampField) {
		return
	}
	if m := s.answers.m.Load(); m != nil && (len(*m) >= maxCachedAnswers || (*m)[string(msg)] != nil) {
		return
	}
	s.answers.mu.Lock()
	defer s.answers.mu.Unlock()
	var next map[string][]byte
	if m := s.answers.m.Load(); m != nil {
		if len(*m) >= maxCachedAnswers || (*m)[string(msg)] != nil {
			return
		}
		next = make(map[string][]byte, len(*m)+1)
		for k, v := range *m {
			next[k] = v
		}
	} else {
		next = make(map[string][]byte, 1)
	}
	next[string(msg)] = slices.Clone(out)
	s.answers.m.Store(&next)
}

// isVersion1 reports whether the request or response message b names a
// protocol version 1.x at the start of its header.
func isVersion1(b []byte) bool {
	// Message (8), Header (8), Protocol Version (8), Major: tag, type,
	// length (8), value (4).
	return len(b) >= 36 && binary.BigEndian.Uint32(b[24:28]) == 0x42006A02 && binary.BigEndian.Uint32(b[32:36]) == 1
}
