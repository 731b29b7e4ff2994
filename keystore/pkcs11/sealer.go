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
// or one sealed for another name or under a key that is neither the root
// key nor a previous one (Config.PreviousRootKeyLabels), fails with
// ErrNotAuthentic. resealed is the plaintext sealed again under the root
// key if a previous root key opened the value, else nil.
func (s *Sealer) Unseal(ctx context.Context, name string, sealed []byte) (plaintext, resealed []byte, err error) {
	err = s.h.do(ctx, func(sh pkcs11.SessionHandle) error {
		var old bool
		plaintext, old, err = s.h.unsealAny(sh, name, sealed)
		if err != nil || !old {
			return err
		}
		resealed, err = s.h.seal(sh, name, plaintext)
		if err != nil {
			clear(plaintext)
			plaintext = nil
		}
		return err
	})
	return plaintext, resealed, err
}

// Reseal returns sealed re-encrypted under the root key if a previous root
// key sealed it, else sealed itself. Without previous root keys every
// well-formed value is already sealed under the root key, and Reseal only
// checks the format without reaching the token.
func (s *Sealer) Reseal(ctx context.Context, name string, sealed []byte) ([]byte, error) {
	if _, _, err := parseBlob(sealed); err != nil {
		return nil, err
	}
	if len(s.h.prev) == 0 {
		return bytes.Clone(sealed), nil
	}
	var resealed []byte
	err := s.h.do(ctx, func(sh pkcs11.SessionHandle) error {
		plaintext, old, err := s.h.unsealAny(sh, name, sealed)
		if err != nil {
			return err
		}
		defer clear(plaintext)
		if !old {
			resealed = bytes.Clone(sealed)
			return nil
		}
		resealed, err = s.h.seal(sh, name, plaintext)
		return err
	})
	return resealed, err
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
