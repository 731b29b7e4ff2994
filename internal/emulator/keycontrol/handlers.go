// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// maxRequestBody bounds request bodies.
// Assumed: KeyControl's request size limit is not public; 2 MiB holds any
// key value with room to spare.
const maxRequestBody = 2 << 20

// Error texts. The first two are exact (KES-style clients match them); the
// others are Assumed, as no public source gives them.
const (
	msgSecretExists   = "Secret already exists"
	msgSecretNotFound = "Secret not found"
	msgBoxNotFound    = "Box not found"                   // Assumed
	msgVaultNotFound  = "Vault not found"                 // Assumed
	msgBadLogin       = "Invalid username or password"    // Assumed
	msgNoToken        = "Authentication token is missing" // Assumed
	msgBadToken       = "Invalid or expired token"        // Assumed
	msgForbidden      = "Permission denied"               // Assumed
	msgBadJSON        = "Invalid JSON in request body"    // Assumed
	msgBadMethod      = "Method not allowed"              // Assumed
	msgVersionMissing = "Secret version not found"        // Assumed
	msgBadNextToken   = "Invalid next_token"              // Assumed
	msgTooLarge       = "Request body too large"          // Assumed
)

// ServeHTTP answers one vault API request, after applying the fault
// switches. It is exported so that a Server can also be mounted behind
// another listener or called directly in tests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	action := s.action(r.URL.Path)

	s.mu.Lock()
	if s.down {
		// A connection accepted just before SetDown(true) that had not
		// been registered yet: it gets no answer either.
		s.mu.Unlock()
		hijackReset(w)
		return
	}
	s.counts[action]++
	latency, hook := s.latency, s.hook
	var (
		failCode    int
		reset, drop bool
	)
	if s.only == "" || s.only == action {
		if s.fail > 0 {
			s.fail--
			failCode = s.failCode
		}
		if reset = failCode == 0 && s.reset > 0; reset {
			s.reset--
		}
		if drop = failCode == 0 && !reset && s.drop > 0; drop {
			s.drop--
		}
	}
	s.mu.Unlock()

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client gave up: abort, so that no empty 200 answer
			// can reach it on a connection that is still open.
			t.Stop()
			panic(http.ErrAbortHandler)
		}
	}
	if failCode != 0 {
		// A load balancer or a restarting appliance answers like this:
		// not JSON, so clients must not depend on an error body.
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(failCode)
		io.WriteString(w, "<html><body><h1>"+http.StatusText(failCode)+"</h1></body></html>\n")
		return
	}
	if reset {
		hijackReset(w)
		return
	}
	if hook != nil {
		hook(action)
	}
	if drop {
		rec := &discardWriter{header: http.Header{}}
		s.route(rec, r, action)
		hijackReset(w)
		return
	}
	s.route(w, r, action)
}

// action extracts the action name from a request path, or "" if the path
// is not a vault API path.
func (s *Server) action(path string) string {
	rest, ok := strings.CutPrefix(path, s.prefix+"/vault/1.0/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, action string) {
	rest, ok := strings.CutPrefix(r.URL.Path, s.prefix+"/vault/1.0/")
	if !ok {
		notFound(w)
		return
	}
	// Assumed: every action URL ends with a slash (pasmcli and KES always
	// send it). A path without it is answered like an unknown endpoint:
	// 404 with an empty body, the answer public sources describe for
	// actions an older KeyControl does not know.
	if !strings.HasSuffix(rest, "/") {
		notFound(w)
		return
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")

	var handler func(w http.ResponseWriter, r *http.Request, user string)
	switch {
	case action == "Login" && len(parts) == 2:
		if r.Method != http.MethodPost {
			methodNotAllowed(w)
			return
		}
		s.login(w, r, parts[1])
		return
	case len(parts) != 1:
		notFound(w)
		return
	case action == "Renew":
		handler = s.renew
	case action == "GetBox":
		handler = s.getBox
	case action == "CreateSecret":
		handler = s.createSecret
	case action == "CheckoutSecret":
		handler = s.checkoutSecret
	case action == "PutSecretValue":
		handler = s.putSecretValue
	case action == "DeleteSecret":
		handler = s.deleteSecret
	case action == "ListSecretIds":
		handler = s.listSecretIDs
	default:
		notFound(w)
		return
	}
	if r.Method != http.MethodPost {
		methodNotAllowed(w)
		return
	}
	// Assumed: a missing, unknown or expired token is answered 401 with a
	// JSON error. Header names are case-insensitive (pasmcli sends
	// X-VAULT-AUTH).
	tok := r.Header.Get("X-Vault-Auth")
	if tok == "" {
		writeError(w, http.StatusUnauthorized, msgNoToken)
		return
	}
	s.mu.Lock()
	t, ok := s.tokens[tok]
	if ok && !time.Now().Before(t.expires) {
		delete(s.tokens, tok)
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusUnauthorized, msgBadToken)
		return
	}
	handler(w, r, t.user)
}

// readJSON decodes the request body into v. An empty body decodes as {}
// when allowEmpty is set (Renew: KES sends no body, pasmcli sends {}).
func readJSON(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, msgBadJSON)
		return false
	}
	if len(body) > maxRequestBody {
		// Assumed: status and text for oversized requests.
		writeError(w, http.StatusRequestEntityTooLarge, msgTooLarge)
		return false
	}
	if allowEmpty && len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	// Assumed: malformed JSON, a non-object body or a field of the wrong
	// type is 400 with a JSON error. Unknown fields are accepted: the
	// real API has many optional fields this emulator ignores.
	if body = bytes.TrimSpace(body); len(body) == 0 || body[0] != '{' {
		writeError(w, http.StatusBadRequest, msgBadJSON)
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, msgBadJSON)
		return false
	}
	return true
}

func missing(w http.ResponseWriter, field string) {
	// Assumed: text of the error for a missing required field.
	writeError(w, http.StatusBadRequest, "Missing required field: "+field)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, vaultID string) {
	// Assumed: an unknown vault UUID in the login URL is 404 with a JSON
	// error (unlike an unknown action, which has an empty body).
	if vaultID != s.cfg.VaultID {
		writeError(w, http.StatusNotFound, msgVaultNotFound)
		return
	}
	var req struct {
		Username *string `json:"username"`
		Password *string `json:"password"`
	}
	if !readJSON(w, r, &req, false) {
		return
	}
	if req.Username == nil || *req.Username == "" {
		missing(w, "username")
		return
	}
	if req.Password == nil {
		missing(w, "password")
		return
	}
	s.mu.Lock()
	pw, ok := s.users[*req.Username]
	s.mu.Unlock()
	// Assumed: bad credentials are 401 with a JSON error.
	if !ok || pw != *req.Password {
		writeError(w, http.StatusUnauthorized, msgBadLogin)
		return
	}
	tok, exp := s.issueToken(*req.Username)
	writeJSON(w, map[string]any{
		"is_user":      true,
		"box_admin":    false,
		"appliance_id": "8d6c3f0e-1b2a-4c5d-9e8f-7a6b5c4d3e2f",
		"access_token": tok,
		"expires_at":   exp.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"admin":        false,
		"user":         *req.Username,
	})
}

func (s *Server) issueToken(user string) (string, time.Time) {
	// The shape follows the public login sample: base64(uuid) "."
	// base64(JSON). Clients must treat it as opaque.
	claims, _ := json.Marshal(map[string]string{"data": randomHex(24)})
	tok := base64.StdEncoding.EncodeToString([]byte(newUUID())) + "." + base64.RawURLEncoding.EncodeToString(claims)
	s.mu.Lock()
	defer s.mu.Unlock()
	exp := time.Now().Add(s.cfg.TokenTTL)
	s.tokens[tok] = token{user: user, expires: exp}
	return tok, exp
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request, user string) {
	var req struct{}
	if !readJSON(w, r, &req, true) {
		return
	}
	// Assumed: Renew issues a new token; the old one stays valid until
	// its own expiry.
	tok, exp := s.issueToken(user)
	writeJSON(w, map[string]any{
		"access_token": tok,
		"expires_at":   exp.UTC().Format("2006-01-02T15:04:05.000000Z"),
	})
}

// boxFor resolves a box for user, writing the error answer if it fails.
// It must be called with s.mu held.
func (s *Server) boxFor(w http.ResponseWriter, id, user string) *box {
	b := s.findBox(id)
	if b == nil {
		// Assumed: 404 {"error":"Box not found"}.
		writeError(w, http.StatusNotFound, msgBoxNotFound)
		return nil
	}
	if len(b.Users) > 0 && !slices.Contains(b.Users, user) {
		// Assumed: 403 for a user without a policy on the box.
		writeError(w, http.StatusForbidden, msgForbidden)
		return nil
	}
	return b
}

func (s *Server) findBox(id string) *box {
	for _, b := range s.boxes {
		if b.Name == id || b.ID == id {
			return b
		}
	}
	return nil
}

// secretFor resolves the box and the secret of req for user, writing the
// error answer if either is missing (for DeleteSecret and
// PutSecretValue, the 404 text is inferred from CheckoutSecret). It must
// be called with s.mu held.
func (s *Server) secretFor(w http.ResponseWriter, req secretRequest, user string) (*box, *secret) {
	b := s.boxFor(w, *req.BoxID, user)
	if b == nil {
		return nil, nil
	}
	sec := b.findSecret(*req.SecretID)
	if sec == nil {
		writeError(w, http.StatusNotFound, msgSecretNotFound)
		return nil, nil
	}
	return b, sec
}

// findSecret looks a secret up by name or ID. Must hold s.mu.
func (b *box) findSecret(id string) *secret {
	if sec, ok := b.secrets[id]; ok {
		return sec
	}
	for _, sec := range b.secrets {
		if sec.id == id {
			return sec
		}
	}
	return nil
}

func (s *Server) getBox(w http.ResponseWriter, r *http.Request, user string) {
	var req struct {
		BoxID *string `json:"box_id"`
	}
	if !readJSON(w, r, &req, false) {
		return
	}
	if req.BoxID == nil || *req.BoxID == "" {
		missing(w, "box_id")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxFor(w, *req.BoxID, user)
	if b == nil {
		return
	}
	// Assumed: the GetBox response fields are not public; these echo the
	// settable CreateBox properties.
	writeJSON(w, map[string]any{
		"box_id":              b.ID,
		"name":                b.Name,
		"description":         "",
		"lease":               map[string]any{"duration": nil, "renewable": false},
		"max_secret_versions": nil,
		"tags":                map[string]string{},
		"rotation":            map[string]any{"duration": nil, "force": false, "on_checkin": false},
		"exclusive_checkout":  false,
		"secret_duration":     nil,
		"secret_count":        len(b.secrets),
	})
}

func validSecretData(d json.RawMessage) bool {
	d = bytes.TrimSpace(d)
	if len(d) == 0 || (d[0] != '"' && d[0] != '{') {
		return false
	}
	return json.Valid(d)
}

func (s *Server) createSecret(w http.ResponseWriter, r *http.Request, user string) {
	var req struct {
		BoxID      *string         `json:"box_id"`
		Name       *string         `json:"name"`
		SecretData json.RawMessage `json:"secret_data"`
		ExpiresAt  *time.Time      `json:"expires_at"`
	}
	if !readJSON(w, r, &req, false) {
		return
	}
	switch {
	case req.BoxID == nil || *req.BoxID == "":
		missing(w, "box_id")
		return
	case req.Name == nil || *req.Name == "":
		missing(w, "name")
		return
	case len(req.SecretData) == 0 || string(req.SecretData) == "null":
		missing(w, "secret_data")
		return
	case !validSecretData(req.SecretData):
		// Assumed: secret_data must be a string or an object.
		writeError(w, http.StatusBadRequest, "Invalid secret_data")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxFor(w, *req.BoxID, user)
	if b == nil {
		return
	}
	// Assumed: names are case-sensitive and unique per box.
	if _, ok := b.secrets[*req.Name]; ok {
		writeError(w, http.StatusConflict, msgSecretExists)
		return
	}
	sec := &secret{id: newUUID(), name: *req.Name, versions: []json.RawMessage{bytes.Clone(req.SecretData)}}
	if req.ExpiresAt != nil {
		sec.expiresAt = *req.ExpiresAt
	}
	b.secrets[sec.name] = sec
	// Assumed: the create response body; clients ignore it.
	writeJSON(w, map[string]any{"secret_id": sec.id, "name": sec.name, "box_id": b.ID})
}

type secretRequest struct {
	BoxID    *string `json:"box_id"`
	SecretID *string `json:"secret_id"`
}

func (req *secretRequest) check(w http.ResponseWriter) bool {
	switch {
	case req.BoxID == nil || *req.BoxID == "":
		missing(w, "box_id")
		return false
	case req.SecretID == nil || *req.SecretID == "":
		missing(w, "secret_id")
		return false
	}
	return true
}

func (s *Server) checkoutSecret(w http.ResponseWriter, r *http.Request, user string) {
	var req struct {
		secretRequest
		Version *int `json:"version"`
	}
	if !readJSON(w, r, &req, false) || !req.check(w) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, sec := s.secretFor(w, req.secretRequest, user)
	if sec == nil {
		return
	}
	// Versions count from 1; no version means the latest.
	data := sec.versions[len(sec.versions)-1]
	if req.Version != nil {
		if *req.Version < 1 || *req.Version > len(sec.versions) {
			writeError(w, http.StatusNotFound, msgVersionMissing)
			return
		}
		data = sec.versions[*req.Version-1]
	}
	// Assumed: "text" as secret_subtype_info.type of a static secret; no
	// lease, as a KES box has no checkout duration. Expired secrets can
	// still be checked out.
	writeJSON(w, map[string]any{
		"secret_data":         data,
		"secret_subtype_info": map[string]string{"type": "text"},
	})
}

func (s *Server) putSecretValue(w http.ResponseWriter, r *http.Request, user string) {
	var req struct {
		secretRequest
		SecretData json.RawMessage `json:"secret_data"`
	}
	if !readJSON(w, r, &req, false) || !req.check(w) {
		return
	}
	if len(req.SecretData) == 0 || string(req.SecretData) == "null" {
		missing(w, "secret_data")
		return
	}
	if !validSecretData(req.SecretData) {
		writeError(w, http.StatusBadRequest, "Invalid secret_data")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, sec := s.secretFor(w, req.secretRequest, user)
	if sec == nil {
		return
	}
	// Assumed: PutSecretValue appends a version that becomes the current
	// one in one step, so a concurrent checkout sees the old or the new
	// value, never none; the response carries the new version number.
	sec.versions = append(sec.versions, bytes.Clone(req.SecretData))
	writeJSON(w, map[string]any{"version": len(sec.versions)})
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request, user string) {
	var req secretRequest
	if !readJSON(w, r, &req, false) || !req.check(w) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, sec := s.secretFor(w, req, user)
	if sec == nil {
		return
	}
	// Assumed: deleting removes every version at once.
	delete(b.secrets, sec.name)
	writeJSON(w, map[string]any{})
}

// nextToken is the decoded ListSecretIds continuation token: base64 of
// this JSON, as KES builds and parses it.
type nextToken struct {
	BoxID   string `json:"box_id"`
	NextCtx string `json:"next_ctx"`
}

func encodeNextToken(boxID, next string) string {
	b, _ := json.Marshal(nextToken{BoxID: boxID, NextCtx: next})
	return base64.StdEncoding.EncodeToString(b)
}

// decodeNextToken parses a continuation token strictly: standard padded
// base64 of a JSON object with a string box_id and next_ctx.
func decodeNextToken(s string) (nextToken, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nextToken{}, err
	}
	var t struct {
		BoxID   *string `json:"box_id"`
		NextCtx *string `json:"next_ctx"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return nextToken{}, err
	}
	if t.BoxID == nil || t.NextCtx == nil {
		return nextToken{}, errors.New("incomplete token")
	}
	return nextToken{BoxID: *t.BoxID, NextCtx: *t.NextCtx}, nil
}

func (s *Server) listSecretIDs(w http.ResponseWriter, r *http.Request, user string) {
	var req struct {
		BoxID     *string         `json:"box_id"`
		Prefix    *string         `json:"prefix"`
		Filters   json.RawMessage `json:"filters"`
		MaxItems  *int            `json:"max_items"`
		NextToken *string         `json:"next_token"`
	}
	if !readJSON(w, r, &req, false) {
		return
	}
	if req.BoxID == nil || *req.BoxID == "" {
		missing(w, "box_id")
		return
	}
	if len(req.Filters) > 0 && string(req.Filters) != "null" {
		// The filter language is not public; refuse rather than
		// pretend.
		writeError(w, http.StatusBadRequest, "filters are not supported by the emulator")
		return
	}
	// Assumed: no max_items means 100; more than the server maximum is
	// capped to it; zero or negative is an error.
	limit := 100
	if req.MaxItems != nil {
		if *req.MaxItems <= 0 {
			writeError(w, http.StatusBadRequest, "Invalid max_items")
			return
		}
		limit = *req.MaxItems
	}
	limit = min(limit, s.cfg.MaxItems)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxFor(w, *req.BoxID, user)
	if b == nil {
		return
	}
	start := ""
	if req.NextToken != nil {
		// KES omits an empty next_token: an empty one is a client bug.
		t, err := decodeNextToken(*req.NextToken)
		if err != nil || (t.BoxID != b.Name && t.BoxID != b.ID) || t.NextCtx == "" {
			writeError(w, http.StatusBadRequest, msgBadNextToken)
			return
		}
		start = t.NextCtx
	}
	// Assumed: secrets are listed in byte order of their names and
	// next_ctx is the name the next page starts at; prefix is a
	// case-sensitive name prefix.
	names := make([]string, 0, len(b.secrets))
	for n := range b.secrets {
		if req.Prefix != nil && !strings.HasPrefix(n, *req.Prefix) {
			continue
		}
		if n >= start {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	now := time.Now()
	type item struct {
		Name    string `json:"name"`
		Expired bool   `json:"expired"`
	}
	page := make([]item, 0, min(limit, len(names)))
	for _, n := range names[:min(limit, len(names))] {
		sec := b.secrets[n]
		page = append(page, item{Name: n, Expired: !sec.expiresAt.IsZero() && !now.Before(sec.expiresAt)})
	}
	resp := map[string]any{"secrets": page}
	// Assumed: the last page has no next_token field.
	if len(names) > limit {
		resp["next_token"] = encodeNextToken(b.Name, names[limit])
	}
	writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func notFound(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNotFound)
}

func methodNotAllowed(w http.ResponseWriter) {
	// Assumed: 405 with a JSON error for a method other than POST.
	w.Header().Set("Allow", http.MethodPost)
	writeError(w, http.StatusMethodNotAllowed, msgBadMethod)
}

// hijackReset takes the connection from the HTTP server and resets it
// without an answer.
func hijackReset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	c, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	resetConn(c)
}

// discardWriter runs a handler whose answer is thrown away.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
