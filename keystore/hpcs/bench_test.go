// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"bytes"
	"context"
	"testing"

	emulator "github.com/kesbridge/kes/internal/emulator/hpcs"
)

// A stored key value is about 208 bytes (base64 of the minio/kes
// protobuf); the benchmarks use that size.
var benchValue = bytes.Repeat([]byte("k"), 208)

func BenchmarkSeal(b *testing.B) {
	s := newEnv(b, emulator.Config{}).sealer(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Seal(ctx, "bench", benchValue); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnseal(b *testing.B) {
	s := newEnv(b, emulator.Config{}).sealer(b)
	ctx := context.Background()
	sealed, err := s.Seal(ctx, "bench", benchValue)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := s.Unseal(ctx, "bench", sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStoreGet(b *testing.B) {
	s := newEnv(b, emulator.Config{}).store(b)
	ctx := context.Background()
	if err := s.Create(ctx, "bench", benchValue); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Get(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
