// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/kesbridge/kes/keystore"
)

// Limits on what one key may carry. They are checked before every write
// of a key (Create, Import, CreateObject, Update), so that no request can
// grow a key past what the keystore reads back: a key the store cannot
// read is a key nobody can use. Changes a client drives stop
// LifecycleHeadroom below the keystore's limit, so that the server's
// own lifecycle changes always fit.
const (
	// MaxAttributeValueSize is the largest KMIP attribute value, in
	// bytes of its TTLV encoding, that a key may gain. Clients set short
	// values: vCenter and ZStack tag keys with a few custom attributes
	// of well under 1 KiB (a product name, a version, a vendor), and
	// names, links and descriptions are of the same order.
	MaxAttributeValueSize = 4 << 10

	// MaxAttributes is the most KMIP attribute instances a key may
	// carry, the ones the server keeps (dates, digest, usage mask) among
	// them. A key created by vCenter has about ten.
	MaxAttributes = 256
)

// ErrTooLarge means that a write was refused because the key would
// exceed one of the limits above, or the keystore's MaxValueSize. The key
// is unchanged. Errors wrapping it are *LimitError.
var ErrTooLarge = errors.New("key is too large")

// LimitError reports which limit a refused write would exceed. Its
// message names the limit and never contains a value, so the front doors
// send it to clients as it is.
type LimitError struct {
	// What is what is too large: "attribute value", "number of
	// attributes", "encoded key" or "growth of a lifecycle change".
	What string
	// Limit is the limit that was exceeded.
	Limit int
	// Unit is " bytes" for sizes and empty for counts.
	Unit string
}

func (e *LimitError) Error() string {
	return e.What + " exceeds the limit of " + strconv.Itoa(e.Limit) + e.Unit
}

// Is makes every *LimitError match ErrTooLarge.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// attrUsage is what the limits count in a key's KMIP attributes.
type attrUsage struct {
	attrs     int // attribute instances
	oversized int // values above MaxAttributeValueSize
}

// TTLV tags of the structures in Metadata.KMIP's "attrs".
const (
	tagTemplateAttribute = 0x420091
	tagAttribute         = 0x420008
	tagAttributeValue    = 0x42000B
	ttlvStructure        = 0x01
)

var errMalformedAttrs = errors.New("keys: malformed KMIP attributes")

// usageOf counts the attributes in meta.KMIP: a JSON object whose "attrs"
// member, when present, is a TTLV Template-Attribute (see Metadata). A
// KMIP value of another shape carries no attributes; its size still
// counts towards the encoded key.
func usageOf(meta Metadata) (attrUsage, error) {
	if len(meta.KMIP) == 0 {
		return attrUsage{}, nil
	}
	var rec struct {
		Attrs []byte `json:"attrs"`
	}
	if err := json.Unmarshal(meta.KMIP, &rec); err != nil {
		return attrUsage{}, nil
	}
	if len(rec.Attrs) == 0 {
		return attrUsage{}, nil
	}
	tag, typ, body, rest, ok := ttlvItem(rec.Attrs)
	if !ok || tag != tagTemplateAttribute || typ != ttlvStructure || len(rest) != 0 {
		return attrUsage{}, errMalformedAttrs
	}
	var u attrUsage
	for len(body) > 0 {
		tag, typ, attr, next, ok := ttlvItem(body)
		if !ok {
			return attrUsage{}, errMalformedAttrs
		}
		body = next
		if tag != tagAttribute {
			continue // the names of a template
		}
		if typ != ttlvStructure {
			return attrUsage{}, errMalformedAttrs
		}
		u.attrs++
		for len(attr) > 0 {
			tag, _, value, next, ok := ttlvItem(attr)
			if !ok {
				return attrUsage{}, errMalformedAttrs
			}
			attr = next
			if tag == tagAttributeValue && len(value) > MaxAttributeValueSize {
				u.oversized++
			}
		}
	}
	return u, nil
}

// ttlvItem splits the first TTLV item off b: its tag, type, value (as
// long as its length field says) and what follows its padding.
func ttlvItem(b []byte) (tag uint32, typ byte, value, rest []byte, ok bool) {
	if len(b) < 8 {
		return 0, 0, nil, nil, false
	}
	tag = uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	typ = b[3]
	n := uint64(binary.BigEndian.Uint32(b[4:8]))
	padded := (n + 7) &^ 7
	if padded > uint64(len(b)-8) {
		return 0, 0, nil, nil, false
	}
	return tag, typ, b[8 : 8+n], b[8+padded:], true
}

// checkGrowth refuses a change from old to new that adds an oversized
// attribute value or grows the attributes past MaxAttributes. It compares
// with old so that a key stored before these limits, or one that
// exceeds them already, can still be changed in every way that does not
// make it worse.
func checkGrowth(old, new attrUsage) error {
	if new.oversized > old.oversized {
		return &LimitError{What: "attribute value", Limit: MaxAttributeValueSize, Unit: " bytes"}
	}
	if new.attrs > MaxAttributes && new.attrs > old.attrs {
		return &LimitError{What: "number of attributes", Limit: MaxAttributes}
	}
	return nil
}

// LifecycleHeadroom is the part of the keystore's MaxValueSize, in bytes
// of the stored key, that only lifecycle changes may use (Update with
// Lifecycle): changes a client drives, and new keys, stop that far below
// MaxValueSize. It keeps every key revocable and destroyable over KMIP
// however a client filled it: the largest lifecycle change, a Revoke with
// a reason message of MaxAttributeValueSize and its dates, grows the
// stored key by about 8 KiB (the attributes are base64 inside a base64
// record). On a store that holds less than 4*LifecycleHeadroom the
// headroom is a quarter of its MaxValueSize.
const LifecycleHeadroom = 16 << 10

// An UpdateOption changes how Update checks a change.
type UpdateOption struct{ lifecycle bool }

func (o UpdateOption) apply(c *updateConfig) { c.lifecycle = c.lifecycle || o.lifecycle }

type updateConfig struct{ lifecycle bool }

// Lifecycle marks an Update as one of the server's lifecycle changes
// (state, dates, revocation reason, the Destroy claim), as opposed to a
// change of attributes that a client chose. Such a change may grow the
// stored key up to the keystore's MaxValueSize, into LifecycleHeadroom,
// but by no more than LifecycleHeadroom at once. Use it only for changes
// whose growth is bounded so, whatever the client sends.
func Lifecycle() UpdateOption { return UpdateOption{lifecycle: true} }

// limits returns the keystore's MaxValueSize and the lower limit of the
// changes that are not lifecycle changes.
func (s *Service) limits() (total, client, headroom int) {
	total = keystore.CapabilitiesOf(s.store).MaxValueSize
	headroom = min(LifecycleHeadroom, total/4)
	return total, total - headroom, headroom
}

// checkUpdate refuses an encoded key that the keystore would not hold,
// or that a change other than a lifecycle one grows into the headroom
// (oldLen is the size of the stored key it replaces, 0 for a new key). A
// key above the client limit already (after a lifecycle change, or
// stored before this limit) can still be changed in every way that does
// not grow it.
func (s *Service) checkUpdate(oldLen int, value []byte, lifecycle bool) error {
	total, client, headroom := s.limits()
	switch {
	case lifecycle && len(value)-oldLen > headroom:
		return &LimitError{What: "growth of a lifecycle change", Limit: headroom, Unit: " bytes"}
	case len(value) > total:
		return s.recordTooLarge()
	case !lifecycle && len(value) > client && len(value) > oldLen:
		return &LimitError{What: "encoded key", Limit: client, Unit: " bytes"}
	}
	return nil
}

func (s *Service) recordTooLarge() error {
	return &LimitError{What: "encoded key", Limit: keystore.CapabilitiesOf(s.store).MaxValueSize, Unit: " bytes"}
}

// storeError turns the keystore's refusal of a value into the limit
// error, in case the store is stricter than it declares.
func (s *Service) storeError(err error) error {
	if errors.Is(err, keystore.ErrValueTooLarge) {
		return s.recordTooLarge()
	}
	return err
}
