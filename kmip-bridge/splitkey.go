// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"time"

	"context"
	"math/big"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// maxPrimeFieldBits bounds the Prime Field Size of a Split Key: the
// shares of a key are no larger than the field, and no key the server
// stores needs more than this.
const maxPrimeFieldBits = 8192

// splitParams are the fields of a Split Key object besides its key block
// (KMIP 1.4 §2.2.5), kept in the object's record.
type splitParams struct {
	Parts      int32    `json:"parts"`
	Identifier int32    `json:"id"`
	Threshold  int32    `json:"threshold"`
	Method     uint32   `json:"method"`
	PrimeField *big.Int `json:"prime,omitempty"`
}

// checkSplitKey validates the split fields of a registered Split Key.
func checkSplitKey(k *kmip.SplitKey) error {
	switch {
	case k.SplitKeyParts < 1:
		return kerr(kmip.ResultReasonInvalidField, "split key parts must be at least 1")
	case k.KeyPartIdentifier < 1 || k.KeyPartIdentifier > k.SplitKeyParts:
		return kerr(kmip.ResultReasonInvalidField, "key part identifier must be between 1 and the number of split key parts")
	case k.SplitKeyThreshold < 1 || k.SplitKeyThreshold > k.SplitKeyParts:
		return kerr(kmip.ResultReasonInvalidField, "split key threshold must be between 1 and the number of split key parts")
	}
	switch k.SplitKeyMethod {
	case kmip.SplitKeyMethodXOR, kmip.SplitKeyMethodPolynomialSharingGF216, kmip.SplitKeyMethodPolynomialSharingGF28:
		if k.PrimeFieldSize != nil {
			return kerr(kmip.ResultReasonInvalidField, "prime field size is only for the polynomial sharing prime field method")
		}
	case kmip.SplitKeyMethodPolynomialSharingPrimeField:
		p := k.PrimeFieldSize
		if p == nil {
			return kerr(kmip.ResultReasonMissingData, "missing prime field size")
		}
		if p.Cmp(big.NewInt(2)) < 0 || p.BitLen() > maxPrimeFieldBits {
			return kerr(kmip.ResultReasonInvalidField, "prime field size must be between 2 and 2^8192")
		}
	default:
		return kerr(kmip.ResultReasonInvalidField, "unknown split key method")
	}
	if k.SplitKeyMethod == kmip.SplitKeyMethodXOR && k.SplitKeyThreshold != k.SplitKeyParts {
		// Every XOR share is needed to rebuild the key.
		return kerr(kmip.ResultReasonInvalidField, "split key threshold of the XOR method must equal the number of parts")
	}
	return nil
}

// registerSplitKey stores one part of a split key. Parts are secret: the
// export rules of internal/keys apply as to symmetric keys (extractable
// unless the template says otherwise). The server does not split or
// join keys.
func (s *Server) registerSplitKey(ctx context.Context, req *payloads.RegisterRequestPayload, k *kmip.SplitKey) (*payloads.RegisterResponsePayload, error) {
	obj := &object{typ: kmip.ObjectTypeSplitKey}
	alg, length, mask, activation, err := applyTemplate(obj, req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	sensitive, extractable, err := exportFlags(req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	if err := checkSplitKey(k); err != nil {
		return nil, err
	}
	block := &k.KeyBlock
	if block.KeyFormatType != kmip.KeyFormatTypeRaw {
		return nil, kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "split keys are registered in Raw format")
	}
	if block.KeyWrappingData != nil || block.KeyValue == nil || block.KeyValue.Plain == nil {
		return nil, kerr(kmip.ResultReasonFeatureNotSupported, "wrapped keys are not supported")
	}
	if block.KeyCompressionType != 0 {
		return nil, kerr(kmip.ResultReasonKeyCompressionTypeNotSupported, "key compression is not supported")
	}
	km := block.KeyValue.Plain.KeyMaterial
	if km.Bytes == nil || len(*km.Bytes) == 0 {
		return nil, kerr(kmip.ResultReasonInvalidField, "split key has no material")
	}
	material := *km.Bytes
	defer clear(material)
	if block.CryptographicAlgorithm != 0 {
		alg = block.CryptographicAlgorithm
	}
	if block.CryptographicLength != 0 {
		length = block.CryptographicLength
	}
	if length < 0 {
		return nil, kerr(kmip.ResultReasonInvalidField, "invalid cryptographic length")
	}
	obj.alg, obj.length = alg, length
	obj.split = &splitParams{
		Parts: k.SplitKeyParts, Identifier: k.KeyPartIdentifier, Threshold: k.SplitKeyThreshold,
		Method: uint32(k.SplitKeyMethod), PrimeField: k.PrimeFieldSize,
	}
	var m kmip.CryptographicUsageMask
	if mask != nil {
		m = *mask
	}
	// The part is stored as raw bytes (no Algorithm): the server does
	// no operation with a share.
	return s.storeRegistered(ctx, obj, keys.NewObject{Material: material, Mask: keys.UsageMask(m), Sensitive: sensitive, Extractable: extractable},
		func(v *crypto.KeyVersion, now time.Time) error {
			finish(obj, v, now, activation, kmip.KeyFormatTypeRaw)
			return nil
		})
}

// splitKeyObject is the Get answer for a split key part: its key block
// in Raw format.
func splitKeyObject(obj *object, format kmip.KeyFormatType, material []byte) (kmip.Object, error) {
	if format != 0 && format != kmip.KeyFormatTypeRaw {
		return nil, kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "split keys are returned in Raw format only")
	}
	p := obj.split
	if p == nil {
		return nil, kerr(kmip.ResultReasonGeneralFailure, "split key record is incomplete")
	}
	return &kmip.SplitKey{
		SplitKeyParts: p.Parts, KeyPartIdentifier: p.Identifier, SplitKeyThreshold: p.Threshold,
		SplitKeyMethod: kmip.SplitKeyMethod(p.Method), PrimeFieldSize: p.PrimeField,
		KeyBlock: kmip.KeyBlock{
			KeyFormatType: kmip.KeyFormatTypeRaw, CryptographicAlgorithm: obj.alg, CryptographicLength: obj.length,
			KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &material}}},
		},
	}, nil
}
