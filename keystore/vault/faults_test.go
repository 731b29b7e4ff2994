// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	emulator "github.com/kesbridge/kes/internal/emulator/vault"
	"github.com/kesbridge/kes/keystore"
)

// TestRevocationUnderLoad revokes every token five times while
// clients read and create keys: no request may fail, because a 403
// "invalid token" logs in again and repeats the request once.
func TestRevocationUnderLoad(t *testing.T) {
	em := startEmulator(t, kvConfig("", 2))
	s := openStore(t, configFor(em, V2))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var (
		wg     sync.WaitGroup
		ops    atomic.Int64
		failed atomic.Int64
		first  atomic.Value
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if i%4 == 0 {
					err = s.Create(ctx, fmt.Sprintf("g%d-%d", g, i), []byte("v"))
				} else {
					_, err = s.Get(ctx, "k")
				}
				ops.Add(1)
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	logins := em.Count("login")
	// Revocations far enough apart that each is one event: a request
	// that met a revoked token retries once with a fresh one.
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		em.RevokeTokens()
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed after token revocations; first: %v", n, ops.Load(), first.Load())
	}
	if em.Count("login") <= logins {
		t.Fatal("the store never logged in again")
	}
	if got := em.Count("login") - logins; got > 10 {
		t.Errorf("%d logins for 5 revocations: concurrent requests did not share a login", got)
	}
}

// TestSealed seals Vault: requests fail as unreachable with a reason
// that says so, Status reports it also with a namespace (sys/health is
// sent without it), and everything works again after unsealing.
func TestSealed(t *testing.T) {
	em := startEmulator(t, kvConfig(testNS, 2))
	s := openStore(t, configFor(em, V2))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status with a namespace: %v", err)
	}
	em.SetSealed(true)
	_, err := s.Get(ctx, "k")
	if !keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("Get of a sealed Vault: %v, want unreachable: sealed", err)
	}
	if _, err := s.Status(ctx); !keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("Status of a sealed Vault: %v, want unreachable: sealed", err)
	}
	em.SetSealed(false)
	if v, err := s.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get after unseal = %q, %v", v, err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status after unseal: %v", err)
	}
}

// TestPermissionDenied: a policy that does not cover the prefix is
// "permission denied", never "not found", for reads, writes and lists.
func TestPermissionDenied(t *testing.T) {
	cfg := kvConfig("", 2)
	cfg.Policies = map[string][]emulator.Rule{"kes": {{Path: "kv/data/other/*", Capabilities: allCaps}}}
	em := startEmulator(t, cfg)
	s := openStore(t, configFor(em, V2))
	ctx := context.Background()
	_, err := s.Get(ctx, "k")
	if errors.Is(err, keystore.ErrKeyNotFound) || !isPermissionDenied(err) {
		t.Fatalf("Get: %v, want permission denied", err)
	}
	if err := s.Create(ctx, "k", []byte("v")); !isPermissionDenied(err) {
		t.Fatalf("Create: %v, want permission denied", err)
	}
	if _, err := s.List(ctx, ""); !isPermissionDenied(err) {
		t.Fatalf("List: %v, want permission denied", err)
	}
	if strings.Contains(err.Error(), "not found") {
		t.Fatalf("error says not found: %v", err)
	}
}

// TestLeastPrivilegePolicy runs create, read, list and delete under the
// typical KV v2 policy: create+read on data/, list+delete on metadata/,
// no update and no metadata read.
func TestLeastPrivilegePolicy(t *testing.T) {
	cfg := kvConfig("", 2)
	cfg.Policies = map[string][]emulator.Rule{"kes": {
		{Path: "kv/data/kes/*", Capabilities: []string{"create", "read"}},
		{Path: "kv/metadata/kes/*", Capabilities: []string{"list", "delete"}},
	}}
	em := startEmulator(t, cfg)
	s := openStore(t, configFor(em, V2))
	ctx := context.Background()
	if names, err := s.List(ctx, ""); err != nil || len(names) != 0 {
		t.Fatalf("List of an empty prefix = %q, %v", names, err)
	}
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := s.Create(ctx, "k", []byte("w")); !errors.Is(err, keystore.ErrKeyExists) {
		t.Fatalf("second Create: %v", err)
	}
	if names, err := s.List(ctx, ""); err != nil || len(names) != 1 {
		t.Fatalf("List = %q, %v", names, err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// TestSlowVault: a Vault slower than Timeout gives a timeout error, an
// *UnreachableError whose Timeout is true (the server answers 504).
func TestSlowVault(t *testing.T) {
	em := startEmulator(t, kvConfig("", 2))
	cfg := configFor(em, V2)
	cfg.Timeout = 200 * time.Millisecond
	s := openStore(t, cfg)
	em.SetLatency(time.Second)
	start := time.Now()
	_, err := s.Get(context.Background(), "k")
	var ue *keystore.UnreachableError
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("Get of a slow Vault: %v, want an unreachable timeout", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("Get took %v: a timeout was retried", d)
	}
}

// TestServerErrorsRetried: reads survive two 500s in a row.
func TestServerErrorsRetried(t *testing.T) {
	em := startEmulator(t, kvConfig("", 2))
	s := openStore(t, configFor(em, V2))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	em.FailNext(2, 500)
	if _, err := s.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after two 500s: %v", err)
	}
	em.FailNext(5, 503)
	if _, err := s.Get(ctx, "k"); !keystore.IsUnreachable(err) {
		t.Fatalf("Get after five 503s: %v, want unreachable", err)
	}
}

// TestKubernetesJWTFileReread: the JWT file is read at every login.
func TestKubernetesJWTFileReread(t *testing.T) {
	cfg := kvConfig("", 2)
	cfg.KubernetesRoles = []emulator.KubernetesRole{{Mount: "kubernetes", Role: "kes", JWT: "jwt-1\n", Policies: []string{"kes"}}}
	em := startEmulator(t, cfg)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("jwt-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := configFor(em, V2)
	c.AppRole = nil
	c.Kubernetes = &Kubernetes{Role: "kes", JWT: keystore.NewSecret(file)}
	c.Retries = -1
	s := openStore(t, c) // the trailing newline is sent: untrimmed
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file, []byte("jwt-2"), 0o600)
	em.RevokeTokens()
	if _, err := s.Get(ctx, "k"); err == nil {
		t.Fatal("Get succeeded with a login whose JWT file no longer holds a valid token: the file was not read again")
	}
	os.WriteFile(file, []byte("jwt-1\n"), 0o600)
	if _, err := s.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after the JWT file was fixed: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	secret := keystore.NewSecret("s3cr3t-value")
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no endpoint"},
		{Config{Endpoint: "ftp://x"}, "https://"},
		{Config{Endpoint: "https://x", Version: "v3"}, "version"},
		{Config{Endpoint: "https://x", AppRole: &AppRole{ID: "a", Secret: secret}, Kubernetes: &Kubernetes{Role: "r", JWT: secret}}, "more than one"},
		{Config{Endpoint: "https://x", AppRole: &AppRole{ID: "a"}}, "secret ID"},
		{Config{Endpoint: "https://x", Transit: &Transit{}}, "transit"},
		{Config{Endpoint: "https://x", Prefix: "a/../b"}, "prefix"},
	} {
		_, err := New(context.Background(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), secret.Reveal()) {
			t.Errorf("New(%+v) = %v, want an error about %q", tt.cfg, err, tt.want)
		}
	}
}

func TestLoginErrors(t *testing.T) {
	em := startEmulator(t, kvConfig("", 2))
	cfg := configFor(em, V2)
	cfg.AppRole.Secret = keystore.NewSecret("wrong-secret-id")
	_, err := New(context.Background(), cfg)
	var ue *keystore.UnavailableError
	if !errors.As(err, &ue) || ue.Reason != "authentication failed" || strings.Contains(err.Error(), "wrong-secret-id") {
		t.Fatalf("New with a wrong secret ID: %v", err)
	}
}

// TestTransitRotation: after the transit key is rotated, new values are
// vault:v2: and both old and new values decrypt (minio/kes v0.24.0 only
// accepts vault:v1:).
func TestTransitRotation(t *testing.T) {
	em := startEmulator(t, kvConfig("", 2))
	cfg := configFor(em, V2)
	cfg.Transit = &Transit{Key: "kes"}
	s := openStore(t, cfg)
	ctx := context.Background()
	if err := s.Create(ctx, "old", []byte("v-old")); err != nil {
		t.Fatal(err)
	}
	if err := em.RotateTransitKey("", "transit", "kes"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "new", []byte("v-new")); err != nil {
		t.Fatalf("Create after a transit key rotation: %v", err)
	}
	data, _, _ := em.ReadKV("", "kv", "kes/new")
	if f, _ := data["new"].(string); !strings.HasPrefix(f, "vault:v2:") {
		t.Fatalf("new value %.12q, want vault:v2:", f)
	}
	for name, want := range map[string]string{"old": "v-old", "new": "v-new"} {
		if v, err := s.Get(ctx, name); err != nil || string(v) != want {
			t.Fatalf("Get(%s) = %q, %v", name, v, err)
		}
	}
}

// TestFixedToken uses a given token instead of a login; with neither a
// token nor VAULT_TOKEN the store refuses to start.
func TestFixedToken(t *testing.T) {
	em := startEmulator(t, kvConfig("", 2))
	cfg := configFor(em, V2)
	cfg.AppRole = nil
	cfg.Token = keystore.NewSecret(em.RootToken())
	s := openStore(t, cfg)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", "")
	cfg.Token = keystore.Secret{}
	if _, err := New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "no authentication method") {
		t.Fatalf("New without any credential: %v", err)
	}
}
