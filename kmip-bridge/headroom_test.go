// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/ovh/kmip-go"
)

// A client that fills a key with small attributes up to the limit of
// client changes cannot make it unrevocable: a Revoke for Key Compromise
// with the longest reason message, and the Destroy after it, still
// succeed, in the headroom kept for lifecycle changes.
func TestFullKeyCanBeRevokedAndDestroyed(t *testing.T) {
	ctx := context.Background()
	store := keystore.NewMemLimited(keystore.DefaultMaxValueSize)
	e := envOn(t, store)
	c := e.dial(e.client)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()

	raw := e.raw(e.client)
	tag := strings.Repeat("t", 1000)
	full := false
	for range keys.MaxAttributes {
		bi := send(t, raw, request(kmip.V1_4, addAttribute("x-Tag", id, tag))).BatchItem[0]
		if bi.ResultStatus != kmip.ResultStatusSuccess {
			if !strings.Contains(bi.ResultMessage, "encoded key exceeds the limit") {
				t.Fatalf("add attribute: %s", bi.ResultMessage)
			}
			full = true
			break
		}
	}
	if !full {
		t.Fatal("the key never reached the limit")
	}

	// The longest message a client may send: the reason's TTLV value
	// (code and message) within MaxAttributeValueSize.
	msg := strings.Repeat("m", keys.MaxAttributeValueSize-64)
	c.Revoke(id).
		WithRevocationReasonCode(kmip.RevocationReasonCodeKeyCompromise).
		WithRevocationMessage(msg).
		WithCompromiseOccurrenceDate(time.Now().Add(-time.Hour)).
		MustExec()
	if info, err := e.keys.Describe(ctx, id); err != nil || info.State != keys.StateCompromised {
		t.Fatalf("after the revoke: %+v %v", info, err)
	}
	c.Destroy(id).MustExec()
	if _, err := store.Get(ctx, id); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("the destroyed key is still stored: %v", err)
	}
}
