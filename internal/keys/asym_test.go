// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	stdcrypto "crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

func newPair(t *testing.T, s *Service, spec NewKeyPair) (string, string) {
	t.Helper()
	spec.Meta = func(string, string, *crypto.KeyVersion, *crypto.KeyVersion) (Metadata, Metadata, error) {
		return Metadata{KMIP: json.RawMessage(`{"v":1}`)}, Metadata{KMIP: json.RawMessage(`{"v":1}`)}, nil
	}
	spec.CreatedAt = time.Now()
	priv, pub, err := s.CreateKeyPair(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func setState(t *testing.T, s *Service, name string, st State) {
	t.Helper()
	if err := s.Update(context.Background(), name, func(o *Object) error { o.Meta.State = st; return nil }, Lifecycle()); err != nil {
		t.Fatal(err)
	}
}

// TestKeyPairStates: Sign needs an Active private key with Sign in its
// mask; Verify takes an Active, Deactivated or Compromised public key
// with Verify; the halves are separate keys.
func TestKeyPairStates(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	priv, pub := newPair(t, s, NewKeyPair{Algorithm: AlgorithmEC, Bits: 256, PrivateMask: UsageSign, PublicMask: UsageVerify})
	p := SignParams{Hash: stdcrypto.SHA256}
	msg := []byte("message")
	for _, st := range []State{StatePreActive, StateActive, StateDeactivated, StateCompromised} {
		setState(t, s, priv, st)
		setState(t, s, pub, st)
		sig, err := s.Sign(ctx, priv, p, msg)
		if st.Active() != (err == nil) {
			t.Fatalf("%s: sign: %v", st, err)
		}
		if err != nil {
			if !errors.Is(err, ErrNotActive) {
				t.Fatalf("%s: sign: %v", st, err)
			}
			setState(t, s, priv, StateActive)
			if sig, err = s.Sign(ctx, priv, p, msg); err != nil {
				t.Fatal(err)
			}
		}
		ok, err := s.VerifySignature(ctx, pub, p, msg, sig)
		if st.CanDecrypt() != (err == nil && ok) {
			t.Fatalf("%s: verify: %v %v", st, ok, err)
		}
	}
	// The wrong half, by mask and (if the mask were bypassed) by kind.
	setState(t, s, priv, StateActive)
	setState(t, s, pub, StateActive)
	if _, err := s.Sign(ctx, pub, p, msg); !errors.Is(err, ErrUsageNotAllowed) {
		t.Fatalf("sign with the public key: %v", err)
	}
	if _, err := s.VerifySignature(ctx, priv, p, msg, []byte("x")); !errors.Is(err, ErrUsageNotAllowed) {
		t.Fatalf("verify with the private key: %v", err)
	}
	if err := s.Update(ctx, pub, func(o *Object) error { o.Meta.Usage.Mask = UsageSign; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(ctx, pub, p, msg); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("sign with a public key whose mask has Sign: %v", err)
	}
	// A KES key never signs.
	if err := s.Create(ctx, "minio", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(ctx, "minio", p, msg); !errors.Is(err, ErrUsageNotAllowed) {
		t.Fatalf("sign with a KES key: %v", err)
	}
}

// TestKeyPairMaterial: the private key is exportable only as its flags
// say, the public key always; the stored material is PKCS#8 and X.509
// of one key; other sizes and algorithms are refused.
func TestKeyPairMaterial(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	no, yes := false, true
	priv, pub := newPair(t, s, NewKeyPair{Algorithm: AlgorithmRSA, Bits: 2048, PrivateMask: UsageSign, PublicMask: UsageVerify, Extractable: &no, Sensitive: &yes})
	if err := s.Export(ctx, priv, func(*Object) error { return nil }); !errors.Is(err, ErrNotExtractable) {
		t.Fatalf("export of a non-extractable private key: %v", err)
	}
	var pubKey *rsa.PublicKey
	err := s.Export(ctx, pub, func(o *Object) error {
		return o.Version.Material.Use(func(der []byte) error {
			k, err := x509.ParsePKIXPublicKey(der)
			pubKey, _ = k.(*rsa.PublicKey)
			return err
		})
	})
	if err != nil || pubKey == nil || pubKey.N.BitLen() != 2048 {
		t.Fatalf("public key export: %v", err)
	}
	setState(t, s, priv, StateActive)
	digest := sha256.Sum256([]byte("m"))
	sig, err := s.Sign(ctx, priv, SignParams{Hash: stdcrypto.SHA256, PSS: true, Digested: true}, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(pubKey, stdcrypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
		t.Fatalf("the stored halves are not one key: %v", err)
	}

	for _, spec := range []NewKeyPair{
		{Algorithm: AlgorithmRSA, Bits: 1024},
		{Algorithm: AlgorithmRSA, Bits: 8192},
		{Algorithm: AlgorithmEC, Bits: 224},
		{Algorithm: AlgorithmAES, Bits: 256},
	} {
		spec.Meta = func(string, string, *crypto.KeyVersion, *crypto.KeyVersion) (Metadata, Metadata, error) {
			t.Fatal("a refused key pair was made")
			return Metadata{}, Metadata{}, nil
		}
		if _, _, err := s.CreateKeyPair(ctx, spec); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("%s-%d: %v", spec.Algorithm, spec.Bits, err)
		}
	}
	if _, _, err := s.CreateKeyPair(ctx, NewKeyPair{Algorithm: AlgorithmEC, Bits: 256, PrivateMask: UsageSign | UsageEncrypt}); !errors.Is(err, ErrUsageMask) {
		t.Fatalf("EC private key with Encrypt: %v", err)
	}

	// Registered: a public key is exportable whatever the client says;
	// garbage and the wrong algorithm are refused.
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	uid := newKMIP(t, s, NewObject{Algorithm: AlgorithmEC, Material: der, Mask: UsageVerify, Extractable: &no, Sensitive: &yes})
	if err := s.Export(ctx, uid, func(*Object) error { return nil }); err != nil {
		t.Fatalf("export of a registered public key: %v", err)
	}
	for _, bad := range []NewObject{
		{Algorithm: AlgorithmEC, Material: []byte("garbage"), Mask: UsageVerify},
		{Algorithm: AlgorithmRSA, Material: der, Mask: UsageVerify},
		{Algorithm: AlgorithmEC, Material: der, Mask: UsageSign},
	} {
		bad.CreatedAt = time.Now()
		bad.Meta = func(string, *crypto.KeyVersion) (Metadata, error) { return Metadata{}, nil }
		if _, err := s.CreateKMIP(ctx, bad); !errors.Is(err, ErrInvalidKey) && !errors.Is(err, ErrUsageMask) {
			t.Fatalf("registered %s: %v", bad.Algorithm, err)
		}
	}
	// Material never becomes a rotatable key.
	if _, err := s.Rotate(ctx, uid, "admin"); !errors.Is(err, ErrNotRotatable) {
		t.Fatalf("rotate of a public key: %v", err)
	}
}
