// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystore_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/keystoretest"
)

// TestBackgroundStoreConnectsLater checks that a store whose keystore is
// down at first answers Unavailable with the reason, retries with
// growing delays, and serves once the keystore is up.
func TestBackgroundStoreConnectsLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		mem := keystore.NewMem()
		var up atomic.Bool
		b := keystore.OpenInBackground(keystore.BackgroundConfig{
			Name:    "test",
			LastErr: &keystore.UnreachableError{Store: "test", Err: errors.New("connection refused")},
			Open: func(context.Context) (keystore.Store, error) {
				attempts.Add(1)
				if !up.Load() {
					return nil, &keystore.UnavailableError{Store: "test", Reason: "login rejected"}
				}
				return mem, nil
			},
		})
		defer b.Close()

		ctx := context.Background()
		_, err := b.Status(ctx)
		if !errors.Is(err, keystore.ErrNotConnected) || !keystore.IsUnavailable(err) {
			t.Fatalf("Status before connecting: got %v, want an UnavailableError wrapping ErrNotConnected", err)
		}
		var ue *keystore.UnavailableError
		errors.As(err, &ue)
		if ue.Reason != "not connected yet: key store is not reachable" {
			t.Fatalf("reason: got %q", ue.Reason)
		}
		if err := b.Create(ctx, "k", []byte("v")); !errors.Is(err, keystore.ErrNotConnected) {
			t.Fatalf("Create before connecting: got %v", err)
		}
		if !strings.Contains(b.String(), "not connected") {
			t.Fatalf("String: got %q", b.String())
		}

		// 1 s, then 2 s, then 4 s at most (with jitter): three attempts
		// fit into 7 s, and none happens before the first half second.
		time.Sleep(400 * time.Millisecond)
		if n := attempts.Load(); n != 0 {
			t.Fatalf("attempts after 0.4 s: got %d, want 0", n)
		}
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if n := attempts.Load(); n != 3 {
			t.Fatalf("attempts after 7.4 s: got %d, want 3", n)
		}
		_, err = b.Get(ctx, "k")
		if !errors.As(err, &ue) || ue.Reason != "not connected yet: login rejected" {
			t.Fatalf("Get after failed attempts: got %v", err)
		}

		up.Store(true)
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := b.Wait(wctx); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if b.Connected() != keystore.Store(mem) {
			t.Fatal("Connected is not the opened store")
		}
		if err := b.Create(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("Create after connecting: %v", err)
		}
		if _, err := b.Status(ctx); err != nil {
			t.Fatalf("Status after connecting: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := mem.Get(ctx, "k"); !errors.Is(err, keystore.ErrClosed) {
			t.Fatalf("the connected store was not closed: %v", err)
		}
	})
}

// TestBackgroundStoreCloseWhileConnecting checks that Close ends the
// attempts and that Wait then reports ErrClosed.
func TestBackgroundStoreCloseWhileConnecting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := keystore.OpenInBackground(keystore.BackgroundConfig{
			Name: "test",
			Open: func(ctx context.Context) (keystore.Store, error) {
				return nil, &keystore.UnreachableError{Store: "test"}
			},
		})
		time.Sleep(time.Minute)
		errc := make(chan error, 1)
		go func() { errc <- b.Wait(context.Background()) }()
		synctest.Wait()
		b.Close()
		if err := <-errc; !errors.Is(err, keystore.ErrClosed) {
			t.Fatalf("Wait after Close: got %v", err)
		}
		if _, err := b.Get(context.Background(), "k"); !errors.Is(err, keystore.ErrClosed) {
			t.Fatalf("Get after Close: got %v", err)
		}
	})
}

// TestBackgroundStoreConformance runs the suite on a connected store.
func TestBackgroundStoreConformance(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		b := keystore.OpenInBackground(keystore.BackgroundConfig{
			Name:     "mem",
			MinDelay: time.Millisecond,
			Open:     func(context.Context) (keystore.Store, error) { return keystore.NewMem(), nil },
		})
		t.Cleanup(func() { b.Close() })
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	}, keystoretest.Options{})
}
