// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/keystore"
)

// A 30-second KeyControl outage with offline caching: cached keys keep
// generating and decrypting with no failed request, uncached keys fail
// with an unreachable error, tokens expire meanwhile, and everything
// recovers by itself when KeyControl is back. No key is lost.
func TestKeyControlOutage(t *testing.T) {
	outage := 30 * time.Second
	if testing.Short() {
		outage = 3 * time.Second
	}
	ctx := context.Background()
	emu, svc := startKeyControl(t, emulator.Config{TokenTTL: 2 * time.Second},
		cache.Config{Expiry: time.Second, ExpiryUnused: time.Second, ExpiryOffline: time.Hour})

	const cached = 4
	ciphertexts := map[string][]byte{}
	for i := range cached {
		name := fmt.Sprintf("cached-%d", i)
		if err := svc.Create(ctx, name, "test"); err != nil {
			t.Fatal(err)
		}
		_, ct, err := svc.Generate(ctx, name, []byte("ctx"))
		if err != nil {
			t.Fatal(err)
		}
		ciphertexts[name] = ct
	}
	if err := svc.Create(ctx, "uncached", "test"); err != nil {
		t.Fatal(err)
	}

	// Clients keep using the cached keys before, during and after the outage.
	stop := make(chan struct{})
	var (
		wg       sync.WaitGroup
		requests atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
	)
	for name, ct := range ciphertexts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _, err := svc.Generate(ctx, name, []byte("ctx"))
				if err == nil {
					_, err = svc.Decrypt(ctx, name, ct, []byte("ctx"))
				}
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}

	time.Sleep(300 * time.Millisecond)
	emu.SetDown(true)
	time.Sleep(outage / 2)
	if _, _, err := svc.Generate(ctx, "uncached", nil); !keystore.IsUnreachable(err) {
		t.Errorf("Generate with an uncached key during the outage: %v, want unreachable", err)
	}
	if _, err := svc.Status(ctx); !keystore.IsUnreachable(err) {
		t.Errorf("Status during the outage: %v, want unreachable", err)
	}
	time.Sleep(outage / 2)
	emu.SetDown(false)

	// Recovery needs no help: the driver logs in again (its token expired
	// during the outage) and uncached keys load again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err := svc.Generate(ctx, "uncached", nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery 30 s after the outage ended: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := svc.Status(ctx); err != nil || svc.Offline() {
		t.Fatalf("Status after the outage: %v (offline %v)", err, svc.Offline())
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests with cached keys failed; first: %v", n, requests.Load(), firstErr.Load())
	}
	if requests.Load() < 100 {
		t.Fatalf("only %d requests were made: the test did not exercise the outage", requests.Load())
	}
	names, err := svc.List(ctx, "")
	if err != nil || len(names) != cached+1 {
		t.Fatalf("keys after the outage: %q, %v", names, err)
	}
	for name, ct := range ciphertexts {
		if _, err := svc.Decrypt(ctx, name, ct, []byte("ctx")); err != nil {
			t.Fatalf("Decrypt after the outage: %v", err)
		}
	}
}
