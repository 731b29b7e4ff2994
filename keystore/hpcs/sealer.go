// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/kesbridge/kes/keystore"
)

// Sealer seals values with an HPCS / Key Protect root key. It implements
// keystore.Sealer and is safe for concurrent use.
type Sealer struct {
	c *conn
}

var _ keystore.Sealer = (*Sealer)(nil)

// NewSealer connects to the instance and checks that the root key is
// usable (an *keystore.UnavailableError says why not).
func NewSealer(ctx context.Context, cfg Config) (*Sealer, error) {
	c, err := newConn(cfg)
	if err != nil {
		return nil, err
	}
	s := &Sealer{c: c}
	if _, err := c.rootKeyState(ctx); err != nil {
		c.close()
		return nil, err
	}
	return s, nil
}

// aad binds the key name. Names longer than an AAD element may be cannot
// be sealed.
func aad(name string) (*[]string, error) {
	if len(name) > 255 {
		return nil, errors.New("hpcs: key name is longer than 255 bytes")
	}
	return &[]string{name}, nil
}

// Seal wraps plaintext under the newest root key version with name as
// associated data.
func (s *Sealer) Seal(ctx context.Context, name string, plaintext []byte) ([]byte, error) {
	ad, err := aad(name)
	if err != nil {
		return nil, err
	}
	// An empty plaintext cannot go through wrap: the service reads a
	// missing plaintext as "create & wrap" and would return a random key.
	if len(plaintext) > 0 && len(plaintext) <= maxDirect {
		b64 := []byte(base64.StdEncoding.EncodeToString(plaintext))
		defer clear(b64)
		var ct []byte
		err := s.c.do(ctx, func(ctx context.Context) (err error) {
			ct, err = s.c.client.Wrap(ctx, s.c.rootKeyID, b64, ad)
			return err
		})
		if err != nil {
			return nil, s.sealError(ctx, err)
		}
		wrapped, err := decodeWrapped(string(ct))
		if err != nil {
			return nil, err
		}
		return sealedValue{format: formatDirect, wrapped: wrapped}.marshal(), nil
	}

	// Too large for the wrap action: let the service generate and wrap
	// a data key, and encrypt locally under it.
	var dek, ct []byte
	err = s.c.do(ctx, func(ctx context.Context) (err error) {
		dek, ct, err = s.c.client.WrapCreateDEK(ctx, s.c.rootKeyID, ad)
		return err
	})
	if err != nil {
		return nil, s.sealError(ctx, err)
	}
	key, err := base64.StdEncoding.DecodeString(string(dek))
	clear(dek)
	if err != nil || len(key) != 32 {
		return nil, errors.New("hpcs: the service returned a malformed data key")
	}
	defer clear(key)
	wrapped, err := decodeWrapped(string(ct))
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcmNonce)
	rand.Read(nonce)
	data := aead.Seal(nil, nonce, plaintext, envelopeAD(name))
	return sealedValue{format: formatEnvelope, wrapped: wrapped, nonce: nonce, data: data}.marshal(), nil
}

func envelopeAD(name string) []byte { return append([]byte{formatEnvelope}, name...) }

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("hpcs: %w", err)
	}
	return cipher.NewGCM(block)
}

func (s *Sealer) sealError(ctx context.Context, err error) error {
	err = s.c.rootKeyError(ctx, err)
	if errors.Is(err, errNotAuthentic) {
		// wrap never sees a ciphertext; a 422 here is the service's
		// problem, not a tampered value.
		return fmt.Errorf("hpcs: seal failed: unexpected answer from the service")
	}
	return err
}

// unwrap asks the service to unwrap one ciphertext. rewrapped is non-nil
// when the root key was rotated since the wrap.
func (s *Sealer) unwrap(ctx context.Context, name string, wrapped []byte) (plaintext, rewrapped []byte, err error) {
	ad, err := aad(name)
	if err != nil {
		return nil, nil, err
	}
	var pt, rw []byte
	err = s.c.do(ctx, func(ctx context.Context) (err error) {
		pt, rw, err = s.c.client.UnwrapV2(ctx, s.c.rootKeyID, []byte(base64.StdEncoding.EncodeToString(wrapped)), ad)
		return err
	})
	if err != nil {
		return nil, nil, s.c.rootKeyError(ctx, err)
	}
	plaintext, err = base64.StdEncoding.DecodeString(string(pt))
	clear(pt)
	if err != nil {
		return nil, nil, errors.New("hpcs: the service returned a malformed plaintext")
	}
	if len(rw) > 0 {
		if rewrapped, err = decodeWrapped(string(rw)); err != nil {
			clear(plaintext)
			return nil, nil, err
		}
	}
	return plaintext, rewrapped, nil
}

// Unseal decrypts a value that Seal produced for name. If the root key
// was rotated since, resealed is the value sealed under the newest
// version.
func (s *Sealer) Unseal(ctx context.Context, name string, sealed []byte) (plaintext, resealed []byte, err error) {
	v, err := parseSealed(sealed)
	if err != nil {
		return nil, nil, err
	}
	pt, rewrapped, err := s.unwrap(ctx, name, v.wrapped)
	if err != nil {
		return nil, nil, err
	}
	if rewrapped != nil {
		nv := v
		nv.wrapped = rewrapped
		resealed = nv.marshal()
	}
	if v.format == formatDirect {
		return pt, resealed, nil
	}
	defer clear(pt)
	if len(pt) != 32 {
		return nil, nil, errNotAuthentic
	}
	aead, err := newGCM(pt)
	if err != nil {
		return nil, nil, err
	}
	plaintext, err = aead.Open(nil, v.nonce, v.data, envelopeAD(name))
	if err != nil {
		return nil, nil, errNotAuthentic
	}
	return plaintext, resealed, nil
}

// Reseal returns sealed re-wrapped under the newest root key version, or
// sealed itself if it already is. Only the wrapped part changes; the
// service does the re-wrap as part of unwrap, so the plaintext is never
// needed here.
func (s *Sealer) Reseal(ctx context.Context, name string, sealed []byte) ([]byte, error) {
	v, err := parseSealed(sealed)
	if err != nil {
		return nil, err
	}
	pt, rewrapped, err := s.unwrap(ctx, name, v.wrapped)
	clear(pt)
	if err != nil {
		return nil, err
	}
	if rewrapped == nil || bytes.Equal(rewrapped, v.wrapped) {
		return sealed, nil
	}
	v.wrapped = rewrapped
	return v.marshal(), nil
}

// Status checks that the root key exists and is active.
func (s *Sealer) Status(ctx context.Context) (keystore.State, error) {
	latency, err := s.c.rootKeyState(ctx)
	if err != nil {
		return keystore.State{}, err
	}
	return keystore.State{Latency: latency}, nil
}

// Close releases idle connections. Later calls fail.
func (s *Sealer) Close() error {
	s.c.close()
	return nil
}

// String is "IBM HPCS: <endpoint> (root key <id>)".
func (s *Sealer) String() string { return s.c.String() }
