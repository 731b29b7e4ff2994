// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Sealer encrypts stored values under a root key that never leaves an HSM
// (IBM HPCS / Key Protect, a PKCS#11 token). Implementations bind the key
// name to every sealed value, so a sealed value copied under another name
// does not unseal.
type Sealer interface {
	// Seal encrypts plaintext under the newest root key version, with
	// name bound as associated data.
	Seal(ctx context.Context, name string, plaintext []byte) ([]byte, error)

	// Unseal decrypts a value that Seal produced for the same name.
	// If the root key was rotated since the value was sealed, resealed is
	// the same plaintext sealed under the newest root key version (the
	// caller should write it back); otherwise resealed is nil.
	Unseal(ctx context.Context, name string, sealed []byte) (plaintext, resealed []byte, err error)

	// Reseal returns sealed re-encrypted under the newest root key
	// version, or sealed itself if it already is.
	Reseal(ctx context.Context, name string, sealed []byte) ([]byte, error)

	// Status reports whether the root key is reachable and usable. A
	// disabled or deleted root key is an *UnavailableError whose Reason
	// says so ("root key disabled").
	Status(ctx context.Context) (State, error)

	Close() error

	// String describes the sealer, e.g. "PKCS#11: token kes, key kes-root".
	String() string
}

// SealOverhead is implemented by Sealers that know the most bytes Seal
// adds to a plaintext. The sealed store subtracts it from the underlying
// store's MaxValueSize; for a Sealer without it, DefaultSealOverhead.
type SealOverhead interface {
	MaxSealOverhead() int
}

// DefaultSealOverhead is what the sealed store assumes Seal adds when the
// Sealer does not say (see SealOverhead): more than the sealers of this
// module add.
const DefaultSealOverhead = 32 << 10

// SealedStore is a Store whose values are sealed by a Sealer before they
// reach the underlying store.
type SealedStore struct {
	store  Store
	sealer Sealer
	log    *slog.Logger
}

// Seal returns a Store that seals every value with sealer before writing it
// to store, and unseals on read. log receives write-back failures after
// root key rotation; nil discards them.
func Seal(store Store, sealer Sealer, log *slog.Logger) *SealedStore {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SealedStore{store: store, sealer: sealer, log: log}
}

// Capabilities are those of the underlying store, with MaxValueSize
// reduced by what sealing adds, so that every value the sealed store
// accepts still fits after sealing. Replace is linearizable if the
// underlying store's is: the sealed store's Replace is one Replace of the
// underlying store from the sealed value it compared.
func (s *SealedStore) Capabilities() Capabilities {
	c := CapabilitiesOf(s.store)
	overhead := DefaultSealOverhead
	if o, ok := s.sealer.(SealOverhead); ok {
		overhead = max(o.MaxSealOverhead(), 0)
	}
	c.MaxValueSize = max(c.MaxValueSize-overhead, 1)
	return c
}

func (s *SealedStore) Create(ctx context.Context, name string, value []byte) error {
	if err := CheckValueSize(value, s.Capabilities().MaxValueSize); err != nil {
		return err
	}
	sealed, err := s.sealer.Seal(ctx, name, value)
	if err != nil {
		return err
	}
	return s.store.Create(ctx, name, sealed)
}

func (s *SealedStore) Get(ctx context.Context, name string) ([]byte, error) {
	sealed, err := s.store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	plaintext, resealed, err := s.sealer.Unseal(ctx, name, sealed)
	if err != nil {
		return nil, err
	}
	if resealed != nil {
		// Best effort: the value is still readable under the old root
		// key version, so a failed write-back loses nothing and is
		// retried on the next read.
		if err := s.store.Replace(ctx, name, sealed, resealed); err != nil && !errors.Is(err, ErrConflict) {
			s.log.WarnContext(ctx, "failed to write back resealed key", "key", name, "err", err)
		}
	}
	return plaintext, nil
}

// Replace compares old with the unsealed current value, since sealing is
// randomised and the sealed bytes differ on every Seal.
func (s *SealedStore) Replace(ctx context.Context, name string, old, value []byte) error {
	if err := CheckValueSize(value, s.Capabilities().MaxValueSize); err != nil {
		return err
	}
	sealedOld, err := s.store.Get(ctx, name)
	if err != nil {
		return err
	}
	current, _, err := s.sealer.Unseal(ctx, name, sealedOld)
	if err != nil {
		return err
	}
	same := string(current) == string(old)
	clear(current)
	if !same {
		return ErrConflict
	}
	sealed, err := s.sealer.Seal(ctx, name, value)
	if err != nil {
		return err
	}
	return s.store.Replace(ctx, name, sealedOld, sealed)
}

// Reseal re-encrypts the value under name with the newest root key
// version. It reports whether the stored value changed.
func (s *SealedStore) Reseal(ctx context.Context, name string) (bool, error) {
	sealed, err := s.store.Get(ctx, name)
	if err != nil {
		return false, err
	}
	resealed, err := s.sealer.Reseal(ctx, name, sealed)
	if err != nil {
		return false, err
	}
	if string(resealed) == string(sealed) {
		return false, nil
	}
	return true, s.store.Replace(ctx, name, sealed, resealed)
}

func (s *SealedStore) Delete(ctx context.Context, name string) error {
	return s.store.Delete(ctx, name)
}

func (s *SealedStore) List(ctx context.Context, prefix string) ([]string, error) {
	return s.store.List(ctx, prefix)
}

// Status reports the worse of the store's and the sealer's state and the
// sum of their latencies.
func (s *SealedStore) Status(ctx context.Context) (State, error) {
	a, err := s.store.Status(ctx)
	if err != nil {
		return State{}, err
	}
	b, err := s.sealer.Status(ctx)
	if err != nil {
		return State{}, err
	}
	return State{Latency: a.Latency + b.Latency}, nil
}

// Sealer returns the sealer, for status reports.
func (s *SealedStore) Sealer() Sealer { return s.sealer }

// Unwrap returns the store the sealed values are written to.
func (s *SealedStore) Unwrap() Store { return s.store }

func (s *SealedStore) Close() error {
	return errors.Join(s.store.Close(), s.sealer.Close())
}

func (s *SealedStore) String() string {
	return fmt.Sprintf("%s (sealed by %s)", s.store, s.sealer)
}
