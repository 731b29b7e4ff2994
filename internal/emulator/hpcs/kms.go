// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Key states (reference §2.9). There is no state 4.
const (
	StatePreActive   = 0
	StateActive      = 1
	StateSuspended   = 2
	StateDeactivated = 3
	StateDestroyed   = 5
)

const (
	maxStandardPayload = 7500
	// Assumed: the wrap action's plaintext limit is not documented; the
	// emulator applies the standard-key payload limit to it.
	maxWrapPlaintext = 7500
	maxBody          = 64 << 10
	maxAliasesPerKey = 5
	maxAliases       = 1000
	rotationInterval = time.Hour
	enableWait       = 30 * time.Second
)

type keyVersion struct {
	id       string
	created  time.Time
	material []byte
}

type key struct {
	id          string
	name        string
	description string
	aliases     []string
	extractable bool
	imported    bool
	payload     []byte        // standard keys
	versions    []*keyVersion // root keys, oldest first
	state       int
	ring        string
	created     time.Time
	updated     time.Time
	rotated     time.Time
	disabled    time.Time
	deleted     time.Time
	expires     *time.Time
	protecting  int // registrations of cloud resources
}

func (k *key) latest() *keyVersion { return k.versions[len(k.versions)-1] }

type versionJSON struct {
	ID           string `json:"id"`
	CreationDate string `json:"creationDate,omitempty"`
}

type algorithmMeta struct {
	BitLength string `json:"bitLength"`
	Mode      string `json:"mode"`
}

type dualAuth struct {
	Enabled bool `json:"enabled"`
}

type keyJSON struct {
	Type              string        `json:"type"`
	ID                string        `json:"id"`
	Name              string        `json:"name"`
	Aliases           []string      `json:"aliases,omitempty"`
	Description       string        `json:"description,omitempty"`
	State             int           `json:"state"`
	ExpirationDate    string        `json:"expirationDate,omitempty"`
	Extractable       bool          `json:"extractable"`
	KeyRingID         string        `json:"keyRingID"`
	CRN               string        `json:"crn"`
	Imported          bool          `json:"imported"`
	CreationDate      string        `json:"creationDate"`
	CreatedBy         string        `json:"createdBy"`
	AlgorithmType     string        `json:"algorithmType"`
	AlgorithmMetadata algorithmMeta `json:"algorithmMetadata"`
	AlgorithmBitSize  int           `json:"algorithmBitSize"`
	AlgorithmMode     string        `json:"algorithmMode"`
	LastUpdateDate    string        `json:"lastUpdateDate"`
	LastRotateDate    string        `json:"lastRotateDate,omitempty"`
	KeyVersion        *versionJSON  `json:"keyVersion,omitempty"`
	DualAuthDelete    dualAuth      `json:"dualAuthDelete"`
	Deleted           bool          `json:"deleted"`
	DeletedBy         string        `json:"deletedBy,omitempty"`
	DeletionDate      string        `json:"deletionDate,omitempty"`
	Payload           string        `json:"payload,omitempty"`
}

type keyCollection struct {
	Metadata  collectionMeta `json:"metadata"`
	Resources []keyJSON      `json:"resources"`
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

const createdBy = "iam-ServiceId-00000000-0000-0000-0000-000000000000"

func (s *Server) render(k *key, withPayload bool) keyJSON {
	bits := 256
	if len(k.versions) > 0 {
		bits = len(k.latest().material) * 8
	} else if k.imported {
		bits = len(k.payload) * 8
	}
	j := keyJSON{
		Type:              typeKey,
		ID:                k.id,
		Name:              k.name,
		Aliases:           slices.Clone(k.aliases),
		Description:       k.description,
		State:             k.state,
		Extractable:       k.extractable,
		KeyRingID:         k.ring,
		CRN:               "crn:v1:bluemix:public:kms:us-south:a/00000000000000000000000000000000:" + s.instanceID + ":key:" + k.id,
		Imported:          k.imported,
		CreationDate:      timeString(k.created),
		CreatedBy:         createdBy,
		AlgorithmType:     "Deprecated",
		AlgorithmMetadata: algorithmMeta{BitLength: strconv.Itoa(bits), Mode: "Deprecated"},
		AlgorithmBitSize:  bits,
		AlgorithmMode:     "Deprecated",
		LastUpdateDate:    timeString(k.updated),
		LastRotateDate:    timeString(k.rotated),
		Deleted:           k.state == StateDestroyed,
	}
	if k.expires != nil {
		j.ExpirationDate = timeString(*k.expires)
	}
	if len(k.versions) > 0 {
		v := k.latest()
		j.KeyVersion = &versionJSON{ID: v.id, CreationDate: timeString(v.created)}
	} else {
		// Assumed: standard keys report one version, their own ID.
		j.KeyVersion = &versionJSON{ID: k.id, CreationDate: timeString(k.created)}
	}
	if k.state == StateDestroyed {
		j.DeletedBy = createdBy
		j.DeletionDate = timeString(k.deleted)
	}
	if withPayload && k.extractable && k.state == StateActive {
		j.Payload = base64.StdEncoding.EncodeToString(k.payload)
	}
	return j
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /identity/token", s.handleToken)
	mux.HandleFunc("POST /oidc/token", s.handleToken)
	mux.HandleFunc("POST /api/v2/keys", s.authed(s.handleCreate))
	mux.HandleFunc("GET /api/v2/keys", s.authed(s.handleList))
	mux.HandleFunc("HEAD /api/v2/keys", s.authed(s.handleList))
	mux.HandleFunc("GET /api/v2/keys/{id}", s.authed(s.handleGet))
	mux.HandleFunc("GET /api/v2/keys/{id}/metadata", s.authed(s.handleGet))
	mux.HandleFunc("GET /api/v2/keys/{id}/versions", s.authed(s.handleVersions))
	mux.HandleFunc("DELETE /api/v2/keys/{id}", s.authed(s.handleDelete))
	mux.HandleFunc("POST /api/v2/keys/{id}/actions/{action}", s.authed(s.handleAction))
	mux.HandleFunc("POST /api/v2/keys/{id}/aliases/{alias}", s.authed(s.handleCreateAlias))
	mux.HandleFunc("DELETE /api/v2/keys/{id}/aliases/{alias}", s.authed(s.handleDeleteAlias))
	return s.middleware(mux)
}

// reqCtx is what the authentication step hands to every handler.
type reqCtx struct {
	ring string // x-kms-key-ring, "" if absent
}

// authed checks the bearer token, the instance and the key ring before a
// Key Protect handler runs. Assumed: the service does not insist on the
// documented Content-Type and Accept values, since the Go client sends
// "accept: application/json" and no Content-Type at all. The mutex is
// held while the handler runs, so every request is atomic, which the
// alias and delete semantics rely on.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, reqCtx) *apiError) http.HandlerFunc {
	return func(out http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(out, r.Body, maxBody)
		// The handler writes into a buffer, so that no network write
		// happens while the lock is held.
		w := &bufferedWriter{header: http.Header{}}
		defer w.flush(out)
		w.Header().Set("correlation-id", r.Header.Get("correlation-id"))
		s.mu.Lock()
		err := s.authenticate(r)
		var rc reqCtx
		if err == nil {
			rc.ring = r.Header.Get("x-kms-key-ring")
			if rc.ring != "" && !s.rings[rc.ring] {
				// Assumed: an unknown key ring is reported as not found.
				err = &apiError{status: http.StatusNotFound, msg: "Not Found: Key ring could not be found",
					code: "KEY_RING_NOT_FOUND_ERR", reason: "The key ring does not exist"}
			}
		}
		if err == nil {
			err = h(w, r, rc)
		}
		s.mu.Unlock()
		if err != nil {
			writeError(w, err)
		}
	}
}

func (s *Server) authenticate(r *http.Request) *apiError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		// Assumed: a missing token is answered like an invalid one.
		return errUnauthorized()
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return errBearer()
	}
	exp, ok := s.tokens[token]
	if !ok || !s.now().Before(exp) {
		return errUnauthorized()
	}
	// Assumed: a missing or foreign instance ID is answered like a
	// resource the caller has no access to.
	if r.Header.Get("bluemix-instance") != s.instanceID {
		return errUnauthorized()
	}
	return nil
}

type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

func (b *bufferedWriter) flush(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}

// lookup finds a key by ID or alias, honouring the key ring header.
func (s *Server) lookup(idOrAlias string, rc reqCtx) (*key, *apiError) {
	k, ok := s.keys[idOrAlias]
	if !ok {
		if id, found := s.aliases[idOrAlias]; found {
			k, ok = s.keys[id]
		}
	}
	if !ok || (rc.ring != "" && k.ring != rc.ring) {
		return nil, errNotFound("Key")
	}
	return k, nil
}

// decodeStrict reads a JSON body that must not carry unknown fields.
// empty reports a missing body (no bytes, or JSON null).
func decodeStrict(r *http.Request, v any) (empty bool, e *apiError) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return false, errBadBody("body too large or unreadable")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return true, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false, errBadBody(err.Error())
	}
	if dec.More() {
		return false, errBadBody("trailing data")
	}
	return false, nil
}

type createRequest struct {
	Metadata *struct {
		CollectionType  string `json:"collectionType"`
		CollectionTotal *int   `json:"collectionTotal"`
	} `json:"metadata"`
	Resources []createResource `json:"resources"`
}

type createResource struct {
	Type                string     `json:"type"`
	Name                string     `json:"name"`
	Description         string     `json:"description"`
	Aliases             []string   `json:"aliases"`
	Tags                []string   `json:"tags"`
	ExpirationDate      *time.Time `json:"expirationDate"`
	Extractable         *bool      `json:"extractable"`
	Payload             *string    `json:"payload"`
	EncryptedNonce      string     `json:"encryptedNonce"`
	IV                  string     `json:"iv"`
	EncryptionAlgorithm string     `json:"encryptionAlgorithm"`
}

var (
	aliasRE = regexp.MustCompile(`^[A-Za-z0-9_-]{2,90}$`)
	uuidRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

var reservedAliases = map[string]bool{
	"allowed_ip": true, "key": true, "keys": true, "metadata": true, "policy": true, "policies": true,
	"registration": true, "registrations": true, "ring": true, "rings": true, "rotate": true,
	"wrap": true, "unwrap": true, "rewrap": true, "version": true, "versions": true,
}

// aliasFree reports whether an alias can be given to a key now: it is
// neither in use nor still being released.
func (s *Server) aliasFree(a string) bool {
	if _, taken := s.aliases[a]; taken {
		return false
	}
	if until, ok := s.releasing[a]; ok {
		if s.now().Before(until) {
			return false
		}
		delete(s.releasing, a)
	}
	return true
}

// releaseAlias removes an alias. IBM documents that a deleted alias can
// take up to five minutes to be released; Assumed: until then it
// resolves to nothing and cannot be created again (409, as if taken).
// The emulator releases at once unless Config.AliasReleaseDelay is set.
func (s *Server) releaseAlias(a string) {
	delete(s.aliases, a)
	if s.aliasDelay > 0 {
		s.releasing[a] = s.now().Add(s.aliasDelay)
	}
}

func validAlias(a string) bool {
	return aliasRE.MatchString(a) && !uuidRE.MatchString(a) && !reservedAliases[a]
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, rc reqCtx) *apiError {
	var req createRequest
	empty, e := decodeStrict(r, &req)
	if e != nil {
		return e
	}
	if empty {
		return errNoBody()
	}
	if req.Metadata == nil || req.Metadata.CollectionTotal == nil {
		return errBadBody("metadata is empty")
	}
	if req.Metadata.CollectionType != typeKey {
		return errInvalidField("collectionType", typeKey)
	}
	if *req.Metadata.CollectionTotal != len(req.Resources) {
		return errCollectionTotal()
	}
	if len(req.Resources) != 1 {
		return errBadBody("exactly one resource is required")
	}
	res := req.Resources[0]
	if res.Type != "" && res.Type != typeKey {
		return errInvalidField("type", typeKey)
	}
	if n := len([]rune(res.Name)); n < 2 || n > 90 {
		return errInvalidField("name", "a string of 2 to 90 characters")
	}
	if len(res.Description) > 240 {
		return errInvalidField("description", "at most 240 characters")
	}
	if res.EncryptedNonce != "" || res.IV != "" || res.EncryptionAlgorithm != "" {
		// Assumed: secure import needs an import token, which the
		// emulator does not implement.
		return errInvalidField("encryptedNonce", "absent: secure import is not supported here")
	}
	// Assumed: an omitted extractable means a root key.
	extractable := res.Extractable != nil && *res.Extractable
	now := s.now()
	if res.ExpirationDate != nil && !res.ExpirationDate.After(now) {
		return errInvalidField("expirationDate", "a date in the future")
	}
	if len(res.Aliases) > maxAliasesPerKey {
		return errAliasQuota()
	}
	for i, a := range res.Aliases {
		if !validAlias(a) {
			return errInvalidField("aliases", "2 to 90 characters of A-Z, a-z, 0-9, _ and -, not a UUID or a reserved word")
		}
		if !s.aliasFree(a) || slices.Contains(res.Aliases[:i], a) {
			return errAliasTaken()
		}
	}
	if len(s.aliases)+len(res.Aliases) > maxAliases {
		return errAliasQuota()
	}
	k := &key{
		id:          newUUID(),
		name:        res.Name,
		description: res.Description,
		aliases:     slices.Clone(res.Aliases),
		extractable: extractable,
		state:       StateActive,
		ring:        "default",
		created:     now,
		updated:     now,
		expires:     res.ExpirationDate,
	}
	if rc.ring != "" {
		k.ring = rc.ring
	}
	var material []byte
	if res.Payload != nil {
		p, err := strictB64.DecodeString(*res.Payload)
		if err != nil {
			return errInvalidField("payload", "base64 encoded")
		}
		if extractable && (len(p) == 0 || len(p) > maxStandardPayload) {
			return errInvalidField("payload", "1 to 7500 bytes of key material")
		}
		if !extractable && len(p) != 16 && len(p) != 24 && len(p) != 32 {
			return errInvalidField("payload", "16, 24 or 32 bytes of key material")
		}
		material, k.imported = p, true
	} else {
		material = make([]byte, 32)
		rand.Read(material)
	}
	if extractable {
		k.payload = material
	} else {
		k.versions = []*keyVersion{{id: newUUID(), created: now, material: material}}
	}
	s.keys[k.id] = k
	for _, a := range k.aliases {
		s.aliases[a] = k.id
	}
	// Assumed: without prefer: return=representation the create
	// response carries no payload (the reference leaves it open).
	withPayload := r.Header.Get("Prefer") == "return=representation"
	writeJSON(w, http.StatusCreated, keyCollection{
		Metadata:  collectionMeta{CollectionType: typeKey, CollectionTotal: 1},
		Resources: []keyJSON{s.render(k, withPayload)},
	})
	return nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, rc reqCtx) *apiError {
	k, e := s.lookup(r.PathValue("id"), rc)
	if e != nil {
		return e
	}
	withPayload := !strings.HasSuffix(r.URL.Path, "/metadata")
	writeJSON(w, http.StatusOK, keyCollection{
		Metadata:  collectionMeta{CollectionType: typeKey, CollectionTotal: 1},
		Resources: []keyJSON{s.render(k, withPayload)},
	})
	return nil
}

func (s *Server) handleVersions(w http.ResponseWriter, r *http.Request, rc reqCtx) *apiError {
	k, e := s.lookup(r.PathValue("id"), rc)
	if e != nil {
		return e
	}
	// Assumed: the 409 for non-active keys uses KEY_ACTION_INVALID_STATE_ERR.
	if k.state != StateActive && r.URL.Query().Get("allKeyStates") != "true" {
		return errInvalidState("Key versions could not be listed", "Key is not in a valid state: set allKeyStates=true for non-active keys")
	}
	var out []versionJSON
	if len(k.versions) == 0 {
		out = []versionJSON{{ID: k.id, CreationDate: timeString(k.created)}}
	}
	for i := len(k.versions) - 1; i >= 0; i-- {
		out = append(out, versionJSON{ID: k.versions[i].id, CreationDate: timeString(k.versions[i].created)})
	}
	writeJSON(w, http.StatusOK, struct {
		Metadata  collectionMeta `json:"metadata"`
		Resources []versionJSON  `json:"resources"`
	}{collectionMeta{CollectionType: typeKeyVersion, CollectionTotal: len(out)}, out})
	return nil
}

// handleList serves GET and HEAD /api/v2/keys.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request, rc reqCtx) *apiError {
	q := r.URL.Query()
	limit, offset := 200, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			return errInvalidField("limit", "an integer from 1 to 5000")
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errInvalidField("offset", "a non-negative integer")
		}
		offset = n
	}
	states := map[int]bool{StatePreActive: true, StateActive: true, StateSuspended: true, StateDeactivated: true}
	if v := q.Get("state"); v != "" {
		states = map[int]bool{}
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 || n > 5 {
				return errInvalidField("state", "a comma-separated list of states 0 to 5")
			}
			states[n] = true
		}
	}
	var extractable *bool
	if v := q.Get("extractable"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errInvalidField("extractable", "true or false")
		}
		extractable = &b
	}
	match, e := parseSearch(q.Get("search"))
	if e != nil {
		return e
	}
	var all []*key
	for _, k := range s.keys {
		if !states[k.state] || (extractable != nil && k.extractable != *extractable) {
			continue
		}
		if rc.ring != "" && k.ring != rc.ring {
			continue
		}
		if match != nil && !match(k) {
			continue
		}
		all = append(all, k)
	}
	sortKeys(all, q.Get("sort"))
	if r.Method == http.MethodHead {
		w.Header().Set("Key-Total", strconv.Itoa(len(all)))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	page := []keyJSON{}
	for i := offset; i < len(all) && len(page) < limit; i++ {
		page = append(page, s.render(all[i], false))
	}
	writeJSON(w, http.StatusOK, keyCollection{
		Metadata:  collectionMeta{CollectionType: typeKey, CollectionTotal: len(page)},
		Resources: page,
	})
	return nil
}

// sortKeys orders by the sort parameter. Assumed: without one, keys come
// in creation order (ties by ID), which keeps offset paging stable.
func sortKeys(keys []*key, by string) {
	desc := strings.HasPrefix(by, "-")
	by = strings.TrimPrefix(by, "-")
	slices.SortFunc(keys, func(a, b *key) int {
		c := 0
		switch by {
		case "id":
			c = strings.Compare(a.id, b.id)
		case "state":
			c = a.state - b.state
		default:
			c = a.created.Compare(b.created)
		}
		if c == 0 {
			c = strings.Compare(a.id, b.id)
		}
		if desc {
			return -c
		}
		return c
	})
}

// parseSearch implements the search parameter's scopes (exact:, not:,
// escape:, alias:, name:). Assumed: the trailing comma the Go client
// appends to every search value is ignored, and matching without exact:
// is a case-sensitive substring match.
func parseSearch(v string) (func(*key) bool, *apiError) {
	v = strings.TrimSuffix(v, ",")
	if v == "" {
		return nil, nil
	}
	var exact, not, inName, inAlias bool
	for {
		switch {
		case strings.HasPrefix(v, "escape:"):
			v = strings.TrimPrefix(v, "escape:")
			goto done
		case strings.HasPrefix(v, "exact:"):
			exact, v = true, strings.TrimPrefix(v, "exact:")
		case strings.HasPrefix(v, "not:"):
			not, v = true, strings.TrimPrefix(v, "not:")
		case strings.HasPrefix(v, "name:"):
			inName, v = true, strings.TrimPrefix(v, "name:")
		case strings.HasPrefix(v, "alias:"):
			inAlias, v = true, strings.TrimPrefix(v, "alias:")
		default:
			goto done
		}
	}
done:
	if len(v) < 2 || len(v) > 90 {
		return nil, errInvalidField("search", "a search term of 2 to 90 characters")
	}
	if !inName && !inAlias {
		inName, inAlias = true, true
	}
	matches := func(s string) bool {
		if exact {
			return s == v
		}
		return strings.Contains(s, v)
	}
	return func(k *key) bool {
		hit := inName && matches(k.name)
		if inAlias {
			for _, a := range k.aliases {
				hit = hit || matches(a)
			}
		}
		return hit != not
	}, nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, rc reqCtx) *apiError {
	k, e := s.lookup(r.PathValue("id"), rc)
	if e != nil {
		return e
	}
	if k.state == StateDestroyed {
		return errDeleted("Key could not be deleted")
	}
	if k.protecting > 0 && r.URL.Query().Get("force") != "true" {
		return errProtected()
	}
	now := s.now()
	k.state, k.deleted, k.updated = StateDestroyed, now, now
	clear(k.payload)
	k.payload = nil
	for _, v := range k.versions {
		clear(v.material)
	}
	// Assumed: a deleted key gives up its aliases, released like a
	// deleted alias.
	for _, a := range k.aliases {
		s.releaseAlias(a)
	}
	k.aliases = nil
	if r.Header.Get("Prefer") == "return=representation" {
		writeJSON(w, http.StatusOK, keyCollection{
			Metadata:  collectionMeta{CollectionType: typeKey, CollectionTotal: 1},
			Resources: []keyJSON{s.render(k, false)},
		})
		return nil
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type aliasJSON struct {
	KeyID        string `json:"keyId"`
	Alias        string `json:"alias"`
	CreationDate string `json:"creationDate"`
	CreatedBy    string `json:"createdBy"`
}

func (s *Server) handleCreateAlias(w http.ResponseWriter, r *http.Request, rc reqCtx) *apiError {
	k, e := s.lookup(r.PathValue("id"), rc)
	if e != nil {
		return e
	}
	alias := r.PathValue("alias")
	if !validAlias(alias) {
		return errInvalidField("alias", "2 to 90 characters of A-Z, a-z, 0-9, _ and -, not a UUID or a reserved word")
	}
	if k.state == StateDestroyed {
		// Assumed: aliases cannot be added to a deleted key.
		return errDeleted("Alias could not be created")
	}
	if owner, taken := s.aliases[alias]; taken && owner != k.id {
		return errAliasTaken()
	} else if !taken {
		if !s.aliasFree(alias) {
			return errAliasTaken()
		}
		if len(k.aliases) >= maxAliasesPerKey || len(s.aliases) >= maxAliases {
			return errAliasQuota()
		}
		s.aliases[alias] = k.id
		k.aliases = append(k.aliases, alias)
	}
	// Assumed: adding an alias the key already has succeeds again.
	writeJSON(w, http.StatusCreated, struct {
		Metadata  collectionMeta `json:"metadata"`
		Resources []aliasJSON    `json:"resources"`
	}{collectionMeta{CollectionType: typeAlias, CollectionTotal: 1},
		[]aliasJSON{{KeyID: k.id, Alias: alias, CreationDate: timeString(s.now()), CreatedBy: createdBy}}})
	return nil
}

func (s *Server) handleDeleteAlias(w http.ResponseWriter, r *http.Request, rc reqCtx) *apiError {
	k, e := s.lookup(r.PathValue("id"), rc)
	if e != nil {
		return e
	}
	alias := r.PathValue("alias")
	if s.aliases[alias] != k.id {
		return errAliasNotFound()
	}
	s.releaseAlias(alias)
	k.aliases = slices.DeleteFunc(k.aliases, func(a string) bool { return a == alias })
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type actionRequest struct {
	Plaintext           *string  `json:"plaintext"`
	Ciphertext          *string  `json:"ciphertext"`
	AAD                 []string `json:"aad"`
	Payload             *string  `json:"payload"`
	EncryptedNonce      string   `json:"encryptedNonce"`
	IV                  string   `json:"iv"`
	EncryptionAlgorithm string   `json:"encryptionAlgorithm"`
	// The Go client marshals an empty keyVersion field into every
	// action request body.
	KeyVersion *versionJSON `json:"keyVersion"`
}

type actionResponse struct {
	Plaintext           string       `json:"plaintext,omitempty"`
	Ciphertext          string       `json:"ciphertext,omitempty"`
	KeyVersion          *versionJSON `json:"keyVersion,omitempty"`
	RewrappedKeyVersion *versionJSON `json:"rewrappedKeyVersion,omitempty"`
}

func versionOf(v *keyVersion) *versionJSON {
	return &versionJSON{ID: v.id, CreationDate: timeString(v.created)}
}

func (s *Server) handleAction(w http.ResponseWriter, r *http.Request, rc reqCtx) *apiError {
	k, e := s.lookup(r.PathValue("id"), rc)
	if e != nil {
		return e
	}
	action := r.PathValue("action")
	switch action {
	case "wrap", "unwrap", "rewrap", "rotate", "disable", "enable":
	default:
		// Assumed: unknown and unemulated actions (setKeyForDeletion,
		// sync, …) are answered as a bad action value.
		return errInvalidField("action", "one of wrap, unwrap, rewrap, rotate, disable, enable")
	}
	var req actionRequest
	empty, e := decodeStrict(r, &req)
	if e != nil {
		return e
	}
	if k.extractable && k.state != StateDestroyed {
		return errRootRequired(action)
	}
	// Assumed: every action on a deleted key is 410 KEY_DELETED_ERR; the
	// reference documents it for delete and unwrap.
	if k.state == StateDestroyed {
		if action == "unwrap" {
			return errDeleted("The key has been deleted and is no longer available. Please provide a valid key when performing an 'unwrap' action")
		}
		return errDeleted("The key has been deleted and is no longer available")
	}
	now := s.now()
	if k.expires != nil && !now.Before(*k.expires) && k.state == StateActive {
		k.state = StateDeactivated
	}
	switch action {
	case "wrap":
		// Assumed: an action body is optional for wrap (create & wrap)
		// and ignored for disable and enable.
		return s.wrap(w, k, req)
	case "unwrap", "rewrap":
		if empty || req.Ciphertext == nil || *req.Ciphertext == "" {
			return errNoBody()
		}
		return s.unwrap(w, k, req, action == "rewrap")
	case "rotate":
		return s.rotate(w, k, req)
	case "disable":
		if k.state != StateActive {
			return errInvalidState("Key is not in active state: Key could not be disabled", "Key is not in a valid state")
		}
		k.state, k.disabled, k.updated = StateSuspended, now, now
	case "enable":
		if k.state != StateSuspended {
			return errInvalidState("Key is not in suspended state: Key could not be enabled", "Key is not in a valid state")
		}
		// Assumed: the reference infers REQ_TOO_EARLY_ERR for an enable
		// within 30 seconds of the disable that the docs ask to wait.
		if !s.allowEarlyEnable && now.Sub(k.disabled) < enableWait {
			return errTooEarly()
		}
		k.state, k.updated = StateActive, now
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func checkAAD(aad []string) *apiError {
	for _, a := range aad {
		if len(a) > 255 {
			return errInvalidField("aad", "strings of at most 255 characters")
		}
	}
	return nil
}

func (s *Server) wrap(w http.ResponseWriter, k *key, req actionRequest) *apiError {
	switch k.state {
	case StateActive:
	case StateDeactivated:
		return &apiError{status: http.StatusBadRequest, msg: "Bad Request: Action could not be performed on key",
			code: "KEY_EXPIRED_ERR", reason: "The action could not be performed on the key because the key is expired"}
	default:
		// Assumed: the reference does not document the error for a wrap
		// on a Suspended key; it infers 409 KEY_ACTION_INVALID_STATE_ERR.
		return errInvalidState("Key is not in active state: Action could not be performed on key", "Key is not in a valid state")
	}
	if e := checkAAD(req.AAD); e != nil {
		return e
	}
	var res actionResponse
	var pt []byte
	if req.Plaintext == nil || *req.Plaintext == "" {
		pt = make([]byte, 32)
		rand.Read(pt)
		res.Plaintext = base64.StdEncoding.EncodeToString(pt)
	} else {
		var err error
		if pt, err = strictB64.DecodeString(*req.Plaintext); err != nil {
			return errInvalidField("plaintext", "base64 encoded")
		}
		if len(pt) > maxWrapPlaintext {
			return errInvalidField("plaintext", "at most 7500 bytes of data")
		}
	}
	v := k.latest()
	ct, err := seal(k.id, v, pt, req.AAD)
	clear(pt)
	if err != nil {
		return errUnavailable()
	}
	res.Ciphertext, res.KeyVersion = ct, versionOf(v)
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) unwrap(w http.ResponseWriter, k *key, req actionRequest, rewrap bool) *apiError {
	switch k.state {
	case StateActive, StateDeactivated:
	default:
		// Assumed: as for wrap on a Suspended key.
		return errInvalidState("Key is not in active state: Action could not be performed on key", "Key is not in a valid state")
	}
	if e := checkAAD(req.AAD); e != nil {
		return e
	}
	if _, err := base64.StdEncoding.DecodeString(*req.Ciphertext); err != nil {
		return errInvalidField("ciphertext", "base64 encoded")
	}
	pt, v, err := open(k.id, k.versions, *req.Ciphertext, req.AAD)
	if err != nil {
		return errCiphertext()
	}
	defer clear(pt)
	var res actionResponse
	latest := k.latest()
	if rewrap {
		ct, err := seal(k.id, latest, pt, req.AAD)
		if err != nil {
			return errUnavailable()
		}
		res.Ciphertext, res.KeyVersion, res.RewrappedKeyVersion = ct, versionOf(v), versionOf(latest)
	} else {
		res.Plaintext, res.KeyVersion = base64.StdEncoding.EncodeToString(pt), versionOf(v)
		if v != latest {
			ct, err := seal(k.id, latest, pt, req.AAD)
			if err != nil {
				return errUnavailable()
			}
			res.Ciphertext, res.RewrappedKeyVersion = ct, versionOf(latest)
		}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) rotate(w http.ResponseWriter, k *key, req actionRequest) *apiError {
	if k.state != StateActive && k.state != StateDeactivated {
		return errInvalidState("Key is not in active state: Key could not be rotated", "Key is not in a valid state")
	}
	now := s.now()
	// Assumed: only rotations count towards the one-per-hour rule, not
	// the key's creation.
	if !s.allowRotate && !k.rotated.IsZero() && now.Sub(k.rotated) < rotationInterval {
		return errRotation()
	}
	material := make([]byte, 32)
	switch {
	case k.imported && (req.Payload == nil || *req.Payload == ""):
		return errPayloadRequired()
	case req.Payload != nil && *req.Payload != "":
		if !k.imported {
			// Assumed: generated root keys rotate to generated material
			// only.
			return errInvalidField("payload", "absent for keys generated by the service")
		}
		p, err := strictB64.DecodeString(*req.Payload)
		if err != nil || (len(p) != 16 && len(p) != 24 && len(p) != 32) {
			return errInvalidField("payload", "16, 24 or 32 bytes of base64 encoded key material")
		}
		material = p
	default:
		rand.Read(material)
	}
	k.versions = append(k.versions, &keyVersion{id: newUUID(), created: now, material: material})
	k.rotated, k.updated = now, now
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// CreateRootKey creates a generated root key directly (without HTTP) and
// returns its ID.
func (s *Server) CreateRootKey(name string) (string, error) {
	if n := len(name); n < 2 || n > 90 {
		return "", errors.New("hpcs emulator: root key name must have 2 to 90 characters")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	material := make([]byte, 32)
	rand.Read(material)
	k := &key{id: newUUID(), name: name, state: StateActive, ring: "default", created: now, updated: now,
		versions: []*keyVersion{{id: newUUID(), created: now, material: material}}}
	s.keys[k.id] = k
	return k.id, nil
}

// KeyVersions returns the version IDs of a root key, oldest first.
func (s *Server) KeyVersions(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok {
		return nil
	}
	var ids []string
	for _, v := range k.versions {
		ids = append(ids, v.id)
	}
	return ids
}

// CiphertextVersion returns the root key version that a wrap ciphertext
// names, without decrypting it.
func CiphertextVersion(ciphertext string) (string, error) {
	handle, _, _, err := parseCiphertext(ciphertext)
	return handle, err
}

// KeyState returns the state of a key, or -1 if there is none.
func (s *Server) KeyState(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		return k.state
	}
	return -1
}

// StandardKeys returns the IDs of the standard keys in the given state,
// for tests that inspect what a driver stored.
func (s *Server) StandardKeys(state int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, k := range s.keys {
		if k.extractable && k.state == state {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Payload returns the material of a standard key.
func (s *Server) Payload(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		return slices.Clone(k.payload)
	}
	return nil
}

// Protect records that n cloud resources are registered to a key, which
// makes delete without force=true fail with PROTECTED_RESOURCE_ERR.
func (s *Server) Protect(id string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		k.protecting = n
	}
}

// KeyRingOf returns the key ring of a key, or "" if there is no such key.
func (s *Server) KeyRingOf(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		return k.ring
	}
	return ""
}
