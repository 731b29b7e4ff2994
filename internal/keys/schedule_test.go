// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// Two nodes on one keystore run the same hourly schedule for 3.5 hours
// (fake time): the key gets exactly one new version per period, not one
// per node. Node b's cache never expires, so its cheap check sees a
// stale creation time: only the check inside the compare-and-swap keeps
// it from rotating again.
func TestScheduleOneVersionPerPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		shared := keystore.NewMem()
		sched := Schedule{Rotations: []Rotation{{Pattern: "minio-*", Period: time.Hour}}, By: "scheduler", Interval: 5 * time.Minute}
		a, b := New(Config{Store: shared}), New(Config{Store: shared})
		defer a.Close()
		defer b.Close()
		for _, name := range []string{"minio-1", "other"} {
			if err := a.Create(ctx, name, "me"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Describe(ctx, "minio-1"); err != nil { // b caches version 1
			t.Fatal(err)
		}
		a.StartSchedule(sched)
		b.StartSchedule(sched)
		time.Sleep(3*time.Hour + 30*time.Minute)
		synctest.Wait()

		// Read through a node with an empty cache: a's and b's caches
		// never expire and may predate the other node's rotations.
		c := New(Config{Store: shared})
		defer c.Close()
		vs, err := c.Versions(ctx, "minio-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 4 {
			t.Fatalf("%d versions after 3.5 periods on two nodes, want 4", len(vs))
		}
		for i, v := range vs[1:] {
			if v.CreatedBy != "scheduler" {
				t.Fatalf("version %d made by %q", v.Number, v.CreatedBy)
			}
			if gap := v.CreatedAt.Sub(vs[i].CreatedAt); gap < time.Hour || gap > time.Hour+6*time.Minute {
				t.Fatalf("version %d made %v after the one before", v.Number, gap)
			}
		}
		if vs, _ := a.Versions(ctx, "other"); len(vs) != 1 {
			t.Fatalf("a key the pattern does not match was rotated: %d versions", len(vs))
		}
	})
}

// Each check looks at a bounded number of keys and continues where it
// stopped.
func TestScheduleBoundedWork(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{})
	for _, name := range []string{"k1", "k2", "k3", "k4", "k5"} {
		s.Create(ctx, name, "me")
	}
	sc := &scheduler{Schedule: Schedule{Rotations: []Rotation{{Pattern: "k*", Period: time.Nanosecond}}, MaxKeysPerTick: 2}}
	before := store.gets.Load()
	s.rotateDue(ctx, sc)
	if sc.cursor != "k2" {
		t.Fatalf("cursor after the first check = %q, want k2", sc.cursor)
	}
	s.rotateDue(ctx, sc)
	s.rotateDue(ctx, sc)
	if sc.cursor != "" {
		t.Fatalf("cursor after a full pass = %q", sc.cursor)
	}
	for _, name := range []string{"k1", "k2", "k3", "k4", "k5"} {
		if vs, _ := s.Versions(ctx, name); len(vs) != 2 {
			t.Fatalf("%s has %d versions after one pass, want 2", name, len(vs))
		}
	}
	if store.gets.Load() == before {
		t.Fatal("no keystore reads")
	}
}
