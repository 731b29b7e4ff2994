// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
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

// ServeHTTP runs a request through the checks of minio/kes in its order:
// route → method → body limit → timeout → authentication → handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	defer s.recoverHandler(rec, r)

	rt, resource, ok := findRoute(r.URL.Path)
	if !ok {
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

	if rt.Timeout > 0 {
		// The write deadline stops a stuck response; the context stops the
		// keystore calls behind it.
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(rt.Timeout))
		ctx, cancel := context.WithTimeout(r.Context(), rt.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
		c.r = r
	}
	// Registered last so it runs first: the audit record and metrics see
	// the 500 it writes.
	defer s.recoverHandler(rec, r)
	if err := s.authenticate(c); err != nil {
		c.fail(err, opRead)
		return
	}
	rt.handle(c)
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
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
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
