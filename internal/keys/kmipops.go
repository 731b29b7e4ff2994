// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// Errors of the KMIP operations. The front door maps them to its
// answers; their messages contain no key material.
var (
	// ErrUsageNotAllowed is matched by every *UsageError.
	ErrUsageNotAllowed = errors.New("key usage does not allow the operation")

	// ErrAlgorithm: the key's algorithm does not do the operation (for
	// example AES-GCM with an HMAC key, or HMAC-SHA384 with a KES key).
	ErrAlgorithm = errors.New("key algorithm does not support the operation")
)

// UsageError names the usage bit a key lacks.
type UsageError struct{ Op string }

func (e *UsageError) Error() string {
	return "key usage mask does not allow " + e.Op
}

// Is makes every *UsageError match ErrUsageNotAllowed.
func (e *UsageError) Is(target error) bool { return target == ErrUsageNotAllowed }

// NewObject describes a key a KMIP client creates or registers.
type NewObject struct {
	// Algorithm of the material. AES and the HMAC algorithms are what
	// Create generates; Register also stores material of any other
	// algorithm (the empty Algorithm) without using it.
	Algorithm Algorithm
	// Bits is the length of the key Create generates. It is ignored
	// when Material is given.
	Bits int
	// Material is the key Register stores. Nil means generate one of
	// Bits bits from Config.Rand. The caller keeps its copy. For
	// AlgorithmRSA and AlgorithmEC it is a PKCS#8 private key or an
	// X.509 SubjectPublicKeyInfo public key (see ParseAsymmetric), and
	// Mask must fit it (CheckAsymmetricMask); a public key is always
	// extractable and never sensitive, whatever Sensitive and
	// Extractable say.
	Material []byte

	// Mask is the usage mask asked for. Sensitive and Extractable are
	// the client's choices; nil means the KMIP defaults (not
	// sensitive, extractable).
	Mask        UsageMask
	Sensitive   *bool
	Extractable *bool
	// Public marks public material (a certificate): it is stored
	// Extractable and not Sensitive whatever the two fields above say,
	// and stays exportable (Usage.Public).
	Public bool

	CreatedBy string
	CreatedAt time.Time

	// Meta returns the metadata the new key is stored with (its state
	// and KMIP record), given its identifier and material. Its Usage is
	// replaced by the one NewObject describes.
	Meta func(uid string, v *crypto.KeyVersion) (Metadata, error)
}

// CreateKMIP makes the key a KMIP client creates or registers and stores
// it under a new random identifier (a version 4 UUID, from Config.Rand),
// which it returns. 256-bit AES and ChaCha20 keys become KES keys, with a
// fresh HMAC key, so that they also serve the KES API; other material is
// stored as raw bytes.
func (s *Service) CreateKMIP(ctx context.Context, spec NewObject) (string, error) {
	material := spec.Material
	public := false // a public key: not a secret, always exportable
	if material == nil {
		n, err := generatedSize(spec.Algorithm, spec.Bits)
		if err != nil {
			return "", err
		}
		material = make([]byte, n)
		defer clear(material)
		if _, err := io.ReadFull(s.rand, material); err != nil {
			return "", fmt.Errorf("keys: failed to generate key: %w", err)
		}
	} else if IsAsymmetric(spec.Algorithm) {
		private, err := checkAsymmetricObject(spec.Algorithm, material, spec.Mask)
		if err != nil {
			return "", err
		}
		public = !private
	} else if err := checkMaterial(spec.Algorithm, material); err != nil {
		return "", err
	}
	uid, err := s.newUID()
	if err != nil {
		return "", err
	}
	v, err := s.newVersion(spec.Algorithm, material, spec.CreatedBy, spec.CreatedAt)
	if err != nil {
		return "", err
	}
	defer v.Destroy()
	meta, err := spec.Meta(uid, v)
	if err != nil {
		return "", err
	}
	u := Usage{Origin: OriginKMIP, Algorithm: spec.Algorithm, Mask: spec.Mask, Extractable: true}
	if spec.Sensitive != nil {
		u.Sensitive = *spec.Sensitive
	}
	if spec.Extractable != nil {
		u.Extractable = *spec.Extractable
	}
	switch {
	case spec.Public:
		u.Public, u.Sensitive, u.Extractable = true, false, true
	case public:
		u.Sensitive, u.Extractable = false, true
	}
	u.AlwaysSensitive, u.NeverExtractable = u.Sensitive, !u.Extractable
	u.Generated = spec.Material == nil
	meta.Usage = &u
	if err := s.CreateObject(ctx, uid, v, meta); err != nil {
		return "", err
	}
	return uid, nil
}

// generatedSize returns the size of a key Create makes.
func generatedSize(alg Algorithm, bits int) (int, error) {
	switch alg {
	case AlgorithmAES:
		if bits != 128 && bits != 192 && bits != 256 {
			return 0, fmt.Errorf("%w: AES keys are 128, 192 or 256 bits long", ErrInvalidKey)
		}
	case AlgorithmHMACSHA256, AlgorithmHMACSHA384, AlgorithmHMACSHA512:
		// RFC 2104 §3: keys shorter than the output weaken the MAC;
		// longer than a block are hashed first.
		if bits%8 != 0 || bits < 128 || bits > 1024 {
			return 0, fmt.Errorf("%w: HMAC keys are 128 to 1024 bits long, in whole bytes", ErrInvalidKey)
		}
	default:
		return 0, fmt.Errorf("%w: only AES and HMAC keys can be created", ErrInvalidKey)
	}
	return bits / 8, nil
}

// checkMaterial refuses registered material that does not fit the
// algorithm the server would use it with.
func checkMaterial(alg Algorithm, material []byte) error {
	if len(material) == 0 {
		return fmt.Errorf("%w: no key material", ErrInvalidKey)
	}
	switch alg {
	case AlgorithmAES:
		if n := len(material); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("%w: AES keys are 128, 192 or 256 bits long", ErrInvalidKey)
		}
	case AlgorithmChaCha20:
		if len(material) != crypto.KeySize {
			return fmt.Errorf("%w: ChaCha20 keys are 256 bits long", ErrInvalidKey)
		}
	}
	return nil
}

// newVersion stores material: 256-bit AES and ChaCha20 keys as KES keys
// with an HMAC key from Config.Rand, everything else as raw bytes.
func (s *Service) newVersion(alg Algorithm, material []byte, createdBy string, now time.Time) (*crypto.KeyVersion, error) {
	v := &crypto.KeyVersion{CreatedAt: now, CreatedBy: createdBy}
	var kt crypto.KeyType
	if len(material) == crypto.KeySize {
		switch alg {
		case AlgorithmAES:
			kt = crypto.AES256
		case AlgorithmChaCha20:
			kt = crypto.ChaCha20
		}
	}
	if kt == 0 {
		v.Material = crypto.NewSecretBytes(material)
		return v, nil
	}
	key, err := crypto.NewSecretKey(kt, material)
	if err != nil {
		return nil, err
	}
	hk, err := crypto.GenerateHMACKey(s.rand)
	if err != nil {
		key.Destroy()
		return nil, err
	}
	v.Key, v.HMACKey = key, hk
	return v, nil
}

// newUID returns a random version 4 UUID, which is a valid key name.
func (s *Service) newUID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("keys: failed to generate identifier: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// Mode is a block cipher mode of the KMIP Encrypt and Decrypt operations.
type Mode int

// The supported modes.
const (
	// ModeGCM is AES-GCM (SP 800-38D).
	ModeGCM Mode = iota + 1
	// ModeCBC is AES-CBC (SP 800-38A) with PKCS#5 padding.
	ModeCBC
)

// ErrClientIV: a GCM Encrypt that names its own IV. The server always
// draws the IV of a GCM encryption: a client that may encrypt but not
// decrypt could otherwise repeat the IV of a ciphertext it was given and
// learn its keystream and the key's GHASH key, that is, read and forge
// ciphertexts of the key.
var ErrClientIV = errors.New("AES-GCM encrypt takes no IV: the server generates a random one for every encryption")

// CipherParams are the parameters of one KMIP Encrypt or Decrypt.
type CipherParams struct {
	Mode Mode
	// IV is the IV or nonce. On Encrypt, GCM takes none (ErrClientIV):
	// the server draws 12 random bytes from Config.Rand. CBC takes the
	// client's, or nil for 16 random bytes. That is a deliberate choice:
	// clients such as PyKMIP send their own CBC IV, and a chosen CBC IV
	// gives an encrypt-only client less than a GCM one would. It can
	// check a guess of a plaintext block of a ciphertext it holds (as
	// with any encryption oracle whose IV it picks), but it learns no
	// keystream and cannot forge.
	IV []byte
	// TagLength is the GCM tag length on Encrypt; 0 means 16.
	TagLength int
	// AAD is the GCM additional authenticated data.
	AAD []byte
	// Tag is the GCM tag on Decrypt.
	Tag []byte
}

// Sealed is the result of EncryptKMIP.
type Sealed struct {
	Ciphertext []byte
	// IV is the IV used, set when the server chose it.
	IV  []byte
	Tag []byte
}

// withUse runs fn with the raw AES key of the named key, after checking
// its state and usage bit. A KES AES-256 key is used as the raw AES-256
// key: KMIP sees it as an AES-256 symmetric key, and AES-GCM or AES-CBC
// with it is what a KMIP client expects. (The KES API's own ciphertexts
// derive a key per ciphertext instead; the two never mix.)
func (s *Service) withAES(ctx context.Context, name string, bit UsageMask, op string, fn func(key []byte) error) error {
	return s.With(ctx, name, func(o *Object) error {
		if err := s.check(o, bit, op); err != nil {
			return err
		}
		u := UsageOf(o)
		if u.Algorithm != AlgorithmAES {
			return fmt.Errorf("%w: %s needs an AES key", ErrAlgorithm, op)
		}
		switch {
		case o.Version.Key != nil:
			if o.Version.Key.Type() != crypto.AES256 {
				return fmt.Errorf("%w: %s needs an AES key", ErrAlgorithm, op)
			}
			return o.Version.Key.Use(fn)
		case o.Version.Material != nil:
			return o.Version.Material.Use(fn)
		default:
			return ErrNotEncryptionKey
		}
	})
}

// check enforces the lifecycle state and the usage mask: operations that
// protect or make keys (encrypt, MAC generate, sign, wrap key, derive
// key) need Active, those that process (decrypt, MAC verify, signature
// verify) also accept Deactivated and Compromised. Unwrap key accepts
// Active and Deactivated only: its result is a new key the server
// trusts, and whoever may hold a Compromised key's material can make a
// blob unwrap to key material of their choice (ErrUnwrapCompromised). A
// Deactivated key still unwraps what it wrapped while Active.
func (s *Service) check(o *Object, bit UsageMask, op string) error {
	protect := bit == UsageEncrypt || bit == UsageMACGenerate || bit == UsageSign || bit == UsageWrapKey || bit == UsageDeriveKey
	if protect && !o.Meta.State.Active() || !protect && !o.Meta.State.CanDecrypt() {
		return ErrNotActive
	}
	if bit == UsageUnwrapKey && o.Meta.State == StateCompromised {
		return ErrUnwrapCompromised
	}
	window := o.processWindow
	if protect {
		window = o.protectWindow
	}
	if err := window(o.Version); err != nil {
		return err
	}
	if UsageOf(o).Mask&bit == 0 {
		return &UsageError{Op: op}
	}
	return nil
}

// EncryptKMIP encrypts plaintext with the named AES key in the mode p
// names. The key must be Active and its usage mask must have Encrypt. A
// GCM encryption with an IV in p is refused (ErrClientIV).
func (s *Service) EncryptKMIP(ctx context.Context, name string, p CipherParams, plaintext []byte) (Sealed, error) {
	if p.Mode == ModeGCM && p.IV != nil {
		return Sealed{}, ErrClientIV
	}
	var out Sealed
	iv := p.IV
	if iv == nil {
		n := crypto.GCMStandardIVSize
		if p.Mode == ModeCBC {
			n = 16
		}
		iv = make([]byte, n)
		if _, err := io.ReadFull(s.rand, iv); err != nil {
			return Sealed{}, fmt.Errorf("keys: failed to generate IV: %w", err)
		}
		out.IV = iv
	}
	err := s.withAES(ctx, name, UsageEncrypt, "encrypt", func(key []byte) error {
		var err error
		switch p.Mode {
		case ModeGCM:
			tagLen := p.TagLength
			if tagLen == 0 {
				tagLen = crypto.GCMMaxTagSize
			}
			out.Ciphertext, out.Tag, err = crypto.GCMSeal(key, iv, plaintext, p.AAD, tagLen)
		case ModeCBC:
			out.Ciphertext, err = crypto.CBCEncrypt(key, iv, plaintext)
		default:
			err = fmt.Errorf("%w: unknown mode", ErrAlgorithm)
		}
		return err
	})
	if err != nil {
		return Sealed{}, err
	}
	return out, nil
}

// DecryptKMIP decrypts ciphertext with the named AES key. The key must be
// Active, Deactivated or Compromised and its usage mask must have
// Decrypt. A GCM tag that does not verify, or a CBC padding that is
// wrong, is crypto.ErrDecrypt.
func (s *Service) DecryptKMIP(ctx context.Context, name string, p CipherParams, ciphertext []byte) ([]byte, error) {
	if p.IV == nil {
		return nil, fmt.Errorf("%w: missing IV", crypto.ErrInvalidIV)
	}
	var plaintext []byte
	err := s.withAES(ctx, name, UsageDecrypt, "decrypt", func(key []byte) error {
		var err error
		switch p.Mode {
		case ModeGCM:
			plaintext, err = crypto.GCMOpen(key, p.IV, ciphertext, p.Tag, p.AAD)
		case ModeCBC:
			plaintext, err = crypto.CBCDecrypt(key, p.IV, ciphertext)
		default:
			err = fmt.Errorf("%w: unknown mode", ErrAlgorithm)
		}
		return err
	})
	return plaintext, err
}

// withMAC runs fn with the HMAC key and hash of the named key. A KES key
// (made over either door) MACs with its HMAC key and HMAC-SHA256, as the
// KES API's /v1/key/hmac does, so both doors compute the same MAC; a key
// a KMIP client made as an HMAC key MACs with its material and the hash
// of its algorithm. h, if not zero, must be that hash.
func (s *Service) withMAC(ctx context.Context, name string, h crypto.MACHash, bit UsageMask, op string, fn func(h crypto.MACHash, key []byte) error) error {
	return s.With(ctx, name, func(o *Object) error {
		if err := s.check(o, bit, op); err != nil {
			return err
		}
		if o.Version.Key != nil {
			if o.Version.HMACKey == nil {
				return ErrHMACNotSupported
			}
			if h != 0 && h != crypto.MACSHA256 {
				return fmt.Errorf("%w: the key computes HMAC-SHA256 only", ErrAlgorithm)
			}
			return o.Version.HMACKey.UseHMAC(func(key []byte) error { return fn(crypto.MACSHA256, key) })
		}
		var own crypto.MACHash
		switch UsageOf(o).Algorithm {
		case AlgorithmHMACSHA256:
			own = crypto.MACSHA256
		case AlgorithmHMACSHA384:
			own = crypto.MACSHA384
		case AlgorithmHMACSHA512:
			own = crypto.MACSHA512
		default:
			return fmt.Errorf("%w: %s needs an HMAC key", ErrAlgorithm, op)
		}
		if h != 0 && h != own {
			return fmt.Errorf("%w: the key computes %s only", ErrAlgorithm, own)
		}
		if o.Version.Material == nil {
			return ErrNotEncryptionKey
		}
		return o.Version.Material.Use(func(key []byte) error { return fn(own, key) })
	})
}

// MAC returns the HMAC of msg under the named key (see withMAC for
// which). The key must be Active and its usage mask must have MAC
// Generate.
func (s *Service) MAC(ctx context.Context, name string, h crypto.MACHash, msg []byte) ([]byte, error) {
	var sum []byte
	err := s.withMAC(ctx, name, h, UsageMACGenerate, "MAC generate", func(h crypto.MACHash, key []byte) error {
		var err error
		sum, err = crypto.MACSum(h, key, msg)
		return err
	})
	return sum, err
}

// VerifyMAC reports whether mac is the HMAC of msg under the named key.
// The key must be Active, Deactivated or Compromised and its usage mask
// must have MAC Verify.
func (s *Service) VerifyMAC(ctx context.Context, name string, h crypto.MACHash, msg, mac []byte) (bool, error) {
	var ok bool
	err := s.withMAC(ctx, name, h, UsageMACVerify, "MAC verify", func(h crypto.MACHash, key []byte) error {
		var err error
		ok, err = crypto.MACVerify(h, key, msg, mac)
		return err
	})
	return ok, err
}
