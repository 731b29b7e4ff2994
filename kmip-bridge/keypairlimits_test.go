// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"reflect"
	"testing"

	"github.com/ovh/kmip-go"
)

// TestMergeTemplate: a half's own attributes come first and override the
// common template's single-valued ones; multi-valued ones add up; of a
// single-valued attribute the common template gives twice, the first
// counts.
func TestMergeTemplate(t *testing.T) {
	attr := func(name kmip.AttributeName, v any) kmip.Attribute {
		return kmip.Attribute{AttributeName: name, AttributeValue: v}
	}
	common := &kmip.TemplateAttribute{Attribute: []kmip.Attribute{
		attr(kmip.AttributeNameCryptographicUsageMask, kmip.CryptographicUsageSign),
		attr(kmip.AttributeNameObjectGroup, "common"),
		attr(kmip.AttributeNameCryptographicLength, int32(2048)),
		attr(kmip.AttributeNameCryptographicLength, int32(4096)),
		attr("Unknown", nil),
		attr("Unknown", nil),
	}}
	half := &kmip.TemplateAttribute{Attribute: []kmip.Attribute{
		attr(kmip.AttributeNameCryptographicUsageMask, kmip.CryptographicUsageVerify),
		attr(kmip.AttributeNameObjectGroup, "half"),
	}}
	got := mergeTemplate(common, half).Attribute
	want := []kmip.Attribute{
		attr(kmip.AttributeNameCryptographicUsageMask, kmip.CryptographicUsageVerify),
		attr(kmip.AttributeNameObjectGroup, "half"),
		attr(kmip.AttributeNameObjectGroup, "common"),
		attr(kmip.AttributeNameCryptographicLength, int32(2048)),
		attr("Unknown", nil),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mergeTemplate = %+v, want %+v", got, want)
	}
	if got := mergeTemplate(common, nil).Attribute; len(got) != 4 {
		t.Fatalf("without a half template: %+v", got)
	}
	if got := mergeTemplate(nil, half).Attribute; !reflect.DeepEqual(got, half.Attribute) {
		t.Fatalf("without a common template: %+v", got)
	}
}

// TestRegisterKeyTooLarge: an encoded key above maxKeyDER is refused
// before it is parsed, as too large, in every format that carries bytes.
func TestRegisterKeyTooLarge(t *testing.T) {
	der := make([]byte, maxKeyDER+1)
	for _, f := range []kmip.KeyFormatType{kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypePKCS_8, kmip.KeyFormatTypeECPrivateKey} {
		kb := kmip.KeyBlock{KeyFormatType: f, KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &der}}}}
		if _, _, err := canonicalDER(&kmip.PrivateKey{KeyBlock: kb}); err != errKeyTooLarge {
			t.Errorf("format %v, %d bytes: %v, want %v", f, len(der), err, errKeyTooLarge)
		}
	}
}
