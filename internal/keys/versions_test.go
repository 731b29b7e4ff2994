// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/keystore"
)

// minioKey decodes a stored value as minio/kes v0.24.0 does (fields 1-4
// of reference §5.1; unknown fields skipped) and returns its secret key.
func minioKey(t *testing.T, value []byte) *crypto.SecretKey {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(string(value))
	if err != nil {
		t.Fatal(err)
	}
	var key []byte
	var typ uint64
	for len(raw) > 0 {
		num, wt, n := protowire.ConsumeTag(raw)
		raw = raw[n:]
		n = protowire.ConsumeFieldValue(num, wt, raw)
		if n < 0 {
			t.Fatal("malformed stored value")
		}
		if num == 1 {
			msg, _ := protowire.ConsumeBytes(raw[:n])
			for len(msg) > 0 {
				f, ft, m := protowire.ConsumeTag(msg)
				msg = msg[m:]
				switch {
				case f == 1 && ft == protowire.BytesType:
					key, m = protowire.ConsumeBytes(msg)
				case f == 2 && ft == protowire.VarintType:
					typ, m = protowire.ConsumeVarint(msg)
				default:
					m = protowire.ConsumeFieldValue(f, ft, msg)
				}
				msg = msg[m:]
			}
		}
		raw = raw[n:]
	}
	k, err := crypto.NewSecretKey(crypto.KeyType(typ), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Destroy)
	return k
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{KeyType: crypto.AES256})
	if err := s.Create(ctx, "k", "creator"); err != nil {
		t.Fatal(err)
	}
	before, _ := store.Store.Get(ctx, "k")
	pt1, ct1, err := s.Generate(ctx, "k", []byte("ctx"))
	if err != nil || len(ct1) != 76 || CiphertextVersion(ct1) != 1 {
		t.Fatalf("generate before rotation: %d bytes, version %d, %v", len(ct1), CiphertextVersion(ct1), err)
	}
	mac1, _ := s.HMAC(ctx, "k", []byte("m"))

	n, err := s.Rotate(ctx, "k", "rotator")
	if err != nil || n != 2 {
		t.Fatalf("Rotate = %d, %v", n, err)
	}
	pt2, ct2, err := s.Generate(ctx, "k", []byte("ctx"))
	if err != nil || CiphertextVersion(ct2) != 2 {
		t.Fatalf("generate after rotation: version %d, %v", CiphertextVersion(ct2), err)
	}
	if _, ok := crypto.CiphertextID(ct2); !ok {
		t.Fatal("a rotated key does not write format 2")
	}
	if mac2, _ := s.HMAC(ctx, "k", []byte("m")); bytes.Equal(mac1, mac2) {
		t.Fatal("HMAC does not use the new version")
	}
	for i, c := range []struct{ pt, ct []byte }{{pt1, ct1}, {pt2, ct2}} {
		got, err := s.Decrypt(ctx, "k", c.ct, []byte("ctx"))
		if err != nil || !bytes.Equal(got, c.pt) {
			t.Fatalf("decrypt of version %d: %v", i+1, err)
		}
	}

	// minio/kes reads the newest version, and decrypts its format-2
	// ciphertexts (it ignores the key id) but not version 1's.
	after, _ := store.Store.Get(ctx, "k")
	mk := minioKey(t, after)
	if got, err := mk.Decrypt(ct2, []byte("ctx")); err != nil || !bytes.Equal(got, pt2) {
		t.Fatalf("minio/kes's view cannot decrypt the newest version: %v", err)
	}
	if _, err := mk.Decrypt(ct1, []byte("ctx")); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatal("minio/kes's view of a rotated key decrypts version 1")
	}
	if bytes.Equal(before, after) {
		t.Fatal("stored value unchanged")
	}

	info, err := s.Describe(ctx, "k")
	if err != nil || info.Version != 2 || info.CreatedBy != "rotator" {
		t.Fatalf("Describe = %+v, %v", info, err)
	}
	vs, err := s.Versions(ctx, "k")
	if err != nil || len(vs) != 2 || vs[0].Number != 1 || vs[0].CreatedBy != "creator" || vs[0].Current ||
		vs[1].Number != 2 || !vs[1].Current || vs[1].CreatedBy != "rotator" || len(vs[1].ID) != 32 {
		t.Fatalf("Versions = %+v, %v", vs, err)
	}
	// Naming a version uses it.
	_, ctv1, err := s.Generate(ctx, VersionRef("k", 1), nil)
	if err != nil || CiphertextVersion(ctv1) != 1 {
		t.Fatalf("generate with version 1: %d, %v", CiphertextVersion(ctv1), err)
	}
	if _, err := s.Decrypt(ctx, VersionRef("k", 2), ct1, []byte("ctx")); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("decrypt of a version-1 ciphertext with version 2 named: %v", err)
	}
	if _, err := s.Decrypt(ctx, VersionRef("k", 9), ct1, []byte("ctx")); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("decrypt naming a missing version: %v", err)
	}
}

// Keys written by minio/kes are version 1 and can be rotated: the DEK
// minio/kes made (reference §5.7) decrypts after any number of rotations.
func TestRotateMinioKey(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{})
	stored := "CiQKIMQrD3aHBH2z7EPmvKqcP8MKwQTDeUQkn+TfEyotvhMTEAESJAogMhSywaBOkm+8jk7gaYADYYZmgSERzq/UPTxkOlXQ9wYQARoMCOKakdgGEJ7Br/ECIkA3OTA1YjkzOGIxNzA3ODM3MmNiNjE4OTMzOTEwMzY1ODBjMjkzMzQ5OTU2NDk2MGYxMjU3NTNiMjI3ZGFlNGY0"
	store.Create(ctx, "minio", []byte(stored))
	for range 3 {
		if _, err := s.Rotate(ctx, "minio", "me"); err != nil {
			t.Fatal(err)
		}
	}
	ct, _ := base64.StdEncoding.DecodeString("NnCrF1dniumqsCkG5GzVtnQjqz9NFrlkmrB1F3CPhEhazI13eWNVVgDf7a8JjwWAg8yLhod0yo6M52IjMmxpCZaq5YKNSOa1NMA7pQ==")
	pt, err := s.Decrypt(ctx, "minio", ct, []byte(`{"x-minio-bucket":"b1"}`))
	if err != nil || base64.StdEncoding.EncodeToString(pt) != "y7ksiX9azDblHnZhYiZ8fPVFdvarJ0t/o7Iu/VMitv4=" {
		t.Fatalf("minio/kes DEK after 3 rotations: %v", err)
	}
	// Version 1 keeps its HMAC key.
	mac, err := s.HMAC(ctx, VersionRef("minio", 1), []byte("hello"))
	if err != nil || base64.StdEncoding.EncodeToString(mac) != "MTWh+3h7iar9pTH6SEXgwU8E0gs/5IdVzUvYDSnjk8U=" {
		t.Fatalf("HMAC of version 1 = %x, %v", mac, err)
	}

	// A rollback: minio/kes reads the newest version and writes format 1
	// with it. That ciphertext decrypts here too (second attempt).
	value, _ := store.Store.Get(ctx, "minio")
	rollback, _ := minioKey(t, value).Encrypt([]byte("written during a rollback"), nil)
	if got, err := s.Decrypt(ctx, "minio", rollback, nil); err != nil || string(got) != "written during a rollback" {
		t.Fatalf("format-1 ciphertext of the newest version: %q, %v", got, err)
	}
}

// A legacy JSON key (no HMAC key) can be rotated; its version 1 keeps
// decrypting the reference's JSON ciphertext.
func TestRotateLegacyKey(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{})
	store.Create(ctx, "old", []byte(`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"AES256-GCM_SHA256"}`))
	if _, err := s.Rotate(ctx, "old", "me"); err != nil {
		t.Fatal(err)
	}
	ct := []byte(`{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}`)
	if pt, err := s.Decrypt(ctx, "old", ct, nil); err != nil || !bytes.Equal(pt, make([]byte, 16)) {
		t.Fatalf("Decrypt after rotating a legacy key: %v", err)
	}
	if _, err := s.HMAC(ctx, "old", []byte("m")); err != nil {
		t.Fatalf("the new version of a legacy key has no HMAC key: %v", err)
	}
}

// Retire makes a version decrypt-only; destroy shreds only its
// ciphertexts, with exactly the KES error text.
func TestRetireDestroyVersion(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	s.Create(ctx, "k", "me")
	var cts [][]byte
	for i := range 3 {
		_, ct, err := s.Generate(ctx, "k", nil)
		if err != nil {
			t.Fatal(err)
		}
		cts = append(cts, ct)
		if i < 2 {
			s.Rotate(ctx, "k", "me")
		}
	}
	if err := s.RetireVersion(ctx, "k", 3); !errors.Is(err, ErrVersionIsCurrent) {
		t.Fatalf("retire the current version: %v", err)
	}
	if err := s.DestroyVersion(ctx, "k", 1); !errors.Is(err, ErrVersionNotRetired) {
		t.Fatalf("destroy an active version: %v", err)
	}
	if err := s.RetireVersion(ctx, "k", 7); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("retire a missing version: %v", err)
	}
	if err := s.RetireVersion(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Generate(ctx, VersionRef("k", 1), nil); !errors.Is(err, ErrVersionRetired) {
		t.Fatalf("generate with a retired version: %v", err)
	}
	if _, err := s.Decrypt(ctx, "k", cts[0], nil); err != nil {
		t.Fatalf("a retired version does not decrypt: %v", err)
	}
	if vs, _ := s.Versions(ctx, "k"); vs[0].State != VersionRetired {
		t.Fatalf("version 1 state = %q", vs[0].State)
	}
	if err := s.DestroyVersion(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	_, err := s.Decrypt(ctx, "k", cts[0], nil)
	if !errors.Is(err, crypto.ErrDecrypt) || err.Error() != "decryption failed: ciphertext is not authentic" {
		t.Fatalf("ciphertext of a destroyed version: %v", err)
	}
	for i, ct := range cts[1:] {
		if _, err := s.Decrypt(ctx, "k", ct, nil); err != nil {
			t.Fatalf("version %d after destroying version 1: %v", i+2, err)
		}
	}
	if vs, _ := s.Versions(ctx, "k"); len(vs) != 2 || vs[0].Number != 2 {
		t.Fatalf("versions after destroy: %+v", vs)
	}
}

// Two nodes share a keystore; node b's cache never expires. A ciphertext
// of a version made on node a after b cached the key makes b read the key
// again instead of failing.
func TestStaleCacheReloads(t *testing.T) {
	ctx := context.Background()
	shared := keystore.NewMem()
	a, b := New(Config{Store: shared}), New(Config{Store: shared})
	t.Cleanup(func() { a.Close(); b.Close() })
	a.Create(ctx, "k", "me")
	if _, _, err := b.Generate(ctx, "k", nil); err != nil { // b caches version 1
		t.Fatal(err)
	}
	if _, err := a.Rotate(ctx, "k", "me"); err != nil {
		t.Fatal(err)
	}
	pt, ct, err := a.Generate(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Decrypt(ctx, "k", ct, nil)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("node b with a stale cache: %v", err)
	}
	// An unknown version named in a request reloads once too.
	a.Rotate(ctx, "k", "me")
	if _, _, err := b.Generate(ctx, VersionRef("k", 3), nil); err != nil {
		t.Fatalf("node b naming a version made after it cached the key: %v", err)
	}
}

// Concurrent rotations on one node make one version each.
func TestConcurrentRotations(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	s.Create(ctx, "k", "me")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Rotate(ctx, "k", "me"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if vs, _ := s.Versions(ctx, "k"); len(vs) != 9 {
		t.Fatalf("%d versions after 8 rotations, want 9", len(vs))
	}
}

func TestVersionRefs(t *testing.T) {
	for ref, want := range map[string]uint32{"k.v1": 1, "my-key.v42": 42, "k.v4294967295": 1<<32 - 1} {
		if name, n, ok := ParseVersionRef(ref); !ok || n != want || name+".v" != ref[:len(name)+2] {
			t.Errorf("ParseVersionRef(%q) = %q, %d, %v", ref, name, n, ok)
		}
	}
	for _, bad := range []string{"k", "k.v", "k.v0", "k.v01", "k.v+1", ".v1", "a.b.v1", "k.v4294967296", "k.v1x"} {
		if _, _, ok := ParseVersionRef(bad); ok {
			t.Errorf("ParseVersionRef(%q) accepted", bad)
		}
	}
	for s, want := range map[string]uint32{"": 0, "3": 3, "v3": 3} {
		if n, err := ParseVersion(s); err != nil || n != want {
			t.Errorf("ParseVersion(%q) = %d, %v", s, n, err)
		}
	}
	for _, bad := range []string{"0", "v0", "-1", "x", "03", "+3", "v"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}
