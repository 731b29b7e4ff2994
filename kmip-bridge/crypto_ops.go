// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"errors"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
)

// The KMIP Encrypt, Decrypt, MAC and MAC Verify operations. They let a
// client use a key it may not export: the cryptography runs in
// internal/keys, which checks the key's state and usage mask; the bridge
// only translates the request. Their data is bounded by the request
// message limit (Config.MaxMessageSize), their output by the response
// limit.

func init() {
	// kmip-go v0.9.2 has no payload types for MAC and MAC Verify.
	kmip.RegisterOperationPayload[MACRequestPayload, MACResponsePayload](kmip.OperationMAC)
	kmip.RegisterOperationPayload[MACVerifyRequestPayload, MACVerifyResponsePayload](kmip.OperationMACVerify)
}

// MACRequestPayload is the request of the MAC operation (KMIP 1.4 §4.33).
type MACRequestPayload struct {
	UniqueIdentifier        string `ttlv:",omitempty"`
	CryptographicParameters *kmip.CryptographicParameters
	Data                    []byte `ttlv:",omitempty"`
	CorrelationValue        []byte `ttlv:",omitempty,version=v1.3.."`
	InitIndicator           *bool  `ttlv:",version=v1.3.."`
	FinalIndicator          *bool  `ttlv:",version=v1.3.."`
}

// Operation implements kmip.OperationPayload.
func (*MACRequestPayload) Operation() kmip.Operation { return kmip.OperationMAC }

// MACResponsePayload is the response of the MAC operation.
type MACResponsePayload struct {
	UniqueIdentifier string
	MACData          []byte `ttlv:",omitempty"`
	CorrelationValue []byte `ttlv:",omitempty,version=v1.3.."`
}

// Operation implements kmip.OperationPayload.
func (*MACResponsePayload) Operation() kmip.Operation { return kmip.OperationMAC }

// MACVerifyRequestPayload is the request of the MAC Verify operation
// (KMIP 1.4 §4.34).
type MACVerifyRequestPayload struct {
	UniqueIdentifier        string `ttlv:",omitempty"`
	CryptographicParameters *kmip.CryptographicParameters
	Data                    []byte `ttlv:",omitempty"`
	MACData                 []byte `ttlv:",omitempty"`
	CorrelationValue        []byte `ttlv:",omitempty,version=v1.3.."`
	InitIndicator           *bool  `ttlv:",version=v1.3.."`
	FinalIndicator          *bool  `ttlv:",version=v1.3.."`
}

// Operation implements kmip.OperationPayload.
func (*MACVerifyRequestPayload) Operation() kmip.Operation { return kmip.OperationMACVerify }

// MACVerifyResponsePayload is the response of the MAC Verify operation.
type MACVerifyResponsePayload struct {
	UniqueIdentifier  string
	ValidityIndicator kmip.ValidityIndicator
	CorrelationValue  []byte `ttlv:",omitempty,version=v1.3.."`
}

// Operation implements kmip.OperationPayload.
func (*MACVerifyResponsePayload) Operation() kmip.Operation { return kmip.OperationMACVerify }

func (s *Server) routeCrypto(e *kmipserver.BatchExecutor) {
	e.Route(kmip.OperationEncrypt, handle(s, s.encrypt))
	e.Route(kmip.OperationDecrypt, handle(s, s.decrypt))
	e.Route(kmip.OperationMAC, handle(s, s.mac))
	e.Route(kmip.OperationMACVerify, handle(s, s.macVerify))
}

// cryptoTarget resolves and authorises the object of a server-side
// crypto operation, which must be a single-part one.
func (s *Server) cryptoTarget(ctx context.Context, op, uid string, corr []byte, init, final *bool) (string, error) {
	uid, err := s.target(ctx, op, uid)
	if err != nil {
		return "", err
	}
	if err := singlePart(corr, init, final); err != nil {
		return "", err
	}
	return uid, nil
}

// singlePart refuses multi-part (streaming) requests: every operation is
// one request.
func singlePart(corr []byte, init, final *bool) error {
	if corr != nil || init != nil && *init || final != nil && !*final {
		return kerr(kmip.ResultReasonFeatureNotSupported, "multi-part cryptographic operations are not supported")
	}
	return nil
}

// params returns the request's Cryptographic Parameters, or else the
// object's first Cryptographic Parameters attribute.
func (s *Server) params(ctx context.Context, uid string, p *kmip.CryptographicParameters) (kmip.CryptographicParameters, error) {
	if p != nil {
		return *p, nil
	}
	obj, err := s.view(ctx, uid)
	if err != nil {
		return kmip.CryptographicParameters{}, err
	}
	for _, a := range obj.get(kmip.AttributeNameCryptographicParameters) {
		if cp, ok := a.AttributeValue.(kmip.CryptographicParameters); ok {
			return cp, nil
		}
	}
	return kmip.CryptographicParameters{}, kerr(kmip.ResultReasonMissingData, "missing cryptographic parameters: the request and the object name no block cipher mode")
}

// cipherParams maps KMIP parameters to an AES mode. It takes the IV of
// Decrypt and of CBC Encrypt; GCM Encrypt refuses one (keys.ErrClientIV).
// IV Length is in bits
// in KMIP, but some clients (kmip-go's AES_GCM, AES_CBC_PKCS5) send
// bytes: both readings of the lengths the server generates are taken.
func cipherParams(p kmip.CryptographicParameters, iv []byte) (keys.CipherParams, error) {
	if p.CryptographicAlgorithm != 0 && p.CryptographicAlgorithm != kmip.CryptographicAlgorithmAES {
		return keys.CipherParams{}, kerr(kmip.ResultReasonInvalidField, "only AES encryption is supported")
	}
	var cp keys.CipherParams
	switch p.BlockCipherMode {
	case kmip.BlockCipherModeGCM:
		cp.Mode = keys.ModeGCM
		if p.PaddingMethod != 0 && p.PaddingMethod != kmip.PaddingMethodNone {
			return cp, kerr(kmip.ResultReasonInvalidField, "GCM takes no padding")
		}
	case kmip.BlockCipherModeCBC:
		cp.Mode = keys.ModeCBC
		if p.PaddingMethod != 0 && p.PaddingMethod != kmip.PaddingMethodPKCS5 {
			return cp, kerr(kmip.ResultReasonFeatureNotSupported, "CBC is supported with PKCS5 padding only")
		}
	case 0:
		return cp, kerr(kmip.ResultReasonMissingData, "missing block cipher mode")
	default:
		return cp, kerr(kmip.ResultReasonFeatureNotSupported, "block cipher mode is not supported: use GCM or CBC")
	}
	if iv != nil && p.RandomIV != nil && *p.RandomIV {
		return cp, kerr(kmip.ResultReasonInvalidField, "IV given while Random IV asks the server for one")
	}
	if iv == nil && p.IVLength != 0 {
		// The server generates 12-byte GCM and 16-byte CBC IVs.
		ok := false
		switch cp.Mode {
		case keys.ModeGCM:
			ok = p.IVLength == 96 || p.IVLength == 12
		case keys.ModeCBC:
			ok = p.IVLength == 128 || p.IVLength == 16
		}
		if !ok {
			return cp, kerr(kmip.ResultReasonInvalidField, "the server generates 96-bit GCM and 128-bit CBC IVs only")
		}
	}
	cp.IV = iv
	cp.TagLength = int(p.TagLength)
	return cp, nil
}

func (s *Server) encrypt(ctx context.Context, req *payloads.EncryptRequestPayload) (*payloads.EncryptResponsePayload, error) {
	uid, err := s.cryptoTarget(ctx, "encrypt", req.UniqueIdentifier, req.CorrelationValue, req.InitIndicator, req.FinalIndicator)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	p, err := s.params(ctx, uid, req.CryptographicParameters)
	if err != nil {
		return nil, err
	}
	cp, err := cipherParams(p, req.IVCounterNonce)
	if err != nil {
		return nil, err
	}
	if cp.Mode == keys.ModeGCM && req.IVCounterNonce != nil {
		// See keys.ErrClientIV: a chosen GCM IV would let an encrypt-only
		// client decrypt and forge.
		return nil, kerr(kmip.ResultReasonInvalidField, keys.ErrClientIV.Error())
	}
	if cp.Mode == keys.ModeCBC && req.AuthenticatedEncryptionAdditionalData != nil {
		return nil, kerr(kmip.ResultReasonInvalidField, "CBC takes no additional authenticated data")
	}
	cp.AAD = req.AuthenticatedEncryptionAdditionalData
	sealed, err := stateOf(ctx).Keys.EncryptKMIP(ctx, ref(uid), cp, req.Data)
	if err != nil {
		return nil, err
	}
	return &payloads.EncryptResponsePayload{UniqueIdentifier: uid, Data: sealed.Ciphertext, IVCounterNonce: sealed.IV, AuthenticatedEncryptionTag: sealed.Tag}, nil
}

func (s *Server) decrypt(ctx context.Context, req *payloads.DecryptRequestPayload) (*payloads.DecryptResponsePayload, error) {
	uid, err := s.cryptoTarget(ctx, "decrypt", req.UniqueIdentifier, req.CorrelationValue, req.InitIndicator, req.FinalIndicator)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	p, err := s.params(ctx, uid, req.CryptographicParameters)
	if err != nil {
		return nil, err
	}
	if req.IVCounterNonce == nil {
		return nil, errMissingIV
	}
	// Random IV has the server draw the IV of an Encrypt; a Decrypt
	// takes the IV that Encrypt answered (CS-BC-M-13-21), so the key's
	// Random IV does not refuse it.
	p.RandomIV = nil
	cp, err := cipherParams(p, req.IVCounterNonce)
	if err != nil {
		return nil, err
	}
	switch {
	case cp.Mode == keys.ModeGCM && req.AuthenticatedEncryptionTag == nil:
		return nil, kerr(kmip.ResultReasonMissingData, "missing authenticated encryption tag")
	case cp.Mode == keys.ModeCBC && (req.AuthenticatedEncryptionTag != nil || req.AuthenticatedEncryptionAdditionalData != nil):
		return nil, kerr(kmip.ResultReasonInvalidField, "CBC takes no tag or additional authenticated data")
	}
	cp.AAD, cp.Tag = req.AuthenticatedEncryptionAdditionalData, req.AuthenticatedEncryptionTag
	plaintext, err := stateOf(ctx).Keys.DecryptKMIP(ctx, ref(uid), cp, req.Data)
	if err != nil {
		return nil, err
	}
	// The copy lives until the response is on the wire.
	sessionOf(ctx).wipe = append(sessionOf(ctx).wipe, plaintext)
	return &payloads.DecryptResponsePayload{UniqueIdentifier: uid, Data: plaintext}, nil
}

// macHash maps the MAC parameters to a hash; zero means the key's own.
func macHash(p *kmip.CryptographicParameters) (crypto.MACHash, error) {
	if p == nil {
		return 0, nil
	}
	var h crypto.MACHash
	switch p.CryptographicAlgorithm {
	case 0:
	case kmip.CryptographicAlgorithmHMACSHA256:
		h = crypto.MACSHA256
	case kmip.CryptographicAlgorithmHMACSHA384:
		h = crypto.MACSHA384
	case kmip.CryptographicAlgorithmHMACSHA512:
		h = crypto.MACSHA512
	default:
		return 0, kerr(kmip.ResultReasonInvalidField, "MAC algorithm is not supported: use HMAC-SHA256, -384 or -512")
	}
	var hh crypto.MACHash
	switch p.HashingAlgorithm {
	case 0:
	case kmip.HashingAlgorithmSHA_256:
		hh = crypto.MACSHA256
	case kmip.HashingAlgorithmSHA_384:
		hh = crypto.MACSHA384
	case kmip.HashingAlgorithmSHA_512:
		hh = crypto.MACSHA512
	default:
		return 0, kerr(kmip.ResultReasonInvalidField, "MAC hashing algorithm is not supported: use SHA-256, -384 or -512")
	}
	if h != 0 && hh != 0 && h != hh {
		return 0, kerr(kmip.ResultReasonInvalidField, "cryptographic algorithm and hashing algorithm disagree")
	}
	return max(h, hh), nil
}

func (s *Server) mac(ctx context.Context, req *MACRequestPayload) (*MACResponsePayload, error) {
	uid, err := s.cryptoTarget(ctx, "mac", req.UniqueIdentifier, req.CorrelationValue, req.InitIndicator, req.FinalIndicator)
	if err != nil {
		return nil, err
	}
	h, err := macHash(req.CryptographicParameters)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	sum, err := stateOf(ctx).Keys.MAC(ctx, ref(uid), h, req.Data)
	if err != nil {
		return nil, err
	}
	return &MACResponsePayload{UniqueIdentifier: uid, MACData: sum}, nil
}

func (s *Server) macVerify(ctx context.Context, req *MACVerifyRequestPayload) (*MACVerifyResponsePayload, error) {
	uid, err := s.cryptoTarget(ctx, "mac-verify", req.UniqueIdentifier, req.CorrelationValue, req.InitIndicator, req.FinalIndicator)
	if err != nil {
		return nil, err
	}
	if req.MACData == nil {
		return nil, kerr(kmip.ResultReasonMissingData, "missing MAC data")
	}
	h, err := macHash(req.CryptographicParameters)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	ok, err := stateOf(ctx).Keys.VerifyMAC(ctx, ref(uid), h, req.Data, req.MACData)
	if err != nil {
		return nil, err
	}
	v := kmip.ValidityIndicatorInvalid
	if ok {
		v = kmip.ValidityIndicatorValid
	}
	return &MACVerifyResponsePayload{UniqueIdentifier: uid, ValidityIndicator: v}, nil
}

// keysAlgorithm maps a KMIP algorithm to the one internal/keys uses;
// "" for algorithms the server only stores.
func keysAlgorithm(alg kmip.CryptographicAlgorithm) keys.Algorithm {
	switch alg {
	case kmip.CryptographicAlgorithmAES:
		return keys.AlgorithmAES
	case kmip.CryptographicAlgorithmChaCha20:
		return keys.AlgorithmChaCha20
	case kmip.CryptographicAlgorithmHMACSHA256:
		return keys.AlgorithmHMACSHA256
	case kmip.CryptographicAlgorithmHMACSHA384:
		return keys.AlgorithmHMACSHA384
	case kmip.CryptographicAlgorithmHMACSHA512:
		return keys.AlgorithmHMACSHA512
	}
	return ""
}

// defaultMask is the usage mask of a registered object whose template
// names none: what its algorithm does.
func defaultMask(obj *object) kmip.CryptographicUsageMask {
	if obj.typ != kmip.ObjectTypeSymmetricKey {
		return 0
	}
	switch keysAlgorithm(obj.alg) {
	case keys.AlgorithmAES, keys.AlgorithmChaCha20:
		return kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt
	case "":
		return 0
	default:
		return kmip.CryptographicUsageMACGenerate | kmip.CryptographicUsageMACVerify
	}
}

// exportFlags returns the Sensitive and Extractable attributes of a
// template (KMIP 1.4), nil where it has none.
func exportFlags(ta kmip.TemplateAttribute) (sensitive, extractable *bool, err error) {
	for _, a := range ta.Attribute {
		var dst **bool
		switch a.AttributeName {
		case kmip.AttributeNameSensitive:
			dst = &sensitive
		case kmip.AttributeNameExtractable:
			dst = &extractable
		default:
			continue
		}
		v, ok := a.AttributeValue.(bool)
		if !ok {
			return nil, nil, kerr(kmip.ResultReasonInvalidField, "invalid "+string(a.AttributeName)+" attribute")
		}
		*dst = &v
	}
	return sensitive, extractable, nil
}

// auditExport records that key material left the server: its own audit
// event (operation "export"), besides the Get batch item's.
func (s *Server) auditExport(ctx context.Context, uid string) {
	s.record(AuditEvent{Identity: clientName(ctx), Remote: sessionOf(ctx).remote, Operation: "export", UID: uid})
}

// usageWireError maps the errors of usage, export, lifecycle and
// server-side crypto to their KMIP answers; nil if err is none of them.
func usageWireError(err error) error {
	var (
		ee *keys.ExportError
		ue *keys.UsageError
	)
	switch {
	case errors.As(err, &ee):
		return kerr(kmip.ResultReasonPermissionDenied, ee.Error())
	case errors.As(err, &ue):
		return kerr(kmip.ResultReasonPermissionDenied, ue.Error())
	case errors.Is(err, keys.ErrKESManaged):
		return kerr(kmip.ResultReasonPermissionDenied, keys.ErrKESManaged.Error())
	case errors.Is(err, keys.ErrClientIV):
		return kerr(kmip.ResultReasonInvalidField, keys.ErrClientIV.Error())
	case errors.Is(err, keys.ErrNotRotatable):
		return kerr(kmip.ResultReasonIllegalOperation, keys.ErrNotRotatable.Error())
	case errors.Is(err, keys.ErrDestroyActive):
		return kerr(kmip.ResultReasonPermissionDenied, "object is active and cannot be destroyed")
	case errors.Is(err, keys.ErrVersionIsCurrent):
		return kerr(kmip.ResultReasonPermissionDenied, "object is the key's current version: destroy its older versions first")
	case errors.Is(err, keys.ErrVersionNotFound):
		return errObjectNotFound
	case errors.Is(err, crypto.ErrDecrypt):
		return kerr(kmip.ResultReasonCryptographicFailure, "decryption or authentication failed")
	case errors.Is(err, crypto.ErrInvalidIV):
		return kerr(kmip.ResultReasonInvalidField, "invalid IV/counter/nonce length")
	case errors.Is(err, crypto.ErrInvalidTagLength):
		return kerr(kmip.ResultReasonInvalidField, "invalid authenticated encryption tag length")
	case errors.Is(err, crypto.ErrInvalidLength):
		return kerr(kmip.ResultReasonInvalidField, "invalid data length for the mode")
	case errors.Is(err, keys.ErrAlgorithm), errors.Is(err, keys.ErrNotEncryptionKey), errors.Is(err, keys.ErrHMACNotSupported):
		return kerr(kmip.ResultReasonInvalidField, "the key's algorithm does not support the operation")
	case errors.Is(err, keys.ErrInvalidKey):
		// The message names the rule, never the material.
		return kerr(kmip.ResultReasonInvalidField, err.Error())
	case errors.Is(err, crypto.ErrInvalidKeyLength):
		return kerr(kmip.ResultReasonInvalidField, "invalid key: wrong length for its algorithm")
	}
	return nil
}

// usageAttr returns the usage mask or an export attribute, from what
// internal/keys keeps. Objects without material to use (secret data,
// opaque objects) have no usage mask unless one was given.
func (obj *object) usageAttr(name kmip.AttributeName) []kmip.Attribute {
	u := obj.usage
	if u.Origin == "" {
		return nil // a header-only view
	}
	var v any
	switch name {
	case kmip.AttributeNameCryptographicUsageMask:
		if u.Mask == 0 {
			return nil
		}
		v = kmip.CryptographicUsageMask(u.Mask)
	case kmip.AttributeNameSensitive:
		v = u.Sensitive
	case kmip.AttributeNameAlwaysSensitive:
		v = u.AlwaysSensitive
	case kmip.AttributeNameExtractable:
		v = u.Extractable
	case kmip.AttributeNameNeverExtractable:
		v = u.NeverExtractable
	}
	return []kmip.Attribute{{AttributeName: name, AttributeValue: v}}
}
