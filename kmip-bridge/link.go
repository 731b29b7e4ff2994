// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"github.com/ovh/kmip-go"
)

// The Link attribute (KMIP 1.4 §3.35) ties an object to a related one:
// a certificate to its public key, a private key to its public key, a
// key to the one that replaced it. It may have several instances, on
// every object type; clients add, modify and delete them (the 1.x rules:
// modifiable and deletable by the client). The server adds the
// Replacement and Replaced Object Links of a re-keyed key's versions
// itself (rekey.go); those are not stored.

// knownLinkType reports whether t is a Link Type of KMIP 1.x.
func knownLinkType(t kmip.LinkType) bool {
	return t >= kmip.LinkTypeCertificateLink && t <= kmip.LinkTypePKCS_12PasswordLink
}

// checkAttrValue refuses attribute values a client may not store: a
// Link must have a Link Type of KMIP 1.x and name an object.
func checkAttrValue(a kmip.Attribute) error {
	if a.AttributeName != kmip.AttributeNameLink {
		return nil
	}
	l, ok := a.AttributeValue.(kmip.Link)
	switch {
	case !ok:
		return kerr(kmip.ResultReasonInvalidField, "invalid link")
	case !knownLinkType(l.LinkType):
		return kerr(kmip.ResultReasonInvalidField, "invalid link type")
	case l.LinkedObjectIdentifier == "":
		return kerr(kmip.ResultReasonInvalidField, "link names no linked object identifier")
	}
	return nil
}

// checkLocateFilter refuses a Locate filter that can match nothing
// because it is malformed. A Link filter needs a known Link Type; its
// Linked Object Identifier may be left out to find every object with a
// link of that type.
func checkLocateFilter(a kmip.Attribute) error {
	if a.AttributeName != kmip.AttributeNameLink {
		return nil
	}
	l, ok := a.AttributeValue.(kmip.Link)
	if !ok || !knownLinkType(l.LinkType) {
		return kerr(kmip.ResultReasonInvalidField, "locate by link needs a valid link type")
	}
	return nil
}

// matchAttr compares a stored attribute value with a Locate filter for
// the attribute types whose comparison is not plain equality (see
// object.matches); handled is false for the others.
func matchAttr(stored, filter any) (match, handled bool) {
	if f, ok := filter.(kmip.Link); ok {
		a, ok := stored.(kmip.Link)
		return ok && a.LinkType == f.LinkType && (f.LinkedObjectIdentifier == "" || a.LinkedObjectIdentifier == f.LinkedObjectIdentifier), true
	}
	return matchCertificateAttr(stored, filter)
}
