// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// State is a key's lifecycle state, in KMIP's terms. The zero value is
// Active: keys created over the KES API carry no metadata and are usable
// at once, as they are in minio/kes.
type State string

const (
	StateActive      State = ""
	StatePreActive   State = "PreActive"
	StateDeactivated State = "Deactivated"
	StateCompromised State = "Compromised"

	// StateDestroyed marks a key that is being destroyed: it is written
	// (with Update: compare-and-swap, under the key's lease where the
	// keystore needs one) before the key is deleted, so that a
	// concurrent change on another node, such as an activation, fails
	// instead of racing with the delete. A key left in this state (the
	// delete failed) is treated as gone.
	StateDestroyed State = "Destroyed"
)

// Active reports whether the key may encrypt and generate.
func (s State) Active() bool { return s == StateActive }

// CanDecrypt reports whether the key may decrypt: Active keys, and keys
// taken out of service (Deactivated, Compromised), whose data must stay
// readable.
func (s State) CanDecrypt() bool {
	return s == StateActive || s == StateDeactivated || s == StateCompromised
}

// String returns the KMIP name of the state.
func (s State) String() string {
	if s == StateActive {
		return "Active"
	}
	return string(s)
}

// Metadata is what a key carries besides its material. It is stored with
// the key (so every node sees it and it survives restarts) in a field of
// the stored value that minio/kes ignores.
type Metadata struct {
	State State `json:"state,omitempty"`

	// KMIP holds the KMIP bridge's attributes. Only the bridge reads or
	// writes it. It is a JSON object; its "attrs" member, if any, holds
	// the key's attributes as a TTLV Template-Attribute, on which the
	// Service enforces MaxAttributes and MaxAttributeValueSize.
	KMIP json.RawMessage `json:"kmip,omitempty"`

	// Usage is the key's usage and export attributes; nil means the
	// derived ones (see UsageOf), so that keys created over the KES API
	// store nothing.
	Usage *Usage `json:"usage,omitempty"`

	// Dates are the client-set lifecycle dates of a KMIP key, which
	// change its effective state and usage period (dates.go). Nil means
	// none.
	Dates *Dates `json:"dates,omitempty"`
}

func (m Metadata) isZero() bool {
	return m.State == StateActive && len(m.KMIP) == 0 && m.Usage == nil && m.Dates == nil
}

// Object is a stored key with its metadata.
type Object struct {
	Name string
	// Version is the newest version (whose Older holds the others), or
	// in a view of one version (see VersionRef) that version.
	Version *crypto.KeyVersion
	Meta    Metadata

	loaded time.Time        // when it was read from the keystore
	whole  *Object          // the whole key, in a view of one version
	clock  func() time.Time // the reading Service's Config.Now (dates.go)
	// memo is what was derived from a cached object (see memo); nil in
	// every object the cache does not hold as it is: those read for a
	// change (Update), views of older versions and the copies withDates
	// makes.
	memo *memo
}

// memo holds what is derived from one object the cache holds, and goes
// with it: every change of a key evicts it from the cache, so the next
// read loads a new Object with an empty memo, and nothing in a memo can
// outlive the stored data it was derived from. A memo holds no key
// material of its own and no decision: state, dates, usage and export
// rules are checked on every use, as without it.
type memo struct {
	// view is the view of the newest version (Object.view), which a
	// version's Unique Identifier asks for on every KMIP Get.
	view atomic.Pointer[Object]
	// kmip is what MemoKMIP's parse made of Name and Meta.KMIP.
	kmip atomic.Pointer[any]
}

// MemoKMIP returns parse(o.Name, o.Meta.KMIP). For an object the key
// service caches, and for the view of its newest version, which shows
// the same Name and Meta.KMIP, parse runs once, and later calls return
// its value while the object stays cached; an error is not kept, and
// every other object is parsed on every call. parse must depend on its
// arguments alone and its value must not be modified: it is shared by
// every reader of the object. One type T per program: a value of
// another type is parsed anew on each call.
func MemoKMIP[T any](o *Object, parse func(name string, record json.RawMessage) (T, error)) (T, error) {
	m := o.memo
	if m == nil {
		return parse(o.Name, o.Meta.KMIP)
	}
	if p := m.kmip.Load(); p != nil {
		if v, ok := (*p).(T); ok {
			return v, nil
		}
	}
	v, err := parse(o.Name, o.Meta.KMIP)
	if err != nil {
		return v, err
	}
	// Concurrent first readers parse the same bytes and store equal
	// values: whichever is kept is right.
	var a any = v
	m.kmip.Store(&a)
	return v, nil
}

// encryptionKey returns the KES secret key if the object has one and its
// state allows the operation.
func (o *Object) encryptionKey(encrypt bool) (*crypto.SecretKey, error) {
	if o.Version.Key == nil {
		return nil, ErrNotEncryptionKey
	}
	if encrypt && VersionState(o.Version.State) == VersionRetired {
		return nil, ErrVersionRetired // retired over the KES API: say so
	}
	if encrypt && !o.Meta.State.Active() || !encrypt && !o.Meta.State.CanDecrypt() {
		return nil, ErrNotActive
	}
	if encrypt {
		if err := o.protectWindow(o.Version); err != nil {
			return nil, err
		}
	}
	return o.Version.Key, nil
}
