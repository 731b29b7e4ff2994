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
	"slices"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
)

// ovhAsymmetricOps runs the ovh client's asymmetric operations against
// the bridge on c, at whatever version c negotiated (TestOVHClientVersions
// runs it at 1.4 and 2.1): Create Key Pair (RSA and EC), Sign and
// Signature Verify through the client's crypto.Signer, Register of a
// private key, a public key and a certificate, Get of each in its
// formats, and Locate by Link.
func ovhAsymmetricOps(t *testing.T, e *env, c *kmipclient.Client, name string) {
	t.Helper()
	ctx := context.Background()
	sign, verify := kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify
	digest := sha256.Sum256([]byte("ovh client message " + name))
	for _, pair := range []struct {
		name   string
		create kmipclient.ExecCreateKeyPairAttr
	}{
		{"rsa", c.CreateKeyPair().RSA(2048, sign, verify)},
		{"ec", c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, sign, verify)},
	} {
		resp := pair.create.PrivateKey().WithName(name + "-" + pair.name + "-private").MustExec()
		priv, pub := resp.PrivateKeyUniqueIdentifier, resp.PublicKeyUniqueIdentifier
		if priv == "" || pub == "" || priv == pub {
			t.Fatalf("%s: create key pair: %+v", pair.name, resp)
		}
		if got := c.Locate().WithLink(kmip.LinkTypePublicKeyLink, pub).MustExec().UniqueIdentifier; !slices.Equal(got, []string{priv}) {
			t.Fatalf("%s: locate by public key link: %v, want [%s]", pair.name, got, priv)
		}
		if got := c.Locate().WithLink(kmip.LinkTypePrivateKeyLink, priv).MustExec().UniqueIdentifier; !slices.Equal(got, []string{pub}) {
			t.Fatalf("%s: locate by private key link: %v, want [%s]", pair.name, got, pub)
		}
		c.Activate(priv).MustExec()
		c.Activate(pub).MustExec()
		signer, err := c.Signer(ctx, priv, "")
		if err != nil {
			t.Fatalf("%s: signer: %v", pair.name, err)
		}
		opts := []crypto.SignerOpts{crypto.SHA256}
		if pair.name == "rsa" {
			opts = append(opts, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
		}
		for _, o := range opts {
			sig, err := signer.Sign(rand.Reader, digest[:], o)
			if err != nil {
				t.Fatalf("%s: sign %T: %v", pair.name, o, err)
			}
			if err := verifyWithGo(signer.Public(), digest[:], sig, o); err != nil {
				t.Fatalf("%s: %T signature does not verify with Go: %v", pair.name, o, err)
			}
			params := kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_256}
			if _, ok := o.(*rsa.PSSOptions); ok {
				params.PaddingMethod = kmip.PaddingMethodPSS
			}
			other := sha256.Sum256([]byte("another message"))
			for d, want := range map[[32]byte]kmip.ValidityIndicator{digest: kmip.ValidityIndicatorValid, other: kmip.ValidityIndicatorInvalid} {
				got := c.SignatureVerify(pub).WithCryptographicParameters(params).DigestedData(d[:]).Signature(sig).MustExec()
				if got.ValidityIndicator != want {
					t.Fatalf("%s: verify %T: %v, want %v", pair.name, o, got.ValidityIndicator, want)
				}
			}
		}
	}

	// Register: a PKCS#8 RSA private key, its X.509 public key, and a
	// certificate, each read back in its formats.
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	priv := c.Register().Pkcs8PrivateKey(der, sign).MustExec().UniqueIdentifier
	pub := c.Register().X509PublicKey(spki, verify).MustExec().UniqueIdentifier
	for _, f := range []kmip.KeyFormatType{kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypePKCS_8, kmip.KeyFormatTypeTransparentRSAPrivateKey} {
		k, err := c.Get(priv).WithKeyFormat(f).MustExec().Object.(*kmip.PrivateKey).CryptoPrivateKey()
		if err != nil || !rk.Equal(k) {
			t.Fatalf("registered private key in format %v: %v", f, err)
		}
	}
	for _, f := range []kmip.KeyFormatType{kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypeX_509, kmip.KeyFormatTypeTransparentRSAPublicKey} {
		k, err := c.Get(pub).WithKeyFormat(f).MustExec().Object.(*kmip.PublicKey).CryptoPublicKey()
		if err != nil || !rk.PublicKey.Equal(k) {
			t.Fatalf("registered public key in format %v: %v", f, err)
		}
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	epub := c.Register().EcdsaPublicKey(&ek.PublicKey, verify).MustExec().UniqueIdentifier
	if k, err := c.Get(epub).WithKeyFormat(kmip.KeyFormatTypeX_509).MustExec().Object.(*kmip.PublicKey).CryptoPublicKey(); err != nil || !ek.PublicKey.Equal(k) {
		t.Fatalf("registered EC public key: %v", err)
	}

	cert := testCertificate(t, e, name+"-cert", 7)
	cid := c.Register().X509Certificate(cert).WithLink(kmip.LinkTypePublicKeyLink, pub).MustExec().UniqueIdentifier
	got, ok := c.Get(cid).MustExec().Object.(*kmip.Certificate)
	if !ok || got.CertificateType != kmip.CertificateTypeX_509 || !slices.Equal(got.CertificateValue, cert.Raw) {
		t.Fatalf("registered certificate: %+v", got)
	}
	if found := c.Locate().WithObjectType(kmip.ObjectTypeCertificate).WithLink(kmip.LinkTypePublicKeyLink, pub).MustExec().UniqueIdentifier; !slices.Equal(found, []string{cid}) {
		t.Fatalf("locate certificate by link: %v, want [%s]", found, cid)
	}
}

// ovhWrappedGet: the ovh client's Get with a Key Wrapping Specification,
// with the key material of RFC 3394 §4.1 (NIST AES Key Wrap, No
// Encoding), at whatever version c negotiated.
func ovhWrappedGet(t *testing.T, c *kmipclient.Client) {
	t.Helper()
	kek := c.Register().SymmetricKey(kmip.CryptographicAlgorithmAES, kmip.CryptographicUsageWrapKey, unhex(t, "000102030405060708090a0b0c0d0e0f")).MustExec().UniqueIdentifier
	c.Activate(kek).MustExec()
	key := c.Register().SymmetricKey(kmip.CryptographicAlgorithmAES, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt, unhex(t, "00112233445566778899aabbccddeeff")).MustExec().UniqueIdentifier
	kb := c.Get(key).WithKeyWrapping(wrapSpec(kek, kmip.BlockCipherModeNISTKeyWrap, kmip.EncodingOptionNoEncoding)).MustExec().Object.(*kmip.SymmetricKey).KeyBlock
	if kb.KeyValue == nil || kb.KeyValue.Plain == nil || kb.KeyValue.Plain.KeyMaterial.Bytes == nil ||
		!slices.Equal(*kb.KeyValue.Plain.KeyMaterial.Bytes, unhex(t, "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5")) {
		t.Fatalf("wrapped key: %+v", kb.KeyValue)
	}
	if kb.KeyWrappingData == nil || kb.KeyWrappingData.EncryptionKeyInformation == nil || kb.KeyWrappingData.EncryptionKeyInformation.UniqueIdentifier != kek {
		t.Fatalf("key wrapping data: %+v", kb.KeyWrappingData)
	}
}
