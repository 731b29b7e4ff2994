// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"github.com/ovh/kmip-go"
)

// checkClientAttr holds the checks every client write of an attribute
// makes before it reads the object (Add, Modify and 2.x Set Attribute):
// the attribute is the client's to set, or a lifecycle date (date true:
// the caller applies it with applyClientAttr, under the date rules), and
// its value is present and storable (checkAttrValue). One helper, so that
// no operation stores what another refuses.
func checkClientAttr(a kmip.Attribute) (date bool, err error) {
	date = isDate(a.AttributeName)
	if !clientSettable(a.AttributeName) && !date {
		return false, errReadOnly
	}
	if a.AttributeValue == nil {
		return false, kerr(kmip.ResultReasonInvalidField, "missing attribute value")
	}
	return date, checkAttrValue(a)
}

// checkAttrOnObject holds the checks of a client's new value that need
// the object: a date may change only as the object's state and origin
// allow (checkDateChange), and a Name may not repeat one of the object's
// other names. replacing is the index in obj.attrs of the instance the
// value replaces, or -1 for a new instance.
func checkAttrOnObject(obj *object, a kmip.Attribute, date bool, replacing int) error {
	if date {
		return checkDateChange(obj, a.AttributeName)
	}
	if a.AttributeName != kmip.AttributeNameName {
		return nil
	}
	other := *obj
	if replacing >= 0 {
		other.attrs = append(append([]kmip.Attribute(nil), obj.attrs[:replacing]...), obj.attrs[replacing+1:]...)
	}
	if other.matches(a) {
		return errNameTaken
	}
	return nil
}
