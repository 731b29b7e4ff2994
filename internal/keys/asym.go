// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	stdcrypto "crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // SHA-256 for signatures
	_ "crypto/sha512" // SHA-384 and SHA-512 for signatures
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// Asymmetric keys (KMIP Private Key and Public Key objects). A private
// key's material is stored as PKCS#8 DER, a public key's as X.509
// SubjectPublicKeyInfo DER, both in KeyVersion.Material: sealed with the
// key value like every other material, never in the attribute record.
// The two halves of a pair are two keys, each with its own state and
// usage; nothing here links them (the KMIP bridge keeps Link attributes).

// The usage bits of signatures.
const (
	UsageSign   UsageMask = 0x0001
	UsageVerify UsageMask = 0x0002
)

// The asymmetric algorithms.
const (
	// AlgorithmRSA: RSA keys, signing with RSASSA-PSS or PKCS#1 v1.5.
	AlgorithmRSA Algorithm = "RSA"
	// AlgorithmEC: elliptic-curve keys on P-256, P-384 or P-521, signing
	// with ECDSA.
	AlgorithmEC Algorithm = "EC"
)

// RSA key sizes in bits. CreateKeyPair makes keys of MinRSABits to
// MaxRSABits; registered keys may be MinRegisteredRSABits to
// MaxRegisteredRSABits, for the interoperability of older and larger
// keys (a 1024-bit key is weak; it is stored, not recommended).
const (
	MinRSABits           = 2048
	MaxRSABits           = 4096
	MinRegisteredRSABits = 1024
	MaxRegisteredRSABits = 8192
)

var (
	// ErrUsageMask: a usage mask that makes no sense for the key, such
	// as Sign on a public key or Encrypt on an EC key.
	ErrUsageMask = errors.New("usage mask does not fit the key")

	// ErrSignParams: signature parameters that do not fit the key or
	// the data (a PSS padding on an EC key, a digest of the wrong size,
	// an unsupported hash).
	ErrSignParams = errors.New("invalid signature parameters")

	// ErrKeygenBusy: more key-pair generations are waiting for a slot
	// than keygenSlots lets wait. Refused at once rather than queued, so that
	// waiters cannot pile up until their deadlines.
	ErrKeygenBusy = errors.New("key pair generation is busy: too many key pairs are being generated, try again later")
)

// Which usage bits each kind of asymmetric key may carry. The server
// enforces Sign and Verify; the others are what the algorithm can do
// (for clients that use the key elsewhere). Export is a property of any
// object.
const (
	usageExport UsageMask = 0x0040
	// An RSA private key holds the public exponent as well, so clients
	// also register it for Encrypt and Wrap Key (the OASIS cases BL-M-11
	// and TC-PKCS12-1 do); the server never encrypts with RSA.
	usageRSAPrivateAllowed = UsageSign | UsageDecrypt | UsageEncrypt | UsageWrapKey | UsageUnwrapKey |
		0x0400 /* Content Commitment */ | 0x1000 /* Certificate Sign */ | 0x2000 /* CRL Sign */ | 0x100000 /* Authenticate */ | usageExport
	usageRSAPublicAllowed = UsageVerify | UsageEncrypt | UsageWrapKey | 0x0400 | 0x100000 | usageExport
	usageECPrivateAllowed = UsageSign | UsageDeriveKey | 0x0400 | 0x0800 /* Key Agreement */ |
		0x1000 | 0x2000 | 0x100000 | usageExport
	usageECPublicAllowed = UsageVerify | UsageDeriveKey | 0x0400 | 0x0800 | 0x100000 | usageExport
)

// AsymmetricUsage returns the usage bits a private or public key of alg
// may carry; 0 if alg is not asymmetric.
func AsymmetricUsage(alg Algorithm, private bool) UsageMask {
	switch {
	case alg == AlgorithmRSA && private:
		return usageRSAPrivateAllowed
	case alg == AlgorithmRSA:
		return usageRSAPublicAllowed
	case alg == AlgorithmEC && private:
		return usageECPrivateAllowed
	case alg == AlgorithmEC:
		return usageECPublicAllowed
	}
	return 0
}

// CheckAsymmetricMask refuses (ErrUsageMask) a usage mask with bits the
// key cannot serve (see AsymmetricUsage): a private key never verifies,
// a public key never signs, and an EC key never encrypts.
func CheckAsymmetricMask(alg Algorithm, private bool, mask UsageMask) error {
	allowed := AsymmetricUsage(alg, private)
	if allowed == 0 {
		return fmt.Errorf("%w: not an asymmetric key", ErrUsageMask)
	}
	if extra := mask &^ allowed; extra != 0 {
		part := "public"
		if private {
			part = "private"
		}
		return fmt.Errorf("%w: %s %s keys cannot have usage bits 0x%x", ErrUsageMask, alg, part, uint32(extra))
	}
	return nil
}

// IsAsymmetric reports whether alg is an asymmetric algorithm.
func IsAsymmetric(alg Algorithm) bool { return alg == AlgorithmRSA || alg == AlgorithmEC }

// curveOf returns the curve of an EC key of the given size.
func curveOf(bits int) (elliptic.Curve, bool) {
	switch bits {
	case 256:
		return elliptic.P256(), true
	case 384:
		return elliptic.P384(), true
	case 521:
		return elliptic.P521(), true
	}
	return nil, false
}

// ParseAsymmetric parses stored or registered asymmetric material: a
// PKCS#8 private key or an X.509 SubjectPublicKeyInfo public key of alg,
// within the sizes registered keys may have. It returns the private key
// (nil for a public key) and the public key. Its errors wrap
// ErrInvalidKey and never contain material.
func ParseAsymmetric(alg Algorithm, der []byte) (stdcrypto.Signer, stdcrypto.PublicKey, error) {
	var (
		priv stdcrypto.Signer
		pub  stdcrypto.PublicKey
	)
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		s, ok := k.(stdcrypto.Signer)
		if !ok {
			return nil, nil, fmt.Errorf("%w: unsupported private key type", ErrInvalidKey)
		}
		priv, pub = s, s.Public()
	} else if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		pub = k
	} else {
		return nil, nil, fmt.Errorf("%w: not a PKCS#8 private key or X.509 public key", ErrInvalidKey)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg != AlgorithmRSA {
			return nil, nil, fmt.Errorf("%w: the key is an RSA key, not %s", ErrInvalidKey, alg)
		}
		if n := k.N.BitLen(); n < MinRegisteredRSABits || n > MaxRegisteredRSABits {
			return nil, nil, fmt.Errorf("%w: RSA keys are %d to %d bits long", ErrInvalidKey, MinRegisteredRSABits, MaxRegisteredRSABits)
		}
	case *ecdsa.PublicKey:
		if alg != AlgorithmEC {
			return nil, nil, fmt.Errorf("%w: the key is an EC key, not %s", ErrInvalidKey, alg)
		}
		if c, ok := curveOf(k.Curve.Params().BitSize); !ok || c != k.Curve {
			return nil, nil, fmt.Errorf("%w: EC keys are on P-256, P-384 or P-521", ErrInvalidKey)
		}
	default:
		return nil, nil, fmt.Errorf("%w: only RSA and EC keys are supported", ErrInvalidKey)
	}
	return priv, pub, nil
}

// keygenSlots bounds concurrent key-pair generations: an RSA-4096 key
// takes a core for up to seconds.
var keygenSlots = newWorkSlots(ErrKeygenBusy)

// NewKeyPair describes a key pair a KMIP client creates.
type NewKeyPair struct {
	// Algorithm is AlgorithmRSA or AlgorithmEC.
	Algorithm Algorithm
	// Bits is the RSA modulus size (MinRSABits to MaxRSABits) or the
	// EC curve size (256, 384 or 521).
	Bits int

	// PrivateMask and PublicMask are the usage masks of the halves
	// (see CheckAsymmetricMask).
	PrivateMask, PublicMask UsageMask
	// Sensitive and Extractable apply to the private key as in
	// NewObject. A public key is never sensitive and always
	// extractable: it is not a secret.
	Sensitive, Extractable *bool

	CreatedBy string
	CreatedAt time.Time

	// Meta returns the metadata each half is stored with, given both
	// identifiers and materials (so that each can name the other).
	// Their Usage is replaced by the one NewKeyPair describes.
	Meta func(privUID, pubUID string, priv, pub *crypto.KeyVersion) (privMeta, pubMeta Metadata, err error)
}

// CreateKeyPair generates a key pair and stores its halves as two keys
// under new random identifiers, the private key first. If the public
// key cannot be stored, the private key is removed again.
//
// The identifiers come from Config.Rand. The key itself is generated by
// Go's crypto/rsa or crypto/ecdsa, which since Go 1.26 always draw from
// the system's secure random source and ignore the reader they are
// given (Config.Rand is passed, and used if GODEBUG=cryptocustomrand=1).
func (s *Service) CreateKeyPair(ctx context.Context, spec NewKeyPair) (privUID, pubUID string, err error) {
	var curve elliptic.Curve
	switch spec.Algorithm {
	case AlgorithmRSA:
		if spec.Bits < MinRSABits || spec.Bits > MaxRSABits || spec.Bits%8 != 0 {
			return "", "", fmt.Errorf("%w: RSA key pairs are %d to %d bits long, in whole bytes", ErrInvalidKey, MinRSABits, MaxRSABits)
		}
	case AlgorithmEC:
		var ok bool
		if curve, ok = curveOf(spec.Bits); !ok {
			return "", "", fmt.Errorf("%w: EC key pairs are on P-256, P-384 or P-521", ErrInvalidKey)
		}
	default:
		return "", "", fmt.Errorf("%w: only RSA and EC key pairs can be created", ErrInvalidKey)
	}
	if err := CheckAsymmetricMask(spec.Algorithm, true, spec.PrivateMask); err != nil {
		return "", "", err
	}
	if err := CheckAsymmetricMask(spec.Algorithm, false, spec.PublicMask); err != nil {
		return "", "", err
	}

	if err := keygenSlots.acquire(ctx); err != nil {
		return "", "", err
	}
	var key stdcrypto.Signer
	if curve != nil {
		key, err = ecdsa.GenerateKey(curve, s.rand)
	} else {
		key, err = rsa.GenerateKey(s.rand, spec.Bits)
	}
	keygenSlots.release()
	if err != nil {
		return "", "", fmt.Errorf("keys: failed to generate key pair: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("keys: failed to encode private key: %w", err)
	}
	defer clear(privDER)
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", "", fmt.Errorf("keys: failed to encode public key: %w", err)
	}

	if privUID, err = s.newUID(); err != nil {
		return "", "", err
	}
	if pubUID, err = s.newUID(); err != nil {
		return "", "", err
	}
	priv, err := s.newVersion(spec.Algorithm, privDER, spec.CreatedBy, spec.CreatedAt)
	if err != nil {
		return "", "", err
	}
	defer priv.Destroy()
	pub, err := s.newVersion(spec.Algorithm, pubDER, spec.CreatedBy, spec.CreatedAt)
	if err != nil {
		return "", "", err
	}
	defer pub.Destroy()
	privMeta, pubMeta, err := spec.Meta(privUID, pubUID, priv, pub)
	if err != nil {
		return "", "", err
	}
	pu := Usage{Origin: OriginKMIP, Algorithm: spec.Algorithm, Mask: spec.PrivateMask, Extractable: true}
	if spec.Sensitive != nil {
		pu.Sensitive = *spec.Sensitive
	}
	if spec.Extractable != nil {
		pu.Extractable = *spec.Extractable
	}
	pu.AlwaysSensitive, pu.NeverExtractable = pu.Sensitive, !pu.Extractable
	privMeta.Usage = &pu
	pubMeta.Usage = &Usage{Origin: OriginKMIP, Algorithm: spec.Algorithm, Mask: spec.PublicMask, Extractable: true}

	if err := s.CreateObject(ctx, privUID, priv, privMeta); err != nil {
		return "", "", err
	}
	if err := s.CreateObject(ctx, pubUID, pub, pubMeta); err != nil {
		// Half a pair is no use to the client, which never learns its
		// identifier: remove it, even if ctx has ended.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := s.store.Delete(cctx, privUID); derr == nil {
			s.cache.Delete(privUID)
			s.changed(privUID)
		}
		return "", "", err
	}
	return privUID, pubUID, nil
}

// checkAsymmetricObject is checkMaterial for asymmetric keys: the
// material must parse (ParseAsymmetric) and the mask fit its kind.
func checkAsymmetricObject(alg Algorithm, material []byte, mask UsageMask) (private bool, err error) {
	priv, _, err := ParseAsymmetric(alg, material)
	if err != nil {
		return false, err
	}
	return priv != nil, CheckAsymmetricMask(alg, priv != nil, mask)
}

// SignParams are the parameters of one KMIP Sign or Signature Verify.
type SignParams struct {
	// Algorithm, if not empty, is the key algorithm the client expects;
	// a key of another algorithm is refused (ErrAlgorithm).
	Algorithm Algorithm
	// PSS selects RSASSA-PSS (MGF1 with Hash) for an RSA key; otherwise
	// RSA keys sign with PKCS#1 v1.5. EC keys sign with ECDSA, and
	// refuse PSS.
	PSS bool
	// SaltLength is the PSS salt length in bytes. On Sign, 0 means the
	// size of the hash; on verify, 0 accepts any salt length.
	SaltLength int
	// Hash is SHA-256, SHA-384 or SHA-512.
	Hash stdcrypto.Hash
	// Digested says the data is already the digest of the message.
	Digested bool
}

// digest returns the hash of data, or data if it is the digest.
func (p SignParams) digest(data []byte) ([]byte, error) {
	switch p.Hash {
	case stdcrypto.SHA256, stdcrypto.SHA384, stdcrypto.SHA512:
	default:
		return nil, fmt.Errorf("%w: the hash is SHA-256, SHA-384 or SHA-512", ErrSignParams)
	}
	if p.Digested {
		if len(data) != p.Hash.Size() {
			return nil, fmt.Errorf("%w: the digested data is not a %s digest", ErrSignParams, p.Hash)
		}
		return data, nil
	}
	h := p.Hash.New()
	h.Write(data)
	return h.Sum(nil), nil
}

// withAsymmetric runs fn with the parsed key of the named object after
// the state and usage checks of bit (see check) and p's algorithm.
func (s *Service) withAsymmetric(ctx context.Context, name string, bit UsageMask, op string, p SignParams, fn func(priv stdcrypto.Signer, pub stdcrypto.PublicKey) error) error {
	return s.With(ctx, name, func(o *Object) error {
		if err := s.check(o, bit, op); err != nil {
			return err
		}
		alg := UsageOf(o).Algorithm
		if !IsAsymmetric(alg) || o.Version.Material == nil {
			return fmt.Errorf("%w: %s needs an RSA or EC key", ErrAlgorithm, op)
		}
		if p.Algorithm != "" && p.Algorithm != alg {
			return fmt.Errorf("%w: the key is an %s key", ErrAlgorithm, alg)
		}
		if p.PSS && alg != AlgorithmRSA {
			return fmt.Errorf("%w: PSS padding needs an RSA key", ErrSignParams)
		}
		return o.Version.Material.Use(func(der []byte) error {
			priv, pub, err := ParseAsymmetric(alg, der)
			if err != nil {
				return err
			}
			return fn(priv, pub)
		})
	})
}

// Sign signs data (or the digest in it, see SignParams.Digested) with
// the named private key. The key must be Active and its usage mask must
// have Sign. ECDSA signatures are ASN.1 DER. PSS salts come from
// Config.Rand; ECDSA nonces from the system's secure source (since Go
// 1.26 crypto/ecdsa ignores the reader it is given, as for GenerateKey).
func (s *Service) Sign(ctx context.Context, name string, p SignParams, data []byte) ([]byte, error) {
	digest, err := p.digest(data)
	if err != nil {
		return nil, err
	}
	var sig []byte
	err = s.withAsymmetric(ctx, name, UsageSign, "sign", p, func(priv stdcrypto.Signer, _ stdcrypto.PublicKey) error {
		if priv == nil {
			return fmt.Errorf("%w: sign needs a private key", ErrAlgorithm)
		}
		var err error
		switch k := priv.(type) {
		case *rsa.PrivateKey:
			if p.PSS {
				salt := p.SaltLength
				if salt == 0 {
					salt = rsa.PSSSaltLengthEqualsHash
				}
				sig, err = rsa.SignPSS(s.rand, k, p.Hash, digest, &rsa.PSSOptions{SaltLength: salt, Hash: p.Hash})
				if err != nil {
					return fmt.Errorf("%w: the PSS salt does not fit the key", ErrSignParams)
				}
				return nil
			}
			sig, err = rsa.SignPKCS1v15(nil, k, p.Hash, digest)
		case *ecdsa.PrivateKey:
			sig, err = ecdsa.SignASN1(s.rand, k, digest)
		default:
			return fmt.Errorf("%w: unsupported key type", ErrAlgorithm)
		}
		if err != nil {
			return fmt.Errorf("keys: signature failed: %w", err)
		}
		return nil
	})
	return sig, err
}

// VerifySignature reports whether sig is a valid signature of data (or
// of the digest in it) under the named public key. The key must be
// Active, Deactivated or Compromised and its usage mask must have Verify.
// A signature that does not verify is false, not an error. ECDSA
// signatures are ASN.1 DER or the raw concatenation of r and s.
func (s *Service) VerifySignature(ctx context.Context, name string, p SignParams, data, sig []byte) (bool, error) {
	digest, err := p.digest(data)
	if err != nil {
		return false, err
	}
	var ok bool
	err = s.withAsymmetric(ctx, name, UsageVerify, "signature verify", p, func(priv stdcrypto.Signer, pub stdcrypto.PublicKey) error {
		if priv != nil {
			return fmt.Errorf("%w: signature verify needs a public key", ErrAlgorithm)
		}
		switch k := pub.(type) {
		case *rsa.PublicKey:
			if p.PSS {
				salt := p.SaltLength
				if salt == 0 {
					salt = rsa.PSSSaltLengthAuto
				}
				ok = rsa.VerifyPSS(k, p.Hash, digest, sig, &rsa.PSSOptions{SaltLength: salt, Hash: p.Hash}) == nil
				return nil
			}
			ok = rsa.VerifyPKCS1v15(k, p.Hash, digest, sig) == nil
		case *ecdsa.PublicKey:
			ok = ecdsa.VerifyASN1(k, digest, sig)
			if size := (k.Curve.Params().BitSize + 7) / 8; !ok && len(sig) == 2*size {
				r, rs := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
				ok = ecdsa.Verify(k, digest, r, rs)
			}
		default:
			return fmt.Errorf("%w: unsupported key type", ErrAlgorithm)
		}
		return nil
	})
	return ok, err
}
