// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// record is the JSON the bridge keeps in keys.Metadata.KMIP. Attributes
// are kept in their TTLV encoding (a Template-Attribute structure) so that
// every attribute type, including client-defined x- attributes of any
// TTLV type, survives unchanged.
type record struct {
	Version    int    `json:"v"`
	Type       uint32 `json:"type"`
	Algorithm  uint32 `json:"alg,omitempty"`
	Length     int32  `json:"len,omitempty"`
	SecretType uint32 `json:"secretType,omitempty"`
	OpaqueType uint32 `json:"opaqueType,omitempty"`
	// Format is the Key Format Type the object was registered in; zero
	// for created keys and for records written before it was kept.
	Format     uint32 `json:"format,omitempty"`
	Attributes []byte `json:"attrs,omitempty"`
	// Split holds a Split Key's fields (splitkey.go).
	Split *splitParams `json:"split,omitempty"`
}

// object is the KMIP view of a stored key.
type object struct {
	uid        string
	typ        kmip.ObjectType
	alg        kmip.CryptographicAlgorithm
	length     int32
	secretType kmip.SecretDataType
	opaqueType kmip.OpaqueDataType
	// format is the Key Format Type of a registered key block, which a
	// Get without one answers; zero: the type's default.
	format kmip.KeyFormatType
	split  *splitParams
	state  keys.State
	// attrs are the stored attributes; every AttributeIndex is set.
	attrs []kmip.Attribute
	// synthesized is true for keys created over the KES API, which have
	// no KMIP record yet.
	synthesized bool
	// usage is what internal/keys keeps: the source of the usage mask
	// and export attributes (see usageAttrs).
	usage keys.Usage
	// now is the time of the read, for the derived attributes that
	// depend on it (attrs.go); zero in views that report none.
	now time.Time
}

// recordHeader is record without the attributes, for operations (Get)
// that need only the object's type: decoding attributes is most of the
// cost of a Get.
type recordHeader struct {
	Type       uint32          `json:"type"`
	Algorithm  uint32          `json:"alg,omitempty"`
	Length     int32           `json:"len,omitempty"`
	SecretType uint32          `json:"secretType,omitempty"`
	OpaqueType uint32          `json:"opaqueType,omitempty"`
	Format     uint32          `json:"format,omitempty"`
	Attributes json.RawMessage `json:"attrs,omitempty"`
	Split      *splitParams    `json:"split,omitempty"`
}

// headerOf returns the KMIP view of o without its attributes. The view
// is the caller's to change.
func headerOf(o *keys.Object) (*object, error) {
	obj, err := header(o)
	if err != nil {
		return nil, err
	}
	return &obj, nil
}

// header is headerOf by value. The record of an object the key service
// caches is decoded once (keys.MemoKMIP), not on every Get: the record
// header depends on the name and the stored record alone, and the state
// is taken from o on every call.
func header(o *keys.Object) (object, error) {
	if len(o.Meta.KMIP) == 0 {
		// Synthesised from the material and the state: not a function
		// of the record.
		obj, err := objectOf(o)
		if err != nil {
			return object{}, err
		}
		return *obj, nil
	}
	obj, err := keys.MemoKMIP(o, parseHeader)
	if err != nil {
		return object{}, err
	}
	obj.state = o.Meta.State
	return obj, nil
}

// parseHeader decodes the record of key name into an object without
// state and attributes. A cached key keeps the value for every Get;
// each gets a copy (its split parameters are read, never changed).
func parseHeader(name string, record json.RawMessage) (object, error) {
	var rec recordHeader
	if !parseRecordHeader(record, &rec) {
		// Not the shape this server writes (another version's, or
		// damaged): encoding/json decides.
		var err error
		if rec, err = decodeRecordHeader(record); err != nil {
			return object{}, fmt.Errorf("kmip: object '%s': malformed attributes: %w", name, err)
		}
	}
	return object{
		uid:        name,
		typ:        kmip.ObjectType(rec.Type),
		alg:        kmip.CryptographicAlgorithm(rec.Algorithm),
		length:     rec.Length,
		secretType: kmip.SecretDataType(rec.SecretType),
		opaqueType: kmip.OpaqueDataType(rec.OpaqueType),
		format:     kmip.KeyFormatType(rec.Format),
		split:      rec.Split,
	}, nil
}

// decodeRecordHeader decodes b with encoding/json. It is a function of
// its own so that headerOf's record stays on the stack.
func decodeRecordHeader(b []byte) (recordHeader, error) {
	var rec recordHeader
	err := json.Unmarshal(b, &rec)
	return rec, err
}

// objectOf returns the KMIP view of o. Keys without a KMIP record get
// attributes synthesised from the stored key.
func objectOf(o *keys.Object) (*object, error) {
	obj, err := objectOfRecord(o)
	if err != nil {
		return nil, err
	}
	obj.usage = keys.UsageOf(o)
	// A record written before internal/keys kept the mask has it as an
	// attribute; keys.UsageOf has read it from there.
	obj.del(kmip.AttributeNameCryptographicUsageMask)
	return obj, nil
}

func objectOfRecord(o *keys.Object) (*object, error) {
	obj := &object{uid: o.Name, state: o.Meta.State}
	if len(o.Meta.KMIP) == 0 {
		obj.synthesized = true
		obj.typ = kmip.ObjectTypeSymmetricKey
		obj.length = 256
		obj.alg = kmip.CryptographicAlgorithmAES
		if o.Version.Key != nil && o.Version.Key.Type() == crypto.ChaCha20 {
			obj.alg = kmip.CryptographicAlgorithmChaCha20
		}
		created := o.Version.CreatedAt
		if created.IsZero() {
			created = time.Unix(0, 0)
		}
		created = created.UTC().Truncate(time.Second)
		obj.set(kmip.AttributeNameName, kmip.Name{NameValue: o.Name, NameType: kmip.NameTypeUninterpretedTextString})
		obj.set(kmip.AttributeNameInitialDate, created)
		if o.Meta.State == keys.StateActive {
			obj.set(kmip.AttributeNameActivationDate, created)
		}
		if d, ok := digestOf(o.Version, kmip.KeyFormatTypeRaw); ok {
			obj.set(kmip.AttributeNameDigest, d)
		}
		obj.set(kmip.AttributeNameLastChangeDate, created)
		return obj, nil
	}
	var rec record
	if err := json.Unmarshal(o.Meta.KMIP, &rec); err != nil {
		return nil, fmt.Errorf("kmip: object '%s': malformed attributes: %w", o.Name, err)
	}
	obj.typ = kmip.ObjectType(rec.Type)
	obj.alg = kmip.CryptographicAlgorithm(rec.Algorithm)
	obj.length = rec.Length
	obj.secretType = kmip.SecretDataType(rec.SecretType)
	obj.opaqueType = kmip.OpaqueDataType(rec.OpaqueType)
	obj.format = kmip.KeyFormatType(rec.Format)
	obj.split = rec.Split
	if len(rec.Attributes) > 0 {
		var ta kmip.TemplateAttribute
		if err := ttlv.UnmarshalTTLV(rec.Attributes, &ta); err != nil {
			return nil, fmt.Errorf("kmip: object '%s': malformed attributes: %w", o.Name, err)
		}
		obj.attrs = ta.Attribute
		for i := range obj.attrs {
			if obj.attrs[i].AttributeIndex == nil {
				obj.attrs[i].AttributeIndex = new(int32)
			}
		}
	}
	return obj, nil
}

// meta returns the metadata that stores obj.
func (obj *object) meta() (keys.Metadata, error) {
	rec := record{
		Version:    1,
		Type:       uint32(obj.typ),
		Algorithm:  uint32(obj.alg),
		Length:     obj.length,
		SecretType: uint32(obj.secretType),
		OpaqueType: uint32(obj.opaqueType),
		Format:     uint32(obj.format),
		Split:      obj.split,
	}
	if len(obj.attrs) > 0 {
		rec.Attributes = ttlv.MarshalTTLV(&kmip.TemplateAttribute{Attribute: obj.attrs})
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return keys.Metadata{}, fmt.Errorf("kmip: failed to encode attributes: %w", err)
	}
	m := keys.Metadata{State: obj.state, KMIP: b}
	// internal/keys acts on the dates (keys.Dates); a KES key's
	// synthesised Activation Date is only informational, and such a key
	// takes no dates.
	if d := obj.dates(); obj.usage.Origin != keys.OriginKES && !d.IsZero() {
		m.Dates = &d
	}
	return m, nil
}

// digestOf returns the SHA-256 digest of the object's material in the
// given key format.
func digestOf(v *crypto.KeyVersion, format kmip.KeyFormatType) (kmip.Digest, bool) {
	var sum [32]byte
	err := useMaterial(v, func(b []byte) error { sum = sha256.Sum256(b); return nil })
	if err != nil {
		return kmip.Digest{}, false
	}
	return kmip.Digest{HashingAlgorithm: kmip.HashingAlgorithmSHA_256, DigestValue: sum[:], KeyFormatType: format}, true
}

// useMaterial calls fn with the object's raw material.
func useMaterial(v *crypto.KeyVersion, fn func([]byte) error) error {
	switch {
	case v.Key != nil:
		return v.Key.Use(fn)
	case v.Material != nil:
		return v.Material.Use(fn)
	default:
		return errors.New("kmip: object has no key material")
	}
}

// kmipState maps a key's state to the KMIP enumeration.
func kmipState(s keys.State) kmip.State {
	switch s {
	case keys.StatePreActive:
		return kmip.StatePreActive
	case keys.StateDeactivated:
		return kmip.StateDeactivated
	case keys.StateCompromised:
		return kmip.StateCompromised
	case keys.StateDestroyed:
		return kmip.StateDestroyed
	default:
		return kmip.StateActive
	}
}

// multiValued reports whether an attribute may have several instances.
func multiValued(name kmip.AttributeName) bool {
	switch name {
	case kmip.AttributeNameName, kmip.AttributeNameObjectGroup, kmip.AttributeNameApplicationSpecificInformation,
		kmip.AttributeNameLink, kmip.AttributeNameAlternativeName:
		return true
	}
	return name.IsCustom()
}

// operationPolicyName is deprecated since KMIP 1.3 and removed in 2.0,
// but clients such as Synology DSM and PyKMIP still send it with
// Register.
const operationPolicyName kmip.AttributeName = "Operation Policy Name"

// clientSettable reports whether clients may set the attribute with
// Create, Register, Add, Modify or Delete Attribute. Server-managed ones
// (identifiers, type, algorithm, dates, state, digest, the derived ones
// of attrs.go) are read-only; the lifecycle dates of dateAttrs have
// rules of their own (dateChangeAllowed).
func clientSettable(name kmip.AttributeName) bool {
	switch name {
	case kmip.AttributeNameName, kmip.AttributeNameObjectGroup, kmip.AttributeNameApplicationSpecificInformation,
		kmip.AttributeNameLink, kmip.AttributeNameAlternativeName, kmip.AttributeNameContactInformation,
		operationPolicyName, kmip.AttributeNameCryptographicParameters,
		kmip.AttributeNameDescription, kmip.AttributeNameComment, kmip.AttributeNameUsageLimits:
		return true
	}
	return len(name) > 2 && name[:2] == "x-"
}

// get returns the instances of an attribute, including the ones derived
// from the object itself.
func (obj *object) get(name kmip.AttributeName) []kmip.Attribute {
	switch name {
	case kmip.AttributeNameUniqueIdentifier:
		return []kmip.Attribute{{AttributeName: name, AttributeValue: obj.uid}}
	case kmip.AttributeNameObjectType:
		return []kmip.Attribute{{AttributeName: name, AttributeValue: obj.typ}}
	case kmip.AttributeNameState:
		return []kmip.Attribute{{AttributeName: name, AttributeValue: kmipState(obj.state)}}
	case kmip.AttributeNameCryptographicAlgorithm:
		if obj.alg == 0 {
			return nil
		}
		return []kmip.Attribute{{AttributeName: name, AttributeValue: obj.alg}}
	case kmip.AttributeNameCryptographicLength:
		if obj.length == 0 {
			return nil
		}
		return []kmip.Attribute{{AttributeName: name, AttributeValue: obj.length}}
	case kmip.AttributeNameCryptographicUsageMask, kmip.AttributeNameSensitive, kmip.AttributeNameAlwaysSensitive,
		kmip.AttributeNameExtractable, kmip.AttributeNameNeverExtractable:
		return obj.usageAttr(name)
	case nameKeyFormatType:
		return obj.keyFormatAttr()
	}
	if isDerived(name) {
		return obj.getDerived(name)
	}
	return obj.stored(name)
}

// all returns every attribute in a stable order.
func (obj *object) all() []kmip.Attribute {
	var out []kmip.Attribute
	for _, n := range []kmip.AttributeName{kmip.AttributeNameUniqueIdentifier, kmip.AttributeNameObjectType,
		kmip.AttributeNameCryptographicAlgorithm, kmip.AttributeNameCryptographicLength, kmip.AttributeNameState,
		kmip.AttributeNameCryptographicUsageMask, kmip.AttributeNameSensitive, kmip.AttributeNameAlwaysSensitive,
		kmip.AttributeNameExtractable, kmip.AttributeNameNeverExtractable} {
		out = append(out, obj.get(n)...)
	}
	for _, a := range obj.attrs {
		if !isDerived(a.AttributeName) {
			out = append(out, wireAttr(a))
		}
	}
	for _, n := range derivedNames {
		out = append(out, obj.derived(n)...)
	}
	return out
}

// names returns the names of the attributes the object has.
func (obj *object) names() []kmip.AttributeName {
	var out []kmip.AttributeName
	for _, a := range obj.all() {
		if !slices.Contains(out, a.AttributeName) {
			out = append(out, a.AttributeName)
		}
	}
	return out
}

// wireAttr returns a as sent to clients: the index only when it is not 0.
func wireAttr(a kmip.Attribute) kmip.Attribute {
	if a.AttributeIndex != nil && *a.AttributeIndex == 0 {
		a.AttributeIndex = nil
	}
	return a
}

// set replaces all instances of a single-valued attribute, or appends an
// instance of a multi-valued one.
func (obj *object) set(name kmip.AttributeName, value any) {
	if !multiValued(name) {
		obj.del(name)
	}
	obj.add(name, value)
}

// add appends an instance and returns it.
func (obj *object) add(name kmip.AttributeName, value any) kmip.Attribute {
	idx := int32(0)
	for _, a := range obj.attrs {
		if a.AttributeName == name && *a.AttributeIndex >= idx {
			idx = *a.AttributeIndex + 1
		}
	}
	a := kmip.Attribute{AttributeName: name, AttributeIndex: &idx, AttributeValue: value}
	obj.attrs = append(obj.attrs, a)
	return a
}

// del removes all instances of an attribute.
func (obj *object) del(name kmip.AttributeName) {
	obj.attrs = slices.DeleteFunc(obj.attrs, func(a kmip.Attribute) bool { return a.AttributeName == name })
}

// find returns the position of the instance with the given index, or -1.
func (obj *object) find(name kmip.AttributeName, index int32) int {
	for i, a := range obj.attrs {
		if a.AttributeName == name && *a.AttributeIndex == index {
			return i
		}
	}
	return -1
}

// has reports whether the attribute has a stored instance (derived
// values, such as the default Operation Policy Name, do not count).
func (obj *object) has(name kmip.AttributeName) bool {
	return len(obj.stored(name)) > 0
}

// touch records a change.
func (obj *object) touch(now time.Time) {
	obj.set(kmip.AttributeNameLastChangeDate, now)
}

// matches reports whether the object has an instance of the filter
// attribute with an equal value. Usage masks match when all the filter's
// bits are set; names match on the value (and type, if given).
func (obj *object) matches(f kmip.Attribute) bool {
	for _, a := range obj.get(f.AttributeName) {
		if m, ok := matchAttr(a.AttributeValue, f.AttributeValue); ok {
			if m {
				return true
			}
			continue
		}
		switch fv := f.AttributeValue.(type) {
		case kmip.Name:
			if av, ok := a.AttributeValue.(kmip.Name); ok && av.NameValue == fv.NameValue && (fv.NameType == 0 || fv.NameType == av.NameType) {
				return true
			}
		case kmip.CryptographicUsageMask:
			if av, ok := a.AttributeValue.(kmip.CryptographicUsageMask); ok && av&fv == fv {
				return true
			}
		case kmip.ApplicationSpecificInformation:
			if av, ok := a.AttributeValue.(kmip.ApplicationSpecificInformation); ok && av.ApplicationNamespace == fv.ApplicationNamespace && (fv.ApplicationData == "" || fv.ApplicationData == av.ApplicationData) {
				return true
			}
		case time.Time:
			if av, ok := a.AttributeValue.(time.Time); ok && av.Unix() == fv.Unix() {
				return true
			}
		default:
			if reflect.DeepEqual(a.AttributeValue, f.AttributeValue) {
				return true
			}
		}
	}
	return false
}

// inRange reports whether a date attribute lies within [lo, hi].
func (obj *object) inRange(name kmip.AttributeName, lo, hi time.Time) bool {
	for _, a := range obj.get(name) {
		if t, ok := a.AttributeValue.(time.Time); ok && !t.Before(lo.Truncate(time.Second)) && !t.After(hi) {
			return true
		}
	}
	return false
}

// sinceVersion is the KMIP version that introduced an attribute, for the
// attributes newer than 1.0. Listings for an older client leave them out:
// clients may reject attribute names their version does not define.
var sinceVersion = map[kmip.AttributeName]kmip.ProtocolVersion{
	kmip.AttributeNameCertificateLength:         kmip.V1_1,
	kmip.AttributeNameFresh:                     kmip.V1_1,
	kmip.AttributeNameX509CertificateIdentifier: kmip.V1_1,
	kmip.AttributeNameX509CertificateSubject:    kmip.V1_1,
	kmip.AttributeNameX509CertificateIssuer:     kmip.V1_1,
	kmip.AttributeNameDigitalSignatureAlgorithm: kmip.V1_1,
	kmip.AttributeNameAlternativeName:           kmip.V1_2,
	kmip.AttributeNameKeyValuePresent:           kmip.V1_2,
	kmip.AttributeNameKeyValueLocation:          kmip.V1_2,
	kmip.AttributeNameOriginalCreationDate:      kmip.V1_2,
	kmip.AttributeNameRandomNumberGenerator:     kmip.V1_3,
	kmip.AttributeNamePKCS_12FriendlyName:       kmip.V1_4,
	nameKeyFormatType:                           kmip.V2_0,
	kmip.AttributeNameDescription:               kmip.V1_4,
	kmip.AttributeNameComment:                   kmip.V1_4,
	kmip.AttributeNameSensitive:                 kmip.V1_4,
	kmip.AttributeNameAlwaysSensitive:           kmip.V1_4,
	kmip.AttributeNameExtractable:               kmip.V1_4,
	kmip.AttributeNameNeverExtractable:          kmip.V1_4,
}

// inVersion reports whether the attribute exists in protocol version v.
func inVersion(name kmip.AttributeName, v kmip.ProtocolVersion) bool {
	if until, ok := untilVersion[name]; ok && ttlv.CompareVersions(v, until) > 0 {
		return false
	}
	since, ok := sinceVersion[name]
	return !ok || ttlv.CompareVersions(v, since) >= 0
}
