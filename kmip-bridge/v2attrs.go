// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// KMIP 2.x encodes an attribute by its own tag (Cryptographic Algorithm
// is a 0x420028 Enumeration) where 1.x wraps it in Attribute {Attribute
// Name "Cryptographic Algorithm", Attribute Value}. v2AttrTags is the one
// table between the two: every attribute KMIP 1.4 defines, by its 1.x
// name. Attribute values have the same encoding in both versions, so the
// translation only re-tags them.
var v2AttrTags = map[kmip.AttributeName]uint32{
	kmip.AttributeNameUniqueIdentifier:               kmip.TagUniqueIdentifier,
	kmip.AttributeNameName:                           kmip.TagName,
	kmip.AttributeNameObjectType:                     kmip.TagObjectType,
	kmip.AttributeNameCryptographicAlgorithm:         kmip.TagCryptographicAlgorithm,
	kmip.AttributeNameCryptographicLength:            kmip.TagCryptographicLength,
	kmip.AttributeNameCryptographicParameters:        kmip.TagCryptographicParameters,
	kmip.AttributeNameCryptographicDomainParameters:  kmip.TagCryptographicDomainParameters,
	kmip.AttributeNameCertificateType:                kmip.TagCertificateType,
	kmip.AttributeNameCertificateLength:              kmip.TagCertificateLength,
	kmip.AttributeNameX509CertificateIdentifier:      kmip.TagX_509CertificateIdentifier,
	kmip.AttributeNameX509CertificateSubject:         kmip.TagX_509CertificateSubject,
	kmip.AttributeNameX509CertificateIssuer:          kmip.TagX_509CertificateIssuer,
	kmip.AttributeNameDigitalSignatureAlgorithm:      kmip.TagDigitalSignatureAlgorithm,
	kmip.AttributeNameDigest:                         kmip.TagDigest,
	kmip.AttributeNameCryptographicUsageMask:         kmip.TagCryptographicUsageMask,
	kmip.AttributeNameLeaseTime:                      kmip.TagLeaseTime,
	kmip.AttributeNameUsageLimits:                    kmip.TagUsageLimits,
	kmip.AttributeNameState:                          kmip.TagState,
	kmip.AttributeNameInitialDate:                    kmip.TagInitialDate,
	kmip.AttributeNameActivationDate:                 kmip.TagActivationDate,
	kmip.AttributeNameProcessStartDate:               kmip.TagProcessStartDate,
	kmip.AttributeNameProtectStopDate:                kmip.TagProtectStopDate,
	kmip.AttributeNameDeactivationDate:               kmip.TagDeactivationDate,
	kmip.AttributeNameDestroyDate:                    kmip.TagDestroyDate,
	kmip.AttributeNameCompromiseOccurrenceDate:       kmip.TagCompromiseOccurrenceDate,
	kmip.AttributeNameCompromiseDate:                 kmip.TagCompromiseDate,
	kmip.AttributeNameRevocationReason:               kmip.TagRevocationReason,
	kmip.AttributeNameArchiveDate:                    kmip.TagArchiveDate,
	kmip.AttributeNameObjectGroup:                    kmip.TagObjectGroup,
	kmip.AttributeNameFresh:                          kmip.TagFresh,
	kmip.AttributeNameLink:                           kmip.TagLink,
	kmip.AttributeNameApplicationSpecificInformation: kmip.TagApplicationSpecificInformation,
	kmip.AttributeNameContactInformation:             kmip.TagContactInformation,
	kmip.AttributeNameLastChangeDate:                 kmip.TagLastChangeDate,
	kmip.AttributeNameAlternativeName:                kmip.TagAlternativeName,
	kmip.AttributeNameKeyValuePresent:                kmip.TagKeyValuePresent,
	kmip.AttributeNameKeyValueLocation:               kmip.TagKeyValueLocation,
	kmip.AttributeNameOriginalCreationDate:           kmip.TagOriginalCreationDate,
	kmip.AttributeNameRandomNumberGenerator:          kmip.TagRandomNumberGenerator,
	kmip.AttributeNamePKCS_12FriendlyName:            kmip.TagPKCS_12FriendlyName,
	kmip.AttributeNameDescription:                    kmip.TagDescription,
	kmip.AttributeNameComment:                        kmip.TagComment,
	kmip.AttributeNameSensitive:                      kmip.TagSensitive,
	kmip.AttributeNameAlwaysSensitive:                kmip.TagAlwaysSensitive,
	kmip.AttributeNameExtractable:                    kmip.TagExtractable,
	kmip.AttributeNameNeverExtractable:               kmip.TagNeverExtractable,
	nameKeyFormatType:                                kmip.TagKeyFormatType,
	// KMIP 2.0 removed these; they are here so that the tags are
	// recognised (and refused as removed) rather than unknown.
	operationPolicyName:       tagOperationPolicyName,
	nameCertificateIdentifier: tagCertificateIdentifier,
	nameCertificateSubject:    tagCertificateSubject,
	nameCertificateIssuer:     tagCertificateIssuer,
}

// The attributes KMIP 1.1 and 1.3 deprecated and 2.0 removed, named here
// because the library marks its names for them deprecated.
// v2UIDPlaceholder is ID Placeholder, the Unique Identifier Enumeration
// value (KMIP 2.0 §11.29) the bridge accepts.
const v2UIDPlaceholder = 0x00000001

const (
	tagOperationPolicyName   = 0x42005D
	tagCertificateIdentifier = 0x420014
	tagCertificateIssuer     = 0x420015
	tagCertificateSubject    = 0x42001A

	nameCertificateIdentifier kmip.AttributeName = "Certificate Identifier"
	nameCertificateSubject    kmip.AttributeName = "Certificate Subject"
	nameCertificateIssuer     kmip.AttributeName = "Certificate Issuer"
)

// v2Removed are the attributes KMIP 2.0 removed: 2.x answers never carry
// them, and 2.x requests cannot name them.
var v2Removed = map[kmip.AttributeName]bool{
	operationPolicyName:       true,
	nameCertificateIdentifier: true,
	nameCertificateSubject:    true,
	nameCertificateIssuer:     true,
}

// v2AttrNames is v2AttrTags reversed.
var v2AttrNames = func() map[uint32]kmip.AttributeName {
	m := make(map[uint32]kmip.AttributeName, len(v2AttrTags))
	for n, t := range v2AttrTags {
		m[t] = n
	}
	return m
}()

// Tags of KMIP 2.x that the library does not define.
const (
	tagAttributes                    = 0x420125
	tagCommonAttributes              = 0x420126
	tagPrivateKeyAttributes          = 0x420127
	tagPublicKeyAttributes           = 0x420128
	tagAttributeReference            = 0x42013B
	tagCurrentAttribute              = 0x42013C
	tagNewAttribute                  = 0x42013D
	tagAdjustmentType                = 0x420158
	tagProtectionStorageMasks        = 0x42015F
	tagAdjustmentValue               = 0x420162
	tagCommonProtectionStorageMasks  = 0x420163
	tagPrivateProtectionStorageMasks = 0x420164
	tagPublicProtectionStorageMasks  = 0x420165
)

// Result Reasons of KMIP 2.0 and later that the library does not define.
const (
	reasonMultiValuedAttribute   kmip.ResultReason = 0x1E
	reasonAttributeNotFound      kmip.ResultReason = 0x21
	reasonAttributeReadOnly      kmip.ResultReason = 0x22
	reasonAttributeSingleValued  kmip.ResultReason = 0x23
	reasonNonUniqueName          kmip.ResultReason = 0x35
	reasonObjectNotFound         kmip.ResultReason = 0x37
	reasonWrongKeyLifecycleState kmip.ResultReason = 0x43
)

// v2Error is a translation failure: the batch item fails with it.
func v2Error(reason kmip.ResultReason, msg string) error { return kerr(reason, msg) }

var (
	errV2Mixed          = v2Error(kmip.ResultReasonInvalidMessage, "mixed KMIP 1.x and 2.x encodings")
	errV2UnknownAttr    = v2Error(kmip.ResultReasonInvalidField, "unknown attribute tag")
	errV2RemovedAttr    = v2Error(kmip.ResultReasonInvalidField, "attribute removed in KMIP 2.0")
	errV2VendorAttr     = v2Error(kmip.ResultReasonInvalidField, "invalid vendor attribute")
	errV2AttrRef        = v2Error(kmip.ResultReasonInvalidField, "invalid attribute reference")
	errV2UnknownRef     = v2Error(reasonAttributeNotFound, "attribute reference names no attribute")
	errV2OneAttr        = v2Error(kmip.ResultReasonInvalidField, "expected exactly one attribute")
	errV2IntegerUID     = v2Error(kmip.ResultReasonFeatureNotSupported, "integer unique identifiers are not supported")
	errV2InvalidUID     = v2Error(kmip.ResultReasonInvalidField, "invalid unique identifier")
	errV2UIDEnum        = v2Error(kmip.ResultReasonInvalidField, "of the unique identifier enumeration only ID Placeholder is supported: name the object by its identifier")
	errV2TooManyAttribs = v2Error(kmip.ResultReasonInvalidMessage, "too many attributes")
)

// maxV2Attributes bounds the attributes of one Attributes structure; it
// is far above what any object has (the stored attribute records have
// their own limit in internal/keys).
const maxV2Attributes = 1000

// vendorName returns the 1.x custom attribute name of a 2.x vendor
// attribute: KMIP 2.x keeps the 1.x "x-" (client) and "y-" (server)
// prefixes as Vendor Identification "x" and "y". Other vendors have no
// 1.x form.
func vendorName(vendor, name string) (kmip.AttributeName, bool) {
	if vendor != "x" && vendor != "y" || name == "" {
		return "", false
	}
	return kmip.AttributeName(vendor + "-" + name), true
}

// splitVendor is vendorName reversed.
func splitVendor(n kmip.AttributeName) (vendor, name string, ok bool) {
	if !n.IsCustom() || len(n) < 3 {
		return "", "", false
	}
	return string(n[:1]), string(n[2:]), true
}

// attrToV1 turns one attribute of a 2.x Attributes (or New / Current
// Attribute) structure into a 1.x Attribute structure.
func attrToV1(a *tnode) (*tnode, error) {
	if a.tag == kmip.TagAttribute {
		if a.typ != ttlv.TypeStructure {
			return nil, errV2VendorAttr
		}
		vendor, name, value := a.child(kmip.TagVendorIdentification), a.child(kmip.TagAttributeName), a.child(kmip.TagAttributeValue)
		if vendor == nil && name != nil {
			// A 1.x Attribute inside a 2.x Attributes structure.
			return nil, errV2Mixed
		}
		if vendor == nil || name == nil || value == nil || len(a.kids) != 3 {
			return nil, errV2VendorAttr
		}
		n, ok := vendorName(vendor.text(), name.text())
		if !ok {
			return nil, errV2VendorAttr
		}
		return structNode(kmip.TagAttribute, textNode(kmip.TagAttributeName, string(n)), retag(value, kmip.TagAttributeValue)), nil
	}
	name, ok := v2AttrNames[a.tag]
	switch {
	case !ok:
		return nil, errV2UnknownAttr
	case v2Removed[name]:
		return nil, errV2RemovedAttr
	}
	return structNode(kmip.TagAttribute, textNode(kmip.TagAttributeName, string(name)), retag(a, kmip.TagAttributeValue)), nil
}

// attrsToV1 turns the children of a 2.x Attributes structure into 1.x
// Attribute structures.
func attrsToV1(attrs *tnode) ([]*tnode, error) {
	if attrs.typ != ttlv.TypeStructure {
		return nil, errV2UnknownAttr
	}
	if len(attrs.kids) > maxV2Attributes {
		return nil, errV2TooManyAttribs
	}
	out := make([]*tnode, 0, len(attrs.kids))
	for _, a := range attrs.kids {
		v1, err := attrToV1(a)
		if err != nil {
			return nil, err
		}
		out = append(out, v1)
	}
	return out, nil
}

// attrToV2 turns a 1.x Attribute structure of an answer into its 2.x
// form. It reports false for attributes 2.x does not have.
func attrToV2(a *tnode) (*tnode, bool) {
	name, value := kmip.AttributeName(a.child(kmip.TagAttributeName).text()), a.child(kmip.TagAttributeValue)
	if value == nil {
		return nil, false
	}
	if vendor, n, ok := splitVendor(name); ok {
		return structNode(kmip.TagAttribute,
			textNode(kmip.TagVendorIdentification, vendor),
			textNode(kmip.TagAttributeName, n),
			retag(value, kmip.TagAttributeValue)), true
	}
	tag, ok := v2AttrTags[name]
	if !ok || v2Removed[name] {
		return nil, false
	}
	return retag(value, tag), true
}

// refToName turns a 2.x Attribute Reference into a 1.x Attribute Name.
func refToName(r *tnode) (*tnode, error) {
	switch r.typ {
	case ttlv.TypeEnumeration:
		name, ok := v2AttrNames[r.u32()]
		if !ok || v2Removed[name] {
			return nil, errV2UnknownRef
		}
		return textNode(kmip.TagAttributeName, string(name)), nil
	case ttlv.TypeStructure:
		vendor, name := r.child(kmip.TagVendorIdentification), r.child(kmip.TagAttributeName)
		if vendor == nil || name == nil || len(r.kids) != 2 {
			return nil, errV2AttrRef
		}
		n, ok := vendorName(vendor.text(), name.text())
		if !ok {
			return nil, errV2AttrRef
		}
		return textNode(kmip.TagAttributeName, string(n)), nil
	}
	return nil, errV2AttrRef
}

// nameToRef turns a 1.x Attribute Name of an answer into a 2.x Attribute
// Reference. It reports false for attributes 2.x does not have.
func nameToRef(n *tnode) (*tnode, bool) {
	name := kmip.AttributeName(n.text())
	if vendor, an, ok := splitVendor(name); ok {
		return structNode(tagAttributeReference,
			textNode(kmip.TagVendorIdentification, vendor),
			textNode(kmip.TagAttributeName, an)), true
	}
	tag, ok := v2AttrTags[name]
	if !ok || v2Removed[name] {
		return nil, false
	}
	return enumNode(tagAttributeReference, tag), true
}

// retag returns a copy of n's top item with another tag.
func retag(n *tnode, tag uint32) *tnode {
	c := *n
	c.tag = tag
	return &c
}
