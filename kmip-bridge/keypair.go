// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"math/big"
	"slices"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// Create Key Pair, and Register and Get of Public Key and Private Key
// objects. internal/keys stores a private key as PKCS#8 and a public key
// as X.509 SubjectPublicKeyInfo (keys.ParseAsymmetric); this file
// translates between those and the KMIP key formats.

// asymAlgorithm maps a KMIP algorithm to the keys one; "" if it is none
// of RSA, EC and ECDSA.
func asymAlgorithm(alg kmip.CryptographicAlgorithm) keys.Algorithm {
	switch alg {
	case kmip.CryptographicAlgorithmRSA:
		return keys.AlgorithmRSA
	case kmip.CryptographicAlgorithmEC, kmip.CryptographicAlgorithmECDSA:
		return keys.AlgorithmEC
	}
	return ""
}

// curveBits maps a Recommended Curve to the key size internal/keys
// takes; 0 for curves the server does not support.
func curveBits(c kmip.RecommendedCurve) int32 {
	switch c {
	case kmip.RecommendedCurveP_256:
		return 256
	case kmip.RecommendedCurveP_384:
		return 384
	case kmip.RecommendedCurveP_521:
		return 521
	}
	return 0
}

func curveOfBits(bits int32) kmip.RecommendedCurve {
	switch bits {
	case 256:
		return kmip.RecommendedCurveP_256
	case 384:
		return kmip.RecommendedCurveP_384
	case 521:
		return kmip.RecommendedCurveP_521
	}
	return 0
}

func curveOf(c elliptic.Curve) kmip.RecommendedCurve { return curveOfBits(int32(c.Params().BitSize)) }

// mergeTemplate returns the attributes of one half of a key pair: the
// half's own, and the common ones it does not override (KMIP: the
// half-specific template takes precedence).
//
// It takes time linear in the attributes: a template is as long as the
// message allows, before anything refuses unknown names.
func mergeTemplate(common, half *kmip.TemplateAttribute) kmip.TemplateAttribute {
	var out kmip.TemplateAttribute
	if half != nil {
		out.Attribute = slices.Clone(half.Attribute)
	}
	if common != nil {
		present := make(map[kmip.AttributeName]bool, len(out.Attribute))
		for _, b := range out.Attribute {
			present[b.AttributeName] = true
		}
		for _, a := range common.Attribute {
			if !multiValued(a.AttributeName) && present[a.AttributeName] {
				continue // overridden
			}
			present[a.AttributeName] = true
			out.Attribute = append(out.Attribute, a)
		}
	}
	return out
}

// halfSpec is what a key pair's half asks for.
type halfSpec struct {
	obj        *object
	alg        kmip.CryptographicAlgorithm
	length     int32
	curve      kmip.RecommendedCurve
	mask       *kmip.CryptographicUsageMask
	activation *time.Time
}

func parseHalf(typ kmip.ObjectType, ta kmip.TemplateAttribute) (halfSpec, error) {
	h := halfSpec{obj: &object{typ: typ}}
	var err error
	h.alg, h.length, h.mask, h.activation, err = applyTemplate(h.obj, ta)
	if err != nil {
		return h, err
	}
	for _, a := range ta.Attribute {
		if a.AttributeName != kmip.AttributeNameCryptographicDomainParameters {
			continue
		}
		dp, ok := a.AttributeValue.(kmip.CryptographicDomainParameters)
		if !ok {
			return h, kerr(kmip.ResultReasonInvalidField, "invalid cryptographic domain parameters")
		}
		h.curve = dp.RecommendedCurve
	}
	return h, nil
}

// pairSize checks the algorithm and size a key-pair template asks for and
// returns the internal/keys algorithm and size.
func pairSize(alg kmip.CryptographicAlgorithm, length int32, curve kmip.RecommendedCurve) (keys.Algorithm, int32, error) {
	ka := asymAlgorithm(alg)
	switch {
	case alg == 0:
		return "", 0, kerr(kmip.ResultReasonMissingData, "missing cryptographic algorithm")
	case ka == "":
		return "", 0, kerr(kmip.ResultReasonInvalidField, "only RSA and EC (ECDSA) key pairs can be created")
	case ka == keys.AlgorithmRSA:
		if curve != 0 {
			return "", 0, kerr(kmip.ResultReasonInvalidField, "RSA keys take no recommended curve")
		}
		if length == 0 {
			length = 2048
		}
		if length < keys.MinRSABits || length > keys.MaxRSABits || length%8 != 0 {
			return "", 0, kerr(kmip.ResultReasonInvalidField, "RSA key pairs are 2048 to 4096 bits long")
		}
		return ka, length, nil
	}
	bits := curveBits(curve)
	switch {
	case curve != 0 && bits == 0:
		return "", 0, kerr(kmip.ResultReasonInvalidField, "EC key pairs are on P-256, P-384 or P-521")
	case curve == 0 && length == 0:
		return "", 0, kerr(kmip.ResultReasonMissingData, "missing recommended curve")
	case curve == 0:
		if curveOfBits(length) == 0 {
			return "", 0, kerr(kmip.ResultReasonInvalidField, "EC key pairs are on P-256, P-384 or P-521")
		}
		bits = length
	case length != 0 && length != bits:
		return "", 0, kerr(kmip.ResultReasonInvalidField, "cryptographic length does not match the recommended curve")
	}
	return ka, bits, nil
}

func (s *Server) createKeyPair(ctx context.Context, req *payloads.CreateKeyPairRequestPayload) (*payloads.CreateKeyPairResponsePayload, error) {
	if err := s.authorize(ctx, "create-key-pair", ""); err != nil {
		return nil, err
	}
	privTA := mergeTemplate(req.CommonTemplateAttribute, req.PrivateKeyTemplateAttribute)
	pubTA := mergeTemplate(req.CommonTemplateAttribute, req.PublicKeyTemplateAttribute)
	priv, err := parseHalf(kmip.ObjectTypePrivateKey, privTA)
	if err != nil {
		return nil, err
	}
	pub, err := parseHalf(kmip.ObjectTypePublicKey, pubTA)
	if err != nil {
		return nil, err
	}
	// A value one half's template leaves out is the other's.
	fill(&priv.alg, &pub.alg)
	fill(&priv.length, &pub.length)
	fill(&priv.curve, &pub.curve)
	if priv.alg != pub.alg || priv.length != pub.length || priv.curve != pub.curve {
		return nil, kerr(kmip.ResultReasonInvalidField, "the private and public key templates name different algorithms or sizes")
	}
	alg, bits, err := pairSize(priv.alg, priv.length, priv.curve)
	if err != nil {
		return nil, err
	}
	if b := budgetOf(ctx); b != nil {
		// One message may not generate more than maxKeygenCost: a batch
		// of RSA-4096 items would otherwise hold a generation slot, and
		// a core, for minutes while other clients wait.
		c := keygenCost(alg, bits)
		if b.keygen+c > maxKeygenCost {
			return nil, kerr(kmip.ResultReasonInvalidField, "the key pairs of one message may cost at most four RSA-4096 generations in all: send further Create Key Pair requests in their own messages")
		}
		b.keygen += c
	}
	sensitive, extractable, err := exportFlags(privTA)
	if err != nil {
		return nil, err
	}
	privMask := halfMask(alg, true, priv.mask, req.PrivateKeyTemplateAttribute, kmip.CryptographicUsageSign)
	pubMask := halfMask(alg, false, pub.mask, req.PublicKeyTemplateAttribute, kmip.CryptographicUsageVerify)
	for _, h := range []halfSpec{priv, pub} {
		h.obj.alg, h.obj.length = priv.alg, bits
		if alg == keys.AlgorithmEC {
			h.obj.set(kmip.AttributeNameCryptographicDomainParameters, kmip.CryptographicDomainParameters{RecommendedCurve: curveOfBits(bits)})
		}
	}
	// Key generation draws from the system's generator (crypto/rsa and
	// crypto/ecdsa ignore any other reader): record it on both halves.
	rng := rngParameters(true)
	priv.obj.set(kmip.AttributeNameRandomNumberGenerator, rng)
	pub.obj.set(kmip.AttributeNameRandomNumberGenerator, rng)
	now := nowOf(ctx)
	octx, cancel := s.opContext(ctx)
	defer cancel()
	privUID, pubUID, err := stateOf(ctx).Keys.CreateKeyPair(octx, keys.NewKeyPair{
		Algorithm: alg, Bits: int(bits),
		PrivateMask: keys.UsageMask(privMask), PublicMask: keys.UsageMask(pubMask),
		Sensitive: sensitive, Extractable: extractable,
		CreatedBy: sessionOf(ctx).identity.String(), CreatedAt: now,
		Meta: func(privUID, pubUID string, pv, pb *crypto.KeyVersion) (keys.Metadata, keys.Metadata, error) {
			priv.obj.uid, pub.obj.uid = privUID, pubUID
			priv.obj.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypePublicKeyLink, LinkedObjectIdentifier: pubUID})
			pub.obj.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypePrivateKeyLink, LinkedObjectIdentifier: privUID})
			if err := finishAsym(priv.obj, pv, now, priv.activation); err != nil {
				return keys.Metadata{}, keys.Metadata{}, err
			}
			if err := finishAsym(pub.obj, pb, now, pub.activation); err != nil {
				return keys.Metadata{}, keys.Metadata{}, err
			}
			pm, err := priv.obj.meta()
			if err != nil {
				return keys.Metadata{}, keys.Metadata{}, err
			}
			bm, err := pub.obj.meta()
			return pm, bm, err
		},
	})
	if err != nil {
		return nil, asymWireError(err)
	}
	// The private key is the placeholder (KMIP 1.4 §4.2): a following
	// Sign or Activate names it.
	kmipserver.SetIdPlaceholder(ctx, privUID)
	auditUID(ctx, privUID)
	return &payloads.CreateKeyPairResponsePayload{PrivateKeyUniqueIdentifier: privUID, PublicKeyUniqueIdentifier: pubUID}, nil
}

// fill sets whichever of a and b is zero to the other.
func fill[T comparable](a, b *T) {
	var zero T
	switch {
	case *a == zero:
		*a = *b
	case *b == zero:
		*b = *a
	}
}

// halfMask returns the usage mask of one half of a key pair. A mask of
// the half's own template is taken as it is (and refused if it does not
// fit, keys.CheckAsymmetricMask); a mask of the common template is meant
// for both halves, so each keeps the bits it can serve ("Sign Verify"
// becomes Sign on the private key and Verify on the public key), unless
// none is left.
func halfMask(alg keys.Algorithm, private bool, merged *kmip.CryptographicUsageMask, own *kmip.TemplateAttribute, def kmip.CryptographicUsageMask) kmip.CryptographicUsageMask {
	if merged == nil {
		return def
	}
	if own != nil && slices.ContainsFunc(own.Attribute, func(a kmip.Attribute) bool {
		return a.AttributeName == kmip.AttributeNameCryptographicUsageMask
	}) {
		return *merged
	}
	if m := *merged & kmip.CryptographicUsageMask(keys.AsymmetricUsage(alg, private)); m != 0 {
		return m
	}
	return *merged
}

// finishAsym is finish for an asymmetric key: the digest is that of the
// key in its default format (PKCS#1 for RSA keys, as the OASIS cases
// expect; PKCS#8 or X.509 for EC keys).
func finishAsym(obj *object, v *crypto.KeyVersion, now time.Time, activation *time.Time) error {
	finish(obj, v, now, activation, 0)
	obj.del(kmip.AttributeNameDigest)
	var d kmip.Digest
	err := useMaterial(v, func(der []byte) error {
		format, b, err := digestForm(obj, der)
		if err != nil {
			return err
		}
		defer clear(b)
		sum := sha256.Sum256(b)
		d = kmip.Digest{HashingAlgorithm: kmip.HashingAlgorithmSHA_256, DigestValue: sum[:], KeyFormatType: format}
		return nil
	})
	if err != nil {
		return err
	}
	obj.set(kmip.AttributeNameDigest, d)
	return nil
}

// digestForm returns the key in the format its digest is computed over.
func digestForm(obj *object, der []byte) (kmip.KeyFormatType, []byte, error) {
	priv, pub, err := keys.ParseAsymmetric(asymAlgorithm(obj.alg), der)
	if err != nil {
		return 0, nil, err
	}
	switch {
	case priv != nil:
		if k, ok := priv.(*rsa.PrivateKey); ok {
			return kmip.KeyFormatTypePKCS_1, x509.MarshalPKCS1PrivateKey(k), nil
		}
		return kmip.KeyFormatTypePKCS_8, slices.Clone(der), nil
	default:
		if k, ok := pub.(*rsa.PublicKey); ok {
			return kmip.KeyFormatTypePKCS_1, x509.MarshalPKCS1PublicKey(k), nil
		}
		return kmip.KeyFormatTypeX_509, slices.Clone(der), nil
	}
}

// registerAsym registers a Private Key or Public Key object: its
// material is parsed from any supported format, validated, and stored
// as PKCS#8 or X.509 (keys.ParseAsymmetric states the sizes taken).
func (s *Server) registerAsym(ctx context.Context, req *payloads.RegisterRequestPayload) (*payloads.RegisterResponsePayload, error) {
	obj := &object{typ: req.ObjectType}
	alg, length, mask, activation, err := applyTemplate(obj, req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	sensitive, extractable, err := exportFlags(req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	var block *kmip.KeyBlock
	switch o := req.Object.(type) {
	case *kmip.PrivateKey:
		block = &o.KeyBlock
	case *kmip.PublicKey:
		block = &o.KeyBlock
	}
	if block == nil || obj.typ != req.Object.ObjectType() {
		return nil, kerr(kmip.ResultReasonInvalidField, "object type does not match the object")
	}
	if block.KeyWrappingData != nil || block.KeyValue == nil || block.KeyValue.Plain == nil {
		return nil, kerr(kmip.ResultReasonFeatureNotSupported, "wrapped keys are not supported")
	}
	if block.KeyCompressionType != 0 && block.KeyCompressionType != kmip.KeyCompressionTypeECPublicKeyTypeUncompressed {
		return nil, kerr(kmip.ResultReasonKeyCompressionTypeNotSupported, "key compression is not supported")
	}
	if block.CryptographicAlgorithm != 0 {
		if alg != 0 && asymAlgorithm(alg) != asymAlgorithm(block.CryptographicAlgorithm) {
			return nil, kerr(kmip.ResultReasonInvalidField, "the template and the key block name different algorithms")
		}
		alg = block.CryptographicAlgorithm
	}
	if b := block.KeyValue.Plain.KeyMaterial.Bytes; b != nil {
		defer clear(*b) // the request's copy of the key
	}
	der, kalg, err := canonicalDER(req.Object)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	// The material says what the key is; a named algorithm or length
	// must agree with it.
	_, pub, err := keys.ParseAsymmetric(kalg, der)
	if err != nil {
		return nil, asymWireError(err)
	}
	var bits int32
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits = int32(k.N.BitLen())
	case *ecdsa.PublicKey:
		bits = int32(k.Curve.Params().BitSize)
	}
	if alg == 0 {
		alg = kmip.CryptographicAlgorithmRSA
		if kalg == keys.AlgorithmEC {
			alg = kmip.CryptographicAlgorithmEC
		}
	}
	if asymAlgorithm(alg) != kalg {
		return nil, kerr(kmip.ResultReasonInvalidField, "cryptographic algorithm does not match the key")
	}
	if block.CryptographicLength != 0 {
		length = block.CryptographicLength
	}
	if length != 0 && length != bits {
		return nil, kerr(kmip.ResultReasonInvalidField, "cryptographic length does not match the key")
	}
	obj.alg, obj.length = alg, bits
	if kalg == keys.AlgorithmEC {
		obj.set(kmip.AttributeNameCryptographicDomainParameters, kmip.CryptographicDomainParameters{RecommendedCurve: curveOfBits(bits)})
	}
	m := kmip.CryptographicUsageSign
	if obj.typ == kmip.ObjectTypePublicKey {
		m = kmip.CryptographicUsageVerify
	}
	if mask != nil {
		m = *mask
	}
	resp, err := s.storeRegistered(ctx, obj, keys.NewObject{
		Algorithm: kalg, Material: der,
		Mask: keys.UsageMask(m), Sensitive: sensitive, Extractable: extractable,
	}, func(v *crypto.KeyVersion, now time.Time) error { return finishAsym(obj, v, now, activation) })
	if err != nil {
		return nil, asymWireError(err)
	}
	return resp, nil
}

// keygenCost is the cost of generating a key pair, in units where an EC
// key pair costs 1 and an RSA-4096 one 256: RSA generation searches for
// two primes, each candidate test costing the cube of the size and the
// number of candidates growing with the size, so the time grows about
// with the fourth power of the modulus size ((bits/1024)^4: RSA-2048 is
// 16, RSA-3072 81). EC generation is one scalar multiplication.
func keygenCost(alg keys.Algorithm, bits int32) int {
	if alg != keys.AlgorithmRSA {
		return 1
	}
	sq := int(bits) * int(bits) / (1024 * 1024)
	return max(1, sq*sq)
}

// maxKeygenCost is the key generation one message may ask for: four
// RSA-4096 key pairs, a few seconds of one core.
const maxKeygenCost = 4 * 256

// asymWireError maps the errors of asymmetric keys that usageWireError
// does not know; other errors pass unchanged (the server maps them).
func asymWireError(err error) error {
	switch {
	case errors.Is(err, keys.ErrUsageMask), errors.Is(err, keys.ErrSignParams):
		return kerr(kmip.ResultReasonInvalidField, err.Error())
	case errors.Is(err, keys.ErrAlgorithm):
		return kerr(kmip.ResultReasonInvalidField, err.Error())
	case errors.Is(err, keys.ErrKeygenBusy):
		// KMIP has no "try again" reason; the message says it.
		return kerr(kmip.ResultReasonGeneralFailure, err.Error())
	}
	return err
}

// The transparent ECDSA formats are deprecated since KMIP 1.3, which
// renamed them EC; clients of KMIP 1.0 to 1.2 know only them.
//
//lint:ignore SA1019 clients of KMIP 1.0 to 1.2 use this format
const formatECDSAPrivate = kmip.KeyFormatTypeTransparentECDSAPrivateKey

//lint:ignore SA1019 clients of KMIP 1.0 to 1.2 use this format
const formatECDSAPublic = kmip.KeyFormatTypeTransparentECDSAPublicKey

func ecdsaPrivateMaterial(t *kmip.TransparentECPrivateKey) kmip.KeyMaterial {
	//lint:ignore SA1019 see formatECDSAPrivate
	return kmip.KeyMaterial{TransparentECDSAPrivateKey: (*kmip.TransparentECDSAPrivateKey)(t)}
}

func ecdsaPublicMaterial(t *kmip.TransparentECPublicKey) kmip.KeyMaterial {
	//lint:ignore SA1019 see formatECDSAPrivate
	return kmip.KeyMaterial{TransparentECDSAPublicKey: (*kmip.TransparentECDSAPublicKey)(t)}
}

var errFormat = kerr(kmip.ResultReasonInvalidField, "invalid key material for its key format type")

// maxKeyDER bounds the encoded key of a Register before it is parsed: an
// RSA-8192 private key is about 4.7 KiB in PKCS#8, and parsing and
// validating a key costs time that grows with more than the square of
// its size (16 KiB would hold a 24,000-bit key, some 45 ms per parse).
const maxKeyDER = 6 << 10

var errKeyTooLarge = kerr(kmip.ResultReasonInvalidField, "key material is too large: RSA keys are 1024 to 8192 bits long")

// canonicalDER converts a registered key to the form internal/keys
// stores: PKCS#8 for private keys, X.509 SubjectPublicKeyInfo for
// public keys. The key is validated first (RSA keys with
// rsa.PrivateKey.Validate, EC points and scalars against their curve).
func canonicalDER(o kmip.Object) ([]byte, keys.Algorithm, error) {
	var alg keys.Algorithm
	kb := keyBlockOf(o)
	if kb == nil || kb.KeyValue == nil || kb.KeyValue.Plain == nil || !materialFits(kb.KeyFormatType, kb.KeyValue.Plain.KeyMaterial) {
		return nil, "", errFormat
	}
	if b := kb.KeyValue.Plain.KeyMaterial.Bytes; b != nil && len(*b) > maxKeyDER {
		return nil, "", errKeyTooLarge
	}
	switch o := o.(type) {
	case *kmip.PrivateKey:
		switch o.KeyBlock.KeyFormatType {
		case kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypePKCS_8, kmip.KeyFormatTypeTransparentRSAPrivateKey,
			kmip.KeyFormatTypeECPrivateKey, kmip.KeyFormatTypeTransparentECPrivateKey, formatECDSAPrivate:
		default:
			return nil, "", kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "private keys are registered as PKCS#1, PKCS#8, EC Private Key or Transparent RSA or EC private keys")
		}
		if err := checkTransparentPrivate(o); err != nil {
			return nil, "", err
		}
		k, err := o.CryptoPrivateKey()
		if err != nil {
			return nil, "", errFormat
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			if k.N.BitLen() > keys.MaxRegisteredRSABits {
				return nil, "", errKeyTooLarge
			}
			if k.Validate() != nil {
				return nil, "", errFormat
			}
			alg = keys.AlgorithmRSA
		case *ecdsa.PrivateKey:
			if _, err := k.ECDH(); err != nil {
				return nil, "", errFormat
			}
			alg = keys.AlgorithmEC
		default:
			return nil, "", kerr(kmip.ResultReasonInvalidField, "only RSA and EC private keys are supported")
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, "", errFormat
		}
		return der, alg, nil
	case *kmip.PublicKey:
		switch o.KeyBlock.KeyFormatType {
		case kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypeX_509, kmip.KeyFormatTypeTransparentRSAPublicKey,
			kmip.KeyFormatTypeTransparentECPublicKey, formatECDSAPublic:
		default:
			return nil, "", kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "public keys are registered as PKCS#1, X.509 or Transparent RSA or EC public keys")
		}
		m, err := o.KeyBlock.GetMaterial()
		if err != nil || m.TransparentECPublicKey == nil && m.TransparentECDSAPublicKey == nil &&
			m.TransparentRSAPublicKey == nil && m.Bytes == nil {
			return nil, "", errFormat
		}
		if t := m.TransparentRSAPublicKey; t != nil {
			if t.Modulus.BitLen() > keys.MaxRegisteredRSABits {
				return nil, "", errKeyTooLarge
			}
			if t.PublicExponent.BitLen() > 31 {
				return nil, "", errFormat
			}
		}
		k, err := o.CryptoPublicKey()
		if err != nil {
			return nil, "", errFormat
		}
		switch k := k.(type) {
		case *rsa.PublicKey:
			if k.N == nil || k.N.Sign() <= 0 || k.E < 3 || k.E%2 == 0 {
				return nil, "", errFormat
			}
			alg = keys.AlgorithmRSA
		case *ecdsa.PublicKey:
			if _, err := k.ECDH(); err != nil {
				return nil, "", errFormat
			}
			alg = keys.AlgorithmEC
		default:
			return nil, "", kerr(kmip.ResultReasonInvalidField, "only RSA and EC public keys are supported")
		}
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, "", errFormat
		}
		return der, alg, nil
	}
	return nil, "", kerr(kmip.ResultReasonInvalidField, "not an asymmetric key")
}

// materialFits reports whether the key material has the shape its
// format names: the library's parsers assume it.
func materialFits(f kmip.KeyFormatType, m kmip.KeyMaterial) bool {
	switch f {
	case kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypePKCS_8, kmip.KeyFormatTypeX_509, kmip.KeyFormatTypeECPrivateKey:
		return m.Bytes != nil
	case kmip.KeyFormatTypeTransparentRSAPrivateKey:
		return m.TransparentRSAPrivateKey != nil
	case kmip.KeyFormatTypeTransparentRSAPublicKey:
		return m.TransparentRSAPublicKey != nil
	case kmip.KeyFormatTypeTransparentECPrivateKey:
		return m.TransparentECPrivateKey != nil
	case kmip.KeyFormatTypeTransparentECPublicKey:
		return m.TransparentECPublicKey != nil
	case formatECDSAPrivate:
		return m.TransparentECDSAPrivateKey != nil
	case formatECDSAPublic:
		return m.TransparentECDSAPublicKey != nil
	}
	return true // refused by format below
}

// keyBlockOf returns the key block of a private or public key.
func keyBlockOf(o kmip.Object) *kmip.KeyBlock {
	switch o := o.(type) {
	case *kmip.PrivateKey:
		return &o.KeyBlock
	case *kmip.PublicKey:
		return &o.KeyBlock
	}
	return nil
}

// checkTransparentPrivate refuses transparent private keys that the
// library would turn into a key without checking: missing RSA
// components (it dereferences them) and EC scalars outside [1, n-1].
func checkTransparentPrivate(o *kmip.PrivateKey) error {
	switch o.KeyBlock.KeyFormatType {
	case kmip.KeyFormatTypeTransparentRSAPrivateKey:
		m, err := o.KeyBlock.GetMaterial()
		if err != nil || m.TransparentRSAPrivateKey == nil {
			return errFormat
		}
		t := m.TransparentRSAPrivateKey
		if t.Modulus.BitLen() > keys.MaxRegisteredRSABits {
			return errKeyTooLarge
		}
		// Every component is below the modulus, and the exponent fits an
		// int: larger values are no key and only cost time.
		for _, v := range []*big.Int{t.PrivateExponent, t.PublicExponent, t.P, t.Q} {
			if v == nil || v.Sign() <= 0 || v.BitLen() > t.Modulus.BitLen() {
				return errFormat
			}
		}
		if t.PublicExponent.BitLen() > 31 {
			return errFormat
		}
		// The CRT values are recomputed (Precompute); given ones are
		// not trusted.
		t.PrimeExponentP, t.PrimeExponentQ, t.CRTCoefficient = nil, nil, nil
	case kmip.KeyFormatTypeTransparentECPrivateKey, formatECDSAPrivate:
		m, err := o.KeyBlock.GetMaterial()
		if err != nil {
			return errFormat
		}
		var t *kmip.TransparentECPrivateKey
		switch {
		case m.TransparentECPrivateKey != nil:
			t = m.TransparentECPrivateKey
		case m.TransparentECDSAPrivateKey != nil:
			t = (*kmip.TransparentECPrivateKey)(m.TransparentECDSAPrivateKey)
		default:
			return errFormat
		}
		bits := curveBits(t.RecommendedCurve)
		if bits == 0 {
			return kerr(kmip.ResultReasonInvalidField, "EC keys are on P-256, P-384 or P-521")
		}
		var c elliptic.Curve
		switch bits {
		case 256:
			c = elliptic.P256()
		case 384:
			c = elliptic.P384()
		default:
			c = elliptic.P521()
		}
		if t.D.Sign() <= 0 || t.D.Cmp(c.Params().N) >= 0 {
			return errFormat
		}
	}
	return nil
}

// asymObject returns the KMIP object of a stored asymmetric key in the
// format asked for (0: the default, PKCS#1 for RSA keys, Transparent EC
// for EC keys: Transparent ECDSA before KMIP 1.3). keep registers the
// byte slices it makes, which are wiped once the answer is sent.
func asymObject(obj *object, der []byte, format kmip.KeyFormatType, v kmip.ProtocolVersion, keep func([]byte)) (kmip.Object, error) {
	priv, pub, err := keys.ParseAsymmetric(asymAlgorithm(obj.alg), der)
	if err != nil {
		return nil, err
	}
	if (priv != nil) != (obj.typ == kmip.ObjectTypePrivateKey) {
		return nil, errors.New("kmip: stored key does not match its object type")
	}
	transparentEC := kmip.KeyFormatTypeTransparentECPrivateKey
	if priv == nil {
		transparentEC = kmip.KeyFormatTypeTransparentECPublicKey
	}
	if ttlv.CompareVersions(v, kmip.V1_3) < 0 {
		transparentEC = formatECDSAPrivate
		if priv == nil {
			transparentEC = formatECDSAPublic
		}
	}
	if format == 0 {
		format = kmip.KeyFormatTypePKCS_1
		if _, ok := pub.(*ecdsa.PublicKey); ok {
			format = transparentEC
		}
	}
	block := kmip.KeyBlock{KeyFormatType: format, CryptographicAlgorithm: obj.alg, CryptographicLength: obj.length}
	bytesOf := func(b []byte) *kmip.KeyValue {
		keep(b)
		return &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &b}}}
	}
	notSupported := kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "key format type is not supported for this key")
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		switch format {
		case kmip.KeyFormatTypePKCS_1:
			block.KeyValue = bytesOf(x509.MarshalPKCS1PrivateKey(k))
		case kmip.KeyFormatTypePKCS_8:
			block.KeyValue = bytesOf(slices.Clone(der))
		case kmip.KeyFormatTypeTransparentRSAPrivateKey:
			block.KeyValue = &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{TransparentRSAPrivateKey: &kmip.TransparentRSAPrivateKey{
				Modulus: *k.N, PrivateExponent: k.D, PublicExponent: big.NewInt(int64(k.E)), P: k.Primes[0], Q: k.Primes[1],
				PrimeExponentP: k.Precomputed.Dp, PrimeExponentQ: k.Precomputed.Dq, CRTCoefficient: k.Precomputed.Qinv,
			}}}}
		default:
			return nil, notSupported
		}
		return &kmip.PrivateKey{KeyBlock: block}, nil
	case *ecdsa.PrivateKey:
		switch format {
		case kmip.KeyFormatTypePKCS_8:
			block.KeyValue = bytesOf(slices.Clone(der))
		case kmip.KeyFormatTypeECPrivateKey:
			b, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				return nil, err
			}
			block.KeyValue = bytesOf(b)
		case kmip.KeyFormatTypeTransparentECPrivateKey, formatECDSAPrivate:
			if format != transparentEC {
				return nil, notSupported
			}
			t := kmip.TransparentECPrivateKey{RecommendedCurve: curveOf(k.Curve), D: *k.D}
			km := kmip.KeyMaterial{TransparentECPrivateKey: &t}
			if format == formatECDSAPrivate {
				km = ecdsaPrivateMaterial(&t)
			}
			block.KeyValue = &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: km}}
		default:
			return nil, notSupported
		}
		return &kmip.PrivateKey{KeyBlock: block}, nil
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch format {
		case kmip.KeyFormatTypePKCS_1:
			block.KeyValue = bytesOf(x509.MarshalPKCS1PublicKey(k))
		case kmip.KeyFormatTypeX_509:
			block.KeyValue = bytesOf(slices.Clone(der))
		case kmip.KeyFormatTypeTransparentRSAPublicKey:
			block.KeyValue = &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{TransparentRSAPublicKey: &kmip.TransparentRSAPublicKey{
				Modulus: *k.N, PublicExponent: *big.NewInt(int64(k.E)),
			}}}}
		default:
			return nil, notSupported
		}
	case *ecdsa.PublicKey:
		switch format {
		case kmip.KeyFormatTypeX_509:
			block.KeyValue = bytesOf(slices.Clone(der))
		case kmip.KeyFormatTypeTransparentECPublicKey, formatECDSAPublic:
			if format != transparentEC {
				return nil, notSupported
			}
			ek, err := k.ECDH()
			if err != nil {
				return nil, err
			}
			t := kmip.TransparentECPublicKey{RecommendedCurve: curveOf(k.Curve), QString: ek.Bytes()}
			km := kmip.KeyMaterial{TransparentECPublicKey: &t}
			if format == formatECDSAPublic {
				km = ecdsaPublicMaterial(&t)
			}
			block.KeyValue = &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: km}}
		default:
			return nil, notSupported
		}
	default:
		return nil, notSupported
	}
	return &kmip.PublicKey{KeyBlock: block}, nil
}
