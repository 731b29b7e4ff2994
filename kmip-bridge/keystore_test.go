// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// downStore is a MemStore whose writes and reads fail as an unreachable
// remote keystore's do while down is set; List keeps working, as a
// listing served before the outage would.
type downStore struct {
	*keystore.MemStore
	down atomic.Bool
}

const downDetail = "dial tcp 10.0.0.1:443: connection refused"

func (s *downStore) Create(ctx context.Context, name string, value []byte) error {
	if s.down.Load() {
		return &keystore.UnreachableError{Err: errors.New(downDetail)}
	}
	return s.MemStore.Create(ctx, name, value)
}

func (s *downStore) Get(ctx context.Context, name string) ([]byte, error) {
	if s.down.Load() {
		return nil, &keystore.UnreachableError{Err: errors.New(downDetail)}
	}
	return s.MemStore.Get(ctx, name)
}

func TestKeystoreUnreachable(t *testing.T) {
	store := &downStore{MemStore: keystore.NewMem()}
	ks := keys.New(keys.Config{Store: store})
	t.Cleanup(func() { ks.Close() })
	e := newEnv(t, func(c *Config) {
		c.Keys.Close()
		c.Keys = ks
	})
	store.down.Store(true)
	resp := send(t, e.raw(e.client), request(kmip.V1_4, &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey}))
	bi := resp.BatchItem[0]
	wantReason(t, bi, kmip.ResultReasonGeneralFailure)
	if strings.Contains(bi.ResultMessage, "10.0.0.1") || bi.ResultMessage != "keystore unavailable" {
		t.Fatalf("result message %q", bi.ResultMessage)
	}
}

// TestLocateKeystoreUnreachable checks that Locate reports an outage
// rather than an empty result when the keys it lists cannot be read.
func TestLocateKeystoreUnreachable(t *testing.T) {
	store := &downStore{MemStore: keystore.NewMem()}
	ks := keys.New(keys.Config{Store: store})
	t.Cleanup(func() { ks.Close() })
	e := newEnv(t, func(c *Config) {
		c.Keys.Close()
		c.Keys = ks
	})
	if err := store.MemStore.Create(context.Background(), "stored-before-outage", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	store.down.Store(true)
	resp := send(t, e.raw(e.client), request(kmip.V1_4, &payloads.LocateRequestPayload{}))
	bi := resp.BatchItem[0]
	wantReason(t, bi, kmip.ResultReasonGeneralFailure)
	if bi.ResultMessage != "keystore unavailable" {
		t.Fatalf("result message %q", bi.ResultMessage)
	}
}
