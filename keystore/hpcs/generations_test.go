// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	emulator "github.com/kesbridge/kes/internal/emulator/hpcs"
	"github.com/kesbridge/kes/keystore"
)

func mustGet(t *testing.T, s *Store, name, want string) {
	t.Helper()
	got, err := s.Get(context.Background(), name)
	if err != nil || string(got) != want {
		t.Fatalf("Get(%s) = %q, %v; want %q", name, got, err, want)
	}
}

func TestCreateOverOddGeneration(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(ctx, "k", []byte("v0"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	// Now "k" lives under the odd alias and the even one is free: a
	// Create gets the alias but must notice the odd record and back off.
	if err := s.Create(ctx, "k", []byte("intruder")); !errors.Is(err, keystore.ErrKeyExists) {
		t.Fatalf("Create over an odd generation: %v", err)
	}
	mustGet(t, s, "k", "v1")
	if n := len(e.em.StandardKeys(emulator.StateActive)); n != 1 {
		t.Fatalf("%d active standard keys, want 1: the withdrawn create was left behind", n)
	}
}

func TestLeftoverGeneration(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	// A writer that committed generation 1 and died before deleting
	// generation 0.
	aliases, _ := aliasesOf("k")
	sealed, err := s.sealer.Seal(ctx, "k", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.write(ctx, "k", aliases[1], 1, sealed); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "k", "v1")
	if names, err := s.List(ctx, ""); err != nil || !slices.Equal(names, []string{"k"}) {
		t.Fatalf("List = %q, %v", names, err)
	}
	if err := s.Replace(ctx, "k", []byte("v0"), []byte("x")); !errors.Is(err, keystore.ErrConflict) {
		t.Fatalf("Replace from the superseded value: %v", err)
	}
	if err := s.Replace(ctx, "k", []byte("v1"), []byte("v2")); err != nil {
		t.Fatalf("Replace over a leftover: %v", err)
	}
	mustGet(t, s, "k", "v2")
	if n := len(e.em.StandardKeys(emulator.StateActive)); n != 1 {
		t.Fatalf("%d active standard keys after Replace, want 1", n)
	}
	// Delete removes leftovers too.
	if _, err := s.write(ctx, "k", aliases[1], 1, sealed); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if n := len(e.em.StandardKeys(emulator.StateActive)); n != 0 {
		t.Fatalf("%d active standard keys after Delete, want 0", n)
	}
}

func TestStaleWriterLoses(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	stale, _, err := s.read(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// Two complete writes pass the slow writer: its alias is free again
	// when it finally commits.
	if err := s.Replace(ctx, "k", []byte("v0"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(ctx, "k", []byte("v1"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	sealed, err := s.sealer.Seal(ctx, "k", []byte("lost"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.advance(ctx, "k", stale, nil, sealed); !errors.Is(err, keystore.ErrConflict) {
		t.Fatalf("slow writer: %v, want ErrConflict", err)
	}
	mustGet(t, s, "k", "v2")
	if n := len(e.em.StandardKeys(emulator.StateActive)); n != 1 {
		t.Fatalf("%d active standard keys, want 1", n)
	}
}

func TestConcurrentDelete(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 6)
	for range cap(errs) {
		go func() { errs <- s.Delete(ctx, "k") }()
	}
	won := 0
	for range cap(errs) {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, keystore.ErrKeyNotFound):
			t.Errorf("Delete: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent Deletes succeeded, want 1", won)
	}
}

func TestAliasReleaseDelay(t *testing.T) {
	// The real service may take minutes to release a deleted alias.
	e := newEnv(t, emulator.Config{AliasReleaseDelay: time.Hour})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(ctx, "k", []byte("v0"), []byte("v1")); err != nil {
		t.Fatalf("first Replace: %v", err)
	}
	// The even alias was just released: the next write must wait, and
	// say so, while reads go on undisturbed.
	err := s.Replace(ctx, "k", []byte("v1"), []byte("v2"))
	if err == nil || errors.Is(err, keystore.ErrConflict) || !strings.Contains(err.Error(), "still being released") {
		t.Fatalf("second Replace within the release delay: %v", err)
	}
	mustGet(t, s, "k", "v1")
	if n := len(e.em.StandardKeys(emulator.StateActive)); n != 1 {
		t.Fatalf("%d active standard keys after the failed Replace, want 1", n)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	err = s.Create(ctx, "k", []byte("again"))
	if err == nil || errors.Is(err, keystore.ErrKeyExists) || !strings.Contains(err.Error(), "still being released") {
		t.Fatalf("Create of a just deleted name: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get after the failed Create: %v", err)
	}
}

func TestKeyRing(t *testing.T) {
	e := newEnv(t, emulator.Config{KeyRings: []string{"kes"}})
	e.cfg.KeyRing = "kes"
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "k", "v")
	ids := e.em.StandardKeys(emulator.StateActive)
	if len(ids) != 1 || e.em.KeyRingOf(ids[0]) != "kes" {
		t.Fatalf("standard keys %v are not in ring kes", ids)
	}
	if e.em.KeyRingOf(e.root) != "default" {
		t.Fatal("the root key moved")
	}
	e.cfg.KeyRing = "missing"
	bad := e.store(t) // the root key is still found: it is looked up without a ring
	if err := bad.Create(ctx, "k2", []byte("v")); err == nil {
		t.Fatal("Create in a missing key ring succeeded")
	}
}

func TestStandardKeyDeletedOutOfBand(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// An operator revokes one key by deleting its standard key.
	admin, actx := e.admin(t)
	for _, id := range e.em.StandardKeys(emulator.StateActive) {
		if _, err := admin.DeleteKey(actx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get of a revoked key: %v", err)
	}
	if names, err := s.List(ctx, ""); err != nil || len(names) != 0 {
		t.Fatalf("List after revocation = %q, %v", names, err)
	}
	if err := s.Create(ctx, "k", []byte("new")); err != nil {
		t.Fatalf("Create after revocation: %v", err)
	}
	mustGet(t, s, "k", "new")
}
