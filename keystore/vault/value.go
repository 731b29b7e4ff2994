// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
)

// binaryPrefix marks a value stored as base64 because it is not
// printable ASCII. No minio/kes value starts with it.
const binaryPrefix = "kesbridge:base64:"

// isTransit reports whether field is a transit ciphertext, "vault:v<N>:".
func isTransit(field string) bool {
	rest, ok := strings.CutPrefix(field, "vault:v")
	if !ok {
		return false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	return n > 0 && n < len(rest) && rest[n] == ':'
}

// verbatim reports whether value can be stored as it is: printable ASCII
// that cannot be mistaken for one of the encoded forms.
func verbatim(value []byte) bool {
	for _, c := range value {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	s := string(value)
	return !strings.HasPrefix(s, binaryPrefix) && !isTransit(s)
}

// encode turns a value into the string field stored under the key name.
func (s *Store) encode(ctx context.Context, name string, value []byte) (string, error) {
	if s.cfg.Transit != nil {
		return s.transitEncrypt(ctx, name, value)
	}
	if verbatim(value) {
		return string(value), nil
	}
	return binaryPrefix + base64.StdEncoding.EncodeToString(value), nil
}

// decode is the inverse of encode. A transit ciphertext of any key
// version is decrypted; a plain field is accepted also with transit on
// (values written before transit was configured).
func (s *Store) decode(ctx context.Context, name, field string) ([]byte, error) {
	switch {
	case isTransit(field):
		if s.cfg.Transit == nil {
			return nil, fmt.Errorf("vault: get %q: the value is encrypted with a transit key, but no transit key is configured", name)
		}
		return s.transitDecrypt(ctx, name, field)
	case strings.HasPrefix(field, binaryPrefix):
		v, err := base64.StdEncoding.DecodeString(field[len(binaryPrefix):])
		if err != nil {
			return nil, fmt.Errorf("vault: get %q: malformed base64 value", name)
		}
		return v, nil
	}
	return []byte(field), nil
}

// transitEncrypt wraps value as minio/kes does: the plaintext sent to
// transit is the base64 of the value.
func (s *Store) transitEncrypt(ctx context.Context, name string, value []byte) (string, error) {
	op := fmt.Sprintf("create %q: transit encrypt", name)
	pt := base64.StdEncoding.EncodeToString(value)
	b, err := s.call(ctx, op, s.kv, request{
		method: http.MethodPut,
		path:   path.Join(s.cfg.Transit.Engine, "encrypt", s.cfg.Transit.Key),
		body:   map[string]string{"plaintext": pt},
		limit:  limitValue,
	}, true) // encrypting twice only costs a round trip
	if err != nil {
		return "", err
	}
	var d struct {
		Ciphertext string `json:"ciphertext"`
	}
	sb, err := parseSecret(b)
	if err == nil && json.Unmarshal(sb.Data, &d) != nil {
		err = errors.New("malformed answer")
	}
	if err == nil && !isTransit(d.Ciphertext) {
		err = errors.New("the answer holds no vault:vN: ciphertext")
	}
	if err != nil {
		return "", fmt.Errorf("vault: %s: %w", op, err)
	}
	return d.Ciphertext, nil
}

func (s *Store) transitDecrypt(ctx context.Context, name, field string) ([]byte, error) {
	op := fmt.Sprintf("get %q: transit decrypt", name)
	b, err := s.call(ctx, op, s.kv, request{
		method: http.MethodPut,
		path:   path.Join(s.cfg.Transit.Engine, "decrypt", s.cfg.Transit.Key),
		body:   map[string]string{"ciphertext": field},
		limit:  limitValue,
	}, true)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var d struct {
		Plaintext string `json:"plaintext"`
	}
	sb, err := parseSecret(b)
	if err == nil && json.Unmarshal(sb.Data, &d) != nil {
		err = errors.New("malformed answer")
	}
	if err != nil {
		return nil, fmt.Errorf("vault: %s: %w", op, err)
	}
	v, err := base64.StdEncoding.DecodeString(d.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("vault: %s: the plaintext is not base64", op)
	}
	return v, nil
}
