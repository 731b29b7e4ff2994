// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"context"
	"testing"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
)

// BenchmarkVersions compares, with a warm cache, a decrypt with the
// oldest of 100 versions (a format-1 ciphertext made before the first
// rotation, and a format-2 one naming version 1) with a decrypt with the
// newest, and generate on a never-rotated key with generate on a key of
// 100 versions. Finding the version is one lookup, so the numbers should
// be within noise of each other.
func BenchmarkVersions(b *testing.B) {
	ctx := context.Background()
	svc := keys.New(keys.Config{Store: keystore.NewMem()})
	b.Cleanup(func() { svc.Close() })
	for _, name := range []string{"plain", "rotated"} {
		if err := svc.Create(ctx, name, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	_, oldest, err := svc.Generate(ctx, "rotated", nil)
	if err != nil {
		b.Fatal(err)
	}
	for range 99 {
		if _, err := svc.Rotate(ctx, "rotated", "bench"); err != nil {
			b.Fatal(err)
		}
	}
	_, oldestV2, err := svc.Generate(ctx, keys.VersionRef("rotated", 1), nil)
	if err != nil {
		b.Fatal(err)
	}
	_, newest, err := svc.Generate(ctx, "rotated", nil)
	if err != nil {
		b.Fatal(err)
	}
	if keys.CiphertextVersion(newest) != 100 {
		b.Fatalf("newest ciphertext has version %d", keys.CiphertextVersion(newest))
	}
	decrypt := func(ct []byte) func(*testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				if _, err := svc.Decrypt(ctx, "rotated", ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("decrypt/newest-of-100", decrypt(newest))
	b.Run("decrypt/oldest-of-100/format1", decrypt(oldest))
	b.Run("decrypt/oldest-of-100/format2", decrypt(oldestV2))
	generate := func(name string) func(*testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				if _, _, err := svc.Generate(ctx, name, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("generate/never-rotated", generate("plain"))
	b.Run("generate/100-versions", generate("rotated"))
}
