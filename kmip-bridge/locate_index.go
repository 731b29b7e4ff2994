// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"encoding/hex"
	"strconv"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// The Locate index (see keys.Index) knows the attributes clients search
// by: Name (its value, whatever its type), Object Group, the x-
// custom attributes with a string, integer, boolean or byte string
// value, Link (with a Linked Object Identifier; not the Replacement and
// Replaced Object Links of re-keyed versions, which are not stored) and
// the certificate attributes (Certificate Type, X.509 Certificate
// Identifier, Subject and Issuer, and their 1.0 forms). A Locate whose
// filters name one of them reads only the keys the index gives; one that
// names none reads every key, as before. The
// candidates are always read and checked against every filter, so a
// stale index never returns an object that does not match: at worst it
// misses one that another node changed, for at most
// keys.DefaultIndexListPeriod (a new or renamed key) or
// keys.DefaultIndexRescanPeriod (an attribute changed on an existing
// key). This node's own changes are seen at once.

// Term prefixes keep the kinds apart.
const (
	termName   = "n\x00"
	termGroup  = "g\x00"
	termCustom = "x\x00"
	termLink   = "l\x00"
	termCert   = "c\x00"
)

// attrTerm returns the index term of an attribute instance; ok is false
// for attributes the index does not know. Two instances that
// object.matches finds equal have the same term.
func attrTerm(a kmip.Attribute) (string, bool) {
	switch {
	case a.AttributeName == kmip.AttributeNameName:
		if n, ok := a.AttributeValue.(kmip.Name); ok {
			// A filter without a Name Type matches any type.
			return termName + n.NameValue, true
		}
	case a.AttributeName == kmip.AttributeNameObjectGroup:
		if g, ok := a.AttributeValue.(string); ok {
			return termGroup + g, true
		}
	case len(a.AttributeName) > 2 && a.AttributeName[:2] == "x-":
		// The type is part of the term: matches compares with
		// reflect.DeepEqual, for which "1" and 1 differ.
		var v string
		val := a.AttributeValue
		if tv, ok := val.(ttlv.Value); ok {
			// Custom attributes decode to their tag and value.
			v, val = strconv.Itoa(tv.Tag)+"\x00", tv.Value
		}
		switch x := val.(type) {
		case string:
			v += "s" + x
		case int32:
			v += "i" + strconv.FormatInt(int64(x), 10)
		case int64:
			v += "l" + strconv.FormatInt(x, 10)
		case bool:
			v += "b" + strconv.FormatBool(x)
		case []byte:
			v += "y" + hex.EncodeToString(x)
		default:
			return "", false
		}
		return termCustom + string(a.AttributeName) + "\x00" + v, true
	case a.AttributeName == kmip.AttributeNameLink:
		l, ok := a.AttributeValue.(kmip.Link)
		// A filter without an identifier matches any: no term. The
		// versions' rotation links exist only in the view.
		if !ok || l.LinkedObjectIdentifier == "" || l.LinkType == kmip.LinkTypeReplacementObjectLink || l.LinkType == kmip.LinkTypeReplacedObjectLink {
			return "", false
		}
		return termLink + strconv.FormatUint(uint64(l.LinkType), 16) + "\x00" + l.LinkedObjectIdentifier, true
	}
	return certTerm(a.AttributeValue)
}

// indexTerms is the bridge's keys.TermsFunc.
func indexTerms(o *keys.Object) []string {
	obj, err := objectOfRecord(o)
	if err != nil {
		return nil // found by no term; Locate by other filters still reads it
	}
	var terms []string
	for _, a := range obj.attrs {
		if t, ok := attrTerm(a); ok {
			terms = append(terms, t)
		}
	}
	return terms
}

// locateNames returns the names of the keys a Locate with filters must
// read: the index's candidates if a filter is one it knows, else every
// key.
func (s *Server) locateNames(ctx context.Context, filters []kmip.Attribute) ([]string, error) {
	var terms []string
	for _, f := range filters {
		if t, ok := attrTerm(f); ok {
			terms = append(terms, t)
		}
	}
	ks := stateOf(ctx).Keys
	if len(terms) == 0 {
		return ks.List(ctx, "")
	}
	return ks.Index(keys.IndexConfig{Terms: indexTerms}).Lookup(ctx, terms...)
}
