// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/internal/keys"
)

// Scaling out: two nodes on one KeyControl box see each other's keys at
// once, exactly one of two racing creates wins, and a delete on one node
// is seen by the other after its cache expiry.
func TestNodesShareKeyControlBox(t *testing.T) {
	ctx := context.Background()
	const expiry = 200 * time.Millisecond
	emu, a := startKeyControl(t, emulator.Config{}, cache.Config{Expiry: expiry})
	b := keyControlService(t, emu, cache.Config{Expiry: expiry})

	if err := a.Create(ctx, "shared", "node-a"); err != nil {
		t.Fatal(err)
	}
	_, ct, err := b.Generate(ctx, "shared", []byte("ctx")) // at once, no cache to wait for
	if err != nil {
		t.Fatalf("node b does not see node a's new key: %v", err)
	}
	if _, err := a.Decrypt(ctx, "shared", ct, []byte("ctx")); err != nil {
		t.Fatalf("node a cannot decrypt what node b encrypted: %v", err)
	}

	errA, errB := make(chan error), make(chan error)
	go func() { errA <- a.Create(ctx, "raced", "node-a") }()
	go func() { errB <- b.Create(ctx, "raced", "node-b") }()
	ea, eb := <-errA, <-errB
	if (ea == nil) == (eb == nil) || !errors.Is(ea, keys.ErrKeyExists) && !errors.Is(eb, keys.ErrKeyExists) {
		t.Fatalf("racing creates: node a %v, node b %v; want exactly one 'key already exists'", ea, eb)
	}

	if err := a.Delete(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * expiry)
	for {
		_, _, err := b.Generate(ctx, "shared", nil)
		if errors.Is(err, keys.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node b still uses the deleted key long after its cache expiry: %v", err)
		}
		time.Sleep(expiry / 4)
	}
}
