// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
)

// A Get reads the record and the newest version's view that the key
// service keeps with a cached key (keys.MemoKMIP). Every change of the
// key is seen by the next Get and Get Attributes, each read twice so
// that the second is served from what the first kept: a rotation, a
// state change, an attribute change, the export switch both ways, and a
// destroy.
func TestGetSeesChanges(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	ctx := context.Background()
	get := func(id string) []byte {
		t.Helper()
		var m []byte
		for range 2 {
			b, err := c.Get(id).MustExec().SymmetricKey()
			if err != nil {
				t.Fatal(err)
			}
			if m != nil && !bytes.Equal(b, m) {
				t.Fatalf("two Gets of %s answer different material", id)
			}
			m = b
		}
		return m
	}
	refusedGet := func(id string, reason kmip.ResultReason) {
		t.Helper()
		for range 2 {
			req, _ := c.Get(id).Build()
			br, err := c.Batch(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			wantReason(t, br[0], reason)
		}
	}
	attr := func(id string, name kmip.AttributeName) any {
		t.Helper()
		var v any
		for range 2 {
			v = attrValue(t, c.GetAttributes(id, name).MustExec().Attribute, name)
		}
		return v
	}

	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	old := get(id)
	if s := attr(id, kmip.AttributeNameState); s != kmip.StateActive {
		t.Fatalf("state %v after activation", s)
	}

	// A rotation: the old identifier keeps its material, the new one
	// has its own.
	nid := c.Rekey(id).MustExec().UniqueIdentifier
	if m := get(nid); bytes.Equal(m, old) || len(m) != 32 {
		t.Fatal("the new version answers the old material")
	}
	if m := get(id); !bytes.Equal(m, old) {
		t.Fatal("the old version's material changed with the rotation")
	}
	if m := get(nid); bytes.Equal(m, old) {
		t.Fatal("the new version answers the old material after a Get of the old one")
	}

	// An attribute change.
	c.AddAttribute(nid, "x-Tag", "one").MustExec()
	if v := fmt.Sprint(attr(nid, "x-Tag")); !strings.Contains(v, "one") {
		t.Fatalf("x-Tag %v after Add Attribute", v)
	}
	c.ModifyAttribute(nid, "x-Tag", "two").MustExec()
	if v := fmt.Sprint(attr(nid, "x-Tag")); !strings.Contains(v, "two") || strings.Contains(v, "one") {
		t.Fatalf("x-Tag %v after Modify Attribute", v)
	}

	// The export switch, both ways.
	if err := e.keys.AllowExport(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	refusedGet(nid, kmip.ResultReasonPermissionDenied)
	if err := e.keys.AllowExport(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	get(nid)

	// A state change, then the destroy.
	c.Revoke(nid).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
	if s := attr(nid, kmip.AttributeNameState); s != kmip.StateDeactivated {
		t.Fatalf("state %v after revoke", s)
	}
	get(nid) // a deactivated key may still be exported
	if s := attr(id, kmip.AttributeNameState); s == kmip.StateDeactivated {
		t.Fatal("revoking the new version revoked the old one")
	}
	c.Revoke(id).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
	c.Destroy(id).MustExec()
	refusedGet(id, kmip.ResultReasonItemNotFound)
	get(nid)
	c.Destroy(nid).MustExec()
	refusedGet(nid, kmip.ResultReasonItemNotFound)
}

// Two clients Get the same cached key at once while a third rotates it:
// every answer is one of the versions' material (run with -race).
func TestGetConcurrentMemo(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	want, err := c.Get(id).MustExec().SymmetricKey()
	if err != nil {
		t.Fatal(err)
	}
	clients := []*kmipclient.Client{e.dial(e.client), e.dial(e.client)}
	done := make(chan struct{})
	errs := make(chan error, len(clients))
	for _, cl := range clients {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				r, err := cl.Get(id).Exec()
				if err != nil {
					errs <- err
					return
				}
				if m, err := r.SymmetricKey(); err != nil || !bytes.Equal(m, want) {
					errs <- err
					if err == nil {
						t.Error("a Get of version 1 answered other material")
					}
					return
				}
			}
		}()
	}
	for range 3 {
		c.Rekey(id).MustExec()
	}
	close(done)
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
