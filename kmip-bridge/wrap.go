// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// Key wrapping: Get with a Key Wrapping Specification returns a key
// encrypted by a wrapping key the server holds, and Register accepts a
// key in a Key Block with Key Wrapping Data and unwraps it. Wrapping
// Method Encrypt only, with the wrapping key's Block Cipher Mode NIST Key
// Wrap (RFC 3394, the default), AES Key Wrap with Padding (RFC 5649) or
// GCM (12-byte IV from the server in IV/Counter/Nonce, no additional
// data, the 16-byte tag after the ciphertext). Encoding Option No
// Encoding wraps the raw key material and keeps the Key Value a
// structure whose Key Material is the wrapped bytes (what PyKMIP sends
// and reads); TTLV Encoding (the KMIP default) wraps the TTLV encoding
// of the Key Value structure and makes the Key Value a byte string.

// wrapMode maps the wrapping key's Cryptographic Parameters to a mode.
func wrapMode(p *kmip.CryptographicParameters) (keys.WrapMode, kmip.BlockCipherMode, error) {
	if p == nil {
		return keys.WrapKW, kmip.BlockCipherModeNISTKeyWrap, nil
	}
	if p.CryptographicAlgorithm != 0 && p.CryptographicAlgorithm != kmip.CryptographicAlgorithmAES {
		return 0, 0, kerr(kmip.ResultReasonFeatureNotSupported, "key wrapping uses AES wrapping keys only")
	}
	if p.PaddingMethod != 0 && p.PaddingMethod != kmip.PaddingMethodNone {
		return 0, 0, kerr(kmip.ResultReasonInvalidField, "key wrapping takes no padding method")
	}
	switch p.BlockCipherMode {
	case 0, kmip.BlockCipherModeNISTKeyWrap:
		return keys.WrapKW, kmip.BlockCipherModeNISTKeyWrap, nil
	case kmip.BlockCipherModeAESKeyWrapPadding:
		return keys.WrapKWP, kmip.BlockCipherModeAESKeyWrapPadding, nil
	case kmip.BlockCipherModeGCM:
		if p.TagLength != 0 && p.TagLength != 16 {
			return 0, 0, kerr(kmip.ResultReasonInvalidField, "GCM key wrapping uses a 16-byte tag")
		}
		return keys.WrapGCM, kmip.BlockCipherModeGCM, nil
	default:
		return 0, 0, kerr(kmip.ResultReasonFeatureNotSupported, "block cipher mode is not supported for key wrapping: use NIST Key Wrap, AES Key Wrap with Padding or GCM")
	}
}

// wrapMethod checks a Wrapping Method and the MAC/signature information
// that goes with it: only Encrypt is supported.
func wrapMethod(m kmip.WrappingMethod, mac *kmip.MACSignatureKeyInformation, sig []byte) error {
	switch m {
	case kmip.WrappingMethodEncrypt:
	case kmip.WrappingMethodMACSign, kmip.WrappingMethodEncryptThenMACSign, kmip.WrappingMethodMACSignThenEncrypt, kmip.WrappingMethodTR_31:
		return kerr(kmip.ResultReasonFeatureNotSupported, "wrapping method is not supported: use Encrypt")
	case 0:
		return kerr(kmip.ResultReasonMissingData, "missing wrapping method")
	default:
		return kerr(kmip.ResultReasonInvalidField, "unknown wrapping method")
	}
	if mac != nil || sig != nil {
		return kerr(kmip.ResultReasonFeatureNotSupported, "MAC/signature key wrapping is not supported")
	}
	return nil
}

// encodingOption resolves the Encoding Option: TTLV Encoding if none.
func encodingOption(e kmip.EncodingOption) (kmip.EncodingOption, error) {
	switch e {
	case 0, kmip.EncodingOptionTTLVEncoding:
		return kmip.EncodingOptionTTLVEncoding, nil
	case kmip.EncodingOptionNoEncoding:
		return e, nil
	default:
		return 0, kerr(kmip.ResultReasonEncodingOptionError, "unknown encoding option")
	}
}

// wrappingKey resolves and authorises the wrapping key of op ("wrap" or
// "unwrap"): /kmip/<op>/<uid>.
func (s *Server) wrappingKey(ctx context.Context, op string, info *kmip.EncryptionKeyInformation) (string, error) {
	if info == nil || info.UniqueIdentifier == "" {
		return "", kerr(kmip.ResultReasonMissingData, "missing encryption key information: the wrapping key's unique identifier")
	}
	uid, err := s.target(ctx, op, info.UniqueIdentifier)
	var ke kmipserver.Error
	if errors.As(err, &ke) && ke.Reason == kmip.ResultReasonItemNotFound {
		return "", errWrappingKeyNotFound
	}
	return uid, err
}

// keyValueTTLV is the TTLV encoding of a Key Value structure with the
// given key material.
func keyValueTTLV(km kmip.KeyMaterial) []byte {
	e := ttlv.NewTTLVEncoder()
	e.TagAny(kmip.TagKeyValue, &kmip.PlainKeyValue{KeyMaterial: km})
	return e.Bytes()
}

// getWrapped is Get with a Key Wrapping Specification. It needs
// /kmip/get/<uid> (checked by the caller) and /kmip/wrap/<wrapping uid>.
func (s *Server) getWrapped(ctx context.Context, uid string, req *payloads.GetRequestPayload) (*payloads.GetResponsePayload, error) {
	spec := req.KeyWrappingSpecification
	if err := wrapMethod(spec.WrappingMethod, spec.MACSignatureKeyInformation, nil); err != nil {
		return nil, err
	}
	if len(spec.AttributeName) > 0 {
		return nil, kerr(kmip.ResultReasonFeatureNotSupported, "wrapping attributes with the key is not supported")
	}
	enc, err := encodingOption(spec.EncodingOption)
	if err != nil {
		return nil, err
	}
	wuid, err := s.wrappingKey(ctx, "wrap", spec.EncryptionKeyInformation)
	if err != nil {
		return nil, err
	}
	auditUID(ctx, uid)
	mode, bcm, err := wrapMode(spec.EncryptionKeyInformation.CryptographicParameters)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var (
		obj    *object
		format kmip.KeyFormatType
	)
	encode := func(o *keys.Object, material []byte) ([]byte, error) {
		var err error
		if obj, err = headerOf(o); err != nil {
			return nil, err
		}
		var km kmip.KeyMaterial
		switch obj.typ {
		case kmip.ObjectTypeSymmetricKey:
			switch req.KeyFormatType {
			case 0, kmip.KeyFormatTypeRaw:
				format = kmip.KeyFormatTypeRaw
				km.Bytes = &material
			case kmip.KeyFormatTypeTransparentSymmetricKey:
				format = req.KeyFormatType
				km.TransparentSymmetricKey = &kmip.TransparentSymmetricKey{Key: material}
			default:
				return nil, kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "key format type is not supported for symmetric keys")
			}
		case kmip.ObjectTypeSecretData:
			switch req.KeyFormatType {
			case 0, kmip.KeyFormatTypeOpaque:
				format = kmip.KeyFormatTypeOpaque
			case kmip.KeyFormatTypeRaw:
				format = req.KeyFormatType
			default:
				return nil, kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "key format type is not supported for secret data")
			}
			km.Bytes = &material
		default:
			// Opaque objects have no Key Block to carry wrapping data.
			return nil, kerr(kmip.ResultReasonInvalidField, "only symmetric keys and secret data can be wrapped")
		}
		if enc == kmip.EncodingOptionNoEncoding {
			if km.Bytes == nil {
				return nil, kerr(kmip.ResultReasonEncodingOptionError, "no encoding wraps byte-string key material: ask for the Raw key format, or TTLV encoding")
			}
			return append([]byte(nil), material...), nil
		}
		return keyValueTTLV(km), nil
	}
	w, err := stateOf(ctx).Keys.WrapKMIP(ctx, ref(uid), ref(wuid), mode, encode)
	if err != nil {
		return nil, wrapWireError(err)
	}
	kv := &kmip.KeyValue{Wrapped: &w.Blob}
	if enc == kmip.EncodingOptionNoEncoding {
		kv = &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &w.Blob}}}
	}
	block := kmip.KeyBlock{
		KeyFormatType: format,
		KeyValue:      kv,
		KeyWrappingData: &kmip.KeyWrappingData{
			WrappingMethod: kmip.WrappingMethodEncrypt,
			EncryptionKeyInformation: &kmip.EncryptionKeyInformation{
				UniqueIdentifier:        wuid,
				CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: bcm},
			},
			IVCounterNonce: w.IV,
			EncodingOption: enc,
		},
	}
	resp := &payloads.GetResponsePayload{UniqueIdentifier: uid, ObjectType: obj.typ}
	switch obj.typ {
	case kmip.ObjectTypeSymmetricKey:
		block.CryptographicAlgorithm, block.CryptographicLength = obj.alg, obj.length
		resp.Object = &kmip.SymmetricKey{KeyBlock: block}
	default:
		resp.Object = &kmip.SecretData{SecretDataType: obj.secretType, KeyBlock: block}
	}
	s.auditWrappedExport(ctx, uid, wuid)
	return resp, nil
}

// auditWrappedExport records that key material left the server wrapped,
// and by which key.
func (s *Server) auditWrappedExport(ctx context.Context, uid, wrapping string) {
	s.record(AuditEvent{Identity: clientName(ctx), Remote: sessionOf(ctx).remote, Operation: "export", UID: uid, WrappingKey: wrapping})
}

// unwrapBlock returns the plaintext Key Block of a wrapped one, for
// Register: the wrapping key needs /kmip/unwrap/<uid>. The caller wipes
// the material of the result.
func (s *Server) unwrapBlock(ctx context.Context, block *kmip.KeyBlock) (*kmip.KeyBlock, error) {
	kwd := block.KeyWrappingData
	if err := wrapMethod(kwd.WrappingMethod, kwd.MACSignatureKeyInformation, kwd.MACSignature); err != nil {
		return nil, err
	}
	enc, err := encodingOption(kwd.EncodingOption)
	if err != nil {
		return nil, err
	}
	wuid, err := s.wrappingKey(ctx, "unwrap", kwd.EncryptionKeyInformation)
	if err != nil {
		return nil, err
	}
	mode, _, err := wrapMode(kwd.EncryptionKeyInformation.CryptographicParameters)
	if err != nil {
		return nil, err
	}
	if block.KeyCompressionType != 0 {
		return nil, kerr(kmip.ResultReasonKeyCompressionTypeNotSupported, "key compression is not supported")
	}
	var blob []byte
	switch kv := block.KeyValue; {
	case kv == nil:
		return nil, kerr(kmip.ResultReasonMissingData, "missing key value")
	case kv.Wrapped != nil:
		blob = *kv.Wrapped
	case enc == kmip.EncodingOptionNoEncoding && kv.Plain != nil && kv.Plain.KeyMaterial.Bytes != nil:
		blob = *kv.Plain.KeyMaterial.Bytes
	default:
		return nil, kerr(kmip.ResultReasonInvalidField, "the wrapped key value is not a byte string")
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	plain, err := stateOf(ctx).Keys.UnwrapKMIP(ctx, ref(wuid), mode, blob, kwd.IVCounterNonce)
	if err != nil {
		return nil, wrapWireError(err)
	}
	out := &kmip.KeyBlock{
		KeyFormatType:          block.KeyFormatType,
		CryptographicAlgorithm: block.CryptographicAlgorithm,
		CryptographicLength:    block.CryptographicLength,
	}
	if enc == kmip.EncodingOptionNoEncoding {
		km := kmip.KeyMaterial{Bytes: &plain}
		if block.KeyFormatType == kmip.KeyFormatTypeTransparentSymmetricKey {
			km = kmip.KeyMaterial{TransparentSymmetricKey: &kmip.TransparentSymmetricKey{Key: plain}}
		}
		out.KeyValue = &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: km}}
		return out, nil
	}
	defer clear(plain)
	kv, err := decodeKeyValue(block.KeyFormatType, plain)
	if err != nil {
		return nil, err
	}
	out.KeyValue = kv
	return out, nil
}

// wrappedSensitive is the Sensitive attribute of a key registered from
// Key Wrapping Data. Such a key keeps the protection its wrapped form
// implies: it is Sensitive, whatever it was before it was wrapped, so
// that a Sensitive key got wrapped and registered back does not become a
// copy that Get returns in the clear. A template that asks for Sensitive
// false is refused; Extractable is the client's (false only protects
// more).
func wrappedSensitive(asked *bool) (*bool, error) {
	if asked != nil && !*asked {
		return nil, kerr(kmip.ResultReasonPermissionDenied, "a key registered wrapped stays sensitive: register it without Sensitive false, or register the plaintext key")
	}
	return new(true), nil
}

// decodeKeyValue decodes the TTLV encoding of a Key Value structure of
// the given key format, as the library decodes it inside a Key Block.
// Anything but exactly one Key Value structure is refused.
func decodeKeyValue(format kmip.KeyFormatType, b []byte) (_ *kmip.KeyValue, err error) {
	bad := kerr(kmip.ResultReasonInvalidField, "the unwrapped key value is not a TTLV Key Value structure")
	// The library's decoder can panic on well-framed items of the wrong
	// type (a byte string where a big integer belongs); what the client
	// wrapped is its mistake, not the server's.
	defer func() {
		if recover() != nil {
			err = bad
		}
	}()
	if len(b) < 8 || b[0] != 0x42 || b[1] != 0x00 || b[2] != 0x45 || b[3] != byte(ttlv.TypeStructure) || int(binary.BigEndian.Uint32(b[4:8])) != len(b)-8 {
		return nil, bad
	}
	// A Key Block with the format and this Key Value, and nothing else.
	inner := make([]byte, 0, 16+len(b))
	inner = append(inner, 0x42, 0x00, 0x42, byte(ttlv.TypeEnumeration), 0, 0, 0, 4)
	inner = binary.BigEndian.AppendUint32(inner, uint32(format))
	inner = append(inner, 0, 0, 0, 0)
	inner = append(inner, b...)
	msg := append([]byte{0x42, 0x00, 0x40, byte(ttlv.TypeStructure)}, binary.BigEndian.AppendUint32(nil, uint32(len(inner)))...)
	msg = append(msg, inner...)
	defer clear(msg)
	defer clear(inner)
	// The decoder trusts lengths: the framing is checked first, as for
	// every request (ttlv.go).
	if checkTTLV(msg) != nil {
		return nil, bad
	}
	var kb kmip.KeyBlock
	if ttlv.UnmarshalTTLV(msg, &kb) != nil || kb.KeyValue == nil || kb.KeyValue.Plain == nil {
		return nil, bad
	}
	return kb.KeyValue, nil
}

var errWrappingKeyNotFound = kerr(kmip.ResultReasonItemNotFound, "wrapping key not found")

// wrapWireError maps the errors of key wrapping to KMIP answers.
func wrapWireError(err error) error {
	switch {
	case errors.Is(err, crypto.ErrUnwrap), errors.Is(err, crypto.ErrDecrypt), errors.Is(err, crypto.ErrInvalidLength):
		return kerr(kmip.ResultReasonCryptographicFailure, "key unwrap failed: the wrapped key does not verify under the wrapping key")
	case errors.Is(err, crypto.ErrInvalidIV):
		return kerr(kmip.ResultReasonInvalidField, "GCM key unwrapping needs the 12-byte IV/counter/nonce the wrap used")
	case errors.Is(err, keys.ErrWrapSelf):
		return kerr(kmip.ResultReasonInvalidField, keys.ErrWrapSelf.Error())
	case errors.Is(err, keys.ErrWrapSeparation):
		return kerr(kmip.ResultReasonPermissionDenied, keys.ErrWrapSeparation.Error())
	case errors.Is(err, keys.ErrUnwrapCompromised):
		return stateErr(keys.ErrUnwrapCompromised.Error())
	case errors.Is(err, keys.ErrWrapWeak):
		return kerr(kmip.ResultReasonPermissionDenied, keys.ErrWrapWeak.Error())
	case errors.Is(err, keys.ErrWrapLength):
		return kerr(kmip.ResultReasonInvalidField, keys.ErrWrapLength.Error())
	case errors.Is(err, keys.ErrWrappingKeyNotFound):
		return errWrappingKeyNotFound
	}
	return err
}
