// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Exact error texts of the vault API that the driver maps to sentinels.
const (
	textSecretExists   = "Secret already exists"
	textSecretNotFound = "Secret not found"
)

// Response size limits.
const (
	limitCheckout = 1 << 20  // a secret: a key value is a few hundred bytes
	limitList     = 10 << 20 // one page of names
	limitSmall    = 1 << 20  // login, renew, box and write answers
	limitError    = 64 << 10 // error bodies are read only to show a message
)

// apiError is a non-200 answer of the vault API.
type apiError struct {
	Status  int    // HTTP status code
	Message string // the "error" field of a JSON body; empty otherwise
	JSON    bool   // whether the body was a JSON error object
}

func (e *apiError) Error() string {
	msg := http.StatusText(e.Status)
	if msg == "" {
		msg = "unknown status"
	}
	s := "server answered " + strconv.Itoa(e.Status) + " " + msg
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// is reports whether e is the given status with exactly the given JSON
// error text. Matching is exact and case-sensitive, as minio/kes does.
func (e *apiError) is(status int, text string) bool {
	return e.Status == status && e.JSON && e.Message == text
}

// parseError builds the apiError for a non-200 answer. Only a JSON body
// with a string "error" field yields a message; anything else (HTML from
// a proxy, an empty body) is reported by status alone. The message is
// shortened and stripped of control characters because it ends up in logs.
func parseError(status int, contentType string, body []byte) *apiError {
	e := &apiError{Status: status}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return e
	}
	var v struct {
		Error *string `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil || v.Error == nil {
		return e
	}
	e.JSON = true
	e.Message = sanitize(*v.Error)
	return e
}

func sanitize(s string) string {
	const max = 200
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return s
}

// parseTokenResponse decodes a Login or Renew answer. expires_at is
// parsed leniently (see parseExpiry); a missing or unreadable expiry is
// the zero time, which callers treat as "unknown".
func parseTokenResponse(body []byte) (token string, expires time.Time, err error) {
	var v struct {
		AccessToken *string         `json:"access_token"`
		ExpiresAt   json.RawMessage `json:"expires_at"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", time.Time{}, errors.New("malformed response")
	}
	if v.AccessToken == nil || *v.AccessToken == "" {
		return "", time.Time{}, errors.New("the server returned no access token")
	}
	var s string
	if json.Unmarshal(v.ExpiresAt, &s) == nil {
		expires = parseExpiry(s)
	}
	return *v.AccessToken, expires, nil
}

// parseExpiry reads expires_at: RFC 3339 (the documented form, e.g.
// "2023-03-22T16:34:34.021762Z") or, in case a server leaves out the zone,
// the same without it, taken as UTC. Anything else is the zero time.
func parseExpiry(s string) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t.UTC()
	}
	return time.Time{}
}

// checkoutResponse is the part of a CheckoutSecret answer the driver uses.
type checkoutResponse struct {
	SecretData json.RawMessage `json:"secret_data"`
}

// decodeSecretData returns the stored value from a CheckoutSecret answer:
// secret_data must be a JSON string holding standard padded base64, which
// is how minio/kes writes a []byte. A KV secret (a JSON object) or any
// other shape is not a key written by KES.
func decodeSecretData(body []byte) ([]byte, error) {
	var v checkoutResponse
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, errors.New("malformed response")
	}
	defer clear(v.SecretData) // a copy of the key's encoding
	var s string
	if err := json.Unmarshal(v.SecretData, &s); err != nil {
		return nil, errors.New("secret_data is not a string: the secret was not written by KES")
	}
	value, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("secret_data is not base64: the secret was not written by KES")
	}
	return value, nil
}

// encodeSecretData is the inverse of decodeSecretData's inner layer.
func encodeSecretData(value []byte) string {
	return base64.StdEncoding.EncodeToString(value)
}

// listResponse is one ListSecretIds page.
type listResponse struct {
	Secrets []struct {
		Name    string `json:"name"`
		Expired bool   `json:"expired"`
	} `json:"secrets"`
	NextToken string `json:"next_token"`
}

// parseListPage decodes one page and returns the names of unexpired
// secrets that start with prefix, and the continuation token. The token
// is opaque to the driver: it is handed back unchanged.
func parseListPage(body []byte, prefix string) (names []string, next string, err error) {
	var v listResponse
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, "", errors.New("malformed response")
	}
	for _, s := range v.Secrets {
		if s.Expired || s.Name == "" || !strings.HasPrefix(s.Name, prefix) {
			continue
		}
		names = append(names, s.Name)
	}
	return names, v.NextToken, nil
}
