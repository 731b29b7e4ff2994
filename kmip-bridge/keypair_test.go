// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
)

// linkOf returns the identifier a Link attribute of the given type names.
func linkOf(t *testing.T, c *kmipclient.Client, uid string, typ kmip.LinkType) string {
	t.Helper()
	for _, a := range c.GetAttributes(uid, kmip.AttributeNameLink).MustExec().Attribute {
		if l, ok := a.AttributeValue.(kmip.Link); ok && l.LinkType == typ {
			return l.LinkedObjectIdentifier
		}
	}
	return ""
}

// TestKeyPairOVHClient: ovh kmipclient creates RSA and EC key pairs,
// signs with its crypto.Signer, and the signatures verify with Go's
// crypto/rsa and crypto/ecdsa and with Signature Verify; the keys come
// back in every supported format.
func TestKeyPairOVHClient(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.dial(e.client)
	for _, tc := range []struct {
		name     string
		create   func() kmipclient.ExecCreateKeyPairAttr
		private  []kmip.KeyFormatType
		public   []kmip.KeyFormatType
		bad      kmip.KeyFormatType
		bits     int32
		defaultF kmip.KeyFormatType
	}{
		{"RSA-2048", func() kmipclient.ExecCreateKeyPairAttr {
			return c.CreateKeyPair().RSA(2048, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify)
		}, []kmip.KeyFormatType{kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypePKCS_8, kmip.KeyFormatTypeTransparentRSAPrivateKey},
			[]kmip.KeyFormatType{kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypeX_509, kmip.KeyFormatTypeTransparentRSAPublicKey},
			kmip.KeyFormatTypeTransparentECPrivateKey, 2048, kmip.KeyFormatTypePKCS_1},
		{"P-256", func() kmipclient.ExecCreateKeyPairAttr {
			return c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify)
		}, []kmip.KeyFormatType{kmip.KeyFormatTypePKCS_8, kmip.KeyFormatTypeECPrivateKey, kmip.KeyFormatTypeTransparentECPrivateKey},
			[]kmip.KeyFormatType{kmip.KeyFormatTypeX_509, kmip.KeyFormatTypeTransparentECPublicKey},
			kmip.KeyFormatTypePKCS_1, 256, kmip.KeyFormatTypeTransparentECPrivateKey},
		{"P-384", func() kmipclient.ExecCreateKeyPairAttr {
			return c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_384, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify)
		}, []kmip.KeyFormatType{kmip.KeyFormatTypePKCS_8}, []kmip.KeyFormatType{kmip.KeyFormatTypeX_509},
			kmip.KeyFormatTypeTransparentRSAPrivateKey, 384, kmip.KeyFormatTypeTransparentECPrivateKey},
		{"P-521", func() kmipclient.ExecCreateKeyPairAttr {
			return c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_521, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify)
		}, []kmip.KeyFormatType{kmip.KeyFormatTypeTransparentECPrivateKey}, []kmip.KeyFormatType{kmip.KeyFormatTypeTransparentECPublicKey},
			kmip.KeyFormatTypePKCS_1, 521, kmip.KeyFormatTypeTransparentECPrivateKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "pair-" + tc.name
			resp := tc.create().PrivateKey().WithName(name + "-private").PublicKey().WithName(name + "-public").MustExec()
			priv, pub := resp.PrivateKeyUniqueIdentifier, resp.PublicKeyUniqueIdentifier
			if linkOf(t, c, priv, kmip.LinkTypePublicKeyLink) != pub || linkOf(t, c, pub, kmip.LinkTypePrivateKeyLink) != priv {
				t.Fatal("the halves are not linked")
			}
			attrs := c.GetAttributes(priv).MustExec().Attribute
			if attrValue(t, attrs, kmip.AttributeNameState) != kmip.StatePreActive ||
				attrValue(t, attrs, kmip.AttributeNameObjectType) != kmip.ObjectTypePrivateKey ||
				attrValue(t, attrs, kmip.AttributeNameCryptographicLength) != tc.bits ||
				attrValue(t, attrs, kmip.AttributeNameCryptographicUsageMask) != kmip.CryptographicUsageSign {
				t.Fatalf("private key attributes: %+v", attrs)
			}

			// Pre-Active keys do not sign.
			if _, err := c.Sign(priv).WithCryptographicParameters(kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_256}).Data([]byte("m")).Exec(); err == nil {
				t.Fatal("a pre-active key signed")
			}
			c.Activate(priv).MustExec()
			c.Activate(pub).MustExec()

			signer, err := c.Signer(ctx, priv, "")
			if err != nil {
				t.Fatal(err)
			}
			digest := sha256.Sum256([]byte("message"))
			want := c.Get(pub).WithKeyFormat(kmip.KeyFormatTypeX_509).MustExec().Object.(*kmip.PublicKey)
			goPub, err := want.CryptoPublicKey()
			if err != nil {
				t.Fatal(err)
			}
			opts := []crypto.SignerOpts{crypto.SHA256}
			if _, ok := goPub.(*rsa.PublicKey); ok {
				opts = append(opts, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
			}
			for _, o := range opts {
				sig, err := signer.Sign(rand.Reader, digest[:], o)
				if err != nil {
					t.Fatal(err)
				}
				if err := verifyWithGo(goPub, digest[:], sig, o); err != nil {
					t.Fatalf("%T signature does not verify with Go: %v", o, err)
				}
				// The server agrees, and a changed message is Invalid,
				// not an error.
				params := kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_256}
				if _, ok := o.(*rsa.PSSOptions); ok {
					params.PaddingMethod = kmip.PaddingMethodPSS
				}
				for msg, v := range map[string]kmip.ValidityIndicator{"message": kmip.ValidityIndicatorValid, "other": kmip.ValidityIndicatorInvalid} {
					got := c.SignatureVerify(pub).WithCryptographicParameters(params).Data([]byte(msg)).Signature(sig).MustExec()
					if got.ValidityIndicator != v {
						t.Fatalf("verify %q: %v", msg, got.ValidityIndicator)
					}
				}
			}

			// Every format of both halves is the same key.
			for _, f := range tc.private {
				k, err := c.Get(priv).WithKeyFormat(f).MustExec().Object.(*kmip.PrivateKey).CryptoPrivateKey()
				if err != nil {
					t.Fatalf("format %v: %v", f, err)
				}
				if !k.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(goPub) {
					t.Fatalf("private key in format %v does not match the public key", f)
				}
			}
			for _, f := range tc.public {
				k, err := c.Get(pub).WithKeyFormat(f).MustExec().Object.(*kmip.PublicKey).CryptoPublicKey()
				if err != nil || !k.(interface{ Equal(crypto.PublicKey) bool }).Equal(goPub) {
					t.Fatalf("public key in format %v: %v", f, err)
				}
			}
			if f := c.Get(priv).MustExec().Object.(*kmip.PrivateKey).KeyBlock.KeyFormatType; f != tc.defaultF {
				t.Fatalf("default format %v", f)
			}
			bi := batchOne(t, c, &payloads.GetRequestPayload{UniqueIdentifier: priv, KeyFormatType: tc.bad})
			wantReason(t, bi, kmip.ResultReasonKeyFormatTypeNotSupported)
			if !e.audited(idOf(e.client), "export", priv, false) {
				t.Fatal("private key export not audited")
			}

			// Locate finds each half by object type and name.
			for _, h := range []struct {
				uid, name string
				typ       kmip.ObjectType
			}{{priv, name + "-private", kmip.ObjectTypePrivateKey}, {pub, name + "-public", kmip.ObjectTypePublicKey}} {
				got := c.Locate().WithObjectType(h.typ).WithName(h.name).MustExec().UniqueIdentifier
				if !slices.Equal(got, []string{h.uid}) {
					t.Fatalf("locate %s: %v", h.name, got)
				}
			}

			if got := c.Locate().WithLink(kmip.LinkTypePublicKeyLink, pub).MustExec().UniqueIdentifier; !slices.Equal(got, []string{priv}) {
				t.Fatalf("locate by link: %v", got)
			}

			// Revoking and destroying the public key leaves the private
			// key as it was.
			c.Revoke(pub).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
			c.Destroy(pub).MustExec()
			if st := attrValue(t, c.GetAttributes(priv, kmip.AttributeNameState).MustExec().Attribute, kmip.AttributeNameState); st != kmip.StateActive {
				t.Fatalf("private key state after the public key's destroy: %v", st)
			}
			if _, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				t.Fatalf("sign after the public key's destroy: %v", err)
			}
		})
	}
}

// TestKeyPairKMIP12: a KMIP 1.2 client gets EC keys in the transparent
// ECDSA formats by default, the only ones its version defines.
func TestKeyPairKMIP12(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client, kmipclient.EnforceVersion(kmip.V1_2))
	resp := c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_384, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).MustExec()
	priv := c.Get(resp.PrivateKeyUniqueIdentifier).MustExec().Object.(*kmip.PrivateKey)
	pub := c.Get(resp.PublicKeyUniqueIdentifier).MustExec().Object.(*kmip.PublicKey)
	if priv.KeyBlock.KeyFormatType != formatECDSAPrivate || pub.KeyBlock.KeyFormatType != formatECDSAPublic {
		t.Fatalf("formats %v and %v", priv.KeyBlock.KeyFormatType, pub.KeyBlock.KeyFormatType)
	}
	k, err := priv.CryptoPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pub.CryptoPublicKey()
	if err != nil || !p.(*ecdsa.PublicKey).Equal(k.(crypto.Signer).Public()) || p.(*ecdsa.PublicKey).Curve != elliptic.P384() {
		t.Fatalf("the halves are not one P-384 key: %v", err)
	}
	// The 1.3 names are not formats of 1.2.
	bi := batchOne(t, c, &payloads.GetRequestPayload{UniqueIdentifier: resp.PublicKeyUniqueIdentifier, KeyFormatType: kmip.KeyFormatTypeTransparentECPublicKey})
	wantReason(t, bi, kmip.ResultReasonKeyFormatTypeNotSupported)
}

// verifyWithGo checks sig, a signature of the SHA-256 digest with o (PSS
// or PKCS#1 v1.5 for RSA), with Go's own verification.
func verifyWithGo(pub crypto.PublicKey, digest, sig []byte, o crypto.SignerOpts) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := o.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, pss)
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("invalid signature")
		}
		return nil
	}
	return fmt.Errorf("no verification for a public key %T", pub)
}

// TestKeyPairRegister: keys registered in each format are stored,
// validated, returned in other formats, and sign and verify.
func TestKeyPairRegister(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, tc := range []struct {
		name      string
		reg       kmipclient.ExecRegister
		private   bool
		key       crypto.PublicKey
		otherForm kmip.KeyFormatType
	}{
		{"RSA PKCS#1 private", c.Register().Pkcs1PrivateKey(x509.MarshalPKCS1PrivateKey(rk), kmip.CryptographicUsageSign), true, &rk.PublicKey, kmip.KeyFormatTypeTransparentRSAPrivateKey},
		{"RSA transparent private", c.Register().WithKeyFormat(kmipclient.Transparent).RsaPrivateKey(rk, kmip.CryptographicUsageSign), true, &rk.PublicKey, kmip.KeyFormatTypePKCS_8},
		{"RSA PKCS#1 public", c.Register().Pkcs1PublicKey(x509.MarshalPKCS1PublicKey(&rk.PublicKey), kmip.CryptographicUsageVerify), false, &rk.PublicKey, kmip.KeyFormatTypeX_509},
		{"RSA transparent public", c.Register().WithKeyFormat(kmipclient.Transparent).RsaPublicKey(&rk.PublicKey, kmip.CryptographicUsageVerify), false, &rk.PublicKey, kmip.KeyFormatTypePKCS_1},
		{"EC PKCS#8 private", c.Register().PrivateKey(ek, kmip.CryptographicUsageSign), true, &ek.PublicKey, kmip.KeyFormatTypeTransparentECPrivateKey},
		{"EC transparent private", c.Register().WithKeyFormat(kmipclient.Transparent).EcdsaPrivateKey(ek, kmip.CryptographicUsageSign), true, &ek.PublicKey, kmip.KeyFormatTypePKCS_8},
		{"EC X.509 public", c.Register().PublicKey(&ek.PublicKey, kmip.CryptographicUsageVerify), false, &ek.PublicKey, kmip.KeyFormatTypeTransparentECPublicKey},
		{"EC transparent public", c.Register().WithKeyFormat(kmipclient.Transparent).EcdsaPublicKey(&ek.PublicKey, kmip.CryptographicUsageVerify), false, &ek.PublicKey, kmip.KeyFormatTypeX_509},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := tc.reg.MustExec().UniqueIdentifier
			c.Activate(uid).MustExec()
			got := c.Get(uid).WithKeyFormat(tc.otherForm).MustExec().Object
			var pub crypto.PublicKey
			switch o := got.(type) {
			case *kmip.PrivateKey:
				k, err := o.CryptoPrivateKey()
				if err != nil {
					t.Fatal(err)
				}
				pub = k.(crypto.Signer).Public()
			case *kmip.PublicKey:
				if pub, err = o.CryptoPublicKey(); err != nil {
					t.Fatal(err)
				}
			}
			if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.key) {
				t.Fatal("registered key comes back different")
			}
			msg := []byte("registered")
			digest := sha256.Sum256(msg)
			params := kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_256}
			if tc.private {
				sig := c.Sign(uid).WithCryptographicParameters(params).Data(msg).MustExec().SignatureData
				if err := verifyWithGo(tc.key, digest[:], sig, crypto.SHA256); err != nil {
					t.Fatal(err)
				}
				return
			}
			var sig []byte
			switch tc.key.(type) {
			case *rsa.PublicKey:
				sig, _ = rsa.SignPKCS1v15(nil, rk, crypto.SHA256, digest[:])
			case *ecdsa.PublicKey:
				sig, _ = ecdsa.SignASN1(rand.Reader, ek, digest[:])
			}
			if v := c.SignatureVerify(uid).WithCryptographicParameters(params).Data(msg).Signature(sig).MustExec().ValidityIndicator; v != kmip.ValidityIndicatorValid {
				t.Fatalf("verify: %v", v)
			}
		})
	}
}

// TestKeyPairAttacks: garbage and oversized keys, mismatched curves,
// masks that make no sense, the wrong half, non-extractable private keys
// and KES keys are refused with the KMIP reason for a client mistake.
func TestKeyPairAttacks(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.dial(e.client)
	sign := kmip.CryptographicUsageSign
	verify := kmip.CryptographicUsageVerify
	refused := func(t *testing.T, p kmip.OperationPayload, reason kmip.ResultReason, msg string) {
		t.Helper()
		bi := batchOne(t, c, p)
		wantReason(t, bi, reason)
		if msg != "" && !strings.Contains(bi.ResultMessage, msg) {
			t.Fatalf("message %q, want %q", bi.ResultMessage, msg)
		}
	}
	build := func(ex interface {
		Build() (kmip.OperationPayload, error)
	}) kmip.OperationPayload {
		t.Helper()
		p, err := ex.Build()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// rawKey is a Register request the client library would refuse to
	// build (it parses the key first).
	rawKey := func(private bool, format kmip.KeyFormatType, der []byte, mask kmip.CryptographicUsageMask) kmip.OperationPayload {
		kb := kmip.KeyBlock{KeyFormatType: format, CryptographicAlgorithm: kmip.CryptographicAlgorithmRSA,
			KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &der}}}}
		p := &payloads.RegisterRequestPayload{ObjectType: kmip.ObjectTypePublicKey, Object: &kmip.PublicKey{KeyBlock: kb}}
		if private {
			p.ObjectType, p.Object = kmip.ObjectTypePrivateKey, &kmip.PrivateKey{KeyBlock: kb}
		}
		p.TemplateAttribute.Attribute = []kmip.Attribute{{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: mask}}
		return p
	}
	before, _ := e.keys.List(ctx, "")

	t.Run("garbage DER", func(t *testing.T) {
		garbage := []byte("\x30\x82\x01\x00 this is not a key")
		refused(t, rawKey(true, kmip.KeyFormatTypePKCS_8, garbage, sign), kmip.ResultReasonInvalidField, "invalid key material")
		refused(t, rawKey(false, kmip.KeyFormatTypeX_509, garbage, verify), kmip.ResultReasonInvalidField, "invalid key material")
		refused(t, rawKey(true, kmip.KeyFormatTypePKCS_1, garbage, sign), kmip.ResultReasonInvalidField, "invalid key material")
		refused(t, rawKey(false, kmip.KeyFormatTypePKCS_1, nil, verify), kmip.ResultReasonInvalidField, "")
		refused(t, rawKey(true, kmip.KeyFormatTypeRaw, garbage, sign), kmip.ResultReasonKeyFormatTypeNotSupported, "")
	})
	t.Run("transparent", func(t *testing.T) {
		transparent := func(private bool, format kmip.KeyFormatType, km kmip.KeyMaterial, mask kmip.CryptographicUsageMask) kmip.OperationPayload {
			p := rawKey(private, format, nil, mask).(*payloads.RegisterRequestPayload)
			switch o := p.Object.(type) {
			case *kmip.PrivateKey:
				o.KeyBlock.KeyValue.Plain.KeyMaterial = km
			case *kmip.PublicKey:
				o.KeyBlock.KeyValue.Plain.KeyMaterial = km
			}
			return p
		}
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		good := func() *kmip.TransparentRSAPrivateKey {
			return &kmip.TransparentRSAPrivateKey{Modulus: *rk.N, PublicExponent: big.NewInt(int64(rk.E)), PrivateExponent: rk.D, P: rk.Primes[0], Q: rk.Primes[1]}
		}
		missing := good()
		missing.Q = nil
		huge := good()
		huge.P = new(big.Int).Lsh(big.NewInt(1), 4096)
		wrong := good()
		wrong.PrivateExponent = new(big.Int).Add(rk.D, big.NewInt(2))
		for name, k := range map[string]*kmip.TransparentRSAPrivateKey{"missing prime": missing, "prime over the modulus": huge, "wrong exponent": wrong} {
			p := transparent(true, kmip.KeyFormatTypeTransparentRSAPrivateKey, kmip.KeyMaterial{TransparentRSAPrivateKey: k}, sign)
			bi := batchOne(t, c, p)
			if bi.ResultReason != kmip.ResultReasonInvalidField {
				t.Fatalf("%s: %v %q", name, bi.ResultReason, bi.ResultMessage)
			}
		}
		n := elliptic.P256().Params().N
		for name, d := range map[string]*big.Int{"zero": big.NewInt(0), "order": n, "above the order": new(big.Int).Add(n, big.NewInt(5))} {
			p := transparent(true, kmip.KeyFormatTypeTransparentECPrivateKey, kmip.KeyMaterial{TransparentECPrivateKey: &kmip.TransparentECPrivateKey{RecommendedCurve: kmip.RecommendedCurveP_256, D: *d}}, sign)
			p.(*payloads.RegisterRequestPayload).Object.(*kmip.PrivateKey).KeyBlock.CryptographicAlgorithm = kmip.CryptographicAlgorithmEC
			if bi := batchOne(t, c, p); bi.ResultReason != kmip.ResultReasonInvalidField {
				t.Fatalf("EC scalar %s: %v %q", name, bi.ResultReason, bi.ResultMessage)
			}
		}
		// A point that is not on the curve.
		offCurve := append([]byte{4}, make([]byte, 64)...)
		offCurve[64] = 1
		p := transparent(false, kmip.KeyFormatTypeTransparentECPublicKey, kmip.KeyMaterial{TransparentECPublicKey: &kmip.TransparentECPublicKey{RecommendedCurve: kmip.RecommendedCurveP_256, QString: offCurve}}, verify)
		p.(*payloads.RegisterRequestPayload).Object.(*kmip.PublicKey).KeyBlock.CryptographicAlgorithm = kmip.CryptographicAlgorithmEC
		refused(t, p, kmip.ResultReasonInvalidField, "invalid key material")
		bigE := transparent(false, kmip.KeyFormatTypeTransparentRSAPublicKey, kmip.KeyMaterial{TransparentRSAPublicKey: &kmip.TransparentRSAPublicKey{Modulus: *rk.N, PublicExponent: *new(big.Int).Lsh(big.NewInt(1), 40)}}, verify)
		refused(t, bigE, kmip.ResultReasonInvalidField, "invalid key material")
		refused(t, rawKey(true, kmip.KeyFormatTypePKCS_8, make([]byte, 20<<10), sign), kmip.ResultReasonInvalidField, "too large")
	})
	t.Run("huge modulus", func(t *testing.T) {
		n := new(big.Int).Lsh(big.NewInt(1), 9000)
		n.Add(n, big.NewInt(1))
		huge := &rsa.PublicKey{N: n, E: 65537}
		refused(t, rawKey(false, kmip.KeyFormatTypePKCS_1, x509.MarshalPKCS1PublicKey(huge), verify), kmip.ResultReasonInvalidField, "1024 to 8192 bits")
		refused(t, build(c.CreateKeyPair().RSA(8192, sign, verify)), kmip.ResultReasonInvalidField, "2048 to 4096")
		refused(t, build(c.CreateKeyPair().RSA(1024, sign, verify)), kmip.ResultReasonInvalidField, "2048 to 4096")
	})
	t.Run("curves", func(t *testing.T) {
		mismatched := c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, sign, verify).Common().WithAttribute(kmip.AttributeNameCryptographicLength, int32(384))
		p := build(mismatched).(*payloads.CreateKeyPairRequestPayload)
		// The client's builder put both lengths in the common template:
		// keep the last (384), as a client that sends one would.
		p.CommonTemplateAttribute.Attribute = slices.DeleteFunc(p.CommonTemplateAttribute.Attribute, func(a kmip.Attribute) bool {
			return a.AttributeName == kmip.AttributeNameCryptographicLength && a.AttributeValue == int32(256)
		})
		refused(t, p, kmip.ResultReasonInvalidField, "does not match the recommended curve")
		refused(t, build(c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_192, sign, verify)), kmip.ResultReasonInvalidField, "P-256, P-384 or P-521")
		halves := c.CreateKeyPair().PrivateKey().WithAttribute(kmip.AttributeNameCryptographicAlgorithm, kmip.CryptographicAlgorithmEC).
			WithAttribute(kmip.AttributeNameCryptographicLength, int32(256)).
			PublicKey().WithAttribute(kmip.AttributeNameCryptographicAlgorithm, kmip.CryptographicAlgorithmRSA)
		refused(t, build(halves), kmip.ResultReasonInvalidField, "different algorithms")
		split := c.CreateKeyPair().PrivateKey().WithAttribute(kmip.AttributeNameCryptographicAlgorithm, kmip.CryptographicAlgorithmEC).
			PublicKey().WithAttribute(kmip.AttributeNameCryptographicLength, int32(384)).MustExec()
		if l := attrValue(t, c.GetAttributes(split.PrivateKeyUniqueIdentifier, kmip.AttributeNameCryptographicLength).MustExec().Attribute, kmip.AttributeNameCryptographicLength); l != int32(384) {
			t.Fatalf("algorithm and length from one template each: length %v", l)
		}
		c.Destroy(split.PrivateKeyUniqueIdentifier).MustExec()
		c.Destroy(split.PublicKeyUniqueIdentifier).MustExec()
		ek, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
		refused(t, build(c.Register().PrivateKey(ek, sign)), kmip.ResultReasonInvalidField, "")
		refused(t, build(c.CreateKeyPair().Common().WithAttribute(kmip.AttributeNameCryptographicAlgorithm, kmip.CryptographicAlgorithmDSA).WithAttribute(kmip.AttributeNameCryptographicLength, int32(2048))), kmip.ResultReasonInvalidField, "only RSA and EC")
	})
	t.Run("masks", func(t *testing.T) {
		refused(t, build(c.CreateKeyPair().RSA(2048, verify, verify)), kmip.ResultReasonInvalidField, "usage mask does not fit")
		refused(t, build(c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, sign, sign)), kmip.ResultReasonInvalidField, "usage mask does not fit")
		refused(t, build(c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, sign|kmip.CryptographicUsageDecrypt, verify)), kmip.ResultReasonInvalidField, "usage mask does not fit")
		ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		refused(t, build(c.Register().PublicKey(&ek.PublicKey, sign)), kmip.ResultReasonInvalidField, "usage mask does not fit")
		// A common mask is meant for both halves: each keeps what it
		// can do, and one that leaves a half nothing is refused.
		ec := func(m kmip.CryptographicUsageMask) kmipclient.ExecCreateKeyPairAttr {
			return c.CreateKeyPair().Common().WithAttribute(kmip.AttributeNameCryptographicAlgorithm, kmip.CryptographicAlgorithmEC).
				WithAttribute(kmip.AttributeNameCryptographicLength, int32(256)).WithAttribute(kmip.AttributeNameCryptographicUsageMask, m)
		}
		refused(t, build(ec(kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt)), kmip.ResultReasonInvalidField, "usage mask does not fit")
		r := ec(sign | verify).MustExec()
		for uid, want := range map[string]kmip.CryptographicUsageMask{r.PrivateKeyUniqueIdentifier: sign, r.PublicKeyUniqueIdentifier: verify} {
			if got := attrValue(t, c.GetAttributes(uid, kmip.AttributeNameCryptographicUsageMask).MustExec().Attribute, kmip.AttributeNameCryptographicUsageMask); got != want {
				t.Fatalf("common mask Sign|Verify: %v, want %v", got, want)
			}
		}
		c.Destroy(r.PrivateKeyUniqueIdentifier).MustExec()
		c.Destroy(r.PublicKeyUniqueIdentifier).MustExec()
	})
	if after, _ := e.keys.List(ctx, ""); len(after) != len(before) {
		t.Fatalf("refused requests stored keys: %d before, %d after", len(before), len(after))
	}

	resp := c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, sign, verify).PrivateKey().WithAttribute(kmip.AttributeNameExtractable, false).MustExec()
	priv, pub := resp.PrivateKeyUniqueIdentifier, resp.PublicKeyUniqueIdentifier
	c.Activate(priv).MustExec()
	c.Activate(pub).MustExec()
	params := kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_256}
	t.Run("wrong half", func(t *testing.T) {
		refused(t, build(c.Sign(pub).WithCryptographicParameters(params).Data([]byte("m"))), kmip.ResultReasonPermissionDenied, "does not allow sign")
		sig := c.Sign(priv).WithCryptographicParameters(params).Data([]byte("m")).MustExec().SignatureData
		refused(t, build(c.SignatureVerify(priv).WithCryptographicParameters(params).Data([]byte("m")).Signature(sig)), kmip.ResultReasonPermissionDenied, "does not allow signature verify")
		pss := params
		pss.PaddingMethod = kmip.PaddingMethodPSS
		refused(t, build(c.Sign(priv).WithCryptographicParameters(pss).Data([]byte("m"))), kmip.ResultReasonInvalidField, "PSS padding needs an RSA key")
		refused(t, build(c.Sign(priv).WithCryptographicParameters(params).DigestedData([]byte("short"))), kmip.ResultReasonInvalidField, "not a SHA-256 digest")
	})
	t.Run("not extractable", func(t *testing.T) {
		refused(t, &payloads.GetRequestPayload{UniqueIdentifier: priv}, kmip.ResultReasonPermissionDenied, "not extractable")
		if _, err := c.Get(pub).Exec(); err != nil {
			t.Fatalf("public key of a non-extractable private key: %v", err)
		}
		if e.audited(idOf(e.client), "export", priv, false) {
			t.Fatal("a refused Get was audited as an export")
		}
	})
	t.Run("KES key", func(t *testing.T) {
		if err := e.keys.Create(ctx, "minio", "admin"); err != nil {
			t.Fatal(err)
		}
		refused(t, build(c.Sign("minio").WithCryptographicParameters(params).Data([]byte("m"))), kmip.ResultReasonPermissionDenied, "")
		refused(t, build(c.SignatureVerify("minio").WithCryptographicParameters(params).Data([]byte("m")).Signature([]byte("s"))), kmip.ResultReasonPermissionDenied, "")
	})
	t.Run("re-key", func(t *testing.T) {
		refused(t, &payloads.RekeyKeyPairRequestPayload{PrivateKeyUniqueIdentifier: priv}, kmip.ResultReasonOperationNotSupported, "")
		refused(t, &payloads.RekeyRequestPayload{UniqueIdentifier: priv}, kmip.ResultReasonIllegalOperation, "can be re-keyed")
	})
	t.Run("activation date", func(t *testing.T) {
		past := time.Now().Add(-time.Hour)
		r := c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, sign, verify).Common().WithAttribute(kmip.AttributeNameActivationDate, past).MustExec()
		for _, uid := range []string{r.PrivateKeyUniqueIdentifier, r.PublicKeyUniqueIdentifier} {
			if st := attrValue(t, c.GetAttributes(uid, kmip.AttributeNameState).MustExec().Attribute, kmip.AttributeNameState); st != kmip.StateActive {
				t.Fatalf("key pair with a past activation date: %v", st)
			}
		}
	})
	t.Run("policy", func(t *testing.T) {
		other := e.pki.issue(t, "signer-only", false)
		set := *e.policies.Load()
		set.Policies = map[string]*policy.Policy{"kmip": set.Policies["kmip"], "signer": {Allow: []string{"/kmip/discover-versions", "/kmip/sign/" + priv}}}
		set.Identities = map[string]string{idOf(e.client): "kmip", idOf(other): "signer"}
		e.policies.Store(&set)
		oc := e.dial(other)
		if _, err := oc.Sign(priv).WithCryptographicParameters(params).Data([]byte("m")).Exec(); err != nil {
			t.Fatalf("allowed sign: %v", err)
		}
		if _, err := oc.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, sign, verify).Exec(); err == nil {
			t.Fatal("create-key-pair without /kmip/create-key-pair")
		}
		if _, err := oc.SignatureVerify(pub).WithCryptographicParameters(params).Data([]byte("m")).Signature([]byte("s")).Exec(); err == nil {
			t.Fatal("signature-verify without /kmip/signature-verify/<uid>")
		}
	})
}

// FuzzRegisterKey: any encoded key in any format is either refused with a
// KMIP error or stored as a key that internal/keys parses back, and its
// conversion to every format does not fail unexpectedly.
func FuzzRegisterKey(f *testing.F) {
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p8, _ := x509.MarshalPKCS8PrivateKey(ek)
	spki, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	sec1, _ := x509.MarshalECPrivateKey(ek)
	f.Add(true, uint8(kmip.KeyFormatTypePKCS_1), x509.MarshalPKCS1PrivateKey(rk))
	f.Add(true, uint8(kmip.KeyFormatTypePKCS_8), p8)
	f.Add(true, uint8(kmip.KeyFormatTypeECPrivateKey), sec1)
	f.Add(false, uint8(kmip.KeyFormatTypeX_509), spki)
	f.Add(false, uint8(kmip.KeyFormatTypePKCS_1), x509.MarshalPKCS1PublicKey(&rk.PublicKey))
	f.Fuzz(func(t *testing.T, private bool, format uint8, der []byte) {
		kb := kmip.KeyBlock{KeyFormatType: kmip.KeyFormatType(format),
			KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &der}}}}
		var o kmip.Object = &kmip.PublicKey{KeyBlock: kb}
		typ := kmip.ObjectTypePublicKey
		if private {
			o, typ = &kmip.PrivateKey{KeyBlock: kb}, kmip.ObjectTypePrivateKey
		}
		out, alg, err := canonicalDER(o)
		if err != nil {
			if !errors.As(err, new(kmipserver.Error)) {
				t.Fatalf("not a KMIP error: %v", err)
			}
			return
		}
		priv, _, err := keys.ParseAsymmetric(alg, out)
		if err != nil {
			return // sizes and curves are internal/keys' to refuse
		}
		if (priv != nil) != private {
			t.Fatal("a private key became a public key or the other way round")
		}
		obj := &object{typ: typ, alg: kmip.CryptographicAlgorithmRSA}
		if alg == keys.AlgorithmEC {
			obj.alg = kmip.CryptographicAlgorithmEC
		}
		for f := kmip.KeyFormatTypeRaw; f <= kmip.KeyFormatTypePKCS_12; f++ {
			if _, err := asymObject(obj, out, f, kmip.V1_4, func([]byte) {}); err != nil && !errors.As(err, new(kmipserver.Error)) {
				t.Fatalf("format %v: %v", f, err)
			}
		}
	})
}

// TestKeyPairBatch: the private key is the batch's ID placeholder, so
// that Activate and Sign after Create Key Pair need no identifier.
func TestKeyPairBatch(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	create, err := c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).Build()
	if err != nil {
		t.Fatal(err)
	}
	params := &kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_256}
	br, err := c.Batch(context.Background(), create, &payloads.ActivateRequestPayload{}, &payloads.SignRequestPayload{CryptographicParameters: params, Data: []byte("m")})
	if err != nil {
		t.Fatal(err)
	}
	for _, bi := range br {
		wantOK(t, bi)
	}
	priv := br[0].ResponsePayload.(*payloads.CreateKeyPairResponsePayload).PrivateKeyUniqueIdentifier
	pub := br[0].ResponsePayload.(*payloads.CreateKeyPairResponsePayload).PublicKeyUniqueIdentifier
	if uid := br[2].ResponsePayload.(*payloads.SignResponsePayload).UniqueIdentifier; uid != priv {
		t.Fatalf("sign used %s, want the private key %s", uid, priv)
	}
	k, err := c.Get(pub).WithKeyFormat(kmip.KeyFormatTypeX_509).MustExec().Object.(*kmip.PublicKey).CryptoPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("m"))
	if !ecdsa.VerifyASN1(k.(*ecdsa.PublicKey), digest[:], br[2].ResponsePayload.(*payloads.SignResponsePayload).SignatureData) {
		t.Fatal("batch signature does not verify")
	}
}
