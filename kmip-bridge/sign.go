// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	stdcrypto "crypto"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
)

// Sign and Signature Verify. As Encrypt and MAC, the cryptography runs in
// internal/keys (keys.Service.Sign, VerifySignature), which checks the
// key's state and usage mask; the bridge translates the Cryptographic
// Parameters. Data is bounded by the request message limit.

func (s *Server) routeAsym(e *kmipserver.BatchExecutor) {
	e.Route(kmip.OperationCreateKeyPair, handle(s, s.createKeyPair))
	e.Route(kmip.OperationSign, handle(s, s.sign))
	e.Route(kmip.OperationSignatureVerify, handle(s, s.signatureVerify))
}

// signHash maps a KMIP hashing algorithm to Go's; 0 for none.
func signHash(h kmip.HashingAlgorithm) (stdcrypto.Hash, error) {
	switch h {
	case 0:
		return 0, nil
	case kmip.HashingAlgorithmSHA_256:
		return stdcrypto.SHA256, nil
	case kmip.HashingAlgorithmSHA_384:
		return stdcrypto.SHA384, nil
	case kmip.HashingAlgorithmSHA_512:
		return stdcrypto.SHA512, nil
	}
	return 0, kerr(kmip.ResultReasonInvalidField, "hashing algorithm is not supported for signatures: use SHA-256, -384 or -512")
}

// signParams maps the Cryptographic Parameters of a Sign or Signature
// Verify (the request's, else the key's first Cryptographic Parameters
// attribute) to keys.SignParams. Without any, an RSA key signs with
// PKCS#1 v1.5 and an EC key with ECDSA, both with SHA-256.
func (s *Server) signParams(ctx context.Context, uid string, rp *kmip.CryptographicParameters, digested bool) (keys.SignParams, error) {
	p := rp
	if p == nil {
		obj, err := s.view(ctx, uid)
		if err != nil {
			return keys.SignParams{}, err
		}
		for _, a := range obj.get(kmip.AttributeNameCryptographicParameters) {
			if cp, ok := a.AttributeValue.(kmip.CryptographicParameters); ok {
				p = &cp
				break
			}
		}
	}
	if p == nil {
		p = &kmip.CryptographicParameters{}
	}
	out := keys.SignParams{Digested: digested}
	h, err := signHash(p.HashingAlgorithm)
	if err != nil {
		return out, err
	}
	// The Digital Signature Algorithm names algorithm, padding and hash
	// at once; what else is given must agree with it.
	var (
		dsaHash stdcrypto.Hash
		dsaAlg  keys.Algorithm
		dsaPSS  bool
	)
	switch p.DigitalSignatureAlgorithm {
	case 0:
	case kmip.DigitalSignatureAlgorithmSHA_256WithRSAEncryption:
		dsaAlg, dsaHash = keys.AlgorithmRSA, stdcrypto.SHA256
	case kmip.DigitalSignatureAlgorithmSHA_384WithRSAEncryption:
		dsaAlg, dsaHash = keys.AlgorithmRSA, stdcrypto.SHA384
	case kmip.DigitalSignatureAlgorithmSHA_512WithRSAEncryption:
		dsaAlg, dsaHash = keys.AlgorithmRSA, stdcrypto.SHA512
	case kmip.DigitalSignatureAlgorithmRSASSA_PSS:
		dsaAlg, dsaPSS = keys.AlgorithmRSA, true
	case kmip.DigitalSignatureAlgorithmECDSAWithSHA256:
		dsaAlg, dsaHash = keys.AlgorithmEC, stdcrypto.SHA256
	case kmip.DigitalSignatureAlgorithmECDSAWithSHA384:
		dsaAlg, dsaHash = keys.AlgorithmEC, stdcrypto.SHA384
	case kmip.DigitalSignatureAlgorithmECDSAWithSHA512:
		dsaAlg, dsaHash = keys.AlgorithmEC, stdcrypto.SHA512
	default:
		return out, kerr(kmip.ResultReasonInvalidField, "digital signature algorithm is not supported: use RSA PKCS#1 v1.5, RSASSA-PSS or ECDSA with SHA-256, -384 or -512")
	}
	if h != 0 && dsaHash != 0 && h != dsaHash {
		return out, kerr(kmip.ResultReasonInvalidField, "hashing algorithm and digital signature algorithm disagree")
	}
	out.Hash = max(h, dsaHash)
	if out.Hash == 0 {
		out.Hash = stdcrypto.SHA256
	}

	alg := dsaAlg
	if p.CryptographicAlgorithm != 0 {
		a := asymAlgorithm(p.CryptographicAlgorithm)
		if a == "" {
			return out, kerr(kmip.ResultReasonInvalidField, "cryptographic algorithm is not a signature algorithm: use RSA, EC or ECDSA")
		}
		if alg != "" && a != alg {
			return out, kerr(kmip.ResultReasonInvalidField, "cryptographic algorithm and digital signature algorithm disagree")
		}
		alg = a
	}
	out.Algorithm = alg

	switch p.PaddingMethod {
	case 0:
		out.PSS = dsaPSS
	case kmip.PaddingMethodPSS:
		if p.DigitalSignatureAlgorithm != 0 && !dsaPSS {
			return out, kerr(kmip.ResultReasonInvalidField, "padding method and digital signature algorithm disagree")
		}
		out.PSS = true
	case kmip.PaddingMethodPKCS1V1_5:
		if dsaPSS || alg == keys.AlgorithmEC {
			return out, kerr(kmip.ResultReasonInvalidField, "PKCS#1 v1.5 padding does not fit the signature algorithm")
		}
	default:
		return out, kerr(kmip.ResultReasonInvalidField, "padding method is not supported for signatures: use PSS or PKCS1 v1.5")
	}
	if out.PSS {
		if p.MaskGenerator != 0 && p.MaskGenerator != kmip.MaskGeneratorMGF1 {
			return out, kerr(kmip.ResultReasonInvalidField, "PSS takes the MGF1 mask generator only")
		}
		if mh, err := signHash(p.MaskGeneratorHashingAlgorithm); err != nil || mh != 0 && mh != out.Hash {
			return out, kerr(kmip.ResultReasonInvalidField, "PSS takes MGF1 with the signature's own hash only")
		}
		if p.SaltLength != nil {
			if *p.SaltLength < 0 || *p.SaltLength > 1024 {
				return out, kerr(kmip.ResultReasonInvalidField, "invalid PSS salt length")
			}
			out.SaltLength = int(*p.SaltLength)
			if out.SaltLength == 0 {
				// keys.SignParams reads 0 as "the hash size";
				// an explicit empty salt is PSS's fixed form.
				return out, kerr(kmip.ResultReasonInvalidField, "PSS salt length 0 is not supported")
			}
		}
	}
	return out, nil
}

// signData returns the data of a Sign or Signature Verify: exactly one of
// Data and Digested Data.
func signData(data, digested []byte) ([]byte, bool, error) {
	switch {
	case data != nil && digested != nil:
		return nil, false, kerr(kmip.ResultReasonInvalidField, "give either data or digested data, not both")
	case digested != nil:
		return digested, true, nil
	case data != nil:
		return data, false, nil
	}
	return nil, false, kerr(kmip.ResultReasonMissingData, "missing data")
}

func (s *Server) sign(ctx context.Context, req *payloads.SignRequestPayload) (*payloads.SignResponsePayload, error) {
	uid, err := s.cryptoTarget(ctx, "sign", req.UniqueIdentifier, req.CorrelationValue, req.InitIndicator, req.FinalIndicator)
	if err != nil {
		return nil, err
	}
	data, digested, err := signData(req.Data, req.DigestedData)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	p, err := s.signParams(ctx, uid, req.CryptographicParameters, digested)
	if err != nil {
		return nil, err
	}
	if err := s.chargeSign(ctx, uid); err != nil {
		return nil, err
	}
	sig, err := stateOf(ctx).Keys.Sign(ctx, ref(uid), p, data)
	if err != nil {
		return nil, asymWireError(err)
	}
	return &payloads.SignResponsePayload{UniqueIdentifier: uid, SignatureData: sig}, nil
}

func (s *Server) signatureVerify(ctx context.Context, req *payloads.SignatureVerifyRequestPayload) (*payloads.SignatureVerifyResponsePayload, error) {
	uid, err := s.cryptoTarget(ctx, "signature-verify", req.UniqueIdentifier, req.CorrelationValue, req.InitIndicator, req.FinalIndicator)
	if err != nil {
		return nil, err
	}
	if req.SignatureData == nil {
		return nil, kerr(kmip.ResultReasonMissingData, "missing signature data")
	}
	data, digested, err := signData(req.Data, req.DigestedData)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	p, err := s.signParams(ctx, uid, req.CryptographicParameters, digested)
	if err != nil {
		return nil, err
	}
	ok, err := stateOf(ctx).Keys.VerifySignature(ctx, ref(uid), p, data, req.SignatureData)
	if err != nil {
		return nil, asymWireError(err)
	}
	v := kmip.ValidityIndicatorInvalid
	if ok {
		v = kmip.ValidityIndicatorValid
	}
	return &payloads.SignatureVerifyResponsePayload{UniqueIdentifier: uid, ValidityIndicator: v}, nil
}

// signCost is the cost of one signature with a private key, in units
// where an EC signature costs 1: an RSA private-key operation grows with
// the cube of the modulus size, (bits/1024)^3, so RSA-2048 costs 8 and
// RSA-8192, the largest key Register accepts, 512.
func signCost(alg kmip.CryptographicAlgorithm, bits int32) int {
	if alg != kmip.CryptographicAlgorithmRSA {
		return 1
	}
	k := int(max(bits, 1024)) / 1024
	return k * k * k
}

// maxSignCost is the signing one message may ask for: 1,000 RSA-2048
// signatures (a batch's most items) or 15 with RSA-8192, about a second
// of one core.
const maxSignCost = 1000 * 8

// chargeSign charges a Sign with the key uid to the message's budget and
// refuses it, before any work, once the message has asked for
// maxSignCost: without it a batch of 1,000 signatures with a registered
// RSA-8192 key holds a core for about a minute.
func (s *Server) chargeSign(ctx context.Context, uid string) error {
	b := budgetOf(ctx)
	if b == nil {
		return nil
	}
	obj, err := s.view(ctx, uid)
	if err != nil {
		return err
	}
	c := signCost(obj.alg, obj.length)
	if b.signs+c > maxSignCost {
		return kerr(kmip.ResultReasonInvalidField, "the signatures of one message may cost at most 1,000 RSA-2048 signatures in all: send further Sign requests in their own messages")
	}
	b.signs += c
	return nil
}
