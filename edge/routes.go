// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/kesbridge/kes/identity"
)

// authMode says how a route authenticates its callers.
type authMode int

const (
	authNone     authMode = iota // no identity at all (/version)
	authIdentify                 // identity if there is one, no policy check
	authPolicy                   // identity required, policy checked
)

// mb is aead.dev/mem's MB, which minio/kes uses for body limits.
const mb = 1000 * 1000

// route is one API: its method, path, limits and authentication. Paths
// ending in '/' are prefix routes: the rest of the request path is the
// resource (a key, policy or identity name, or a list pattern).
type route struct {
	Method  string
	Path    string
	MaxBody int64
	Timeout time.Duration
	Auth    authMode
	// Counted routes feed the request counters and the latency
	// histogram (key, policy and identity APIs, as in minio/kes).
	Counted bool
	handle  func(*call)
}

// routes is the API of the server, in the order /v1/api lists it.
var routes = []*route{
	{Method: http.MethodGet, Path: "/version", Timeout: 10 * time.Second, Auth: authNone, handle: (*call).version},
	{Method: http.MethodGet, Path: "/v1/health", Timeout: 10 * time.Second, Auth: authNone, handle: (*call).health},
	{Method: http.MethodGet, Path: "/v1/ready", Timeout: 15 * time.Second, Auth: authPolicy, handle: (*call).ready},
	{Method: http.MethodGet, Path: "/v1/status", Timeout: 15 * time.Second, Auth: authPolicy, handle: (*call).status},
	{Method: http.MethodGet, Path: "/v1/metrics", Timeout: 15 * time.Second, Auth: authPolicy, handle: (*call).metrics},
	{Method: http.MethodGet, Path: "/v1/api", Timeout: 10 * time.Second, Auth: authPolicy, handle: (*call).api},

	{Method: http.MethodPut, Path: "/v1/key/create/", Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).createKey},
	{Method: http.MethodPut, Path: "/v1/key/import/", MaxBody: mb, Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).importKey},
	{Method: http.MethodGet, Path: "/v1/key/describe/", Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).describeKey},
	{Method: http.MethodGet, Path: "/v1/key/list/", Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).listKeys},
	{Method: http.MethodDelete, Path: "/v1/key/delete/", Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).deleteKey},
	{Method: http.MethodPut, Path: "/v1/key/generate/", MaxBody: mb, Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).generateKey},
	{Method: http.MethodPut, Path: "/v1/key/encrypt/", MaxBody: mb, Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).encryptKey},
	{Method: http.MethodPut, Path: "/v1/key/decrypt/", MaxBody: mb, Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).decryptKey},
	{Method: http.MethodPut, Path: "/v1/key/bulk/decrypt/", MaxBody: mb, Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).bulkDecrypt},
	{Method: http.MethodPut, Path: "/v1/key/hmac/", MaxBody: mb, Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).hmacKey},

	{Method: http.MethodGet, Path: "/v1/policy/describe/", Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).describePolicy},
	{Method: http.MethodGet, Path: "/v1/policy/read/", Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).readPolicy},
	{Method: http.MethodGet, Path: "/v1/policy/list/", Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).listPolicies},

	{Method: http.MethodGet, Path: "/v1/identity/describe/", Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).describeIdentity},
	{Method: http.MethodGet, Path: "/v1/identity/list/", Timeout: 15 * time.Second, Auth: authPolicy, Counted: true, handle: (*call).listIdentities},
	{Method: http.MethodGet, Path: "/v1/identity/self/describe", Timeout: 15 * time.Second, Auth: authIdentify, Counted: true, handle: (*call).selfDescribe},

	{Method: http.MethodGet, Path: "/v1/log/error", Auth: authPolicy, handle: (*call).errorLog},
	{Method: http.MethodGet, Path: "/v1/log/audit", Auth: authPolicy, handle: (*call).auditLog},
}

var routeByPath = func() map[string]*route {
	m := make(map[string]*route, len(routes))
	for _, r := range routes {
		m[r.Path] = r
	}
	return m
}()

// findRoute returns the route for path and the resource part of a prefix
// route. A prefix route's path without its trailing slash ("/v1/key/list",
// which kes-go's ListKeys requests) is served as the empty resource rather
// than redirected, so clients that do not follow redirects work too.
func findRoute(path string) (*route, string, bool) {
	if r, ok := routeByPath[path]; ok {
		return r, "", true
	}
	if r, ok := routeByPath[path+"/"]; ok {
		return r, "", true
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] != '/' {
			continue
		}
		if r, ok := routeByPath[path[:i+1]]; ok {
			return r, path[i+1:], true
		}
	}
	return nil, "", false
}

// call is one request on its way through the server.
type call struct {
	srv      *Server
	st       *state
	route    *route
	w        http.ResponseWriter
	r        *http.Request
	resource string
	identity identity.Identity
	ip       net.IP
	// released is set once the call gave its state back early.
	released bool
	// auditMsg replaces the generic audit message, e.g. "secret key 'k'
	// created".
	auditMsg string
}

// fail answers with the wire form of err.
func (c *call) fail(err error, o op) {
	code, msg := wireError(err, o)
	if code >= 500 {
		c.srv.errLog.Error("request failed", "req.method", c.r.Method, "req.path", c.r.URL.Path,
			"req.ip", ipString(c.ip), "req.identity", string(c.identity), "err", err)
	}
	writeError(c.w, code, msg)
}

// Deadlines of a request. A route's timeout T is the write deadline of
// its answer. The handler's context and the read deadline of the request
// body end answerMargin(T) earlier, so that a keystore call or a body
// read that runs out of time still leaves the handler time to write its
// 504 or 408 before the write deadline cuts the connection.
const (
	minAnswerMargin = 250 * time.Millisecond
	maxAnswerMargin = 2 * time.Second

	// drainGrace bounds how long net/http may go on reading a body that
	// the handler did not read, after the answer went out. net/http
	// reads up to 256 KiB of it to keep an HTTP/1.1 connection usable;
	// a client that trickles its body must not hold the connection that
	// way.
	drainGrace = 500 * time.Millisecond

	// noRouteTimeout is the write deadline of the answer to a path that
	// is no route.
	noRouteTimeout = 10 * time.Second

	// streamWriteTimeout bounds each write of a route without a timeout
	// (the log streams): a client that stops reading loses its stream
	// instead of holding the connection.
	streamWriteTimeout = 30 * time.Second
)

// answerMargin is how much earlier than the route timeout the handler's
// context and body read deadline end: a tenth of the timeout, within
// [minAnswerMargin, maxAnswerMargin], and at most half the timeout.
func answerMargin(timeout time.Duration) time.Duration {
	return min(max(timeout/10, minAnswerMargin), maxAnswerMargin, timeout/2)
}

// errBodyTimeout is the answer to a request whose body did not arrive
// before the route's read deadline.
var errBodyTimeout = newError(http.StatusRequestTimeout, "request body not received in time")

// ServeHTTP runs a request through the checks of minio/kes in its order:
// route → method → body limit → authentication → handler. The route's
// deadlines are set as soon as the route is known, so that every answer,
// a 405 too, has one.
//
// Every request is answered or dropped in bounded time: the answer has
// the route's write deadline, the body the route's read deadline (a body
// that does not arrive in time is answered 408), and a body that is
// not read to its end, e.g. because the request was denied, is not
// waited for: on HTTP/1.1 the answer says Connection: close and the
// connection is closed after a short grace, on HTTP/2 the stream is
// reset once answered.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rc := http.NewResponseController(w)
	body := &requestBody{ReadCloser: r.Body}
	r.Body = body
	rec := &recorder{ResponseWriter: w, body: body, http1: r.ProtoMajor == 1}
	body.rec = rec
	body.onEOF = func() {
		// A body read to its end needs no deadline any more; on
		// HTTP/1.1 net/http now reads ahead in the background to notice
		// a client going away, and a deadline there would cancel the
		// request.
		if !body.deadline.IsZero() {
			rc.SetReadDeadline(time.Time{})
		}
	}
	// Registered first so it runs last, when the answer is written.
	defer func() {
		if !body.pending() || !rec.http1 {
			return
		}
		if !rec.wroteHeader {
			rec.Header().Set("Connection", "close")
		}
		d := time.Now().Add(drainGrace)
		if !body.deadline.IsZero() && body.deadline.Before(d) {
			d = body.deadline
		}
		rc.SetReadDeadline(d)
	}()
	defer s.recoverHandler(rec, r)

	rt, resource, ok := findRoute(r.URL.Path)
	if !ok {
		// An HTTP/1.1 connection keeps the write deadline of its last
		// request; every request sets its own.
		rc.SetWriteDeadline(start.Add(noRouteTimeout))
		http.NotFound(rec, r)
		return
	}
	st := s.acquire()
	rt = st.routes[rt.Path]
	c := &call{srv: s, st: st, route: rt, w: rec, r: r, resource: resource, ip: remoteIP(r)}
	defer c.releaseState()
	if rt.Counted {
		s.metrics.active.Inc()
		defer s.metrics.active.Dec()
	}
	defer func() {
		s.audit(c, rec.status(), time.Since(start))
		if rt.Counted {
			s.metrics.observe(rec.status(), time.Since(start))
		}
	}()

	if rt.Timeout > 0 {
		// The write deadline stops a stuck answer; the context stops the
		// keystore calls behind it and the read deadline a slow body,
		// both early enough to answer 504 or 408.
		early := start.Add(rt.Timeout - answerMargin(rt.Timeout))
		rc.SetWriteDeadline(start.Add(rt.Timeout))
		if body.ReadCloser != http.NoBody {
			body.deadline = early
			rc.SetReadDeadline(early)
		}
		ctx, cancel := context.WithDeadline(r.Context(), early)
		defer cancel()
		r = r.WithContext(ctx)
		c.r = r
	} else {
		rc.SetWriteDeadline(time.Time{})
		rec.streamRC = rc
	}

	if r.Method != rt.Method && (rt.Method != http.MethodPut || r.Method != http.MethodPost) {
		rec.Header().Set("Accept", rt.Method)
		writeError(rec, http.StatusMethodNotAllowed, fmt.Sprintf("received method '%s' expected '%s'", r.Method, rt.Method))
		return
	}
	limit := rt.MaxBody
	if r.ContentLength >= 0 && r.ContentLength < limit {
		limit = r.ContentLength
	}
	r.Body = http.MaxBytesReader(rec, r.Body, limit)

	// Registered last so it runs first: the audit record and metrics see
	// the 500 it writes.
	defer s.recoverHandler(rec, r)
	if err := s.authenticate(c); err != nil {
		c.fail(err, opRead)
		return
	}
	rt.handle(c)
}

// requestBody is the request body as handlers see it. It tracks whether
// the body was read to its end, and answers 408 when its read deadline
// passes.
type requestBody struct {
	io.ReadCloser
	rec      *recorder
	deadline time.Time // the read deadline, zero if none
	eof      bool
	onEOF    func()
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		if !b.eof {
			b.eof = true
			b.onEOF()
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Handlers answer a failed read as a malformed body; the client
		// is told what really happened, and what the handler writes
		// after it is dropped.
		b.rec.answerOnce(errBodyTimeout)
	}
	return n, err
}

// pending reports whether the request has a body that was not read to
// its end.
func (b *requestBody) pending() bool {
	return b.ReadCloser != http.NoBody && !b.eof
}

// recoverHandler turns a panic into a 500 that says nothing about it, as
// the last line of defence: nothing a client sends should panic.
func (s *Server) recoverHandler(rec *recorder, r *http.Request) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	// Never log or echo the panic value: it may hold request data.
	s.errLog.Error("internal error: handler panicked", "req.method", r.Method, "req.path", r.URL.Path)
	if !rec.wroteHeader {
		writeError(rec, http.StatusInternalServerError, "internal server error")
	}
}

// recorder remembers the status code for audit and metrics, and passes
// Flush through for the log streams.
type recorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool

	body  *requestBody
	http1 bool
	// sealed is set once the request was answered on the handler's
	// behalf (answerOnce): what the handler writes after it is dropped.
	sealed bool
	// streamRC is set for routes without a timeout: each write gets a
	// deadline of its own.
	streamRC *http.ResponseController
}

// errAnswered is what writes of a handler get after the request was
// answered on its behalf.
var errAnswered = errors.New("edge: request already answered")

func (r *recorder) WriteHeader(code int) {
	if r.sealed {
		return
	}
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
		// Without this, net/http would read what is left of the body
		// (up to 256 KiB) before it sends the answer, for as long as the
		// client takes to send it.
		if r.http1 && r.body.pending() {
			r.Header().Set("Connection", "close")
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.sealed {
		return 0, errAnswered
	}
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if r.streamRC != nil {
		r.streamRC.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		// On HTTP/2 a passed write deadline resets the stream even
		// when nothing is written: an idle stream must not expire.
		defer r.streamRC.SetWriteDeadline(time.Time{})
	}
	return r.ResponseWriter.Write(b)
}

// answerOnce answers err unless the handler has answered already, and
// drops what the handler writes afterwards.
func (r *recorder) answerOnce(err error) {
	if r.wroteHeader {
		return
	}
	code, msg := wireError(err, opRead)
	writeError(r, code, msg)
	r.sealed = true
}

func (r *recorder) Flush() { r.FlushError() }

// FlushError is Flush with the error, for http.ResponseController.
func (r *recorder) FlushError() error {
	if r.streamRC != nil {
		r.streamRC.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		defer r.streamRC.SetWriteDeadline(time.Time{})
	}
	return http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) status() int {
	if !r.wroteHeader {
		return http.StatusOK
	}
	return r.code
}

// releaseState gives the call's reference to its state back, once.
func (c *call) releaseState() {
	if !c.released {
		c.released = true
		c.st.release()
	}
}
