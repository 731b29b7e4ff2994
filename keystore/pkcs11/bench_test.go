// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import (
	"context"
	"testing"
)

// The root key in these benchmarks is what production uses: a token
// object with CKA_PRIVATE set (SoftHSM2 decrypts it from its store on
// every use, which dominates the cost). Plaintexts are 64 bytes, about the
// size of a stored key value.

func benchSealer(b *testing.B) *Sealer {
	b.Helper()
	return newSealer(b, newToken(b))
}

func BenchmarkSeal(b *testing.B) {
	s := benchSealer(b)
	ctx := context.Background()
	pt := make([]byte, 64)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, err := s.Seal(ctx, "bench-key", pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnseal(b *testing.B) {
	s := benchSealer(b)
	ctx := context.Background()
	pt := make([]byte, 64)
	sealed, err := s.Seal(ctx, "bench-key", pt)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, _, err := s.Unseal(ctx, "bench-key", sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealParallel shows that SoftHSM2 does not scale with sessions.
func BenchmarkSealParallel(b *testing.B) {
	s := benchSealer(b)
	pt := make([]byte, 64)
	b.SetBytes(int64(len(pt)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Seal(context.Background(), "bench-key", pt); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkStoreGet is a cold read: find the object, read it, unseal it.
func BenchmarkStoreGet(b *testing.B) {
	for _, tt := range []struct {
		name string
		dir  bool
		keys int
	}{
		{"token/1key", false, 1},
		{"token/100keys", false, 100},
		{"dir/100keys", true, 100},
	} {
		b.Run(tt.name, func(b *testing.B) {
			cfg := newToken(b)
			if tt.dir {
				cfg.Dir = b.TempDir()
			}
			s, err := NewStore(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			ctx := context.Background()
			for i := range tt.keys {
				if err := s.Create(ctx, "key-"+string(rune('a'+i%26))+string(rune('0'+i/26)), make([]byte, 64)); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if _, err := s.Get(ctx, "key-a0"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
