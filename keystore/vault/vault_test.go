// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	emulator "github.com/kesbridge/kes/internal/emulator/vault"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/keystoretest"
)

const testNS = "tenant-1"

var allCaps = []string{"create", "read", "update", "delete", "list"}

func startEmulator(t *testing.T, cfg emulator.Config) *emulator.Server {
	t.Helper()
	em, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("emulator.Start: %v", err)
	}
	t.Cleanup(func() { em.Close() })
	return em
}

// configFor is a config that logs in with the emulator's first AppRole.
func configFor(em *emulator.Server, version string) Config {
	a := em.AppRoles()[0]
	return Config{
		Endpoint:   em.URL(),
		Engine:     "kv",
		Version:    version,
		Prefix:     "kes",
		Namespace:  a.Namespace,
		AppRole:    &AppRole{ID: a.RoleID, Secret: keystore.NewSecret(a.SecretID)},
		RootCAs:    em.CertPool(),
		Timeout:    5 * time.Second,
		RetryDelay: 20 * time.Millisecond,
	}
}

func openStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// otherNode opens a second store on the same Vault as first would from
// another machine: a different endpoint spelling, so that it shares no
// process-wide lock with first.
func otherNode(t *testing.T, first *Store) keystore.Store {
	t.Helper()
	cfg := first.cfg.Config
	cfg.Endpoint = strings.Replace(first.cfg.endpoint, "127.0.0.1", "localhost", 1)
	return openStore(t, cfg)
}

func kvConfig(ns string, version int) emulator.Config {
	return emulator.Config{
		Namespaces: nsList(ns),
		KV:         []emulator.KVMount{{Namespace: ns, Path: "kv", Version: version}},
		Transit:    []emulator.TransitMount{{Namespace: ns, Path: "transit", Keys: []string{"kes"}}},
		AppRoles:   []emulator.AppRole{{Namespace: ns, Mount: "approle", RoleID: "role-1", SecretID: "secret-1", Policies: []string{"kes"}}},
	}
}

func nsList(ns string) []string {
	if ns == "" {
		return nil
	}
	return []string{ns}
}

func TestConformanceKV1(t *testing.T) {
	// No Second: KV v1 has no compare-and-swap, so Create is exactly
	// once across nodes only under a create-only policy
	// (TestKV1CreateOnlyPolicy).
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		return openStore(t, configFor(startEmulator(t, kvConfig("", 1)), V1))
	}, keystoretest.Options{})
}

func TestConformanceKV2(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		return openStore(t, configFor(startEmulator(t, kvConfig("", 2)), V2))
	}, keystoretest.Options{
		Second: func(t *testing.T, first keystore.Store) keystore.Store { return otherNode(t, first.(*Store)) },
	})
}

func TestConformanceKV2Transit(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		cfg := configFor(startEmulator(t, kvConfig("", 2)), V2)
		cfg.Transit = &Transit{Key: "kes"}
		return openStore(t, cfg)
	}, keystoretest.Options{
		Second: func(t *testing.T, first keystore.Store) keystore.Store { return otherNode(t, first.(*Store)) },
	})
}

func TestConformanceNamespace(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		cfg := configFor(startEmulator(t, kvConfig(testNS, 2)), V2)
		if cfg.Namespace != testNS {
			t.Fatalf("namespace %q", cfg.Namespace)
		}
		return openStore(t, cfg)
	}, keystoretest.Options{
		Second: func(t *testing.T, first keystore.Store) keystore.Store { return otherNode(t, first.(*Store)) },
	})
}

func TestCapabilities(t *testing.T) {
	em := startEmulator(t, emulator.Config{
		KV:       []emulator.KVMount{{Path: "kv", Version: 1}, {Path: "kv2", Version: 2}},
		Policies: map[string][]emulator.Rule{"kes": {{Path: "*", Capabilities: allCaps}}},
	})
	v1 := openStore(t, configFor(em, V1))
	cfg := configFor(em, V2)
	cfg.Engine = "kv2"
	v2 := openStore(t, cfg)
	if c := v1.Capabilities(); c.LinearizableReplace || c.MaxValueSize != MaxValueSize {
		t.Errorf("KV v1 capabilities = %+v", c)
	}
	if c := v2.Capabilities(); !c.LinearizableReplace || c.MaxValueSize != MaxValueSize {
		t.Errorf("KV v2 capabilities = %+v", c)
	}
}

// TestKV1CreateOnlyPolicy races creates from two nodes on KV v1 under
// the policy minio/kes documents (no "update"): Vault's existence check
// refuses the second write, and the loser reports ErrKeyExists.
func TestKV1CreateOnlyPolicy(t *testing.T) {
	cfg := kvConfig("", 1)
	cfg.Policies = map[string][]emulator.Rule{"kes": {{Path: "kv/kes/*", Capabilities: []string{"create", "read", "delete", "list"}}}}
	em := startEmulator(t, cfg)
	a := openStore(t, configFor(em, V1))
	b := otherNode(t, a)
	ctx := context.Background()
	for round := range 20 {
		name := fmt.Sprintf("raced-%d", round)
		var errs [2]error
		var wg sync.WaitGroup
		for i, s := range []keystore.Store{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = s.Create(ctx, name, []byte{'a' + byte(i)}) }()
		}
		wg.Wait()
		winners := 0
		for _, err := range errs {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, keystore.ErrKeyExists):
				t.Fatalf("round %d: Create: %v", round, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d creators succeeded, want 1", round, winners)
		}
	}
	// Without "update", Replace is refused as a missing permission.
	if err := a.Replace(ctx, "raced-0", []byte("a"), []byte("c")); !isPermissionDenied(err) {
		if err2 := a.Replace(ctx, "raced-0", []byte("b"), []byte("c")); !isPermissionDenied(err2) {
			t.Fatalf("Replace under a create-only policy: %v / %v, want permission denied", err, err2)
		}
	}
}

func isPermissionDenied(err error) bool {
	var ue *keystore.UnavailableError
	return errors.As(err, &ue) && ue.Reason == "permission denied"
}

// TestConformanceSealed runs the suite on a KV v2 store wrapped by a
// sealer, as a seal: section configures it: sealed values are binary and
// take the "kesbridge:base64:" form in Vault.
func TestConformanceSealed(t *testing.T) {
	sealer := keystoretest.NewSoftSealer()
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		em := startEmulator(t, kvConfig("", 2))
		s := keystore.Seal(openStore(t, configFor(em, V2)), sealer, nil)
		t.Cleanup(func() {
			data, _, ok := em.ReadKV("", "kv", "kes/my-key")
			if ok {
				if f, _ := data["my-key"].(string); !strings.HasPrefix(f, binaryPrefix) {
					t.Errorf("a sealed value is stored as %.24q, want the base64 form", f)
				}
			}
		})
		return s
	}, keystoretest.Options{})
}
