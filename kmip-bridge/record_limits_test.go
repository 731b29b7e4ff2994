// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/fs"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// envOn runs the bridge on a keys service over store.
func envOn(t *testing.T, store keystore.Store) *env {
	t.Helper()
	svc := keys.New(keys.Config{Store: store})
	t.Cleanup(func() { svc.Close() })
	e := newEnv(t, func(c *Config) {
		c.Keys.Close()
		c.Keys = svc
	})
	e.keys = svc
	return e
}

func addAttribute(name kmip.AttributeName, uid string, value string) *payloads.AddAttributeRequestPayload {
	return &payloads.AddAttributeRequestPayload{
		UniqueIdentifier: uid,
		Attribute:        kmip.Attribute{AttributeName: name, AttributeValue: value},
	}
}

// usableKey checks that generate and decrypt work on the key.
func usableKey(t *testing.T, svc *keys.Service, name string) {
	t.Helper()
	ctx := context.Background()
	dek, ct, err := svc.Generate(ctx, name, []byte("ctx"))
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	pt, err := svc.Decrypt(ctx, name, ct, []byte("ctx"))
	if err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("decrypt: %v", err)
	}
}

// TestHugeAttributeRefused is the attack on a key that MinIO uses: one
// Add Attribute of a 600 KB custom attribute, which would grow the stored
// key past what the fs keystore reads back and leave the key unusable.
// It is refused with Invalid Field, and the key stays exactly as it was.
func TestHugeAttributeRefused(t *testing.T) {
	ctx := context.Background()
	store, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := envOn(t, store)
	svc := e.keys
	if err := svc.Create(ctx, "minio-tenant", "minio"); err != nil {
		t.Fatal(err)
	}
	// A first small tag works and gives the key its KMIP record.
	c := e.raw(e.client)
	wantOK(t, send(t, c, request(kmip.V1_4, addAttribute("x-Vendor", "minio-tenant", "VMware, Inc."))).BatchItem[0])
	before, err := store.Get(ctx, "minio-tenant")
	if err != nil {
		t.Fatal(err)
	}

	resp := send(t, c, request(kmip.V1_4, addAttribute("x-Payload", "minio-tenant", strings.Repeat("A", 600_000))))
	bi := resp.BatchItem[0]
	wantReason(t, bi, kmip.ResultReasonInvalidField)
	if !strings.Contains(bi.ResultMessage, "request refused") || !strings.Contains(bi.ResultMessage, "attribute value exceeds the limit") ||
		strings.Contains(bi.ResultMessage, "AAAA") {
		t.Fatalf("result message %q", bi.ResultMessage)
	}

	after, err := store.Get(ctx, "minio-tenant")
	if err != nil {
		t.Fatalf("the key cannot be read back: %v", err)
	}
	if !bytes.Equal(after, before) {
		t.Fatal("the refused Add Attribute changed the stored key")
	}
	usableKey(t, svc, "minio-tenant")
	// The connection is still served.
	wantOK(t, send(t, c, request(kmip.V1_4, &payloads.GetAttributesRequestPayload{UniqueIdentifier: "minio-tenant"})).BatchItem[0])
}

// TestManyAttributesRefused grows a key with attributes that are each
// within the limit until the stored key would exceed the keystore's
// MaxValueSize: the Add Attribute that would cross it is refused and the
// key stays usable.
func TestManyAttributesRefused(t *testing.T) {
	ctx := context.Background()
	store := keystore.NewMemLimited(keystore.DefaultMaxValueSize)
	e := envOn(t, store)
	svc := e.keys
	if err := svc.Create(ctx, "minio-tenant", "minio"); err != nil {
		t.Fatal(err)
	}
	c := e.raw(e.client)
	value := strings.Repeat("t", keys.MaxAttributeValueSize-16)
	var refused *kmip.ResponseBatchItem
	for i := range keys.MaxAttributes {
		before, err := store.Get(ctx, "minio-tenant")
		if err != nil {
			t.Fatal(err)
		}
		bi := send(t, c, request(kmip.V1_4, addAttribute("x-Tag", "minio-tenant", value))).BatchItem[0]
		if bi.ResultStatus == kmip.ResultStatusSuccess {
			continue
		}
		if i == 0 {
			t.Fatalf("the first tag was refused: %s", bi.ResultMessage)
		}
		after, err := store.Get(ctx, "minio-tenant")
		if err != nil || !bytes.Equal(after, before) {
			t.Fatalf("the refused Add Attribute changed the stored key (%v)", err)
		}
		refused = &bi
		break
	}
	if refused == nil {
		t.Fatal("the key grew without limit")
	}
	wantReason(t, *refused, kmip.ResultReasonInvalidField)
	// The limit of client changes: LifecycleHeadroom below the store's.
	if !strings.Contains(refused.ResultMessage, "encoded key exceeds the limit of 49152 bytes") {
		t.Fatalf("result message %q", refused.ResultMessage)
	}
	usableKey(t, svc, "minio-tenant")
}
