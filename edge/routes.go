// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

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
	{Method: http.MethodGet, Path: "/v1/ready", Timeout: defaultTimeout, Auth: authPolicy, handle: (*call).ready},
	{Method: http.MethodGet, Path: "/v1/status", Timeout: defaultTimeout, Auth: authPolicy, handle: (*call).status},
	{Method: http.MethodGet, Path: "/v1/metrics", Timeout: defaultTimeout, Auth: authPolicy, handle: (*call).metrics},
	{Method: http.MethodGet, Path: "/v1/api", Timeout: 10 * time.Second, Auth: authPolicy, handle: (*call).api},

	{Method: http.MethodPut, Path: "/v1/key/create/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).createKey},
	{Method: http.MethodPut, Path: "/v1/key/import/", MaxBody: mb, Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).importKey},
	{Method: http.MethodGet, Path: "/v1/key/describe/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).describeKey},
	{Method: http.MethodGet, Path: "/v1/key/list/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).listKeys},
	{Method: http.MethodDelete, Path: "/v1/key/delete/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).deleteKey},
	{Method: http.MethodPut, Path: "/v1/key/generate/", MaxBody: mb, Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).generateKey},
	{Method: http.MethodPut, Path: "/v1/key/encrypt/", MaxBody: mb, Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).encryptKey},
	{Method: http.MethodPut, Path: "/v1/key/decrypt/", MaxBody: mb, Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).decryptKey},
	{Method: http.MethodPut, Path: "/v1/key/bulk/decrypt/", MaxBody: mb, Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).bulkDecrypt},
	{Method: http.MethodPut, Path: "/v1/key/hmac/", MaxBody: mb, Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).hmacKey},
	{Method: http.MethodPut, Path: "/v1/key/rotate/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).rotateKey},
	{Method: http.MethodGet, Path: "/v1/key/versions/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).listVersions},
	{Method: http.MethodPut, Path: "/v1/key/version/retire/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).retireVersion},
	{Method: http.MethodDelete, Path: "/v1/key/version/destroy/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).destroyVersion},
	{Method: http.MethodPut, Path: exportAllowPrefix, MaxBody: 1 << 10, Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).exportAllow},

	{Method: http.MethodGet, Path: "/v1/policy/describe/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).describePolicy},
	{Method: http.MethodGet, Path: "/v1/policy/read/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).readPolicy},
	{Method: http.MethodGet, Path: "/v1/policy/list/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).listPolicies},

	{Method: http.MethodGet, Path: "/v1/identity/describe/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).describeIdentity},
	{Method: http.MethodGet, Path: "/v1/identity/list/", Timeout: defaultTimeout, Auth: authPolicy, Counted: true, handle: (*call).listIdentities},
	{Method: http.MethodGet, Path: "/v1/identity/self/describe", Timeout: defaultTimeout, Auth: authIdentify, Counted: true, handle: (*call).selfDescribe},

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

// call is one request on its way through the server.
type call struct {
	srv      *Server
	st       *state
	route    *route
	w        http.ResponseWriter
	r        *http.Request
	resource string
	identity identity.Identity
	start    time.Time
	// ip is the client's IP, set from the connection when first needed
	// (ipSet) or by authentication behind a proxy.
	ip    net.IP
	ipSet bool
	// released is set once the call gave its state back early.
	released bool
	// auditMsg replaces the generic audit message, e.g. "secret key 'k'
	// created".
	auditMsg string
}

// clientIP returns the IP of the client: the connection's peer, or the
// one a trusted proxy forwarded. It is parsed only when needed, for the
// audit or error log.
func (c *call) clientIP() net.IP {
	if !c.ipSet {
		c.ip, c.ipSet = remoteIP(c.r), true
	}
	return c.ip
}

// fail answers with the wire form of err.
func (c *call) fail(err error, o op) {
	code, msg := wireError(err, o)
	if code >= 500 {
		c.srv.errLog.Error("request failed", "req.method", c.r.Method, "req.path", c.r.URL.Path,
			"req.ip", ipString(c.clientIP()), "req.identity", string(c.identity), "err", err)
	}
	writeError(c.w, code, msg)
}

// Deadlines of a request. A route's timeout T is when it is answered at
// the latest: the handler's context and the read deadline of the request
// body end answerMargin(T) before T, so that a keystore call or a body
// read that runs out of time still leaves the handler time to write its
// 504 or 408, and the answer must be written by T + answerMargin(T),
// when the write deadline cuts the connection. The margin after T is
// there because a write cut off half-way leaves the TLS stream corrupt
// (the client sees "bad record MAC", not an answer): a loaded server
// gets the whole margin twice to write one small answer.
const (
	minAnswerMargin = 500 * time.Millisecond
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

// defaultTimeout is the timeout of most routes.
const defaultTimeout = 15 * time.Second

// h2WriteTimeout is the write deadline that net/http gives every HTTP/2
// stream as its headers arrive (http.Server.WriteTimeout): the one of a
// route with the default timeout. Such a route then sets none of its
// own: on HTTP/2 a SetWriteDeadline is a message to the connection's
// goroutine, which costs more than the rest of routing. (A request of a
// server without that WriteTimeout, an embedder's, still sets its own.)
// The deadline runs from when the server read the request's headers, a
// moment before the handler starts, so the answer is cut off no later
// than before.
var h2WriteTimeout = defaultTimeout + answerMargin(defaultTimeout)

// answerMargin is how much earlier than the route timeout the handler's
// context and body read deadline end: a tenth of the timeout, within
// [minAnswerMargin, maxAnswerMargin], and at most half the timeout.
func answerMargin(timeout time.Duration) time.Duration {
	return min(max(timeout/10, minAnswerMargin), maxAnswerMargin, timeout/2)
}

// errBodyTimeout is the answer to a request whose body did not arrive
// before the route's read deadline.
var errBodyTimeout = newError(http.StatusRequestTimeout, "request body not received in time")

// request is everything one request needs, allocated at once: the call,
// the recorder that wraps the response writer, the request body and the
// request context.
type request struct {
	call call
	rec  recorder
	body requestBody
	ctx  reqCtx
	rctx *chi.Context
	rc   *http.ResponseController // &rcv
	rcv  http.ResponseController
	// guard enforces the deadlines of an HTTP/2 request, see guard.
	guard guard
	// streamDeadline is set for an HTTP/2 request of an http.Server
	// whose WriteTimeout is h2WriteTimeout (the one Serve makes): its
	// stream has that write deadline already.
	streamDeadline bool
}

// xOf returns the request state of a request routed by ServeHTTP.
func xOf(r *http.Request) *request { return r.Context().(*reqCtx).x }

// ServeHTTP runs a request through chi's router and the route's
// middleware, in the order of the checks of minio/kes: route → method →
// body limit → authentication → handler. The route's deadlines are set as
// soon as the route is known, so that every answer, a 405 too, has one.
//
// Every request is answered or dropped in bounded time: the answer has
// the route's write deadline, the body the route's read deadline (a body
// that does not arrive in time is answered 408), and a body that is
// not read to its end, e.g. because the request was denied, is not
// waited for: on HTTP/1.1 the answer says Connection: close and the
// connection is closed after a short grace, on HTTP/2 the stream is
// reset once answered.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	growStack(int(r.ProtoMajor))
	st := s.acquire()
	x := &request{}
	x.call = call{srv: s, st: st, start: time.Now()}
	// Kept in the request's allocation rather than one of its own.
	x.rcv = *http.NewResponseController(w)
	x.rc = &x.rcv
	x.body = requestBody{ReadCloser: r.Body, x: x}
	r.Body = &x.body
	x.rec = recorder{ResponseWriter: w, body: &x.body, http1: r.ProtoMajor == 1}
	if !x.rec.http1 {
		// Not only Serve's server: the Server is an http.Handler that an
		// embedder may run in a server of its own.
		hs, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
		x.streamDeadline = hs != nil && hs.WriteTimeout == h2WriteTimeout
	}
	x.call.w = &x.rec
	x.rctx = s.routeCtxs.Get().(*chi.Context)
	x.rctx.Reset()
	// Routed on the decoded path, as the policies see it: chi would
	// otherwise route on the raw path, where "%2F" is no separator.
	x.rctx.RoutePath = cmp.Or(r.URL.Path, "/")
	// Every route takes every method; the route's middleware answers a
	// wrong one, after its deadlines are set. Telling chi the method is
	// GET keeps methods chi does not know (e.g. FOO) on that path too.
	x.rctx.RouteMethod = http.MethodGet
	x.ctx = reqCtx{parent: r.Context(), x: x}
	r = r.WithContext(&x.ctx)
	x.call.r = r
	defer s.finish(x)
	defer s.recoverHandler(&x.rec, r)
	st.router.ServeHTTP(&x.rec, r)
}

// finish runs when the answer is written: it gives back what the request
// held, and on HTTP/1.1 bounds how long net/http may wait for a body the
// handler did not read.
func (s *Server) finish(x *request) {
	x.guard.stop()
	x.ctx.end()
	x.call.releaseState()
	x.rctx.Reset()
	s.routeCtxs.Put(x.rctx)
	if !x.body.pending() || !x.rec.http1 {
		return
	}
	if !x.rec.wroteHeader {
		x.rec.Header().Set("Connection", "close")
	}
	d := time.Now().Add(drainGrace)
	if !x.body.deadline.IsZero() && x.body.deadline.Before(d) {
		d = x.body.deadline
	}
	x.rc.SetReadDeadline(d)
}

// newRouter builds the chi router of a state: every route of the state
// (routes, with the config's changes) behind its middleware. A prefix
// route ("/v1/key/create/") takes the rest of the path, slashes and all,
// as its resource, and its path without the trailing slash
// ("/v1/key/list", which kes-go's ListKeys requests) as the empty
// resource rather than a redirect, so that clients that do not follow
// redirects work too.
func (s *Server) newRouter(st *state) *chi.Mux {
	mux := chi.NewMux()
	mux.NotFound(notFound)
	// Unreachable: every route takes every method (see ServeHTTP).
	mux.MethodNotAllowed(notFound)
	for _, r := range routes {
		rt := st.routes[r.Path]
		h := chi.Chain(
			s.observe(rt),
			s.deadlines(rt),
			allowMethod(rt),
			limitBody(rt),
			s.recoverInner,
			s.authenticated(rt),
		).HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// rt.handle is read per request: tests swap it.
			rt.handle(&xOf(r).call)
		})
		if p, ok := strings.CutSuffix(rt.Path, "/"); ok {
			mux.Handle(rt.Path+"*", h)
			mux.Handle(p, h)
		} else {
			mux.Handle(rt.Path, h)
		}
	}
	return mux
}

// notFound is the answer to a path that is no route: net/http's own 404,
// which KES clients expect, with a write deadline of its own (an HTTP/1.1
// connection keeps the deadline of its last request).
func notFound(w http.ResponseWriter, r *http.Request) {
	x := xOf(r)
	x.rc.SetWriteDeadline(x.call.start.Add(noRouteTimeout))
	http.NotFound(w, r)
}

// observe is the outermost middleware of a route: it sets the call's
// route and resource, and counts and audits the finished request.
func (s *Server) observe(rt *route) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			x := xOf(r)
			c := &x.call
			c.route = rt
			if strings.HasSuffix(rt.Path, "/") {
				c.resource = chi.URLParam(r, "*")
			}
			if rt.Counted {
				s.metrics.active.Inc()
			}
			defer func() {
				took := time.Since(c.start)
				code := x.rec.status()
				s.audit(c, code, took)
				if rt.Counted {
					s.metrics.active.Dec()
					s.metrics.observe(code, took)
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// deadlines gives the request its route's deadlines (see answerMargin).
// The write deadline stops a stuck answer; the context stops the
// keystore calls behind it and the read deadline a slow body, so that
// the handler can still answer 504 or 408.
func (s *Server) deadlines(rt *route) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			x := xOf(r)
			if rt.Timeout <= 0 {
				// Log streams: until the stream starts (call.stream),
				// an answer such as a 403 or 405 is bounded like one to
				// a path that is no route; then each write gets a
				// deadline of its own.
				x.rc.SetWriteDeadline(x.call.start.Add(noRouteTimeout))
				next.ServeHTTP(w, r)
				return
			}
			margin := answerMargin(rt.Timeout)
			early := x.call.start.Add(rt.Timeout - margin)
			write := x.call.start.Add(rt.Timeout + margin)
			x.ctx.deadline = early
			hasBody := x.body.ReadCloser != http.NoBody
			if hasBody {
				x.body.deadline = early
			}
			if !x.streamDeadline || rt.Timeout+margin != h2WriteTimeout {
				x.rc.SetWriteDeadline(write)
			}
			switch {
			case !hasBody:
			case x.rec.http1:
				x.rc.SetReadDeadline(early) // a connection deadline: cheap
			default:
				// On HTTP/2 a read deadline is a round trip to the
				// connection's goroutine and a timer; the guard is a
				// timer only, and most bodies have arrived before it
				// fires.
				x.guard.start(x.rc, early)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// allowMethod answers a request with another method than its route's 405
// (PUT routes take POST too, as minio/kes does).
func allowMethod(rt *route) func(http.Handler) http.Handler {
	msg := fmt.Sprintf("expected '%s'", rt.Method)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != rt.Method && (rt.Method != http.MethodPut || r.Method != http.MethodPost) {
				w.Header().Set("Accept", rt.Method)
				writeError(w, http.StatusMethodNotAllowed, "received method '"+r.Method+"' "+msg)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// limitBody caps the request body at the route's limit (zero: no body).
func limitBody(rt *route) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			limit := rt.MaxBody
			if r.ContentLength >= 0 && r.ContentLength < limit {
				limit = r.ContentLength
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			next.ServeHTTP(w, r)
		})
	}
}

// recoverInner turns a panic of authentication or a handler into a 500
// that the audit record and metrics see.
func (s *Server) recoverInner(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer s.recoverHandler(&xOf(r).rec, r)
		next.ServeHTTP(w, r)
	})
}

// authenticated identifies the caller and checks its policy.
func (s *Server) authenticated(rt *route) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if rt.Auth == authNone {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := &xOf(r).call
			c.r = r
			if err := s.authenticate(c); err != nil {
				c.fail(err, opRead)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// requestBody is the request body as handlers see it. It tracks whether
// the body was read to its end, and answers 408 when its read deadline
// passes.
type requestBody struct {
	io.ReadCloser
	x        *request
	deadline time.Time // the read deadline, zero if none
	eof      bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		if !b.eof {
			b.eof = true
			// A body read to its end needs no deadline any more; on
			// HTTP/1.1 net/http now reads ahead in the background to
			// notice a client going away, and a deadline there would
			// cancel the request. (On HTTP/2 the guard's read deadline
			// does nothing to a body that has ended.)
			if b.x.rec.http1 && !b.deadline.IsZero() {
				b.x.rc.SetReadDeadline(time.Time{})
			}
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Handlers answer a failed read as a malformed body; the client
		// is told what really happened, and what the handler writes
		// after it is dropped.
		b.x.rec.answerOnce(errBodyTimeout)
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
	// streamRC is set once a log stream starts (startStream): each
	// write gets a deadline of its own.
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

// startStream gives each later write of the answer a write deadline of
// its own, streamWriteTimeout, and none between writes: a log stream is
// idle until an event comes. rc controls the connection's writer.
func (r *recorder) startStream(rc *http.ResponseController) { r.streamRC = rc }

// endStream bounds what is left to write once a log stream's handler
// returns (net/http flushes it afterwards): a client that stopped
// reading does not hold the stream or the connection.
func (r *recorder) endStream() {
	if r.streamRC != nil {
		r.streamRC.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		r.streamRC = nil
	}
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

// stackDepth is how much stack a request needs, about: net/http's frames,
// chi's, the handler's, the JSON decoder's and the cipher's.
const stackDepth = 8 << 10

// growStack grows the goroutine's stack, while it is shallow, to what the
// rest of the request needs. A goroutine starts with a small stack and
// net/http starts one per HTTP/2 request: without this, the stack grows
// in the middle of the request, where copying it means walking and
// adjusting every frame above, which costs more than all the work of
// routing and authentication together.
//
//go:noinline
func growStack(i int) byte {
	var pad [stackDepth]byte
	pad[i%stackDepth] = byte(i)
	return pad[(i+1)%stackDepth]
}
