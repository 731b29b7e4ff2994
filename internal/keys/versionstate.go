// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/kesbridge/kes/internal/crypto"
)

// Per-version lifecycle state
//
// Every version of a key has its own lifecycle state, so that KMIP, which
// sees each version as an object of its own, can revoke, activate and
// destroy one version without touching the others:
//   - the newest version's state is the key's state, Metadata.State, as
//     it always was (a key never rotated has only this one);
//   - an older version's state is its stored version state (field 20 of
//     the stored value): VersionActive, VersionRetired (KMIP Deactivated:
//     decrypt only), VersionCompromised (decrypt only) or VersionPreActive
//     (nothing);
//   - an older version may keep a KMIP record of its own (its Meta, with
//     only Metadata.KMIP set). Usage and export attributes belong to the
//     key and are the same for every version.
//
// A view of one version (With of a VersionRef, UpdateVersion) shows that
// version's state in Meta.State, so the state checks of every operation
// apply to the version it uses.

// Further version states, besides VersionActive and VersionRetired.
const (
	// VersionCompromised versions only decrypt (KMIP Compromised).
	VersionCompromised VersionState = "Compromised"
	// VersionPreActive versions do nothing until activated (KMIP
	// Pre-Active): the state of the older version of a key rotated
	// before it was activated.
	VersionPreActive VersionState = "PreActive"
)

// versionStateOf is the stored version state of lifecycle state s.
func versionStateOf(s State) VersionState {
	switch s {
	case StateDeactivated:
		return VersionRetired
	case StateCompromised:
		return VersionCompromised
	case StatePreActive:
		return VersionPreActive
	default:
		return VersionActive
	}
}

// lifecycle is the lifecycle state of a version in state vs.
func (vs VersionState) lifecycle() State {
	switch vs {
	case VersionActive:
		return StateActive
	case VersionCompromised:
		return StateCompromised
	case VersionPreActive:
		return StatePreActive
	default:
		// VersionRetired, and any state a later release may write:
		// decrypt only is the safe reading.
		return StateDeactivated
	}
}

// stateOf returns the lifecycle state of version v of the key.
func (o *Object) stateOf(v *crypto.KeyVersion) State {
	r := o.root()
	if v == r.Version {
		return r.Meta.State // With and Update have applied the dates
	}
	return o.datesOf(v).effective(VersionState(v.State).lifecycle(), o.clockNow())
}

// versionMeta returns the metadata a view of version v shows: the key's,
// with v's state and, for an older version that has one, v's own KMIP
// record.
func (o *Object) versionMeta(v *crypto.KeyVersion) Metadata {
	r := o.root()
	m := r.Meta
	if v == r.Version {
		return m
	}
	m.State = o.stateOf(v)
	m.Dates = nil // the key's dates are its newest version's
	if len(v.Meta) > 0 {
		var own Metadata
		if json.Unmarshal(v.Meta, &own) == nil {
			if len(own.KMIP) > 0 {
				m.KMIP = own.KMIP
			}
			m.Dates = own.Dates
		}
	}
	return m
}

// setVersionMeta stores the state and KMIP record of a view of an older
// version in that version.
func setVersionMeta(v *crypto.KeyVersion, m Metadata, keyKMIP json.RawMessage) error {
	v.State = string(versionStateOf(m.State))
	if m.Dates != nil && m.Dates.IsZero() {
		m.Dates = nil
	}
	if m.Dates == nil && (len(m.KMIP) == 0 || string(m.KMIP) == string(keyKMIP) && len(v.Meta) == 0) {
		// Nothing of its own: the version shows the key's record.
		if len(m.KMIP) == 0 {
			v.Meta = nil
		}
		return nil
	}
	if m.Dates != nil {
		if err := m.Dates.Check(); err != nil {
			return err
		}
	}
	own := Metadata{KMIP: m.KMIP, Dates: m.Dates}
	if string(m.KMIP) == string(keyKMIP) && len(v.Meta) == 0 {
		own.KMIP = nil
	}
	b, err := json.Marshal(own)
	if err != nil {
		return fmt.Errorf("keys: failed to encode metadata: %w", err)
	}
	v.Meta = b
	return nil
}

// UpdateVersion is Update for one version of a key: fn sees the view of
// version n (as With of VersionRef(name, n) shows it) and may change its
// Meta.State and Meta.KMIP, which are stored with that version. For the
// newest version that is the key's own metadata, exactly as Update. Usage
// changes of an older version's view are not stored (usage belongs to
// the key), and neither is the state Destroyed: DestroyKMIPVersion
// destroys versions.
func (s *Service) UpdateVersion(ctx context.Context, name string, n uint32, fn func(o *Object) error, opts ...UpdateOption) error {
	return s.Update(ctx, name, func(o *Object) error {
		v := o.At(n)
		if v == nil {
			return fmt.Errorf("keys: key '%s' version %d: %w", name, n, ErrVersionNotFound)
		}
		if v == o.Version {
			if err := fn(o); err != nil {
				return err
			}
			if o.Meta.State == StateDestroyed {
				return errors.New("keys: a version is destroyed with DestroyKMIPVersion")
			}
			return nil
		}
		view := o.view(v)
		before, err := usageOf(view.Meta)
		if err != nil {
			return err
		}
		if err := fn(view); err != nil {
			return err
		}
		if view.Meta.State == StateDestroyed {
			return errors.New("keys: a version is destroyed with DestroyKMIPVersion")
		}
		after, err := usageOf(view.Meta)
		if err != nil {
			return err
		}
		if err := checkGrowth(before, after); err != nil {
			return err
		}
		if o.Meta.Usage == nil && len(o.Meta.KMIP) == 0 && len(view.Meta.KMIP) > 0 {
			// A KES key's version gets a KMIP record: pin the key's
			// usage, as Update does, so the record does not make it
			// read as a KMIP key (see pinUsage).
			u := kesUsage(o)
			o.Meta.Usage = &u
		}
		return setVersionMeta(v, view.Meta, o.Meta.KMIP)
	}, opts...)
}

// ErrDestroyActive: KMIP Destroy of a version that is Active. As for a
// key, it needs the version revoked first.
var ErrDestroyActive = errors.New("key version is active: revoke it before destroying it")

// DestroyKMIPVersion is KMIP Destroy of version n of key name, under the
// lifecycle table (doc.go):
//   - a KES key is refused (ErrKESManaged), a version that is Active too
//     (ErrDestroyActive);
//   - an older version is shredded: removed from the stored key and
//     wiped, so its ciphertexts fail as not authentic; every other
//     version is unchanged;
//   - the newest version is destroyed only as the key's last one: then the
//     key as a whole is destroyed (claimed with the state Destroyed in the
//     same compare-and-swap, then deleted, as Delete does). While older
//     versions remain it is refused (ErrVersionIsCurrent): the key would
//     lose the version that generate, encrypt and HMAC use.
//
// As DestroyVersion, a shredded version stays usable on other nodes
// until their cached copy of the key expires.
func (s *Service) DestroyKMIPVersion(ctx context.Context, name string, n uint32) error {
	if IsReserved(name) {
		return ErrKeyNotFound
	}
	// One lease across the claim and the delete, as Delete holds it.
	lctx, release, err := s.lease(ctx, name)
	if err != nil {
		return err
	}
	settled := true // no write of ours can still land
	defer func() { release(settled) }()
	err = s.destroyKMIPVersion(lctx, name, n, &settled)
	return s.leaseEnded(ctx, lctx, name, err)
}

func (s *Service) destroyKMIPVersion(ctx context.Context, name string, n uint32, settled *bool) error {
	whole := false
	err := s.update(ctx, name, func(o *Object) error {
		whole = false
		if err := CheckKMIPStateChange(o); err != nil {
			return err
		}
		v := o.At(n)
		if v == nil {
			return fmt.Errorf("keys: key '%s' version %d: %w", name, n, ErrVersionNotFound)
		}
		if o.stateOf(v) == StateActive {
			return ErrDestroyActive
		}
		if v != o.Version {
			o.Version.Older = slices.DeleteFunc(o.Version.Older, func(x *crypto.KeyVersion) bool { return x == v })
			v.Destroy()
			return nil
		}
		if len(o.Version.Older) > 0 {
			return fmt.Errorf("keys: key '%s' version %d: %w", name, n, ErrVersionIsCurrent)
		}
		o.Meta.State = StateDestroyed
		whole = true
		return nil
	}, updateConfig{lifecycle: true}, settled)
	switch {
	case errors.Is(err, ErrKeyNotFound) && !errors.Is(err, ErrVersionNotFound):
		// Missing, or claimed by a destroy whose delete did not
		// finish: the delete tells which.
	case err != nil:
		return err
	case !whole:
		return nil
	}
	err = s.store.Delete(ctx, name)
	*settled = writeSettled(err)
	s.cache.Delete(name)
	return err
}
