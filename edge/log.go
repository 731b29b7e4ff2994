// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// subscriberBuffer is how many events a log stream subscriber may fall
// behind before events are dropped for it. A slow client must never
// block a request.
const subscriberBuffer = 1024

// hub fans log events out to the subscribers of one stream.
type hub struct {
	mu     sync.Mutex
	subs   map[chan []byte]struct{}
	n      atomic.Int32
	closed bool
	done   chan struct{}

	delivered prometheus.Counter
	dropped   prometheus.Counter
}

func newHub(delivered, dropped prometheus.Counter) *hub {
	return &hub{subs: map[chan []byte]struct{}{}, done: make(chan struct{}), delivered: delivered, dropped: dropped}
}

// subscribe returns a channel of NDJSON lines and a function that ends
// the subscription. The channel is never closed; done reports shutdown.
func (h *hub) subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, subscriberBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.subs[ch] = struct{}{}
		h.n.Add(1)
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			h.n.Add(-1)
		}
	}
}

// active reports whether anybody listens, so that events nobody reads
// are not even encoded.
func (h *hub) active() bool { return h.n.Load() > 0 }

func (h *hub) publish(line []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- line:
			h.delivered.Inc()
		default:
			h.dropped.Inc()
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// stream serves a log stream: NDJSON, headers flushed at once, every
// event flushed as it happens, until the client leaves or the server
// shuts down.
func (c *call) stream(h *hub) {
	ch, cancel := h.subscribe()
	defer cancel()
	// The stream may outlive a reload; it must not keep the old key
	// service alive, and it needs nothing from it.
	c.releaseState()

	x := xOf(c.r)
	x.rec.startStream(x.rc)
	defer x.rec.endStream()
	rc := http.NewResponseController(c.w)
	c.w.Header().Set("Content-Type", "application/x-ndjson")
	c.w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case <-c.r.Context().Done():
			return
		case <-h.done:
			return
		case line := <-ch:
			if _, err := c.w.Write(line); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// auditEvent is one line of /v1/log/audit, in the shape kes-go and
// kms-go decode: response.time is a Go duration in nanoseconds.
type auditEvent struct {
	Time    time.Time `json:"time"`
	Request struct {
		IP       string `json:"ip,omitempty"`
		Path     string `json:"path"`
		Identity string `json:"identity,omitempty"`
	} `json:"request"`
	Response struct {
		Code int `json:"code"`
		// KMIPReason names the KMIP result reason of a failed KMIP
		// batch item; clients of the KES API ignore it.
		KMIPReason string        `json:"kmip_reason,omitempty"`
		Time       time.Duration `json:"time"`
	} `json:"response"`
}

// audit records a finished API call on stdout and the audit stream.
func (s *Server) audit(c *call, code int, took time.Duration) {
	msg := c.auditMsg
	if msg == "" {
		msg = "api call"
	}
	if !s.auditLog.Enabled(context.Background(), slog.LevelInfo) && !s.auditHub.active() {
		return // nobody listens: nothing to build
	}
	s.auditEntry(msg, c.r.Method, c.r.URL.Path, c.clientIP(), string(c.identity), code, "", took)
}

// auditRecord writes one audit record. what is "METHOD path" for HTTP
// calls and "/kmip/..." for KMIP batch items; kmipReason is the KMIP
// result reason of a failed batch item and empty otherwise.
func (s *Server) auditRecord(msg, what string, ip net.IP, id string, code int, kmipReason string, took time.Duration) {
	method, path, ok := strings.Cut(what, " ")
	if !ok {
		method, path = "", what
	}
	s.auditEntry(msg, method, path, ip, id, code, kmipReason, took)
}

// logAudit hands h the audit record that Logger.LogAttrs would, at t,
// but without the caller's program counter: looking it up
// (runtime.Callers) costs a fifth of the record, and the audit log does
// not show it.
func logAudit(h slog.Handler, t time.Time, msg, method, path, ip, id string, code int, kmipReason string, took time.Duration) {
	r := slog.NewRecord(t, slog.LevelInfo, msg, 0)
	r.AddAttrs(
		slog.String("req.method", method),
		slog.String("req.path", path),
		slog.String("req.ip", ip),
		slog.String("req.identity", id),
		slog.Int("res.code", code),
	)
	if kmipReason != "" {
		r.AddAttrs(slog.String("res.kmip_reason", kmipReason))
	}
	r.AddAttrs(slog.Duration("res.time", took))
	_ = h.Handle(context.Background(), r)
}

// auditEntry is auditRecord with the method and path apart.
func (s *Server) auditEntry(msg, method, path string, ip net.IP, id string, code int, kmipReason string, took time.Duration) {
	if s.auditLog.Enabled(context.Background(), slog.LevelInfo) {
		logAudit(s.auditLog.Handler(), time.Now(), msg, method, path, ipString(ip), id, code, kmipReason, took)
	}
	if !s.auditHub.active() {
		return
	}
	var e auditEvent
	e.Time = time.Now().UTC()
	e.Request.IP = ipString(ip)
	e.Request.Path = path
	e.Request.Identity = id
	e.Response.Code = code
	e.Response.KMIPReason = kmipReason
	e.Response.Time = took
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	s.auditHub.publish(append(line, '\n'))
}

// errorHandler is the error log: slog text lines on stderr at one level,
// and the same lines as {"message":"..."} on the error stream at another.
type errorHandler struct {
	stderr slog.Handler
	stream slog.Handler
	hub    *hub
}

func newErrorHandler(stderr io.Writer, level *slog.LevelVar, h *hub, streamLevel *slog.LevelVar) *errorHandler {
	return &errorHandler{
		stderr: slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}),
		stream: slog.NewTextHandler(streamWriter{h}, &slog.HandlerOptions{Level: streamLevel}),
		hub:    h,
	}
}

func (h *errorHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.stderr.Enabled(ctx, l) || (h.hub.active() && h.stream.Enabled(ctx, l))
}

func (h *errorHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.stderr.Enabled(ctx, r.Level) {
		err = h.stderr.Handle(ctx, r)
	}
	if h.hub.active() && h.stream.Enabled(ctx, r.Level) {
		h.stream.Handle(ctx, r)
	}
	return err
}

func (h *errorHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &errorHandler{stderr: h.stderr.WithAttrs(attrs), stream: h.stream.WithAttrs(attrs), hub: h.hub}
}

func (h *errorHandler) WithGroup(name string) slog.Handler {
	return &errorHandler{stderr: h.stderr.WithGroup(name), stream: h.stream.WithGroup(name), hub: h.hub}
}

// streamWriter turns each text line of the slog handler (one Write per
// record) into an error stream event.
type streamWriter struct{ h *hub }

func (w streamWriter) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	line, err := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	if err != nil {
		return 0, err
	}
	w.h.publish(append(line, '\n'))
	return len(p), nil
}
