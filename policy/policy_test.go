// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, path string
		want          bool
	}{
		{"/v1/key/create/my-app*", "/v1/key/create/my-app", true},
		{"/v1/key/create/my-app*", "/v1/key/create/my-app-key", true},
		{"/v1/key/create/my-app*", "/v1/key/create/my-apple", true},
		{"/v1/key/create/my-app*", "/v1/key/create/my-ap", false},
		{"/v1/status", "/v1/status", true},
		{"/v1/status", "/v1/status/", false},
		{"/v1/status", "/v1/statusx", false},
		{"/v1/key/list/*", "/v1/key/list/", true},
		{"/v1/key/list/*", "/v1/key/list", false},
		{"/v1/*/create/x", "/v1/key/create/x", false}, // '*' in the middle is literal
		{"/v1/key/?", "/v1/key/a", false},
		{"", "", false},
		{"", "/v1/status", false},
		{"*", "/anything", true},
	} {
		if got := Match(tt.pattern, tt.path); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

func TestVerify(t *testing.T) {
	p := &Policy{
		Allow: []string{"/v1/key/generate/my-app*", "/v1/key/describe/*"},
		Deny:  []string{"/v1/key/generate/my-app-internal*"},
	}
	for path, allowed := range map[string]bool{
		"/v1/key/generate/my-app":            true,
		"/v1/key/generate/my-app-internal":   false, // deny wins
		"/v1/key/generate/my-app-internal-x": false,
		"/v1/key/describe/anything":          true,
		"/v1/key/create/other":               false,
	} {
		if err := p.Verify(path); (err == nil) != allowed || (err != nil && !errors.Is(err, ErrNotAllowed)) {
			t.Errorf("Verify(%q) = %v, want allowed=%v", path, err, allowed)
		}
	}
	if err := (&Policy{}).Verify("/v1/status"); err == nil {
		t.Error("an empty policy allowed a request")
	}
}

func TestSet(t *testing.T) {
	admin := strings.Repeat("a", 64)
	user := strings.Repeat("b", 64)
	s := &Set{
		Admin:      admin,
		Policies:   map[string]*Policy{"p": {Allow: []string{"/v1/status"}}},
		Identities: map[string]string{user: "p", strings.Repeat("c", 64): "missing"},
	}
	for _, tt := range []struct {
		id, path string
		ok       bool
	}{
		{admin, "/v1/key/delete/x", true},
		{user, "/v1/status", true},
		{user, "/v1/key/delete/x", false},
		{strings.Repeat("c", 64), "/v1/status", false},
		{strings.Repeat("d", 64), "/v1/status", false},
		{"", "/v1/status", false},
	} {
		if err := s.Authorize(tt.id, tt.path); (err == nil) != tt.ok {
			t.Errorf("Authorize(%.8s, %q) = %v, want ok=%v", tt.id, tt.path, err, tt.ok)
		}
	}
	noAdmin := &Set{}
	if noAdmin.Authorize("", "/v1/status") == nil {
		t.Error("the empty identity is admin when the admin is disabled")
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"my-key": true, "a": true, "A_b-9": true, "_x": true, "x_": true, strings.Repeat("k", 80): true,
		"": false, "_": false, "-a": false, "a-": false, strings.Repeat("k", 81): false,
		"a/b": false, "../x": false, "a.b": false, "a b": false, "ä": false, "a*": false,
		"-kes-lease-0123456789abcdef0123456789abcdef-0": false, // a lease record of internal/keys
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
	for pattern, want := range map[string]bool{
		"": true, "*": true, "my*": true, "my-": true, "my-key": true,
		"m*y": false, "my**": false, "a/b*": false, strings.Repeat("k", 81): false,
	} {
		if got := ValidPattern(pattern); got != want {
			t.Errorf("ValidPattern(%q) = %v, want %v", pattern, got, want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("/v1/key/create/my*", "/v1/key/create/my-key")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		got := Match(pattern, path)
		if pattern == path && pattern != "" && !got {
			t.Fatal("a pattern does not match itself")
		}
		if got && !strings.HasSuffix(pattern, "*") && pattern != path {
			t.Fatal("a pattern without '*' matched another path")
		}
		if got && strings.HasSuffix(pattern, "*") && !strings.HasPrefix(path, pattern[:len(pattern)-1]) {
			t.Fatal("a prefix pattern matched a path without the prefix")
		}
		ValidPattern(pattern)
		ValidName(path)
	})
}

func TestCheckPattern(t *testing.T) {
	for _, p := range []string{"*", "/", "/v1/status", "/v1/key/list/*", "/v1/key/create/my-app*", "/kmip/*", "/v1/key/decrypt/minio-internal*", "/*"} {
		if err := CheckPattern(p); err != nil {
			t.Errorf("CheckPattern(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "**", "/v1/key/*/secret", "/v1/*/create/x", "/v1/key/**", "v1/status", "key/*", " /v1/status", "/v1/status ", "/v1/key/\t", "/v1/key/?", "/v1/key/a#b", "/v1/\x00"} {
		err := CheckPattern(p)
		if err == nil {
			t.Errorf("CheckPattern(%q) = nil, want an error", p)
			continue
		}
		if !strings.HasPrefix(err.Error(), "policy: ") {
			t.Errorf("CheckPattern(%q) = %q, want a 'policy: ' prefix", p, err)
		}
	}
}

// FuzzCheckPattern checks that every pattern CheckPattern accepts
// matches some path, and that Match and CheckPattern never panic.
func FuzzCheckPattern(f *testing.F) {
	for _, p := range []string{"*", "/v1/status", "/v1/key/list/*", "/v1/key/*/secret", "", "v1", "/a?b", "/\x7f"} {
		f.Add(p, "/v1/status")
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		if Match(pattern, path) && pattern == "" {
			t.Fatalf("the empty pattern matched %q", path)
		}
		if CheckPattern(pattern) != nil {
			return
		}
		// The path the pattern names matches it: a valid pattern is
		// never dead.
		if p := strings.TrimSuffix(pattern, "*"); !Match(pattern, p) && pattern != "*" {
			t.Fatalf("valid pattern %q does not match %q", pattern, p)
		}
		if pattern != "*" && (pattern[0] != '/' || strings.Contains(pattern[:len(pattern)-1], "*")) {
			t.Fatalf("CheckPattern accepted %q", pattern)
		}
	})
}
