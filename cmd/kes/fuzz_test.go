// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"strings"
	"testing"
)

// FuzzParseEndpoints: every endpoint is an https:// URL with something
// after the scheme, whatever the server variable holds.
func FuzzParseEndpoints(f *testing.F) {
	for _, s := range []string{"127.0.0.1:7373", "http://a:1,https://b:2/", " , ", "https://", ",,x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		endpoints, err := parseEndpoints(s)
		if err != nil {
			if len(endpoints) != 0 {
				t.Fatalf("error %v with endpoints %q", err, endpoints)
			}
			return
		}
		if len(endpoints) == 0 {
			t.Fatal("no endpoints and no error")
		}
		for _, e := range endpoints {
			if !strings.HasPrefix(e, "https://") || strings.HasPrefix(e, "https://http://") {
				t.Fatalf("endpoint %q of %q is not an https URL", e, s)
			}
		}
	})
}

// FuzzParseMinisignKey: key parsing never panics and never accepts an
// empty key.
func FuzzParseMinisignKey(f *testing.F) {
	f.Add("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3")
	f.Add("RW")
	f.Fuzz(func(t *testing.T, s string) {
		if !strings.HasPrefix(s, "RW") {
			return // a file name: not fuzzed
		}
		if k, err := parseMinisignKey(s); err == nil && k.ID() == 0 && len(s) < 10 {
			t.Fatalf("accepted %q", s)
		}
	})
}
