// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"testing"

	"github.com/minio/kms-go/kes"
)

// benchEnv starts a server with one key whose cache is warm, and a
// kms-go client for the admin.
func benchEnv(b *testing.B) (*kes.Client, kes.DEK) {
	b.Helper()
	p := newPKI(b)
	admin := newAPIKey(b)
	e := start(b, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(b)), "log:\n  audit: off\n"))
	c := e.kms(admin)
	ctx := context.Background()
	if err := c.CreateKey(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	dek, err := c.GenerateKey(ctx, "bench", []byte("ctx"))
	if err != nil {
		b.Fatal(err)
	}
	return c, dek
}

func BenchmarkGenerate(b *testing.B) {
	c, _ := benchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GenerateKey(ctx, "bench", []byte("ctx")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	c, dek := benchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decrypt(ctx, "bench", dek.Ciphertext, []byte("ctx")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateParallel(b *testing.B) {
	c, _ := benchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GenerateKey(ctx, "bench", []byte("ctx")); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkDecryptParallel(b *testing.B) {
	c, dek := benchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Decrypt(ctx, "bench", dek.Ciphertext, []byte("ctx")); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
