// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import "github.com/ovh/kmip-go"

// nameKeyFormatType is the KMIP 2.0 attribute Key Format Type (tag
// 0x420042): the format of the object's Key Block. KMIP 1.x has no such
// attribute, so only 2.x clients ask for it (AKLC-M-1-21), by Attribute
// Reference; listings leave it out, as the OASIS 2.1 reference responses
// do.
const nameKeyFormatType kmip.AttributeName = "Key Format Type"

// keyFormatAttr is the Key Format Type attribute of obj: the format a Get
// without a Key Format Type answers at KMIP 2.x (handlers.go get: the
// registered format of a symmetric key or secret data, else its default;
// keypair.go asymObject for public and private keys), or nil for objects
// without a Key Block.
func (obj *object) keyFormatAttr() []kmip.Attribute {
	var f kmip.KeyFormatType
	switch obj.typ {
	case kmip.ObjectTypeSymmetricKey:
		f = kmip.KeyFormatTypeRaw
	case kmip.ObjectTypeSecretData:
		f = kmip.KeyFormatTypeOpaque
	case kmip.ObjectTypePrivateKey, kmip.ObjectTypePublicKey:
		switch obj.alg {
		case kmip.CryptographicAlgorithmRSA:
			f = kmip.KeyFormatTypePKCS_1
		case kmip.CryptographicAlgorithmEC, kmip.CryptographicAlgorithmECDSA:
			f = kmip.KeyFormatTypeTransparentECPublicKey
			if obj.typ == kmip.ObjectTypePrivateKey {
				f = kmip.KeyFormatTypeTransparentECPrivateKey
			}
		}
	}
	if obj.format != 0 && (obj.typ == kmip.ObjectTypeSymmetricKey || obj.typ == kmip.ObjectTypeSecretData) {
		f = obj.format
	}
	if f == 0 {
		return nil
	}
	return []kmip.Attribute{{AttributeName: nameKeyFormatType, AttributeValue: f}}
}
