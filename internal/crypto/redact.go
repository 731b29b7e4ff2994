// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// Every type that holds key material prints a fixed description instead
// of its bytes: with String and GoString for the fmt verbs that ask for
// them, Format for all the others (%x or %d would otherwise print the
// fields), and LogValue for slog, which is consulted before slog's
// handlers look for encoding.TextMarshaler (KeyVersion's MarshalText is
// the stored value, key included). The descriptions say only what is
// not secret: the type of the key, or the length of opaque material.

// errNoJSON is returned by the MarshalJSON methods: a key in a JSON
// document is a bug, and failing is safer than encoding a placeholder
// that could be stored in place of the key.
var errNoJSON = errors.New("crypto: key material cannot be encoded as JSON")

// formatRedacted writes s for every verb and flag.
func formatRedacted(f fmt.State, s string) { io.WriteString(f, s) }

// String returns "crypto.SecretKey(<type>, redacted)".
func (k *SecretKey) String() string {
	if k == nil {
		return "crypto.SecretKey(nil)"
	}
	return "crypto.SecretKey(" + k.typ.String() + ", redacted)"
}

// GoString is String: %#v must not print the fields.
func (k *SecretKey) GoString() string { return k.String() }

// Format prints String for every verb and flag.
func (k *SecretKey) Format(f fmt.State, _ rune) { formatRedacted(f, k.String()) }

// LogValue makes slog log String.
func (k *SecretKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON fails: a secret key is never JSON.
func (k *SecretKey) MarshalJSON() ([]byte, error) { return nil, errNoJSON }

// String returns "crypto.HMACKey(redacted)".
func (k *HMACKey) String() string {
	if k == nil {
		return "crypto.HMACKey(nil)"
	}
	return "crypto.HMACKey(redacted)"
}

// GoString is String: %#v must not print the fields.
func (k *HMACKey) GoString() string { return k.String() }

// Format prints String for every verb and flag.
func (k *HMACKey) Format(f fmt.State, _ rune) { formatRedacted(f, k.String()) }

// LogValue makes slog log String.
func (k *HMACKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON fails: an HMAC key is never JSON.
func (k *HMACKey) MarshalJSON() ([]byte, error) { return nil, errNoJSON }

// String returns "crypto.SecretBytes(<n> bytes, redacted)".
func (s *SecretBytes) String() string {
	if s == nil {
		return "crypto.SecretBytes(nil)"
	}
	return "crypto.SecretBytes(" + strconv.Itoa(s.n) + " bytes, redacted)"
}

// GoString is String: %#v must not print the fields.
func (s *SecretBytes) GoString() string { return s.String() }

// Format prints String for every verb and flag.
func (s *SecretBytes) Format(f fmt.State, _ rune) { formatRedacted(f, s.String()) }

// LogValue makes slog log String.
func (s *SecretBytes) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON fails: secret bytes are never JSON.
func (s *SecretBytes) MarshalJSON() ([]byte, error) { return nil, errNoJSON }

// String describes v by its non-secret parts: the key type, whether it
// has an HMAC key and other material, and who created it when.
func (v *KeyVersion) String() string {
	if v == nil {
		return "crypto.KeyVersion(nil)"
	}
	s := "crypto.KeyVersion("
	if v.Key != nil {
		s += v.Key.typ.String() + ", "
	}
	if v.Material != nil {
		s += strconv.Itoa(v.Material.n) + " bytes of material, "
	}
	if v.HMACKey != nil {
		s += "HMAC, "
	}
	if !v.CreatedAt.IsZero() {
		s += "created " + v.CreatedAt.UTC().Format("2006-01-02T15:04:05Z") + ", "
	}
	if v.CreatedBy != "" {
		s += "by " + strconv.Quote(v.CreatedBy) + ", "
	}
	return s + "redacted)"
}

// GoString is String: %#v must not print the fields.
func (v *KeyVersion) GoString() string { return v.String() }

// Format prints String for every verb and flag.
func (v *KeyVersion) Format(f fmt.State, _ rune) { formatRedacted(f, v.String()) }

// LogValue makes slog log String instead of MarshalText, which is the
// stored value with the key in it.
func (v *KeyVersion) LogValue() slog.Value { return slog.StringValue(v.String()) }

// MarshalJSON fails instead of letting encoding/json fall back to
// MarshalText, the stored value with the key in it. The stored value is
// produced on purpose by calling MarshalText.
func (v *KeyVersion) MarshalJSON() ([]byte, error) { return nil, errNoJSON }
