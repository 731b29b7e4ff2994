// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"slices"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
)

// Key versions as KMIP objects
//
// Every version of a key is a KMIP object. Version 1 keeps the key's
// name as its Unique Identifier, so that the identifiers KMIP clients hold
// stay valid after a rotation; version n ≥ 2 is "<name>.v<n>", which can
// never be a key name ('.' is not allowed in one). parseUID is the one
// place that reads these identifiers: target, view, update and Get go
// through it, and so does every operation built on them.
//
// Each version is an object with its own lifecycle state, kept by
// internal/keys (versionstate.go), and its own stored attributes: update
// changes the version its identifier names, so Activate, Revoke and
// Destroy act on one version (Destroy of an older version shreds it; of
// the newest, only when it is the key's last one, and then the key). A
// version object shows, besides what it stores, its Digest; the Name
// only on the current version (KMIP Re-key moves the name to the
// replacement); a Replacement Object Link to the next version and a
// Replaced Object Link to the one before.
//
// Re-key is Service.RekeyKMIP, the rotation of 'kes key rotate' and
// PUT /v1/key/rotate with one difference: it makes a new version of the
// key (whatever version's identifier it names) and answers with the new
// version's identifier whatever the state of the newest version. The new
// version is Active (Pre-Active if the key was never activated), also
// when the one it replaces is Compromised or Deactivated (KMIP asks
// this of Re-key; the KES API and the rotation schedule refuse or skip
// such a key, so that only an explicit KMIP operation undoes a Revoke); it inherits the key's attributes, and the Names of the
// Re-key template are added to them. Lifecycle dates in the template, or
// the Offset, give the new version dates (rekeyDates) from which its
// state follows.

// rekeyDates returns the lifecycle dates of the replacement key made at
// now: those of the Re-key template, else, with an Offset, those of the
// old key moved as KMIP says (Activation Date = Initial Date + Offset, the
// others by the same shift as the Activation Date; without an old
// Activation Date only the Activation Date is set). Without either the
// replacement has no dates: Active at once, or Pre-Active if the key was
// never activated.
func rekeyDates(old, tmpl keys.Dates, now time.Time, offset *time.Duration) keys.Dates {
	if !tmpl.IsZero() {
		return tmpl
	}
	if offset == nil {
		return keys.Dates{}
	}
	act := now.Add(offset.Truncate(time.Second))
	d := keys.Dates{Activation: act}
	if old.Activation.IsZero() {
		return d
	}
	shift := act.Sub(old.Activation)
	move := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.Add(shift)
	}
	d.Deactivation, d.ProcessStart, d.ProtectStop = move(old.Deactivation), move(old.ProcessStart), move(old.ProtectStop)
	return d
}

// parseUID returns the key and version a Unique Identifier names. ok is
// false for "<name>.v1", which would be a second identifier of version 1.
func parseUID(uid string) (name string, version uint32, ok bool) {
	if name, n, isRef := keys.ParseVersionRef(uid); isRef {
		return name, n, n >= 2
	}
	return uid, 1, true
}

// versionUID is the Unique Identifier of version n of key name.
func versionUID(name string, n uint32) string {
	if n == 1 {
		return name
	}
	return keys.VersionRef(name, n)
}

// ref is the name under which the key service shows the version uid
// names. Operations that use a key's material for a KMIP object must use
// it (or view / withObject), not the bare identifier.
func ref(uid string) string {
	name, n, _ := parseUID(uid)
	return keys.VersionRef(name, n)
}

// withObject calls fn with the key service's view of the version uid
// names.
func (s *Server) withObject(ctx context.Context, uid string, fn func(*keys.Object) error) error {
	if _, _, ok := parseUID(uid); !ok {
		return keys.ErrKeyNotFound
	}
	return stateOf(ctx).Keys.With(ctx, ref(uid), fn)
}

// versionObject returns the KMIP view of the version o shows.
func versionObject(o *keys.Object) (*object, error) {
	obj, err := objectOf(o)
	if err != nil {
		return nil, err
	}
	vs := o.Versions()
	if len(vs) == 1 && vs[0].Number == 1 {
		return obj, nil // never rotated: the object as it always was
	}
	n := o.Version.VersionNumber()
	obj.uid = versionUID(o.Name, n)
	i := slices.IndexFunc(vs, func(v keys.VersionInfo) bool { return v.Number == n })
	if i > 0 {
		obj.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeReplacedObjectLink, LinkedObjectIdentifier: versionUID(o.Name, vs[i-1].Number)})
	}
	if i >= 0 && i < len(vs)-1 {
		obj.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeReplacementObjectLink, LinkedObjectIdentifier: versionUID(o.Name, vs[i+1].Number)})
		obj.del(kmip.AttributeNameName)
	}
	if d, ok := digestOf(o.Version, kmip.KeyFormatTypeRaw); ok {
		obj.set(kmip.AttributeNameDigest, d)
	}
	if obj.state == keys.StateActive || obj.state == keys.StatePreActive {
		// A version that was never revoked: revocation attributes it
		// shows were inherited from the version it replaced.
		for _, n := range revocationAttrs {
			if n == kmip.AttributeNameDeactivationDate && o.Meta.Dates != nil && !o.Meta.Dates.Deactivation.IsZero() {
				continue // the version's own, set by a client
			}
			obj.del(n)
		}
	}
	return obj, nil
}

// revocationAttrs are the attributes Revoke sets.
var revocationAttrs = []kmip.AttributeName{kmip.AttributeNameDeactivationDate, kmip.AttributeNameCompromiseDate,
	kmip.AttributeNameCompromiseOccurrenceDate, kmip.AttributeNameRevocationReason}

// viewCurrent loads the KMIP view of the current version of key name.
func (s *Server) viewCurrent(ctx context.Context, name string) (*object, error) {
	var obj *object
	err := stateOf(ctx).Keys.With(ctx, name, func(o *keys.Object) error {
		var err error
		obj, err = versionObject(o)
		return err
	})
	return obj, err
}

func (s *Server) rekey(ctx context.Context, req *payloads.RekeyRequestPayload) (*payloads.RekeyResponsePayload, error) {
	uid, err := s.target(ctx, "re-key", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	old, err := s.view(octx, uid)
	if err != nil {
		return nil, err
	}
	if old.typ != kmip.ObjectTypeSymmetricKey || old.alg != kmip.CryptographicAlgorithmAES && old.alg != kmip.CryptographicAlgorithmChaCha20 {
		return nil, kerr(kmip.ResultReasonIllegalOperation, "only AES and ChaCha20 keys can be re-keyed")
	}
	var names []kmip.Name
	tmpl := &object{} // the template's dates, validated
	if req.TemplateAttribute != nil {
		for _, a := range req.TemplateAttribute.Attribute {
			if isDate(a.AttributeName) {
				if old.usage.Origin == keys.OriginKES {
					return nil, keys.ErrKESManaged
				}
				if tmpl.has(a.AttributeName) {
					return nil, kerr(kmip.ResultReasonInvalidField, "attribute '"+string(a.AttributeName)+"' given twice")
				}
				if _, err := tmpl.setDate(a.AttributeName, a.AttributeValue); err != nil {
					return nil, err
				}
				continue
			}
			if a.AttributeName != kmip.AttributeNameName {
				continue
			}
			nv, ok := a.AttributeValue.(kmip.Name)
			if !ok || nv.NameValue == "" {
				return nil, kerr(kmip.ResultReasonInvalidField, "invalid name")
			}
			names = append(names, nv)
		}
	}
	name, _, _ := parseUID(uid)
	n, err := stateOf(ctx).Keys.RekeyKMIP(octx, name, sessionOf(ctx).identity.String())
	if err != nil {
		return nil, err
	}
	// The new version's own attributes: its dates, and the template's
	// names. Rotate has made it the current version, whose record is the
	// key's; a rotation in between would be another version, so this
	// names version n.
	err = s.update(octx, versionUID(name, n), func(obj *object, _ *keys.Object) error {
		now := nowOf(ctx)
		for _, a := range revocationAttrs {
			obj.del(a)
		}
		for _, a := range dateAttrs {
			obj.del(a)
		}
		obj.set(kmip.AttributeNameInitialDate, now)
		// The generator of the new material, not the old one's.
		obj.set(kmip.AttributeNameRandomNumberGenerator, rngParameters(stateOf(ctx).Keys.SystemRandom()))
		d := rekeyDates(old.dates(), tmpl.dates(), now, req.Offset)
		if d.IsZero() {
			if obj.state == keys.StateActive {
				obj.set(kmip.AttributeNameActivationDate, now)
			}
		} else {
			if d.Activation.IsZero() && obj.state == keys.StateActive {
				// Dates without an Activation Date do not make the
				// replacement of an Active key Pre-Active: it is
				// active from now, as without dates.
				d.Activation = now
			}
			// The dates decide the state (internal/keys derives it).
			obj.state = keys.StatePreActive
			for _, nd := range []struct {
				name kmip.AttributeName
				t    time.Time
			}{{kmip.AttributeNameActivationDate, d.Activation}, {kmip.AttributeNameProcessStartDate, d.ProcessStart},
				{kmip.AttributeNameProtectStopDate, d.ProtectStop}, {kmip.AttributeNameDeactivationDate, d.Deactivation}} {
				if !nd.t.IsZero() {
					obj.set(nd.name, nd.t)
				}
			}
			if err := obj.dates().Check(); err != nil {
				return kerr(kmip.ResultReasonInvalidField, err.Error())
			}
		}
		for _, nv := range names {
			obj.add(kmip.AttributeNameName, nv)
		}
		obj.touch(now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	newUID := versionUID(name, n)
	kmipserver.SetIdPlaceholder(ctx, newUID)
	return &payloads.RekeyResponsePayload{UniqueIdentifier: newUID}, nil
}
