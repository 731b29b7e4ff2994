// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxRequestSize is Vault's default listener max_request_size (32 MiB).
const maxRequestSize = 32 << 20

// maxEntrySize is the largest KV entry. Assumed: integrated storage with
// its default max_entry_size of 1 MiB; the JSON of the entry counts.
const maxEntrySize = 1 << 20

// Error texts of Vault. Vault joins several errors with go-multierror,
// whose text is what clients see.
const (
	errPermissionDenied = "1 error occurred:\n\t* permission denied\n\n"
	errInvalidToken     = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
	errSealed           = "Vault is sealed"
)

func writeErrors(w http.ResponseWriter, status int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": errs})
}

// secretResponse is Vault's answer envelope.
func secretResponse(data any, auth any, warnings []string) map[string]any {
	return map[string]any{
		"request_id":     newUUID(),
		"lease_id":       "",
		"renewable":      false,
		"lease_duration": 0,
		"data":           data,
		"wrap_info":      nil,
		"warnings":       warnings,
		"auth":           auth,
	}
}

// ServeHTTP answers one Vault API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	latency := s.latency
	failCode := 0
	if s.fail > 0 {
		s.fail--
		failCode = s.failCode
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
		writeErrors(w, failCode, "emulated failure")
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}
	ns := strings.Trim(r.Header.Get("X-Vault-Namespace"), "/")
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestSize+1))
	if err != nil {
		return
	}
	if len(body) > maxRequestSize {
		writeErrors(w, http.StatusRequestEntityTooLarge, "http: request body too large")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p == "sys/health" {
		s.counts["health"]++
		s.health(w, r, ns)
		return
	}
	if s.sealed {
		writeErrors(w, http.StatusServiceUnavailable, errSealed)
		return
	}
	if !s.namespaces[ns] {
		// Assumed: a request to an unknown namespace finds no route.
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", p))
		return
	}
	if strings.HasPrefix(p, "auth/") && strings.HasSuffix(p, "/login") && p != "auth/token/login" {
		s.counts["login"]++
		s.login(w, r, ns, strings.TrimSuffix(strings.TrimPrefix(p, "auth/"), "/login"), body)
		return
	}
	tokValue := r.Header.Get("X-Vault-Token")
	if tokValue == "" {
		// Assumed: a request without a token is denied like a
		// policy denial, without "invalid token".
		writeErrors(w, http.StatusForbidden, errPermissionDenied)
		return
	}
	tok := s.tokens[tokValue]
	if tok != nil && !tok.expires.IsZero() && !time.Now().Before(tok.expires) {
		delete(s.tokens, tokValue)
		tok = nil
	}
	if tok == nil {
		writeErrors(w, http.StatusForbidden, errInvalidToken)
		return
	}
	// A token is valid in its namespace and below it.
	rel, ok := relNS(tok.ns, ns)
	if !ok {
		writeErrors(w, http.StatusForbidden, errPermissionDenied)
		return
	}
	if strings.HasPrefix(p, "auth/token/") {
		s.tokenAPI(w, r, tokValue, tok, strings.TrimPrefix(p, "auth/token/"), body)
		return
	}
	op, ok := operation(r)
	if !ok {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	if op == "list" && !strings.HasSuffix(p, "/") {
		// Vault's HTTP layer lists the folder: it adds the slash.
		p += "/"
	}
	req := &call{w: w, r: r, tok: tok, ns: ns, rel: rel, op: op, body: body}
	if m, rest, ok := s.findMount(ns, p, true); ok {
		s.counts["kv"]++
		s.handleKV(req, m, rest)
		return
	}
	if m, rest, ok := s.findMount(ns, p, false); ok {
		s.counts["transit"]++
		s.handleTransit(req, m, rest)
		return
	}
	writeErrors(w, http.StatusNotFound, "1 error occurred:\n\t* unsupported path\n\n")
}

// call is one authenticated request on a mount.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	tok  *tokenInfo
	ns   string
	rel  string // request namespace relative to the token's, "" or "child/"
	op   string // create, read, update, delete, list
	body []byte
}

// relNS returns the request namespace relative to the token's namespace
// as a path prefix ("" or "child/"), or false if the token does not
// reach it.
func relNS(tokNS, reqNS string) (string, bool) {
	switch {
	case tokNS == reqNS:
		return "", true
	case tokNS == "":
		return reqNS + "/", true
	case strings.HasPrefix(reqNS, tokNS+"/"):
		return strings.TrimPrefix(reqNS, tokNS+"/") + "/", true
	}
	return "", false
}

func operation(r *http.Request) (string, bool) {
	switch r.Method {
	case http.MethodGet:
		if v := r.URL.Query().Get("list"); v == "true" || v == "1" {
			return "list", true
		}
		return "read", true
	case "LIST":
		return "list", true
	case http.MethodPut, http.MethodPost:
		return "write", true
	case http.MethodDelete:
		return "delete", true
	}
	return "", false
}

// findMount finds the mount for p in ns, longest path first.
func (s *Server) findMount(ns, p string, kv bool) (string, string, bool) {
	best, rest := "", ""
	try := func(key string) {
		n, m, _ := strings.Cut(key, "\x00")
		if n != ns || (p != m && !strings.HasPrefix(p, m+"/")) || len(m) <= len(best) {
			return
		}
		best, rest = m, strings.TrimPrefix(strings.TrimPrefix(p, m), "/")
	}
	if kv {
		for k := range s.kv {
			try(k)
		}
	} else {
		for k := range s.transit {
			try(k)
		}
	}
	return best, rest, best != ""
}

// allowed evaluates the token's policies for capability on p (relative
// to the request namespace). Vault uses the most specific matching path
// of all the token's policies; an exact path beats a glob, a longer glob
// a shorter one, and "deny" wins within the chosen rules. Assumed: the
// "+" segment wildcard is not used by the policies under test.
func (c *call) allowed(s *Server, p, capability string) bool {
	if slices.Contains(c.tok.policies, "root") {
		return true
	}
	full := c.rel + p
	var (
		caps   []string
		best   = -1
		bestEx = false
	)
	for _, name := range c.tok.policies {
		for _, rule := range s.cfg.Policies[name] {
			glob := strings.HasSuffix(rule.Path, "*")
			prefix := strings.TrimSuffix(rule.Path, "*")
			switch {
			case !glob && rule.Path == full:
				if !bestEx {
					caps, bestEx = nil, true
				}
				caps = append(caps, rule.Capabilities...)
			case glob && !bestEx && strings.HasPrefix(full, prefix):
				if len(prefix) > best {
					caps, best = nil, len(prefix)
				}
				if len(prefix) == best {
					caps = append(caps, rule.Capabilities...)
				}
			}
		}
	}
	return !slices.Contains(caps, "deny") && slices.Contains(caps, capability)
}

func (c *call) deny() { writeErrors(c.w, http.StatusForbidden, errPermissionDenied) }

func (s *Server) health(w http.ResponseWriter, r *http.Request, ns string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeErrors(w, http.StatusMethodNotAllowed)
		return
	}
	if ns != "" {
		// sys/health is root-only: with a namespace there is no such
		// route (the reason minio/kes #511 clears the namespace).
		writeErrors(w, http.StatusNotFound, "1 error occurred:\n\t* unsupported path\n\n")
		return
	}
	status := http.StatusOK
	if s.sealed {
		status = http.StatusServiceUnavailable
		if v, err := strconv.Atoi(r.URL.Query().Get("sealedcode")); err == nil && v >= 200 && v < 600 {
			status = v
		}
	}
	writeJSON(w, status, map[string]any{
		"initialized":     true,
		"sealed":          s.sealed,
		"standby":         false,
		"server_time_utc": time.Now().Unix(),
		"version":         "1.15.0",
		"cluster_name":    "vault-emulator",
	})
}

func (s *Server) issueToken(ns string, policies []string) (string, *tokenInfo) {
	v := "hvs." + randomHex(12)
	now := time.Now()
	t := &tokenInfo{
		ns:         ns,
		policies:   append([]string{"default"}, policies...),
		created:    now,
		expires:    now.Add(s.ttl),
		maxExpires: now.Add(s.maxTTL),
		renewable:  true,
	}
	if t.expires.After(t.maxExpires) {
		t.expires = t.maxExpires
	}
	s.tokens[v] = t
	return v, t
}

func authSection(value string, t *tokenInfo, now time.Time) map[string]any {
	return map[string]any{
		"client_token":   value,
		"accessor":       randomHex(12),
		"policies":       t.policies,
		"token_policies": t.policies,
		"metadata":       nil,
		"lease_duration": int64(t.expires.Sub(now).Round(time.Second) / time.Second),
		"renewable":      t.renewable,
		"entity_id":      "",
		"token_type":     "service",
		"orphan":         true,
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, ns, mount string, body []byte) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		writeErrors(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	str := func(k string) string { v, _ := in[k].(string); return v }
	var policies []string
	found, isApprole := false, false
	for _, a := range s.cfg.AppRoles {
		if strings.Trim(a.Namespace, "/") != ns || a.Mount != mount {
			continue
		}
		found, isApprole = true, true
		if str("role_id") == a.RoleID && str("secret_id") == a.SecretID {
			policies = a.Policies
			break
		}
	}
	if !isApprole {
		for _, k := range s.cfg.KubernetesRoles {
			if strings.Trim(k.Namespace, "/") != ns || k.Mount != mount {
				continue
			}
			found = true
			if str("role") != k.Role {
				continue
			}
			if str("jwt") != k.JWT {
				// Assumed: a JWT the TokenReview rejects is a 403.
				writeErrors(w, http.StatusForbidden, errPermissionDenied)
				return
			}
			policies = k.Policies
			break
		}
	}
	switch {
	case !found:
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route \"auth/%s/login\". route entry not found.", mount))
		return
	case policies == nil && isApprole:
		// Assumed: one text for a wrong role ID or secret ID.
		writeErrors(w, http.StatusBadRequest, "invalid role or secret ID")
		return
	case policies == nil:
		// Assumed: the text for an unknown Kubernetes role.
		writeErrors(w, http.StatusBadRequest, fmt.Sprintf("invalid role name %q", str("role")))
		return
	}
	v, t := s.issueToken(ns, policies)
	writeJSON(w, http.StatusOK, secretResponse(nil, authSection(v, t, time.Now()), nil))
}

// tokenAPI serves auth/token/{lookup-self,renew-self,revoke-self}, which
// Vault's default policy grants every token. Assumed: every token has the
// default policy, and other token endpoints are not needed.
func (s *Server) tokenAPI(w http.ResponseWriter, r *http.Request, value string, t *tokenInfo, p string, body []byte) {
	now := time.Now()
	ttl := func() int64 {
		if t.expires.IsZero() {
			return 0
		}
		return int64(t.expires.Sub(now).Round(time.Second) / time.Second)
	}
	switch {
	case p == "lookup-self" && r.Method == http.MethodGet:
		s.counts["lookup"]++
		writeJSON(w, http.StatusOK, secretResponse(map[string]any{
			"id":             value,
			"policies":       t.policies,
			"ttl":            ttl(),
			"renewable":      t.renewable,
			"namespace_path": nsPath(t.ns),
			"creation_time":  t.created.Unix(),
		}, nil, nil))
	case p == "renew-self" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		s.counts["renew"]++
		var in struct {
			Increment json.RawMessage `json:"increment"`
		}
		if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &in) != nil {
			writeErrors(w, http.StatusBadRequest, "failed to parse JSON input")
			return
		}
		inc := s.ttl
		if len(in.Increment) > 0 {
			d, err := parseDuration(in.Increment)
			if err != nil {
				writeErrors(w, http.StatusBadRequest, "1 error occurred:\n\t* invalid increment\n\n")
				return
			}
			if d > 0 {
				inc = d
			}
		}
		if !t.renewable || t.expires.IsZero() {
			writeErrors(w, http.StatusBadRequest, "lease is not renewable")
			return
		}
		var warnings []string
		t.expires = now.Add(inc)
		if t.expires.After(t.maxExpires) {
			t.expires = t.maxExpires
			warnings = []string{"TTL of the token was capped by its max TTL"}
		}
		writeJSON(w, http.StatusOK, secretResponse(nil, authSection(value, t, now), warnings))
	case p == "revoke-self" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		s.counts["revoke"]++
		delete(s.tokens, value)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeErrors(w, http.StatusNotFound, "1 error occurred:\n\t* unsupported path\n\n")
	}
}

func nsPath(ns string) string {
	if ns == "" {
		return ""
	}
	return ns + "/"
}

// parseDuration reads a Vault duration: seconds as a number or string,
// or a Go duration string.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var n int64
	if json.Unmarshal(raw, &n) == nil {
		return time.Duration(n) * time.Second, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// listKeys returns the children of folder among names: leaf names and
// "sub/" for sub-folders, sorted.
func listKeys(names []string, folder string) []string {
	seen := map[string]bool{}
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, folder)
		if !ok || rest == "" {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *Server) handleKV(c *call, mount, rest string) {
	e := s.kv[mountKey(c.ns, mount)]
	if e.version == 1 {
		s.kv1(c, e, mount, rest)
		return
	}
	sub, key, _ := strings.Cut(rest, "/")
	switch {
	case sub == "data" && key != "" && !strings.HasSuffix(key, "/"):
		s.kv2Data(c, e, mount, key)
	case sub == "metadata":
		s.kv2Metadata(c, e, mount, key)
	default:
		// Assumed: config, delete/, undelete/, destroy/ and subkeys/
		// are not needed; they are answered as unsupported.
		writeErrors(c.w, http.StatusNotFound, "1 error occurred:\n\t* unsupported path\n\n")
	}
}

func entryNames(e *kvEngine) []string {
	names := make([]string, 0, len(e.entries))
	for n := range e.entries {
		names = append(names, n)
	}
	return names
}

func (s *Server) kv1(c *call, e *kvEngine, mount, key string) {
	p := mount + "/" + key
	switch c.op {
	case "list":
		if !c.allowed(s, p, "list") {
			c.deny()
			return
		}
		keys := listKeys(entryNames(e), key)
		if len(keys) == 0 {
			writeErrors(c.w, http.StatusNotFound)
			return
		}
		writeJSON(c.w, http.StatusOK, secretResponse(map[string]any{"keys": keys}, nil, nil))
		return
	case "read":
		if !c.allowed(s, p, "read") {
			c.deny()
			return
		}
		ent := e.entries[key]
		if ent == nil {
			writeErrors(c.w, http.StatusNotFound)
			return
		}
		resp := secretResponse(ent.data, nil, nil)
		resp["lease_duration"] = 2764800 // KV v1 suggests a refresh after 768h
		writeJSON(c.w, http.StatusOK, resp)
		return
	case "delete":
		if !c.allowed(s, p, "delete") {
			c.deny()
			return
		}
		delete(e.entries, key)
		c.w.WriteHeader(http.StatusNoContent)
		return
	}
	// A write is "create" where nothing exists, "update" otherwise:
	// Vault's existence check. Assumed: the check and the write happen
	// as one step; in Vault they are separate storage operations.
	capability := "create"
	if e.entries[key] != nil {
		capability = "update"
	}
	if !c.allowed(s, p, capability) {
		c.deny()
		return
	}
	if key == "" || strings.HasSuffix(key, "/") {
		writeErrors(c.w, http.StatusBadRequest, "1 error occurred:\n\t* missing path\n\n")
		return
	}
	var data map[string]any
	if err := json.Unmarshal(c.body, &data); err != nil || data == nil {
		writeErrors(c.w, http.StatusBadRequest, "failed to parse JSON input")
		return
	}
	if len(c.body) > maxEntrySize {
		writeErrors(c.w, http.StatusInternalServerError, fmt.Sprintf("1 error occurred:\n\t* failed to persist: put failed due to value being too large; got %d bytes, max: %d bytes\n\n", len(c.body), maxEntrySize))
		return
	}
	e.put(key, data, time.Now())
	c.w.WriteHeader(http.StatusNoContent)
}

func versionMetadata(v *kvVersion, n int) map[string]any {
	return map[string]any{
		"created_time":    v.created.UTC().Format(time.RFC3339Nano),
		"custom_metadata": nil,
		"deletion_time":   "",
		"destroyed":       false,
		"version":         n,
	}
}

func (s *Server) kv2Data(c *call, e *kvEngine, mount, key string) {
	p := mount + "/data/" + key
	ent := e.entries[key]
	switch c.op {
	case "read":
		if !c.allowed(s, p, "read") {
			c.deny()
			return
		}
		n := 0
		if ent != nil {
			n = ent.current
		}
		if q := c.r.URL.Query().Get("version"); q != "" {
			v, err := strconv.Atoi(q)
			if err != nil || v < 0 {
				writeErrors(c.w, http.StatusBadRequest, "invalid version")
				return
			}
			if v > 0 {
				n = v
			}
		}
		var v *kvVersion
		if ent != nil {
			v = ent.versions[n]
		}
		if v == nil || v.deleted {
			// Assumed: a deleted version is answered like a missing
			// one (Vault adds the metadata to the 404 body).
			writeErrors(c.w, http.StatusNotFound)
			return
		}
		writeJSON(c.w, http.StatusOK, secretResponse(map[string]any{"data": v.data, "metadata": versionMetadata(v, n)}, nil, nil))
	case "delete":
		if !c.allowed(s, p, "delete") {
			c.deny()
			return
		}
		if ent != nil && ent.versions[ent.current] != nil {
			ent.versions[ent.current].deleted = true
		}
		c.w.WriteHeader(http.StatusNoContent)
	case "list":
		writeErrors(c.w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
	default:
		capability := "create"
		if ent != nil {
			capability = "update"
		}
		if !c.allowed(s, p, capability) {
			c.deny()
			return
		}
		var in struct {
			Options struct {
				CAS *int `json:"cas"`
			} `json:"options"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(c.body, &in); err != nil {
			writeErrors(c.w, http.StatusBadRequest, "failed to parse JSON input")
			return
		}
		if in.Data == nil {
			writeErrors(c.w, http.StatusBadRequest, "no data provided")
			return
		}
		cur := 0
		if ent != nil {
			cur = ent.current
		}
		if in.Options.CAS != nil && *in.Options.CAS != cur {
			writeErrors(c.w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
			return
		}
		if len(c.body) > maxEntrySize {
			writeErrors(c.w, http.StatusInternalServerError, fmt.Sprintf("1 error occurred:\n\t* failed to persist: put failed due to value being too large; got %d bytes, max: %d bytes\n\n", len(c.body), maxEntrySize))
			return
		}
		now := time.Now()
		n := e.put(key, in.Data, now)
		writeJSON(c.w, http.StatusOK, secretResponse(versionMetadata(e.entries[key].versions[n], n), nil, nil))
	}
}

func (s *Server) kv2Metadata(c *call, e *kvEngine, mount, key string) {
	p := mount + "/metadata/" + key
	switch c.op {
	case "list":
		if !c.allowed(s, p, "list") {
			c.deny()
			return
		}
		keys := listKeys(entryNames(e), key)
		if len(keys) == 0 {
			writeErrors(c.w, http.StatusNotFound)
			return
		}
		writeJSON(c.w, http.StatusOK, secretResponse(map[string]any{"keys": keys}, nil, nil))
	case "read":
		if !c.allowed(s, p, "read") {
			c.deny()
			return
		}
		ent := e.entries[key]
		if ent == nil || key == "" {
			writeErrors(c.w, http.StatusNotFound)
			return
		}
		versions := map[string]any{}
		for n, v := range ent.versions {
			versions[strconv.Itoa(n)] = versionMetadata(v, n)
		}
		writeJSON(c.w, http.StatusOK, secretResponse(map[string]any{
			"current_version": ent.current, "max_versions": 0, "cas_required": false, "versions": versions,
		}, nil, nil))
	case "delete":
		if !c.allowed(s, p, "delete") {
			c.deny()
			return
		}
		delete(e.entries, key)
		c.w.WriteHeader(http.StatusNoContent)
	default:
		// Assumed: writing metadata (max_versions, custom_metadata) is
		// not needed.
		writeErrors(c.w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
	}
}

func (s *Server) handleTransit(c *call, mount, rest string) {
	action, name, _ := strings.Cut(rest, "/")
	if (action != "encrypt" && action != "decrypt") || name == "" || strings.Contains(name, "/") {
		// Assumed: key management and the other transit endpoints are
		// not needed.
		writeErrors(c.w, http.StatusNotFound, "1 error occurred:\n\t* unsupported path\n\n")
		return
	}
	if c.op != "write" {
		writeErrors(c.w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	if !c.allowed(s, mount+"/"+rest, "update") {
		c.deny()
		return
	}
	k := s.transit[mountKey(c.ns, mount)][name]
	if k == nil {
		// Assumed: Vault would create the key on encrypt for a
		// policy with "create"; the emulator has fixed keys.
		writeErrors(c.w, http.StatusBadRequest, "encryption key not found")
		return
	}
	var in struct {
		Plaintext  string `json:"plaintext"`
		Ciphertext string `json:"ciphertext"`
	}
	if err := json.Unmarshal(c.body, &in); err != nil {
		writeErrors(c.w, http.StatusBadRequest, "failed to parse JSON input")
		return
	}
	if action == "encrypt" {
		pt, err := base64.StdEncoding.DecodeString(in.Plaintext)
		if err != nil {
			writeErrors(c.w, http.StatusBadRequest, "1 error occurred:\n\t* failed to base64-decode plaintext\n\n")
			return
		}
		n := len(k.versions)
		aead := newGCM(k.versions[n-1])
		nonce := randomBytes(aead.NonceSize())
		ct := aead.Seal(nonce, nonce, pt, nil)
		writeJSON(c.w, http.StatusOK, secretResponse(map[string]any{
			"ciphertext":  fmt.Sprintf("vault:v%d:%s", n, base64.StdEncoding.EncodeToString(ct)),
			"key_version": n,
		}, nil, nil))
		return
	}
	rest2, ok := strings.CutPrefix(in.Ciphertext, "vault:v")
	verStr, b64, ok2 := strings.Cut(rest2, ":")
	n, err := strconv.Atoi(verStr)
	if !ok || !ok2 || err != nil || n < 1 {
		writeErrors(c.w, http.StatusBadRequest, "1 error occurred:\n\t* invalid ciphertext: no prefix\n\n")
		return
	}
	if n > len(k.versions) {
		writeErrors(c.w, http.StatusBadRequest, "1 error occurred:\n\t* invalid ciphertext: version is too new\n\n")
		return
	}
	ct, err := base64.StdEncoding.DecodeString(b64)
	aead := newGCM(k.versions[n-1])
	if err != nil || len(ct) < aead.NonceSize() {
		writeErrors(c.w, http.StatusBadRequest, "1 error occurred:\n\t* invalid ciphertext: could not decode\n\n")
		return
	}
	pt, err := aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], nil)
	if err != nil {
		writeErrors(c.w, http.StatusBadRequest, "1 error occurred:\n\t* cipher: message authentication failed\n\n")
		return
	}
	writeJSON(c.w, http.StatusOK, secretResponse(map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}, nil, nil))
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return a
}
