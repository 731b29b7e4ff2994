// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/keystore"
)

// A version another node made is found by a read of its reference on
// this node, whose cached key is older, also when the key's dates have
// moved its effective state away from the stored one: the read evicts
// the cached key it found stale and reads it again.
func TestVersionRefReloadWithDates(t *testing.T) {
	for _, dated := range []bool{false, true} {
		t.Run(map[bool]string{false: "active", true: "activated by its date"}[dated], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testVersionRefReload(t, dated) })
		})
	}
}

// testVersionRefReload is one case of TestVersionRefReloadWithDates, in
// a bubble: minReloadAge is waited out on its clock.
func testVersionRefReload(t *testing.T, dated bool) {
	ctx := t.Context()
	var unix atomic.Int64
	unix.Store(time.Now().Unix())
	now := func() time.Time { return time.Unix(unix.Load(), 0) }
	store := keystore.NewMem()
	a := New(Config{Store: store, Now: now})
	defer a.Close()
	b := New(Config{Store: store, Now: now})
	defer b.Close()

	meta := Metadata{State: StateActive, KMIP: json.RawMessage(`{"v":1}`)}
	if dated {
		meta.State, meta.Dates = StatePreActive, &Dates{Activation: now().Add(time.Hour)}
	}
	uid, err := a.CreateKMIP(ctx, NewObject{
		Algorithm: AlgorithmAES, Bits: 256, Mask: UsageEncrypt | UsageDecrypt,
		Meta: func(string, *crypto.KeyVersion) (Metadata, error) { return meta, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	// b caches version 1 as stored.
	if err := b.With(ctx, VersionRef(uid, 1), func(*Object) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// The activation date passes: b's cached key is
	// effectively Active while its stored state is Pre-Active.
	unix.Add(2 * 3600)
	if _, err := a.Rotate(ctx, uid, "admin"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(minReloadAge) // the bubble's clock
	if err := b.With(ctx, VersionRef(uid, 2), func(*Object) error { return nil }); err != nil {
		t.Fatalf("version 2, made on another node, read on this one: %v", err)
	}
}
