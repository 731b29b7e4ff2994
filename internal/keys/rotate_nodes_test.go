// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
)

// Two nodes on one KeyControl box (whose Replace is not linearizable, so
// rotations take the key's lease) race a due scheduled rotation several
// times at once: exactly one new version appears.
func TestNodesRaceScheduledRotation(t *testing.T) {
	ctx := context.Background()
	emu, a := startKeyControl(t, emulator.Config{}, cache.Config{})
	b := keyControlService(t, emu, cache.Config{})
	if err := a.Create(ctx, "minio-due", "me"); err != nil {
		t.Fatal(err)
	}
	const period = 500 * time.Millisecond
	time.Sleep(period) // the key is due
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		rotated int
	)
	for _, node := range []interface {
		RotateIfOlder(context.Context, string, string, time.Duration) (uint32, bool, error)
	}{a, b, a, b} {
		wg.Go(func() {
			_, ok, err := node.RotateIfOlder(ctx, "minio-due", "scheduler", period)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				rotated++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	vs, err := b.Versions(ctx, "minio-due")
	if err != nil {
		t.Fatal(err)
	}
	if rotated != 1 || len(vs) != 2 {
		t.Fatalf("%d rotations reported, %d versions; want exactly one new version", rotated, len(vs))
	}
}
