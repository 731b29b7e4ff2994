// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotAllowed is the answer to every request a policy does not allow,
// with the text KES clients match.
var ErrNotAllowed = errors.New("not authorized: insufficient permissions")

// Policy allows and denies request paths. A pattern matches a path if it
// equals the path, or if it ends in '*' and the path starts with the
// pattern without that '*'. No other character is special.
type Policy struct {
	Allow []string
	Deny  []string

	// CreatedAt and CreatedBy are reported by the policy APIs. Policies
	// come from the config file: the time is when it was loaded and the
	// creator the admin identity.
	CreatedAt time.Time
	CreatedBy string
}

// Match reports whether pattern matches path.
func Match(pattern, path string) bool {
	if pattern == "" {
		return false
	}
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return pattern == path
}

// Verify returns nil if path is allowed: no deny pattern matches it (deny
// wins) and some allow pattern does. Otherwise it returns ErrNotAllowed.
func (p *Policy) Verify(path string) error {
	for _, pattern := range p.Deny {
		if Match(pattern, path) {
			return ErrNotAllowed
		}
	}
	for _, pattern := range p.Allow {
		if Match(pattern, path) {
			return nil
		}
	}
	return ErrNotAllowed
}

// Set is the authorisation state of a server: the admin and which policy
// each identity has. Both front doors check requests against it, the
// HTTP API with URL paths and the KMIP bridge with paths like
// /kmip/get/<id>. A Set must not be modified once in use; a reload
// builds a new one.
type Set struct {
	// Admin may do everything. Empty means there is no admin.
	Admin string

	// Policies by name.
	Policies map[string]*Policy

	// Identities maps an identity to the name of its policy.
	Identities map[string]string
}

// Authorize returns nil if identity may request path, and ErrNotAllowed
// otherwise: an unknown identity, one without a policy, or a policy that
// denies the path.
func (s *Set) Authorize(identity, path string) error {
	if identity == "" {
		return ErrNotAllowed
	}
	if s.Admin != "" && identity == s.Admin {
		return nil
	}
	name, ok := s.Identities[identity]
	if !ok {
		return ErrNotAllowed
	}
	p, ok := s.Policies[name]
	if !ok {
		return ErrNotAllowed
	}
	return p.Verify(path)
}

// CheckPattern returns an error saying why pattern can never match a
// request path, or nil if it can. Patterns are matched as Match does:
// "*" matches every path, and otherwise a path always starts with '/',
// holds no whitespace, '?' or '#' (the query and fragment are not part
// of it), and '*' is special only as the last character. A pattern that
// breaks one of these rules is accepted by minio/kes and silently never
// matches, so a deny rule written like that protects nothing: configs
// are checked with CheckPattern when they are loaded.
func CheckPattern(pattern string) error {
	if pattern == "" {
		return errors.New("policy: empty pattern never matches")
	}
	if pattern == "*" {
		return nil
	}
	if pattern[0] != '/' {
		return errors.New("policy: pattern does not start with '/' (request paths do) and never matches")
	}
	if i := strings.IndexByte(pattern, '*'); i >= 0 && i != len(pattern)-1 {
		return errors.New("policy: '*' is only a wildcard as the last character; elsewhere it is a literal '*' and the pattern never matches")
	}
	for _, c := range []byte(pattern) {
		switch {
		case c <= ' ' || c == 0x7f:
			return errors.New("policy: pattern contains whitespace or a control character and never matches")
		case c == '?' || c == '#':
			return fmt.Errorf("policy: pattern contains '%c', which a request path never does (patterns are not globs)", c)
		}
	}
	return nil
}

// ValidPattern reports whether a list pattern is acceptable: the
// characters of a key name, optionally followed by one trailing '*'. The
// empty pattern and "*" are valid.
func ValidPattern(pattern string) bool {
	if pattern == "" || pattern == "*" {
		return true
	}
	name, _ := strings.CutSuffix(pattern, "*")
	return len(name) <= 80 && validChars(name)
}

// ValidName reports whether s is a valid key, policy or identity name:
// 1 to 80 characters of [0-9A-Za-z_-], not starting or ending with '-',
// and not exactly "_". Stored names that start with '-' are therefore
// never keys: the key service keeps its lease records under them
// (keys.LeasePrefix), and this rule must not be relaxed.
func ValidName(s string) bool {
	if s == "" || len(s) > 80 || s == "_" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	return validChars(s)
}

func validChars(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
