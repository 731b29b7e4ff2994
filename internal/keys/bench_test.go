// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"context"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	hpcsemu "github.com/kesbridge/kes/internal/emulator/hpcs"
	kcemu "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/fs"
	"github.com/kesbridge/kes/keystore/hpcs"
)

// benchStores opens each keystore the server supports. Remote services
// run as their emulators on loopback, so the numbers show this project's
// overhead plus a local round trip, not a real service's latency.
var benchStores = []struct {
	name string
	open func(b *testing.B) keystore.Store
}{
	{"mem", func(*testing.B) keystore.Store { return keystore.NewMem() }},
	{"fs", func(b *testing.B) keystore.Store {
		s, err := fs.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
	{"keycontrol", func(b *testing.B) keystore.Store {
		return keyControlStore(b, startKeyControlEmulator(b, kcemu.Config{}))
	}},
	{"hpcs", func(b *testing.B) keystore.Store {
		_, cfg := startHPCS(b, hpcsemu.Config{})
		s, err := hpcs.NewStore(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
}

// BenchmarkService measures generate and decrypt per keystore, with a warm
// cache (the key stays cached) and a cold one (every operation reads and
// decodes the key again).
func BenchmarkService(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) { benchService(b, st.open) })
	}
}

func benchService(b *testing.B, open func(*testing.B) keystore.Store) {
	for _, c := range []struct {
		name  string
		cache cache.Config
	}{
		{"warm", cache.Config{}},
		{"cold", cache.Config{Expiry: time.Nanosecond}},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			svc := keys.New(keys.Config{Store: open(b), Cache: c.cache})
			b.Cleanup(func() { svc.Close() })
			name := "bench-" + c.name // one store may serve both runs
			if err := svc.Create(ctx, name, "bench"); err != nil {
				b.Fatal(err)
			}
			_, ct, err := svc.Generate(ctx, name, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("generate", func(b *testing.B) {
				for b.Loop() {
					if _, _, err := svc.Generate(ctx, name, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("decrypt", func(b *testing.B) {
				for b.Loop() {
					if _, err := svc.Decrypt(ctx, name, ct, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
