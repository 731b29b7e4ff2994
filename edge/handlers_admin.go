// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
)

// Version and Commit identify the build. Release builds set them with
// -ldflags "-X github.com/kesbridge/kes/edge.Version=... -X ...Commit=...";
// otherwise they come from the VCS information of the binary, or are
// "<unknown>".
var (
	Version string
	Commit  string
)

// BuildInfo returns the version and commit the server reports.
func BuildInfo() (version, commit string) {
	version, commit = Version, Commit
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.time" && version == "":
				version = strings.ReplaceAll(s.Value, ":", "-")
			case s.Key == "vcs.revision" && commit == "":
				commit = s.Value
			}
		}
	}
	if version == "" {
		version = "<unknown>"
	}
	if commit == "" {
		commit = "<unknown>"
	}
	return version, commit
}

func (c *call) version() {
	v, commit := BuildInfo()
	writeJSON(c.w, struct {
		Version string `json:"version"`
		Commit  string `json:"commit"`
	}{v, commit})
}

// health is the liveness probe: 200 with an empty body whenever the
// server answers requests, whatever its keystore does (readiness is
// /v1/ready). It needs no identity: a probe has no client certificate.
// The TLS handshake still asks for one unless some API has skip_auth
// (see tls.go), which is how a readiness probe on /v1/ready is set up
// anyway.
func (c *call) health() { writeOK(c.w) }

func (c *call) ready() {
	if _, err := c.st.keys.Status(c.r.Context()); err != nil {
		if errors.Is(err, keystore.ErrNotConnected) {
			writeError(c.w, http.StatusServiceUnavailable, "key store is unavailable: "+unavailableReason(err))
		} else if keystore.IsUnreachable(err) {
			writeError(c.w, http.StatusGatewayTimeout, "key store is not reachable")
		} else if reason := unavailableReason(err); reason != "" {
			writeError(c.w, http.StatusBadGateway, "key store is unavailable: "+reason)
		} else {
			writeError(c.w, http.StatusBadGateway, "key store is unavailable")
		}
		return
	}
	writeOK(c.w)
}

// status answers in the units the clients decode: keystore_latency as a
// Go duration (nanoseconds), uptime in seconds; an unreachable keystore
// is also reported as unavailable, which kms-go requires. keystore_error
// says why, in words safe to show ("root key disabled"), and
// keystore_linearizable whether the keystore's compare-and-swap holds
// across nodes (false: only within one node, and KMIP lifecycle changes
// take per-key leases). The other fields are this server's own (see
// statusExtra); kes-go and kms-go ignore every field they do not know.
func (c *call) status() {
	var resp struct {
		Version      string        `json:"version"`
		OS           string        `json:"os"`
		Arch         string        `json:"arch"`
		UpTime       int64         `json:"uptime"`
		CPUs         int           `json:"num_cpu"`
		UsableCPUs   int           `json:"num_cpu_used"`
		HeapAlloc    uint64        `json:"mem_heap_used"`
		StackAlloc   uint64        `json:"mem_stack_used"`
		Latency      time.Duration `json:"keystore_latency,omitempty"`
		Unreachable  bool          `json:"keystore_unreachable,omitempty"`
		Unavailable  bool          `json:"keystore_unavailable,omitempty"`
		Error        string        `json:"keystore_error,omitempty"`
		Linearizable bool          `json:"keystore_linearizable"`
		statusExtra
	}
	resp.Version, _ = BuildInfo()
	resp.OS, resp.Arch = runtime.GOOS, runtime.GOARCH
	resp.UpTime = int64(math.Round(time.Since(c.srv.started).Seconds()))
	resp.CPUs, resp.UsableCPUs = runtime.NumCPU(), runtime.GOMAXPROCS(0)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	resp.HeapAlloc, resp.StackAlloc = ms.HeapAlloc, ms.StackSys
	resp.Linearizable = keystore.CapabilitiesOf(c.st.keys.Store()).LinearizableReplace

	st, err := c.st.keys.Status(c.r.Context())
	resp.Keystore = c.st.keys.Store().String()
	resp.Driver = driverName(c.st.cfg)
	resp.State, resp.Error = keystoreState(err)
	switch {
	case err == nil:
		resp.Latency = max(st.Latency, time.Nanosecond)
	case keystore.IsUnreachable(err):
		resp.Unreachable, resp.Unavailable = true, true
	default:
		resp.Unavailable = true
	}
	c.srv.kmipStatus(&resp.statusExtra)
	c.sealStatus(&resp.statusExtra)
	writeJSON(c.w, resp)
}

// statusExtra are the /v1/status fields that minio/kes does not send.
type statusExtra struct {
	// Keystore describes the keystore (the banner's line) and Driver
	// names its driver.
	Keystore string `json:"keystore,omitempty"`
	Driver   string `json:"keystore_driver,omitempty"`
	// State is "available", "connecting" (not connected since start),
	// "unreachable" or "unavailable".
	State string `json:"keystore_state,omitempty"`

	// KMIPAddr is where the KMIP bridge listens and KMIPConns how many
	// connections it has; both absent without a kmip section.
	KMIPAddr  string `json:"kmip_address,omitempty"`
	KMIPConns *int   `json:"kmip_connections,omitempty"`

	// Seal describes the sealer (HPCS or PKCS#11 root key), SealState
	// is "available", "unreachable" or "unavailable", and SealError
	// says why; all absent without a seal section.
	Seal      string        `json:"seal,omitempty"`
	SealState string        `json:"seal_state,omitempty"`
	SealError string        `json:"seal_error,omitempty"`
	SealLat   time.Duration `json:"seal_latency,omitempty"`
}

// keystoreState names the state a Status error means, and the
// client-safe reason.
func keystoreState(err error) (state, reason string) {
	switch {
	case err == nil:
		return "available", ""
	case errors.Is(err, keystore.ErrNotConnected):
		return "connecting", cmp.Or(unavailableReason(err), "key store is unavailable")
	case keystore.IsUnreachable(err):
		return "unreachable", "key store is not reachable"
	default:
		return "unavailable", cmp.Or(unavailableReason(err), "key store is unavailable")
	}
}

// kmipStatus fills in the KMIP bridge's address and connections.
func (s *Server) kmipStatus(x *statusExtra) {
	if l := s.ops.kmipLive.Load(); l != nil {
		n := l.srv.Connections()
		x.KMIPAddr, x.KMIPConns = l.addr.String(), &n
	}
}

// sealStatus fills in the sealer's state, if the keystore is sealed.
func (c *call) sealStatus(x *statusExtra) {
	sealed := sealedStore(c.st.keys.Store())
	if sealed == nil {
		if c.st.cfg.Seal != nil {
			// Not connected yet: the sealer is opened with the store.
			x.Seal, x.SealState, x.SealError = "not connected", "unavailable", "not connected yet"
		}
		return
	}
	sealer := sealed.Sealer()
	x.Seal = sealer.String()
	st, err := sealer.Status(c.r.Context())
	x.SealState, x.SealError = keystoreState(err)
	if err == nil {
		x.SealLat = max(st.Latency, time.Nanosecond)
	}
}

// sealedStore finds the sealed store below the server's wrappers, or
// returns nil.
func sealedStore(s keystore.Store) *keystore.SealedStore {
	for s != nil {
		switch t := s.(type) {
		case *keystore.SealedStore:
			return t
		case *keystore.BackgroundStore:
			s = t.Connected()
		case interface{ Unwrap() keystore.Store }:
			s = t.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// unavailableReason returns the client-safe reason of an
// *keystore.UnavailableError, or "".
func unavailableReason(err error) string {
	var e *keystore.UnavailableError
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func (c *call) api() {
	type api struct {
		Method  string `json:"method"`
		Path    string `json:"path"`
		MaxBody int64  `json:"max_body"`
		Timeout int64  `json:"timeout"`
	}
	resp := make([]api, 0, len(c.st.routes))
	for _, r := range c.st.routes {
		resp = append(resp, api{r.Method, r.Path, r.MaxBody, int64(r.Timeout / time.Second)})
	}
	sort.Slice(resp, func(i, j int) bool { return resp[i].Path < resp[j].Path })
	writeJSON(c.w, resp)
}

// lookupPolicy returns the policy the resource names, or answers 400 or 404.
func (c *call) lookupPolicy() (string, *policy.Policy, bool) {
	name := c.resource
	if !policy.ValidName(name) {
		writeError(c.w, http.StatusBadRequest, fmt.Sprintf("policy name '%s' is empty, too long or contains invalid characters", name))
		return "", nil, false
	}
	p, ok := c.st.policies.Policies[name]
	if !ok {
		c.fail(errPolicyNotFound, opRead)
		return "", nil, false
	}
	return name, p, true
}

func (c *call) describePolicy() {
	name, p, ok := c.lookupPolicy()
	if !ok {
		return
	}
	writeJSON(c.w, struct {
		Name      string    `json:"name"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by,omitempty"`
	}{name, p.CreatedAt, p.CreatedBy})
}

// rules is a policy's patterns as the clients decode them: an object
// whose keys are the patterns.
func rules(patterns []string) map[string]struct{} {
	if len(patterns) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(patterns))
	for _, p := range patterns {
		m[p] = struct{}{}
	}
	return m
}

func (c *call) readPolicy() {
	name, p, ok := c.lookupPolicy()
	if !ok {
		return
	}
	writeJSON(c.w, struct {
		Name      string              `json:"name"`
		Allow     map[string]struct{} `json:"allow,omitempty"`
		Deny      map[string]struct{} `json:"deny,omitempty"`
		CreatedAt time.Time           `json:"created_at"`
		CreatedBy string              `json:"created_by,omitempty"`
	}{name, rules(p.Allow), rules(p.Deny), p.CreatedAt, p.CreatedBy})
}

func (c *call) listPolicies() {
	prefix, ok := c.listPrefix()
	if !ok {
		return
	}
	names := []string{}
	for name := range c.st.policies.Policies {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	writeJSON(c.w, struct {
		Names      []string `json:"names"`
		ContinueAt string   `json:"continue_at"`
	}{Names: names})
}

func (c *call) describeIdentity() {
	if !policy.ValidName(c.resource) {
		writeError(c.w, http.StatusBadRequest, fmt.Sprintf("identity '%s' is empty, too long or contains invalid characters", c.resource))
		return
	}
	type response struct {
		Admin     bool      `json:"admin,omitempty"`
		Policy    string    `json:"policy,omitempty"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by,omitempty"`
	}
	set := c.st.policies
	if set.Admin != "" && c.resource == set.Admin {
		writeJSON(c.w, response{Admin: true, CreatedAt: c.st.loadedAt})
		return
	}
	name, ok := set.Identities[c.resource]
	if !ok {
		c.fail(errIdentityMissing, opRead)
		return
	}
	writeJSON(c.w, response{Policy: name, CreatedAt: c.st.loadedAt, CreatedBy: set.Admin})
}

func (c *call) listIdentities() {
	prefix, ok := c.listPrefix()
	if !ok {
		return
	}
	ids := []string{}
	set := c.st.policies
	if set.Admin != "" && strings.HasPrefix(set.Admin, prefix) {
		ids = append(ids, set.Admin)
	}
	for id := range set.Identities {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	writeJSON(c.w, struct {
		Identities []string `json:"identities"`
		ContinueAt string   `json:"continue_at"`
	}{Identities: ids})
}

// selfDescribe tells the caller who it is. Unlike minio/kes it works for
// every identity with a policy, and it answers in the flat shape that
// both kes-go and kms-go decode: policy name, allow and deny side by
// side.
func (c *call) selfDescribe() {
	type response struct {
		Identity  identity.Identity   `json:"identity"`
		Admin     bool                `json:"admin,omitempty"`
		CreatedAt time.Time           `json:"created_at"`
		CreatedBy string              `json:"created_by,omitempty"`
		Policy    string              `json:"policy,omitempty"`
		Allow     map[string]struct{} `json:"allow,omitempty"`
		Deny      map[string]struct{} `json:"deny,omitempty"`
	}
	set := c.st.policies
	id := string(c.identity)
	if id != "" && set.Admin != "" && id == set.Admin {
		writeJSON(c.w, response{Identity: c.identity, Admin: true, CreatedAt: c.st.loadedAt})
		return
	}
	name, ok := set.Identities[id]
	if id == "" || !ok {
		c.fail(errIdentityMissing, opRead)
		return
	}
	p := set.Policies[name]
	writeJSON(c.w, response{
		Identity:  c.identity,
		CreatedAt: c.st.loadedAt,
		CreatedBy: set.Admin,
		Policy:    name,
		Allow:     rules(p.Allow),
		Deny:      rules(p.Deny),
	})
}

func (c *call) errorLog() { c.stream(c.srv.errorHub) }
func (c *call) auditLog() { c.stream(c.srv.auditHub) }
