// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"time"

	"github.com/kesbridge/kes/keystore"
	"github.com/miekg/pkcs11"
)

// Sealer is a keystore.Sealer that encrypts with AES-256-GCM inside a
// PKCS#11 token, under a root key that cannot leave it. It is safe for
// concurrent use.
type Sealer struct {
	h *hsm
}

var _ keystore.Sealer = (*Sealer)(nil)

// NewSealer loads cfg.Module, finds the token labelled cfg.TokenLabel,
// logs in with cfg.PIN and finds the AES-256 key labelled
// cfg.RootKeyLabel, creating it if cfg.CreateRootKey is set. cfg.Dir is
// ignored. The Sealer holds sessions until Close.
func NewSealer(ctx context.Context, cfg Config) (*Sealer, error) {
	h, err := openHSM(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Sealer{h: h}, nil
}

// Seal encrypts plaintext with name bound as associated data, in the
// format described in the package documentation.
func (s *Sealer) Seal(ctx context.Context, name string, plaintext []byte) ([]byte, error) {
	var sealed []byte
	err := s.h.do(ctx, func(sh pkcs11.SessionHandle) (err error) {
		sealed, err = s.h.seal(sh, name, plaintext)
		return err
	})
	return sealed, err
}

// Unseal decrypts a value that Seal produced for name. A modified value,
// or one sealed for another name or under another root key, fails with
// ErrNotAuthentic. resealed is always nil: the root key has no versions.
func (s *Sealer) Unseal(ctx context.Context, name string, sealed []byte) (plaintext, resealed []byte, err error) {
	err = s.h.do(ctx, func(sh pkcs11.SessionHandle) (err error) {
		plaintext, err = s.h.unseal(sh, name, sealed)
		return err
	})
	return plaintext, nil, err
}

// Reseal returns sealed unchanged: a PKCS#11 root key has no versions, so
// every well-formed value is already sealed under the newest one. It
// checks the format without reaching the token.
func (s *Sealer) Reseal(_ context.Context, _ string, sealed []byte) ([]byte, error) {
	if _, _, err := parseBlob(sealed); err != nil {
		return nil, err
	}
	return bytes.Clone(sealed), nil
}

// Status looks the root key up on the token. A missing root key is a
// *keystore.UnavailableError with Reason "root key not found"; an
// unreachable token a *keystore.UnreachableError.
func (s *Sealer) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	err := s.h.do(ctx, func(sh pkcs11.SessionHandle) error {
		root, err := s.h.findRootKey(sh)
		if err != nil {
			return err
		}
		s.h.setRoot(root)
		return nil
	})
	if err != nil {
		return keystore.State{}, err
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Close closes the sessions, logs out and finalises the module when no
// other Sealer or Store in the process uses it. Calls after Close fail.
func (s *Sealer) Close() error { return s.h.Close() }

// String returns "PKCS#11: token <label>, root key <label>".
func (s *Sealer) String() string { return s.h.String() }
