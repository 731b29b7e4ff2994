// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// ErrNotRotatable: a rotation of a key whose material the server cannot
// make anew meaningfully (secret data, opaque objects, keys of an
// algorithm the server does not implement). New random bytes would
// silently replace what a client stored, such as a password.
var ErrNotRotatable = errors.New("key of this type cannot be rotated")

// errNotDue ends the Update of a scheduled rotation that another node
// made already, or of a key the schedule does not rotate.
var errNotDue = errors.New("keys: rotation is not due")

// Rotate makes a new version of the key, created by by, and returns its
// number. From then on generate, encrypt and HMAC use it; every older
// version keeps decrypting. A 256-bit KES key gets a new key of the same
// algorithm and a new HMAC key; a KMIP AES or HMAC key held as raw
// material gets new random material of the same length. Any other key
// (secret data, opaque objects, keys of other algorithms) is refused
// with ErrNotRotatable: its material is the client's, not one the server
// can generate. The key's lifecycle state and attributes are unchanged.
//
// Rotate is the rotation of the KES API (PUT /v1/key/rotate): it refuses
// a key whose newest version is not Active (ErrNotActive), so that a
// rotation never undoes a KMIP Revoke by giving a Deactivated or
// Compromised key a working version. Only KMIP Re-key, an explicit KMIP
// operation on that key, may do so (RekeyKMIP).
//
// Rotate goes through Update: a compare-and-swap on the keystore, under
// the key's lease where the keystore needs one, so that two concurrent
// rotations make two versions, never one version twice. This node's
// cache sees the new version at once; other nodes see it when their
// cached copy expires or, sooner, when they are asked to decrypt a
// ciphertext of the new version.
func (s *Service) Rotate(ctx context.Context, name, by string) (uint32, error) {
	n, err := s.rotate(ctx, name, by, 0, false)
	s.Progress().Rotated(err)
	return n, err
}

// RekeyKMIP is KMIP Re-key: Rotate, except that the key's newest version
// may be in any state. The new version is Active (Pre-Active if the key
// was never activated), also when the one it replaces is Compromised or
// Deactivated, as KMIP asks of a replacement key.
func (s *Service) RekeyKMIP(ctx context.Context, name, by string) (uint32, error) {
	n, err := s.rotate(ctx, name, by, 0, true)
	s.Progress().Rotated(err)
	return n, err
}

// RotateIfOlder rotates the key if its newest version is at least period
// old and Active, and the key can be rotated (see Rotate). The condition is checked again inside the
// compare-and-swap, so that of several nodes running the same schedule
// on one keystore exactly one makes the new version. rotated is false if
// the key was not due, is not Active (a schedule never undoes a KMIP
// Revoke) or cannot be rotated.
func (s *Service) RotateIfOlder(ctx context.Context, name, by string, period time.Duration) (n uint32, rotated bool, err error) {
	if period <= 0 {
		return 0, false, errors.New("keys: rotation period must be positive")
	}
	n, err = s.rotate(ctx, name, by, period, false)
	if errors.Is(err, errNotDue) {
		return 0, false, nil
	}
	s.Progress().Rotated(err)
	return n, err == nil, err
}

// rotate makes the new version. anyState is KMIP Re-key's: the newest
// version need not be Active.
func (s *Service) rotate(ctx context.Context, name, by string, period time.Duration, anyState bool) (uint32, error) {
	var n uint32
	err := s.Update(ctx, name, func(o *Object) error {
		old := o.Version
		now := time.Now().UTC()
		if period > 0 && now.Sub(old.CreatedAt) < period {
			return errNotDue
		}
		if !anyState && !o.Meta.State.Active() {
			if period > 0 {
				return errNotDue
			}
			return fmt.Errorf("keys: key '%s': %w", name, ErrNotActive)
		}
		if !rotatable(o) {
			if period > 0 {
				return errNotDue
			}
			return fmt.Errorf("keys: key '%s': %w", name, ErrNotRotatable)
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
		// The old version keeps its lifecycle state and KMIP record
		// (versionstate.go); the new one is Active, or Pre-Active if the
		// key had not been activated yet: with RekeyKMIP, a Compromised
		// or Deactivated key is replaced by one that works.
		old.Number = old.VersionNumber()
		old.State = string(versionStateOf(o.Meta.State))
		old.Meta = nil
		if len(o.Meta.KMIP) > 0 || o.Meta.Dates != nil {
			// The old version keeps its dates too. The new one keeps
			// the key's, as KMIP Re-key without an Offset copies them
			// (and as the KMIP record it inherits shows them); the
			// bridge's Re-key then sets the new version's own.
			if old.Meta, err = json.Marshal(Metadata{KMIP: o.Meta.KMIP, Dates: o.Meta.Dates}); err != nil {
				nv.Destroy()
				return fmt.Errorf("keys: failed to encode metadata: %w", err)
			}
		}
		nv.Older = append(slices.Clip(old.Older), old)
		old.Older = nil
		o.Version = nv
		if o.Meta.State != StatePreActive {
			o.Meta.State = StateActive
		}
		n = next
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// rotatable reports whether the server can make new material for the
// key: a KES key (a SecretKey and HMAC key), or raw material of an AES
// or HMAC key of a length the server itself would create or accept.
func rotatable(o *Object) bool {
	v := o.Version
	switch {
	case v.Key != nil:
		return true
	case v.Material == nil:
		return false
	}
	n := v.Material.Len()
	switch UsageOf(o).Algorithm {
	case AlgorithmAES:
		return n == 16 || n == 24 || n == 32
	case AlgorithmHMACSHA256, AlgorithmHMACSHA384, AlgorithmHMACSHA512:
		return n >= 16 && n <= 128
	}
	return false
}

// nextVersion makes the material of version n, like old's. The caller
// has checked that the key is rotatable.
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
// version cannot be retired (ErrVersionIsCurrent). Retiring a version
// that is not Active (retired, compromised, pre-active) leaves its state
// as it is and is not an error.
func (s *Service) RetireVersion(ctx context.Context, name string, n uint32) error {
	return s.Update(ctx, name, func(o *Object) error {
		v, err := olderVersion(o, name, n)
		if err != nil {
			return err
		}
		if VersionState(v.State) == VersionActive {
			v.State = string(VersionRetired)
		}
		return nil
	})
}

// DestroyVersion removes version n from the key and wipes its material:
// its ciphertexts then fail to decrypt as not authentic (crypto.ErrDecrypt)
// and nothing else changes. Only a version that is not Active (retired,
// or compromised or pre-active over KMIP) can be destroyed
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
		if VersionState(v.State) == VersionActive {
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
