// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/keystoretest"
)

func newMemStore(t *testing.T, values map[string]string) *keystore.MemStore {
	t.Helper()
	s := keystore.NewMem()
	for name, v := range values {
		if err := s.Create(context.Background(), name, []byte(v)); err != nil {
			t.Fatalf("Create %s: %v", name, err)
		}
	}
	return s
}

// contents returns every name and value of s.
func contents(t *testing.T, s keystore.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	m := map[string]string{}
	for _, n := range names {
		v, err := s.Get(ctx, n)
		if err != nil {
			t.Fatalf("Get %s: %v", n, err)
		}
		m[n] = string(v)
	}
	return m
}

func TestMigrateKeys(t *testing.T) {
	source := map[string]string{"app-1": "value-1", "app-2": "value-2", "db-1": "value-3"}
	tests := []struct {
		name    string
		dst     map[string]string
		opts    migrateOptions
		wantErr string
		wantSrc map[string]string
		wantDst map[string]string
		want    migrateResult
	}{
		{
			name:    "all",
			opts:    migrateOptions{Pattern: "*"},
			wantSrc: source,
			wantDst: source,
			want:    migrateResult{Migrated: 3},
		},
		{
			name:    "pattern",
			opts:    migrateOptions{Pattern: "app-*"},
			wantSrc: source,
			wantDst: map[string]string{"app-1": "value-1", "app-2": "value-2"},
			want:    migrateResult{Migrated: 2},
		},
		{
			name:    "exists",
			dst:     map[string]string{"app-2": "other"},
			opts:    migrateOptions{Pattern: "*"},
			wantErr: "key 'app-2' already exists at destination",
			wantSrc: source,
			wantDst: map[string]string{"app-1": "value-1", "app-2": "other"},
			want:    migrateResult{Migrated: 1},
		},
		{
			name:    "merge",
			dst:     map[string]string{"app-2": "other"},
			opts:    migrateOptions{Pattern: "*", Merge: true},
			wantSrc: source,
			wantDst: map[string]string{"app-1": "value-1", "app-2": "other", "db-1": "value-3"},
			want:    migrateResult{Migrated: 2, Skipped: 1},
		},
		{
			name:    "force",
			dst:     map[string]string{"app-2": "other", "unrelated": "x"},
			opts:    migrateOptions{Pattern: "*", Force: true},
			wantSrc: source,
			wantDst: map[string]string{"app-1": "value-1", "app-2": "value-2", "db-1": "value-3", "unrelated": "x"},
			want:    migrateResult{Migrated: 3},
		},
		{
			name:    "move",
			opts:    migrateOptions{Pattern: "app-*", Move: true},
			wantSrc: map[string]string{"db-1": "value-3"},
			wantDst: map[string]string{"app-1": "value-1", "app-2": "value-2"},
			want:    migrateResult{Migrated: 2, Deleted: 2},
		},
		{
			// A skipped key whose destination value differs stays in the
			// source: it is the only copy of that key.
			name:    "merge-move",
			dst:     map[string]string{"app-1": "value-1", "app-2": "other"},
			opts:    migrateOptions{Pattern: "*", Merge: true, Move: true},
			wantSrc: map[string]string{"app-2": "value-2"},
			wantDst: map[string]string{"app-1": "value-1", "app-2": "other", "db-1": "value-3"},
			want:    migrateResult{Migrated: 1, Skipped: 2, Deleted: 2},
		},
		{
			name:    "move-stops-at-existing",
			dst:     map[string]string{"app-2": "other"},
			opts:    migrateOptions{Pattern: "*", Move: true},
			wantErr: "key 'app-2' already exists",
			wantSrc: map[string]string{"app-2": "value-2", "db-1": "value-3"},
			wantDst: map[string]string{"app-1": "value-1", "app-2": "other"},
			want:    migrateResult{Migrated: 1, Deleted: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := newMemStore(t, source), newMemStore(t, tt.dst)
			var progress []int
			opts := tt.opts
			opts.Progress = func(n int) { progress = append(progress, n) }
			res, err := migrateKeys(context.Background(), src, dst, opts)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("migrateKeys: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("migrateKeys: got error %v, want %q", err, tt.wantErr)
			}
			if res != tt.want {
				t.Errorf("result: got %+v, want %+v", res, tt.want)
			}
			if got := contents(t, src); !maps.Equal(got, tt.wantSrc) {
				t.Errorf("source: got %v, want %v", got, tt.wantSrc)
			}
			if got := contents(t, dst); !maps.Equal(got, tt.wantDst) {
				t.Errorf("destination: got %v, want %v", got, tt.wantDst)
			}
			if tt.wantErr == "" && len(progress) != res.Migrated+res.Skipped {
				t.Errorf("progress was reported %d times for %d keys", len(progress), res.Migrated+res.Skipped)
			}
		})
	}
}

// faultyStore fails or corrupts the operations its fields name.
type faultyStore struct {
	keystore.Store
	createErr error
	corrupt   bool // Get returns a different value
}

func (s *faultyStore) Create(ctx context.Context, name string, value []byte) error {
	if s.createErr != nil {
		return s.createErr
	}
	return s.Store.Create(ctx, name, value)
}

func (s *faultyStore) Get(ctx context.Context, name string) ([]byte, error) {
	v, err := s.Store.Get(ctx, name)
	if err == nil && s.corrupt {
		v = append(v, '!')
	}
	return v, err
}

// TestMigrateNeverLosesKeys: whatever goes wrong at the destination,
// --move deletes no source key whose copy was not verified.
func TestMigrateNeverLosesKeys(t *testing.T) {
	source := map[string]string{"a": "1", "b": "2"}
	for _, tt := range []struct {
		name    string
		dst     func(keystore.Store) keystore.Store
		wantErr string
	}{
		{"create-fails", func(s keystore.Store) keystore.Store {
			return &faultyStore{Store: s, createErr: &keystore.UnreachableError{Store: "test", Err: errors.New("connection reset")}}
		}, "failed to write key 'a' to destination"},
		{"read-back-differs", func(s keystore.Store) keystore.Store {
			return &faultyStore{Store: s, corrupt: true}
		}, "failed to verify key 'a' at destination"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := newMemStore(t, source)
			dst := tt.dst(keystore.NewMem())
			_, err := migrateKeys(context.Background(), src, dst, migrateOptions{Pattern: "*", Move: true, Force: true})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want %q", err, tt.wantErr)
			}
			if got := contents(t, src); !maps.Equal(got, source) {
				t.Fatalf("source lost keys: %v", got)
			}
		})
	}

	// One store under two names: moving would delete the only copy.
	t.Run("same-store", func(t *testing.T) {
		s := newMemStore(t, source)
		_, err := migrateKeys(context.Background(), s, s, migrateOptions{Pattern: "*", Move: true, Force: true})
		if err == nil || !strings.Contains(err.Error(), "same keystore") {
			t.Fatalf("got error %v, want one about the same keystore", err)
		}
		if got := contents(t, s); !maps.Equal(got, source) {
			t.Fatalf("keys lost: %v", got)
		}
	})
}

// TestMigrateSealed: values are unsealed from the source and sealed again
// for the destination, under each side's own root key.
func TestMigrateSealed(t *testing.T) {
	ctx := context.Background()
	srcRaw, dstRaw := keystore.NewMem(), keystore.NewMem()
	src := keystore.Seal(srcRaw, keystoretest.NewSoftSealer(), nil)
	dst := keystore.Seal(dstRaw, keystoretest.NewSoftSealer(), nil)
	values := map[string]string{"k1": "stored value one", "k2": "stored value two"}
	for n, v := range values {
		if err := src.Create(ctx, n, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := migrateKeys(ctx, src, dst, migrateOptions{Pattern: "*"})
	if err != nil {
		t.Fatalf("migrateKeys: %v", err)
	}
	if res.Migrated != 2 {
		t.Fatalf("migrated %d keys, want 2", res.Migrated)
	}
	if got := contents(t, dst); !maps.Equal(got, values) {
		t.Fatalf("destination: got %v, want %v", got, values)
	}
	for n, v := range values {
		a, _ := srcRaw.Get(ctx, n)
		b, _ := dstRaw.Get(ctx, n)
		if bytes.Contains(b, []byte(v)) || bytes.Equal(a, b) {
			t.Fatalf("key %s: the destination holds the source's sealed bytes or the plaintext", n)
		}
	}
}

// versionedSealer is a Sealer with a rotatable software root key: values
// start with the version byte of the root key that sealed them.
type versionedSealer struct {
	mu   sync.Mutex
	keys []cipher.AEAD // index = version
}

func newVersionedSealer() *versionedSealer {
	s := &versionedSealer{}
	s.Rotate()
	return s
}

func (s *versionedSealer) Rotate() {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	s.mu.Lock()
	s.keys = append(s.keys, aead)
	s.mu.Unlock()
}

func (s *versionedSealer) Seal(_ context.Context, name string, plaintext []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := len(s.keys) - 1
	nonce := make([]byte, 12)
	rand.Read(nonce)
	return s.keys[v].Seal(append([]byte{byte(v)}, nonce...), nonce, plaintext, []byte(name)), nil
}

func (s *versionedSealer) Unseal(ctx context.Context, name string, sealed []byte) ([]byte, []byte, error) {
	s.mu.Lock()
	if len(sealed) < 1+12+16 || int(sealed[0]) >= len(s.keys) {
		s.mu.Unlock()
		return nil, nil, errors.New("versioned sealer: malformed value")
	}
	aead, newest := s.keys[sealed[0]], int(sealed[0]) == len(s.keys)-1
	s.mu.Unlock()
	pt, err := aead.Open(nil, sealed[1:13], sealed[13:], []byte(name))
	if err != nil {
		return nil, nil, errors.New("versioned sealer: not authentic")
	}
	if newest {
		return pt, nil, nil
	}
	resealed, err := s.Seal(ctx, name, pt)
	return pt, resealed, err
}

func (s *versionedSealer) Reseal(ctx context.Context, name string, sealed []byte) ([]byte, error) {
	_, resealed, err := s.Unseal(ctx, name, sealed)
	if err != nil || resealed == nil {
		return sealed, err
	}
	return resealed, nil
}

func (s *versionedSealer) Status(context.Context) (keystore.State, error) {
	return keystore.State{}, nil
}
func (s *versionedSealer) Close() error   { return nil }
func (s *versionedSealer) String() string { return "versioned test sealer" }

func TestRewrapSealed(t *testing.T) {
	ctx := context.Background()
	raw, sealer := keystore.NewMem(), newVersionedSealer()
	store := keystore.Seal(raw, sealer, nil)
	for _, n := range []string{"app-1", "app-2", "db-1"} {
		if err := store.Create(ctx, n, []byte("value of "+n)); err != nil {
			t.Fatal(err)
		}
	}
	version := func(name string) byte {
		v, err := raw.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return v[0]
	}

	if n, err := rewrapKeys(ctx, store, "*", ignoreProgress, ignoreProgress); err != nil || n != 0 {
		t.Fatalf("before rotation: rewrapKeys = %d, %v; want 0, nil", n, err)
	}
	sealer.Rotate()
	if n, err := rewrapKeys(ctx, store, "app-*", ignoreProgress, ignoreProgress); err != nil || n != 2 {
		t.Fatalf("rewrapKeys(app-*) = %d, %v; want 2, nil", n, err)
	}
	if version("app-1") != 1 || version("app-2") != 1 || version("db-1") != 0 {
		t.Fatalf("root key versions after rewrap of app-*: %d %d %d, want 1 1 0", version("app-1"), version("app-2"), version("db-1"))
	}
	if n, err := rewrapKeys(ctx, store, "*", ignoreProgress, ignoreProgress); err != nil || n != 1 {
		t.Fatalf("rewrapKeys(*) = %d, %v; want 1, nil", n, err)
	}
	for _, n := range []string{"app-1", "app-2", "db-1"} {
		v, err := store.Get(ctx, n)
		if err != nil || string(v) != "value of "+n {
			t.Fatalf("Get %s after rewrap: %q, %v", n, v, err)
		}
	}
}

// rewrapStore stands for a keystore that re-wraps by itself (HPCS).
type rewrapStore struct {
	*keystore.MemStore
	calls int
}

func (s *rewrapStore) Rewrap(context.Context) (int, error) { s.calls++; return 7, nil }

func TestRewrapDispatch(t *testing.T) {
	ctx := context.Background()
	rs := &rewrapStore{MemStore: keystore.NewMem()}
	if n, err := rewrapKeys(ctx, rs, "*", ignoreProgress, ignoreProgress); err != nil || n != 7 || rs.calls != 1 {
		t.Fatalf("rewrapKeys on a Rewrap store = %d, %v (calls %d); want 7, nil (1)", n, err, rs.calls)
	}
	if _, err := rewrapKeys(ctx, rs, "app-*", ignoreProgress, ignoreProgress); err == nil || rs.calls != 1 {
		t.Fatal("a pattern was accepted by a store that re-wraps all keys at once")
	}
	mem := keystore.NewMem()
	_, err := rewrapKeys(ctx, mem, "*", ignoreProgress, ignoreProgress)
	want := "keystore '" + mem.String() + "' is not sealed: nothing to rewrap"
	if err == nil || err.Error() != want {
		t.Fatalf("rewrapKeys on a plain store: got %v, want %q", err, want)
	}
}

// ignoreProgress is a progress callback that discards what it is told.
func ignoreProgress(int) {}

// The lease records the key service keeps in a keystore whose Replace is
// not linearizable are not keys: kes migrate neither copies nor (with
// --move) deletes them, and kes key rewrap never rewrites them.
func TestMigrateSkipsLeaseRecords(t *testing.T) {
	ctx := context.Background()
	lease := keys.LeasePrefix + "0123456789abcdef0123456789abcdef-3"
	src := newMemStore(t, map[string]string{"a": "1", lease: `{"key":"a"}`, lease + "-done": `{"key":"a"}`})
	dst := keystore.NewMem()
	res, err := migrateKeys(ctx, src, dst, migrateOptions{Pattern: "*", Move: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Migrated != 1 || res.Deleted != 1 {
		t.Fatalf("migrated %d, deleted %d; want the one key", res.Migrated, res.Deleted)
	}
	if got := contents(t, dst); !maps.Equal(got, map[string]string{"a": "1"}) {
		t.Fatalf("destination: %v", got)
	}
	if got := contents(t, src); len(got) != 2 || got[lease] == "" || got[lease+"-done"] == "" {
		t.Fatalf("source after --move: %v; want the lease records untouched", got)
	}

	raw, sealer := keystore.NewMem(), newVersionedSealer()
	sealed := keystore.Seal(raw, sealer, nil)
	for _, n := range []string{"k", lease} {
		if err := sealed.Create(ctx, n, []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	sealer.Rotate()
	before, _ := raw.Get(ctx, lease)
	if n, err := rewrapKeys(ctx, sealed, "*", ignoreProgress, ignoreProgress); err != nil || n != 1 {
		t.Fatalf("rewrapKeys = %d, %v; want the one key", n, err)
	}
	if after, _ := raw.Get(ctx, lease); string(after) != string(before) {
		t.Fatal("rewrap rewrote a lease record")
	}
}
