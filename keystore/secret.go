// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystore

import (
	"fmt"
	"io"
	"log/slog"
)

// redacted is what a Secret prints instead of its value.
const redacted = "[redacted]"

// Secret is a credential: a password, PIN, access token or API key. It
// exists so that a credential cannot be printed by accident. Every fmt
// verb and flag, slog (text and JSON handlers), encoding/json and the
// text encoders print "[redacted]" instead of the value, also when the
// Secret sits in a struct, slice or map that is printed as a whole.
//
// The value sits behind a pointer rather than in a string field: fmt
// prints a nested pointer to a string as an address, and it falls back
// to printing values by reflection, without calling their methods, for
// unexported fields and inside its %!verb(...) error output. A string
// type would show its bytes there.
//
// The value is only obtained on purpose, with Reveal, where it is sent to
// the service it authenticates to. Secrets are immutable; the zero value
// is the empty secret. Compare secrets with Reveal, not ==, which
// compares identity.
type Secret struct {
	p *string
}

// NewSecret returns a Secret holding s.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{p: &s}
}

// Reveal returns the secret value. Callers must not log it, put it into
// errors or keep copies longer than needed.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether the secret is empty. It lets required
// credentials be checked without revealing them, and makes YAML's
// omitempty work.
func (s Secret) IsZero() bool { return s.p == nil || *s.p == "" }

// String returns "[redacted]".
func (s Secret) String() string { return redacted }

// GoString returns `keystore.Secret("[redacted]")`, so that %#v shows the
// type without the value.
func (s Secret) GoString() string { return `keystore.Secret("` + redacted + `")` }

// Format prints "[redacted]" for every verb and flag (GoString for %#v).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, s.GoString())
		return
	}
	io.WriteString(f, redacted)
}

// LogValue makes slog log "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON encodes a Secret as the JSON string "[redacted]": a config
// dumped as JSON must not carry credentials. A redacted document does
// not round-trip, by design.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]", for the encoders that use
// encoding.TextMarshaler (YAML, XML, slog's text handler).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalText sets the secret to text, verbatim. It is how YAML
// scalars and JSON strings become secrets: YAML hands over the scalar as
// written, so a PIN of 0123 stays "0123" and is not read as a number.
func (s *Secret) UnmarshalText(text []byte) error {
	*s = NewSecret(string(text))
	return nil
}
