// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/keystore"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// withAttrs returns meta.KMIP as the bridge writes it, with attrs.
func withAttrs(t *testing.T, attrs []kmip.Attribute) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(struct {
		V     int    `json:"v"`
		Attrs []byte `json:"attrs,omitempty"`
	}{1, ttlv.MarshalTTLV(&kmip.TemplateAttribute{Attribute: attrs})})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// attrsOf decodes what withAttrs wrote.
func attrsOf(t *testing.T, meta Metadata) []kmip.Attribute {
	t.Helper()
	if len(meta.KMIP) == 0 {
		return nil
	}
	var rec struct {
		Attrs []byte `json:"attrs"`
	}
	if err := json.Unmarshal(meta.KMIP, &rec); err != nil {
		t.Fatal(err)
	}
	var ta kmip.TemplateAttribute
	if err := ttlv.UnmarshalTTLV(rec.Attrs, &ta); err != nil {
		t.Fatal(err)
	}
	return ta.Attribute
}

func custom(name string, size int) kmip.Attribute {
	return kmip.Attribute{AttributeName: kmip.AttributeName(name), AttributeValue: strings.Repeat("v", size)}
}

// addAttr is what a KMIP Add Attribute does to a key.
func addAttr(t *testing.T, s *Service, name string, a kmip.Attribute) error {
	t.Helper()
	return s.Update(context.Background(), name, func(o *Object) error {
		o.Meta.KMIP = withAttrs(t, append(attrsOf(t, o.Meta), a))
		return nil
	})
}

func stored(t *testing.T, s keystore.Store, name string) []byte {
	t.Helper()
	v, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantLimit checks that err is the limit error for what.
func wantLimit(t *testing.T, err error, what string) {
	t.Helper()
	var le *LimitError
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &le) || le.What != what {
		t.Fatalf("got %v, want the %q limit", err, what)
	}
}

// usable checks that the key still generates and decrypts.
func usable(t *testing.T, s *Service, name string) {
	t.Helper()
	ctx := context.Background()
	dek, ct, err := s.Generate(ctx, name, nil)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	pt, err := s.Decrypt(ctx, name, ct, nil)
	if err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("Decrypt: %v", err)
	}
}

// The attack: one huge custom attribute on a key. It is refused before
// the write and the key stays as it was.
func TestAttributeValueTooLarge(t *testing.T) {
	s, store := newService(t, Config{})
	if err := s.Create(context.Background(), "minio-key", "me"); err != nil {
		t.Fatal(err)
	}
	if err := addAttr(t, s, "minio-key", custom("x-small", 100)); err != nil {
		t.Fatal(err)
	}
	before := stored(t, store, "minio-key")
	err := addAttr(t, s, "minio-key", custom("x-huge", 600_000))
	wantLimit(t, err, "attribute value")
	if strings.Contains(err.Error(), "vvvv") {
		t.Fatal("the error contains the value")
	}
	if !bytes.Equal(stored(t, store, "minio-key"), before) {
		t.Fatal("a refused Update changed the stored key")
	}
	usable(t, s, "minio-key")

	// The limit is inclusive.
	if err := addAttr(t, s, "minio-key", custom("x-limit", MaxAttributeValueSize)); err != nil {
		t.Fatalf("a value of exactly MaxAttributeValueSize: %v", err)
	}
	wantLimit(t, addAttr(t, s, "minio-key", custom("x-over", MaxAttributeValueSize+1)), "attribute value")
}

func TestTooManyAttributes(t *testing.T) {
	s, store := newService(t, Config{})
	ctx := context.Background()
	if err := s.Create(ctx, "k", "me"); err != nil {
		t.Fatal(err)
	}
	attrs := make([]kmip.Attribute, MaxAttributes)
	for i := range attrs {
		attrs[i] = custom("x-a", 1)
	}
	err := s.Update(ctx, "k", func(o *Object) error { o.Meta.KMIP = withAttrs(t, attrs); return nil })
	if err != nil {
		t.Fatalf("MaxAttributes attributes: %v", err)
	}
	before := stored(t, store, "k")
	wantLimit(t, addAttr(t, s, "k", custom("x-one-more", 1)), "number of attributes")
	if !bytes.Equal(stored(t, store, "k"), before) {
		t.Fatal("a refused Update changed the stored key")
	}
	usable(t, s, "k")
}

// Small attributes, each within the limits, that together would make
// the key larger than the store holds.
func TestRecordLimit(t *testing.T) {
	const limit = 4096
	store := keystore.NewMemLimited(limit)
	s := New(Config{Store: store})
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if err := s.Create(ctx, "k", "me"); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < MaxAttributes; i++ {
		before := stored(t, store, "k")
		if err = addAttr(t, s, "k", custom("x-tag", 200)); err != nil {
			if !bytes.Equal(stored(t, store, "k"), before) {
				t.Fatal("a refused Update changed the stored key")
			}
			break
		}
		if n := len(stored(t, store, "k")); n > limit*3/4 {
			t.Fatalf("stored key of %d bytes, above the client limit of the store's %d", n, limit)
		}
	}
	wantLimit(t, err, "encoded key")
	if !strings.Contains(err.Error(), "3072") { // the store's limit less its headroom
		t.Fatalf("the error does not name the limit: %v", err)
	}
	usable(t, s, "k")
	// Shrinking still works.
	if err := s.Update(ctx, "k", func(o *Object) error { o.Meta.KMIP = nil; return nil }); err != nil {
		t.Fatalf("removing the attributes: %v", err)
	}
}

// Create, Import and CreateObject check before the keystore write.
func TestCreateChecksLimits(t *testing.T) {
	ctx := context.Background()
	small := keystore.NewMemLimited(64)
	s := New(Config{Store: small})
	t.Cleanup(func() { s.Close() })
	wantLimit(t, s.Create(ctx, "k", "me"), "encoded key")
	wantLimit(t, s.Import(ctx, "i", crypto.AES256, make([]byte, 32), "me"), "encoded key")
	if names, _ := small.List(ctx, ""); len(names) != 0 {
		t.Fatalf("refused creates stored %q", names)
	}

	s2, store := newService(t, Config{})
	v, err := crypto.GenerateSecretKey(crypto.AES256, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ver := &crypto.KeyVersion{Key: v}
	defer ver.Destroy()
	meta := Metadata{KMIP: withAttrs(t, []kmip.Attribute{custom("x-huge", 600_000)})}
	wantLimit(t, s2.CreateObject(ctx, "o", ver, meta), "attribute value")
	if _, err := store.Get(ctx, "o"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("a refused CreateObject stored the key: %v", err)
	}
}

// A key that exceeds the limits already (written before they existed)
// can still be changed in every way that does not make it worse.
func TestLegacyKeyOverLimits(t *testing.T) {
	s, store := newService(t, Config{})
	ctx := context.Background()
	attrs := []kmip.Attribute{custom("x-old", MaxAttributeValueSize*2)}
	for range MaxAttributes {
		attrs = append(attrs, custom("x-a", 1))
	}
	v, err := crypto.GenerateSecretKey(crypto.AES256, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := crypto.GenerateHMACKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ver := &crypto.KeyVersion{Key: v, HMACKey: hk, Meta: withAttrs(t, attrs)}
	ver.Meta, _ = json.Marshal(Metadata{KMIP: ver.Meta})
	value, err := ver.MarshalText()
	ver.Destroy()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create(ctx, "legacy", value); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, "legacy", func(o *Object) error { o.Meta.State = StateDeactivated; return nil }); err != nil {
		t.Fatalf("changing the state of a key over the limits: %v", err)
	}
	if err := s.Update(ctx, "legacy", func(o *Object) error {
		o.Meta.KMIP = withAttrs(t, attrsOf(t, o.Meta)[1:])
		return nil
	}); err != nil {
		t.Fatalf("removing an attribute: %v", err)
	}
	wantLimit(t, addAttr(t, s, "legacy", custom("x-b", 1)), "number of attributes")
}

func TestUsageOfMalformed(t *testing.T) {
	for _, b := range [][]byte{{0x42, 0x00, 0x91, 0x01, 0, 0, 0, 16}, {1, 2, 3}} {
		kmipJSON, _ := json.Marshal(map[string]any{"attrs": b})
		if _, err := usageOf(Metadata{KMIP: kmipJSON}); err == nil {
			t.Errorf("usageOf accepted malformed attributes %x", b)
		}
	}
	if u, err := usageOf(Metadata{KMIP: json.RawMessage(`7`)}); err != nil || u != (attrUsage{}) {
		t.Errorf("usageOf of a KMIP value without attributes = %+v, %v", u, err)
	}
}

func FuzzUsageOf(f *testing.F) {
	f.Add(ttlv.MarshalTTLV(&kmip.TemplateAttribute{Attribute: []kmip.Attribute{custom("x-a", 10)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		kmipJSON, _ := json.Marshal(map[string]any{"attrs": b})
		usageOf(Metadata{KMIP: kmipJSON})
	})
}

// Client changes stop LifecycleHeadroom below the store's limit; a
// lifecycle change may use the headroom, but may not grow the key by
// more than it at once.
func TestLifecycleHeadroom(t *testing.T) {
	const limit = 1 << 17 // 128 KiB: the headroom is LifecycleHeadroom
	store := keystore.NewMemLimited(limit)
	s := New(Config{Store: store})
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if err := s.Create(ctx, "k", "me"); err != nil {
		t.Fatal(err)
	}
	var err error
	for range MaxAttributes {
		if err = addAttr(t, s, "k", custom("x-tag", 1000)); err != nil {
			break
		}
	}
	wantLimit(t, err, "encoded key")
	if n := len(stored(t, store, "k")); n > limit-LifecycleHeadroom {
		t.Fatalf("client changes grew the key to %d bytes, into the headroom", n)
	}
	grow := func(size int) func(o *Object) error {
		return func(o *Object) error {
			o.Meta.State = StateCompromised
			attrs := append(attrsOf(t, o.Meta), custom("x-reason", size))
			o.Meta.KMIP = withAttrs(t, attrs)
			return nil
		}
	}
	if err := s.Update(ctx, "k", grow(2000)); err == nil {
		t.Fatal("a client change grew the key into the headroom")
	}
	if err := s.Update(ctx, "k", grow(2000), Lifecycle()); err != nil {
		t.Fatalf("a lifecycle change in the headroom: %v", err)
	}
	if n := len(stored(t, store, "k")); n <= limit-LifecycleHeadroom {
		t.Fatalf("the lifecycle change did not use the headroom (%d bytes)", n)
	}
	// Shrinking is still a change the client may make.
	if err := s.Update(ctx, "k", func(o *Object) error { o.Meta.State = StateDeactivated; return nil }); err != nil {
		t.Fatalf("a change that does not grow the key: %v", err)
	}
	// Lifecycle growth is bounded by the headroom.
	big := func(o *Object) error {
		o.Meta.KMIP = withAttrs(t, append(attrsOf(t, o.Meta), custom("x-a", 4000), custom("x-b", 4000), custom("x-c", 4000)))
		return nil
	}
	wantLimit(t, s.Update(ctx, "k", big, Lifecycle()), "growth of a lifecycle change")
}
