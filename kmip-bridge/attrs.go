// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"crypto/fips140"
	"math"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// Server-derived attributes
//
// Besides what it stores, an object reports attributes the server derives
// at read time, so that they are true at every read:
//   - Fresh (1.1+): true until the material first left the server (KMIP
//     Get), from keys.Usage.Exported;
//   - Lease Time: how long a client may keep using a copy of the object
//     before it asks the server again (for example for its State). The
//     server keeps no record of leases and cannot call a copy back; the
//     lease only tells a client when to check. It is LeaseTime, or less
//     if the Deactivation or Protect Stop Date of an Active or Pre-Active
//     object comes sooner;
//   - Original Creation Date (1.2+): the date a client gave on Register,
//     else the Initial Date;
//   - Random Number Generator (1.3+): recorded when Create generates the
//     key (see rngParameters); registered material and keys made over the
//     KES API do not report it. Listings (Get Attributes without names,
//     Get Attribute List) carry it from 1.4 on, as the OASIS 1.3
//     reference responses leave it out; asked for by name it is answered
//     from 1.3;
//   - Operation Policy Name (1.0–1.4; KMIP 2.0 removed it): what the
//     client set, else "default" when asked for by name (listings leave
//     the default out, as the OASIS reference servers do). Every object
//     is under the same policy scheme (Authorisation in doc.go), which
//     is what "default" names.
//
// None of them can be set by a client (Permission Denied, KMIP 1.x's
// answer for a read-only attribute), except Original Creation Date in a
// Register template and Operation Policy Name, which clients such as
// Synology DSM and PyKMIP send and which is then stored as given.

// LeaseTime is the lease the bridge grants on every object (see Lease
// Time above).
const LeaseTime = time.Hour

// untilVersion is the last KMIP version that defines an attribute, for
// the attributes a later version removed.
var untilVersion = map[kmip.AttributeName]kmip.ProtocolVersion{
	operationPolicyName: kmip.V1_4,
}

// listedSince is the first version whose listings carry an attribute,
// where that differs from sinceVersion (see Random Number Generator).
var listedSince = map[kmip.AttributeName]kmip.ProtocolVersion{
	kmip.AttributeNameRandomNumberGenerator: kmip.V1_4,
}

// inListing reports whether listings for version v carry the attribute.
func inListing(name kmip.AttributeName, v kmip.ProtocolVersion) bool {
	if since, ok := listedSince[name]; ok && ttlv.CompareVersions(v, since) < 0 {
		return false
	}
	return inVersion(name, v)
}

// derived returns the server-derived attribute name of obj, or nil if
// name is not one or obj does not have it.
func (obj *object) derived(name kmip.AttributeName) []kmip.Attribute {
	switch name {
	case kmip.AttributeNameFresh:
		if obj.usage.Origin == "" {
			return nil // a header-only view
		}
		return []kmip.Attribute{{AttributeName: name, AttributeValue: !obj.usage.Exported}}
	case kmip.AttributeNameLeaseTime:
		if obj.now.IsZero() {
			return nil
		}
		return []kmip.Attribute{{AttributeName: name, AttributeValue: obj.leaseTime()}}
	case kmip.AttributeNameOriginalCreationDate:
		if a := obj.stored(name); len(a) > 0 {
			return a
		}
		if a := obj.stored(kmip.AttributeNameInitialDate); len(a) > 0 {
			return []kmip.Attribute{{AttributeName: name, AttributeValue: a[0].AttributeValue}}
		}
		return nil
	case operationPolicyName:
		return obj.stored(name)
	}
	return nil
}

// getDerived is derived for a request that names the attribute: it also
// answers the default Operation Policy Name, which listings leave out
// (the OASIS reference servers list it only when a client set it).
func (obj *object) getDerived(name kmip.AttributeName) []kmip.Attribute {
	if a := obj.derived(name); len(a) > 0 || name != operationPolicyName {
		return a
	}
	return []kmip.Attribute{{AttributeName: name, AttributeValue: "default"}}
}

// derivedNames are the attributes derived lists; all reports them after
// the fixed ones.
var derivedNames = []kmip.AttributeName{kmip.AttributeNameFresh, kmip.AttributeNameLeaseTime,
	kmip.AttributeNameOriginalCreationDate, operationPolicyName}

// isDerived reports whether derived answers for name.
func isDerived(name kmip.AttributeName) bool {
	for _, n := range derivedNames {
		if n == name {
			return true
		}
	}
	return false
}

// stored returns the stored instances of name, as sent to clients.
func (obj *object) stored(name kmip.AttributeName) []kmip.Attribute {
	var out []kmip.Attribute
	for _, a := range obj.attrs {
		if a.AttributeName == name {
			out = append(out, wireAttr(a))
		}
	}
	return out
}

// leaseTime is the Lease Time of obj at obj.now, in seconds.
func (obj *object) leaseTime() time.Duration {
	lease := LeaseTime
	if obj.state == keys.StateActive || obj.state == keys.StatePreActive {
		for _, n := range []kmip.AttributeName{kmip.AttributeNameDeactivationDate, kmip.AttributeNameProtectStopDate} {
			for _, a := range obj.attrs {
				if t, ok := a.AttributeValue.(time.Time); ok && a.AttributeName == n && t.After(obj.now) {
					lease = min(lease, t.Sub(obj.now).Truncate(time.Second))
				}
			}
		}
	}
	return lease
}

// rngParameters describes the generator keys.Service.CreateKMIP draws
// new keys from. crypto/rand reads the operating system's generator,
// which KMIP has no name for (Unspecified); in FIPS 140-3 mode its output
// passes through Go's SP 800-90A CTR_DRBG with AES-256. A replaced
// Config.Rand (tests) is Unspecified as well.
func rngParameters(system bool) kmip.RNGParameters {
	if system && fips140.Enabled() {
		return kmip.RNGParameters{RNGAlgorithm: kmip.RNGAlgorithmDRBG, DRBGAlgorithm: kmip.DRBGAlgorithmCTR,
			CryptographicAlgorithm: kmip.CryptographicAlgorithmAES, CryptographicLength: 256}
	}
	return kmip.RNGParameters{RNGAlgorithm: kmip.RNGAlgorithmUnspecified}
}

// The date attributes a client may set, which internal/keys acts on
// (keys.Dates).
var dateAttrs = []kmip.AttributeName{kmip.AttributeNameActivationDate, kmip.AttributeNameDeactivationDate,
	kmip.AttributeNameProcessStartDate, kmip.AttributeNameProtectStopDate}

// isDate reports whether name is one of dateAttrs.
func isDate(name kmip.AttributeName) bool {
	for _, n := range dateAttrs {
		if n == name {
			return true
		}
	}
	return false
}

// dateChangeAllowed reports whether a client may add or modify the date
// attribute name of an object in state st. KMIP 1.x: the Activation and
// Process Start Dates only before activation (SKLC-M-3 expects Permission
// Denied for Modify of the Activation Date of an Active key); the
// Deactivation and Protect Stop Dates while Pre-Active or Active.
func dateChangeAllowed(name kmip.AttributeName, st keys.State) bool {
	switch name {
	case kmip.AttributeNameActivationDate, kmip.AttributeNameProcessStartDate:
		return st == keys.StatePreActive
	default:
		return st == keys.StatePreActive || st == keys.StateActive
	}
}

// dates returns the lifecycle dates obj's attributes set.
func (obj *object) dates() keys.Dates {
	var d keys.Dates
	for _, a := range obj.attrs {
		t, ok := a.AttributeValue.(time.Time)
		if !ok {
			continue
		}
		t = t.UTC().Truncate(time.Second)
		switch a.AttributeName {
		case kmip.AttributeNameActivationDate:
			d.Activation = t
		case kmip.AttributeNameDeactivationDate:
			d.Deactivation = t
		case kmip.AttributeNameProcessStartDate:
			d.ProcessStart = t
		case kmip.AttributeNameProtectStopDate:
			d.ProtectStop = t
		}
	}
	return d
}

// setDate validates a client's date attribute and stores it on obj.
func (obj *object) setDate(name kmip.AttributeName, value any) (kmip.Attribute, error) {
	t, ok := value.(time.Time)
	if !ok {
		return kmip.Attribute{}, kerr(kmip.ResultReasonInvalidField, "invalid "+lower(name))
	}
	t = t.UTC().Truncate(time.Second)
	old := obj.find(name, 0)
	var prev any
	if old >= 0 {
		prev = obj.attrs[old].AttributeValue
	}
	obj.set(name, t)
	if err := obj.dates().Check(); err != nil {
		// Put back what was there: the caller may report the error
		// without storing anything, but obj must stay consistent.
		obj.del(name)
		if prev != nil {
			obj.set(name, prev)
		}
		return kmip.Attribute{}, kerr(kmip.ResultReasonInvalidField, err.Error())
	}
	return obj.attrs[obj.find(name, 0)], nil
}

// lower is the attribute's name in lower case, for messages.
func lower(name kmip.AttributeName) string {
	b := []byte(name)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// forWire returns a with the values that need a wire form of their own
// replaced by it.
func forWire(a kmip.Attribute) kmip.Attribute {
	if d, ok := a.AttributeValue.(time.Duration); ok {
		// Interval: whole seconds, within its 32 bits.
		a.AttributeValue = ttlvInterval(d)
	}
	return a
}

// ttlvInterval returns d as a TTLV Interval value.
func ttlvInterval(d time.Duration) time.Duration {
	return min(max(d, 0), time.Duration(math.MaxUint32)*time.Second).Truncate(time.Second)
}

// errReadOnly refuses a change of an attribute clients may not set:
// Permission Denied, as the OASIS 1.x cases expect (KMIP 2.0 calls it
// Attribute Read Only; its reasons are not 1.x's).
var errReadOnly = kerr(kmip.ResultReasonPermissionDenied, "attribute is read-only")

// digestForV1_0 gives a Digest its Key Format Type at KMIP 1.0 too. KMIP
// 1.0 defines the Digest as Hashing Algorithm and Digest Value only, and
// the library's encoder leaves the field out below 1.1, but PyKMIP's
// client at 1.0 cannot parse a Digest without it (PyKMIP's server sends
// it at every version), so the bridge writes the structure itself.
// Clients that follow 1.0 to the letter skip the extra field.
func digestForV1_0(a kmip.Attribute, v kmip.ProtocolVersion) kmip.Attribute {
	d, ok := a.AttributeValue.(kmip.Digest)
	if !ok || d.KeyFormatType == 0 || ttlv.CompareVersions(v, kmip.V1_1) >= 0 {
		return a
	}
	a.AttributeValue = ttlv.Struct{
		{Tag: kmip.TagHashingAlgorithm, Value: ttlv.Enum(d.HashingAlgorithm)},
		{Tag: kmip.TagDigestValue, Value: d.DigestValue},
		{Tag: kmip.TagKeyFormatType, Value: ttlv.Enum(d.KeyFormatType)},
	}
	return a
}
