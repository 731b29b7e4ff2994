// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"errors"

	"github.com/kesbridge/kes/keystore"
)

// The lifecycle table is in the package documentation (doc.go). The
// functions below enforce the rows that depend on who made the key; the
// state checks of generate, encrypt, decrypt and HMAC are State.Active
// and State.CanDecrypt.

var (
	// ErrKESManaged: a KMIP client tried to change the lifecycle of a
	// key made over the KES API (Revoke, Destroy). Such keys are MinIO's
	// master keys: a KMIP client must never take them out of service.
	ErrKESManaged = errors.New("key is managed over the KES API: its state cannot be changed over KMIP")

	// ErrActiveKMIPKey: an HTTP delete of a key that a KMIP client made
	// and of which a version is Active. As KMIP Destroy, the delete needs
	// every version deactivated first (KMIP Revoke).
	ErrActiveKMIPKey = errors.New("key is an active KMIP key: revoke it over KMIP before deleting it")
)

// CheckKMIPStateChange returns ErrKESManaged if o was made over the KES
// API. The KMIP bridge calls it, inside its Update, before Revoke and
// Destroy change o.
func CheckKMIPStateChange(o *Object) error {
	if UsageOf(o).Origin == OriginKES {
		return ErrKESManaged
	}
	return nil
}

// anyActive reports whether any version of the key is Active: the
// newest (the key's state) or an older one (its version state). A delete
// removes every version, so one Active version is enough to refuse it,
// as KMIP Destroy refuses an Active version.
func anyActive(o *Object) bool {
	if o.Meta.State == StateActive {
		return true
	}
	for _, v := range o.Version.Older {
		if o.stateOf(v) == StateActive {
			return true
		}
	}
	return false
}

// errPlainDelete ends the claim of a delete on a key that needs none.
var errPlainDelete = errors.New("keys: plain delete")

// delete is Service.Delete: a key made over the KES API (or one that
// cannot be read) is deleted as minio/kes deletes it, in any state; a
// KMIP key is deleted as KMIP Destroy deletes it: refused while any of
// its versions is Active,
// and claimed with a compare-and-swap (state Destroyed) before the
// delete, so that a concurrent activation on another node either comes
// first and the delete is refused, or fails.
func (s *Service) delete(ctx context.Context, name string, settled *bool) error {
	err := s.update(ctx, name, func(o *Object) error {
		if UsageOf(o).Origin != OriginKMIP {
			return errPlainDelete
		}
		if anyActive(o) {
			return ErrActiveKMIPKey
		}
		o.Meta.State = StateDestroyed
		return nil
	}, updateConfig{lifecycle: true}, settled)
	switch {
	case err == nil, errors.Is(err, errPlainDelete), errors.Is(err, ErrKeyNotFound):
		// ErrKeyNotFound: missing, or claimed by a delete that did
		// not finish; the delete below tells which.
	case errors.Is(err, ErrActiveKMIPKey), errors.Is(err, ErrKeyBusy), ctx.Err() != nil,
		keystore.IsUnreachable(err), keystore.IsUnavailable(err):
		return err
	default:
		// A value that does not decode: delete it as minio/kes would,
		// so that a broken key can always be removed.
	}
	err = s.store.Delete(ctx, name)
	*settled = writeSettled(err)
	s.cache.Delete(name)
	s.changed(name)
	return err
}
