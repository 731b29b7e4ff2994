// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// errNotDue ends the Update of a scheduled rotation that another node
// made already.
var errNotDue = errors.New("keys: rotation is not due")

// Rotate makes a new version of the key, created by by, and returns its
// number. From then on generate, encrypt and HMAC use it; every older
// version keeps decrypting. A 256-bit KES key gets a new key of the same
// algorithm and a new HMAC key; a KMIP object holding other material gets
// new random material of the same length. The key's lifecycle state and
// attributes are unchanged.
//
// Rotate goes through Update: a compare-and-swap on the keystore, under
// the key's lease where the keystore needs one, so that two concurrent
// rotations make two versions, never one version twice. This node's
// cache sees the new version at once; other nodes see it when their
// cached copy expires or, sooner, when they are asked to decrypt a
// ciphertext of the new version.
func (s *Service) Rotate(ctx context.Context, name, by string) (uint32, error) {
	n, err := s.rotate(ctx, name, by, 0)
	s.Progress().Rotated(err)
	return n, err
}

// RotateIfOlder rotates the key if its newest version is at least period
// old. The condition is checked again inside the compare-and-swap, so
// that of several nodes running the same schedule on one keystore
// exactly one makes the new version. rotated is false if the key was not
// due.
func (s *Service) RotateIfOlder(ctx context.Context, name, by string, period time.Duration) (n uint32, rotated bool, err error) {
	if period <= 0 {
		return 0, false, errors.New("keys: rotation period must be positive")
	}
	n, err = s.rotate(ctx, name, by, period)
	if errors.Is(err, errNotDue) {
		return 0, false, nil
	}
	s.Progress().Rotated(err)
	return n, err == nil, err
}

func (s *Service) rotate(ctx context.Context, name, by string, period time.Duration) (uint32, error) {
	var n uint32
	err := s.Update(ctx, name, func(o *Object) error {
		old := o.Version
		now := time.Now().UTC()
		if period > 0 && now.Sub(old.CreatedAt) < period {
			return errNotDue
		}
		if len(old.Older)+1 >= MaxVersions {
			return &LimitError{What: "number of key versions", Limit: MaxVersions}
		}
		next := old.VersionNumber() + 1
		if next == 0 {
			return &LimitError{What: "version number", Limit: 1<<32 - 1}
		}
		nv, err := s.nextVersion(old, next, by, now)
		if err != nil {
			return err
		}
		if old.ID == "" {
			if old.ID, err = newVersionID(old.VersionNumber(), s.rand); err != nil {
				nv.Destroy()
				return err
			}
		}
		old.Number = old.VersionNumber()
		nv.Older = append(slices.Clip(old.Older), old)
		old.Older, old.Meta = nil, nil
		o.Version = nv
		n = next
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// nextVersion makes the material of version n, like old's.
func (s *Service) nextVersion(old *crypto.KeyVersion, n uint32, by string, now time.Time) (*crypto.KeyVersion, error) {
	id, err := newVersionID(n, s.rand)
	if err != nil {
		return nil, err
	}
	nv := &crypto.KeyVersion{CreatedAt: now, CreatedBy: by, Number: n, ID: id}
	switch {
	case old.Key != nil:
		if nv.Key, err = crypto.GenerateSecretKey(old.Key.Type(), s.rand); err != nil {
			return nil, err
		}
		if nv.HMACKey, err = crypto.GenerateHMACKey(s.rand); err != nil {
			nv.Destroy()
			return nil, err
		}
	case old.Material != nil:
		b := make([]byte, old.Material.Len())
		defer clear(b)
		if _, err := io.ReadFull(s.rand, b); err != nil {
			return nil, fmt.Errorf("keys: failed to generate key: %w", err)
		}
		nv.Material = crypto.NewSecretBytes(b)
	default:
		return nil, ErrNotEncryptionKey
	}
	return nv, nil
}

// RetireVersion makes version n of the key decrypt-only. The current
// version cannot be retired (ErrVersionIsCurrent). Retiring a retired
// version is not an error.
func (s *Service) RetireVersion(ctx context.Context, name string, n uint32) error {
	return s.Update(ctx, name, func(o *Object) error {
		v, err := olderVersion(o, name, n)
		if err != nil {
			return err
		}
		v.State = string(VersionRetired)
		return nil
	})
}

// DestroyVersion removes version n from the key and wipes its material:
// its ciphertexts then fail to decrypt as not authentic (crypto.ErrDecrypt)
// and nothing else changes. Only a retired version can be destroyed
// (ErrVersionNotRetired); the current one never (ErrVersionIsCurrent).
//
// This node forgets the version at once. Another node that cached the key
// before the destroy keeps decrypting with the version until its cached
// copy expires (cache.expiry.any, or cache.expiry.unused for a key that
// is not used): crypto-shredding is complete on every node after the
// longest cache expiry.
func (s *Service) DestroyVersion(ctx context.Context, name string, n uint32) error {
	return s.Update(ctx, name, func(o *Object) error {
		v, err := olderVersion(o, name, n)
		if err != nil {
			return err
		}
		if VersionState(v.State) != VersionRetired {
			return fmt.Errorf("keys: key '%s' version %d: %w", name, n, ErrVersionNotRetired)
		}
		o.Version.Older = slices.DeleteFunc(o.Version.Older, func(x *crypto.KeyVersion) bool { return x == v })
		v.Destroy()
		return nil
	})
}

func olderVersion(o *Object, name string, n uint32) (*crypto.KeyVersion, error) {
	if n == o.Version.VersionNumber() {
		return nil, fmt.Errorf("keys: key '%s' version %d: %w", name, n, ErrVersionIsCurrent)
	}
	v := o.At(n)
	if v == nil {
		return nil, fmt.Errorf("keys: key '%s' version %d: %w", name, n, ErrVersionNotFound)
	}
	return v, nil
}
