// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystore

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretRedaction(t *testing.T) {
	const value = "s3cr3t-Passw0rd-4711"
	s := NewSecret(value)
	type config struct {
		User     string
		Password Secret
		Tokens   []Secret
		ByName   map[string]Secret
	}
	values := map[string]any{
		"Secret":         s,
		"pointer":        &s,
		"struct":         config{User: "u", Password: s, Tokens: []Secret{s}, ByName: map[string]Secret{"a": s}},
		"pointer struct": &config{Password: s},
		"slice":          []Secret{s, s},
		"map":            map[string]Secret{"pin": s},
		"any slice":      []any{s},
		// fmt prints unexported fields by reflection, without calling
		// their methods.
		"unexported":         struct{ pw Secret }{s},
		"unexported pointer": struct{ c *config }{&config{Password: s}},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%#x", "%d", "%10v", "%-30s", "%.4s", "%+q", "%#q", "%c", "%U"}
	forbidden := []string{
		value[:12],
		hex.EncodeToString([]byte(value[:12])),
		strings.ToUpper(hex.EncodeToString([]byte(value[:12]))),
		fmt.Sprintf("% x", value[:12]),
		base64.StdEncoding.EncodeToString([]byte(value))[:12],
		base64.URLEncoding.EncodeToString([]byte(value))[:12],
		strings.Trim(fmt.Sprint([]byte(value[:6])), "[]"),
	}
	// Unexported fields print as an address: no value, no marker.
	hidden := map[string]bool{"unexported": true, "unexported_pointer": true}
	check := func(t *testing.T, what, out string) {
		t.Helper()
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Errorf("%s leaks the secret (%q): %q", what, f, out)
			}
		}
		if !strings.Contains(out, "redacted") && !hidden[t.Name()[len("TestSecretRedaction/"):]] {
			t.Errorf("%s does not say the value is redacted: %q", what, out)
		}
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for _, verb := range verbs {
				check(t, verb, fmt.Sprintf(verb, v))
			}
			check(t, "error", fmt.Errorf("login with %v: %w", v, errors.New("denied")).Error())
			var text, js bytes.Buffer
			slog.New(slog.NewTextHandler(&text, nil)).Info("m", "v", v)
			slog.New(slog.NewJSONHandler(&js, nil)).Info("m", "v", v)
			check(t, "slog text", text.String())
			check(t, "slog JSON", js.String())
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "json.Marshal", string(b))
			b, _ = s.MarshalText()
			check(t, "MarshalText", string(b))
		})
	}
	if s.Reveal() != value || s.IsZero() {
		t.Fatal("Reveal does not return the value")
	}
	if z := (Secret{}); !z.IsZero() || z.Reveal() != "" || !NewSecret("").IsZero() {
		t.Fatal("the zero Secret is not empty")
	}
	var back struct{ S Secret }
	if err := json.Unmarshal([]byte(`{"S":"`+value+`"}`), &back); err != nil || back.S.Reveal() != value {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	if got := fmt.Sprintf("%#v", s); got != `keystore.Secret("[redacted]")` {
		t.Errorf("%%#v = %s", got)
	}
}
