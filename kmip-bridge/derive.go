// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/ttlv"
)

// The KMIP Derive Key operation (KMIP 1.4 §4.6). The derivation runs in
// internal/keys (keys.Service.DeriveKMIP), which checks the base key's
// state, usage and the caps; the bridge translates the request, names
// and links the new object.

func init() {
	// kmip-go v0.9.2 has neither the Derive Key payloads nor the
	// Derivation Method enumeration.
	ttlv.RegisterEnum(kmip.TagDerivationMethod, map[DerivationMethod]string{
		DerivationMethodPBKDF2:         "PBKDF2",
		DerivationMethodHash:           "HASH",
		DerivationMethodHMAC:           "HMAC",
		DerivationMethodEncrypt:        "ENCRYPT",
		DerivationMethodNIST800_108C:   "NIST800_108_C",
		DerivationMethodNIST800_108F:   "NIST800_108_F",
		DerivationMethodNIST800_108DPI: "NIST800_108_DPI",
		DerivationMethodAsymmetricKey:  "AsymmetricKey",
	})
	kmip.RegisterOperationPayload[DeriveKeyRequestPayload, DeriveKeyResponsePayload](kmip.OperationDeriveKey)
}

// DerivationMethod is the KMIP Derivation Method enumeration (KMIP 1.4
// §9.1.3.2.21).
type DerivationMethod uint32

// The Derivation Methods of KMIP 1.0–1.4.
const (
	DerivationMethodPBKDF2         DerivationMethod = 0x01
	DerivationMethodHash           DerivationMethod = 0x02
	DerivationMethodHMAC           DerivationMethod = 0x03
	DerivationMethodEncrypt        DerivationMethod = 0x04
	DerivationMethodNIST800_108C   DerivationMethod = 0x05
	DerivationMethodNIST800_108F   DerivationMethod = 0x06
	DerivationMethodNIST800_108DPI DerivationMethod = 0x07
	DerivationMethodAsymmetricKey  DerivationMethod = 0x08
)

// DerivationParameters is the KMIP Derivation Parameters structure
// (KMIP 1.4 §2.1.11 of the operations: Derive Key).
type DerivationParameters struct {
	CryptographicParameters *kmip.CryptographicParameters
	InitializationVector    []byte `ttlv:",omitempty"`
	DerivationData          []byte `ttlv:",omitempty"`
	Salt                    []byte `ttlv:",omitempty"`
	IterationCount          int32  `ttlv:",omitempty"`
}

// DeriveKeyRequestPayload is the request of Derive Key. Unique
// Identifier may repeat (several base objects); the server takes one.
type DeriveKeyRequestPayload struct {
	ObjectType           kmip.ObjectType
	UniqueIdentifier     []string `ttlv:",omitempty"`
	DerivationMethod     DerivationMethod
	DerivationParameters DerivationParameters
	TemplateAttribute    kmip.TemplateAttribute
}

// Operation implements kmip.OperationPayload.
func (*DeriveKeyRequestPayload) Operation() kmip.Operation { return kmip.OperationDeriveKey }

// DeriveKeyResponsePayload is the response of Derive Key.
type DeriveKeyResponsePayload struct {
	UniqueIdentifier  string
	TemplateAttribute *kmip.TemplateAttribute
}

// Operation implements kmip.OperationPayload.
func (*DeriveKeyResponsePayload) Operation() kmip.Operation { return kmip.OperationDeriveKey }

// kdfHash maps a KMIP hashing algorithm (or an HMAC algorithm, which
// some clients send instead) to the derivation's hash; 0 if none.
func kdfHash(p *kmip.CryptographicParameters) (crypto.KDFHash, error) {
	if p == nil {
		return 0, nil
	}
	switch p.HashingAlgorithm {
	case 0:
	case kmip.HashingAlgorithmSHA_1:
		return crypto.KDFSHA1, nil
	case kmip.HashingAlgorithmSHA_224:
		return crypto.KDFSHA224, nil
	case kmip.HashingAlgorithmSHA_256:
		return crypto.KDFSHA256, nil
	case kmip.HashingAlgorithmSHA_384:
		return crypto.KDFSHA384, nil
	case kmip.HashingAlgorithmSHA_512:
		return crypto.KDFSHA512, nil
	default:
		return 0, kerr(kmip.ResultReasonInvalidField, "hashing algorithm is not supported for derivation: use SHA-1, SHA-224, SHA-256, SHA-384 or SHA-512")
	}
	switch p.CryptographicAlgorithm {
	case kmip.CryptographicAlgorithmHMACSHA1:
		return crypto.KDFSHA1, nil
	case kmip.CryptographicAlgorithmHMACSHA224:
		return crypto.KDFSHA224, nil
	case kmip.CryptographicAlgorithmHMACSHA256:
		return crypto.KDFSHA256, nil
	case kmip.CryptographicAlgorithmHMACSHA384:
		return crypto.KDFSHA384, nil
	case kmip.CryptographicAlgorithmHMACSHA512:
		return crypto.KDFSHA512, nil
	}
	return 0, nil
}

// derivation translates the method and parameters of a request for a
// key of n bytes.
func derivation(m DerivationMethod, p DerivationParameters, n int) (keys.Derivation, error) {
	d := keys.Derivation{Data: p.DerivationData, Salt: p.Salt, Iterations: int(p.IterationCount), IV: p.InitializationVector, Length: n}
	switch m {
	case DerivationMethodPBKDF2:
		d.Method = keys.DerivePBKDF2
	case DerivationMethodHMAC:
		d.Method = keys.DeriveHMAC
	case DerivationMethodNIST800_108C:
		d.Method = keys.DeriveCounter
	case DerivationMethodHash:
		d.Method = keys.DeriveHash
	case DerivationMethodEncrypt:
		d.Method = keys.DeriveEncrypt
		cp := p.CryptographicParameters
		if cp == nil || cp.BlockCipherMode == 0 {
			return d, kerr(kmip.ResultReasonMissingData, "missing cryptographic parameters: encryption derivation needs block cipher mode CBC")
		}
		if cp.CryptographicAlgorithm != 0 && cp.CryptographicAlgorithm != kmip.CryptographicAlgorithmAES {
			return d, kerr(kmip.ResultReasonFeatureNotSupported, "encryption derivation uses AES")
		}
		if cp.BlockCipherMode != kmip.BlockCipherModeCBC {
			return d, kerr(kmip.ResultReasonFeatureNotSupported, "encryption derivation supports block cipher mode CBC only")
		}
		switch cp.PaddingMethod {
		case 0, kmip.PaddingMethodNone:
		case kmip.PaddingMethodPKCS5:
			d.Padding = true
		default:
			return d, kerr(kmip.ResultReasonFeatureNotSupported, "encryption derivation pads with PKCS5 or not at all")
		}
		if len(d.IV) == 0 {
			return d, kerr(kmip.ResultReasonMissingData, "missing initialization vector: encryption derivation is AES-CBC with the IV given")
		}
		return d, nil
	case 0:
		return d, kerr(kmip.ResultReasonMissingData, "missing derivation method")
	default:
		return d, kerr(kmip.ResultReasonFeatureNotSupported, "derivation method is not supported: use PBKDF2, Hash, HMAC, NIST800-108-C or Encrypt")
	}
	h, err := kdfHash(p.CryptographicParameters)
	if err != nil {
		return d, err
	}
	if h == 0 {
		return d, kerr(kmip.ResultReasonMissingData, "missing cryptographic parameters: the derivation needs a hashing algorithm")
	}
	d.Hash = h
	return d, nil
}

// deriveKey is Derive Key: one base object, a Symmetric Key or Secret
// Data of the template's Cryptographic Length. It needs
// /kmip/derive-key/<base> and /kmip/create.
func (s *Server) deriveKey(ctx context.Context, req *DeriveKeyRequestPayload) (*DeriveKeyResponsePayload, error) {
	if len(req.UniqueIdentifier) > 1 {
		return nil, kerr(kmip.ResultReasonFeatureNotSupported, "derivation from several base objects is not supported")
	}
	var uid string
	if len(req.UniqueIdentifier) == 1 {
		uid = req.UniqueIdentifier[0]
	}
	base, err := s.target(ctx, "derive-key", uid)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, "create", ""); err != nil {
		return nil, err
	}
	obj := &object{typ: req.ObjectType}
	format := kmip.KeyFormatTypeRaw
	switch req.ObjectType {
	case kmip.ObjectTypeSymmetricKey:
	case kmip.ObjectTypeSecretData:
		obj.secretType = kmip.SecretDataTypeSeed
		format = kmip.KeyFormatTypeOpaque
	default:
		return nil, kerr(kmip.ResultReasonInvalidField, "derive key makes symmetric keys and secret data only")
	}
	alg, length, mask, activation, err := applyTemplate(obj, req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	sensitive, extractable, err := exportFlags(req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	switch {
	case length == 0:
		return nil, kerr(kmip.ResultReasonMissingData, "missing cryptographic length of the derived key")
	case length < 0 || length%8 != 0 || int(length/8) > keys.MaxDeriveLength:
		return nil, kerr(kmip.ResultReasonInvalidField, "cryptographic length of the derived key must be a multiple of 8, at most 4096")
	}
	if req.ObjectType == kmip.ObjectTypeSymmetricKey {
		if alg == 0 {
			return nil, kerr(kmip.ResultReasonMissingData, "missing cryptographic algorithm of the derived key")
		}
		obj.alg, obj.length = alg, length
	}
	d, err := derivation(req.DerivationMethod, req.DerivationParameters, int(length/8))
	if err != nil {
		return nil, err
	}
	if err := d.Check(); err != nil {
		return nil, deriveWireError(err)
	}
	if b := budgetOf(ctx); b != nil && d.Work() > 0 {
		// One message may not ask for more PBKDF2 work than one
		// derivation may do: a batch of 1,000 costly items would
		// otherwise hold a core for over an hour.
		if b.derived+d.Work() > keys.MaxDeriveWork {
			return nil, kerr(kmip.ResultReasonInvalidField, fmt.Sprintf("the PBKDF2 derivations of one message are at most %d iterations times output blocks in all", keys.MaxDeriveWork))
		}
		b.derived += d.Work()
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	// The base is a key or secret data: the type never changes, so
	// reading it before the derivation is enough.
	bobj, err := s.view(octx, base)
	if err != nil {
		return nil, err
	}
	if bobj.typ != kmip.ObjectTypeSymmetricKey && bobj.typ != kmip.ObjectTypeSecretData {
		return nil, kerr(kmip.ResultReasonInvalidField, "the base object is neither a symmetric key nor secret data")
	}
	if mask == nil {
		m := defaultMask(obj)
		mask = &m
	}
	obj.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeDerivationBaseObjectLink, LinkedObjectIdentifier: base})
	now := nowOf(ctx)
	newUID, err := stateOf(ctx).Keys.DeriveKMIP(octx, ref(base), d, keys.NewObject{
		Algorithm: keysAlgorithm(obj.alg),
		Mask:      keys.UsageMask(*mask), Sensitive: sensitive, Extractable: extractable,
		CreatedBy: sessionOf(ctx).identity.String(), CreatedAt: now,
		Meta: func(uid string, v *crypto.KeyVersion) (keys.Metadata, error) {
			obj.uid = uid
			finish(obj, v, now, activation, format)
			return obj.meta()
		},
	})
	if err != nil {
		return nil, deriveWireError(err)
	}
	// The base names what was derived from it. The new object's link is
	// the authoritative one: if this one cannot be added (the base is at
	// its attribute limit, or busy), the derivation still stands.
	err = s.update(octx, base, func(b *object, _ *keys.Object) error {
		b.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeDerivedKeyLink, LinkedObjectIdentifier: newUID})
		b.touch(now)
		return nil
	})
	if err != nil {
		s.log.Warn("kmip: derive key: failed to link the base object to the derived key", "base", base, "uid", newUID, "err", err)
	}
	kmipserver.SetIdPlaceholder(ctx, newUID)
	auditUID(ctx, newUID)
	return &DeriveKeyResponsePayload{UniqueIdentifier: newUID}, nil
}

// deriveWireError maps the errors of key derivation to KMIP answers.
func deriveWireError(err error) error {
	switch {
	case errors.Is(err, keys.ErrDeriveParams), errors.Is(err, keys.ErrDeriveTooCostly):
		return kerr(kmip.ResultReasonInvalidField, err.Error())
	case errors.Is(err, keys.ErrDeriveSeparation):
		return kerr(kmip.ResultReasonPermissionDenied, err.Error())
	case errors.Is(err, keys.ErrDeriveBusy):
		// KMIP has no "try again" reason; the message says it.
		return kerr(kmip.ResultReasonGeneralFailure, err.Error())
	}
	return err
}
