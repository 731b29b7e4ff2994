// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/emulator/emutest"
	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/keystoretest"
)

const (
	testUser     = "kes-node"
	testPassword = "correct horse battery staple"
	testBox      = "tenant-1"
)

func startEmulator(t *testing.T, cfg emulator.Config) *emulator.Server {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = map[string]string{testUser: testPassword}
	}
	if cfg.Boxes == nil {
		cfg.Boxes = []emulator.Box{{Name: testBox}}
	}
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

func configFor(em *emulator.Server) Config {
	return Config{
		Endpoint:   em.URL(),
		VaultID:    em.VaultID(),
		BoxID:      testBox,
		Username:   testUser,
		Password:   keystore.NewSecret(testPassword),
		RootCAs:    em.CertPool(),
		Timeout:    5 * time.Second,
		RetryDelay: 5 * time.Millisecond,
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

func TestConformance(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		return openStore(t, configFor(startEmulator(t, emulator.Config{})))
	}, keystoretest.Options{ManyKeys: 1100, Concurrency: 8,
		Second: func(t *testing.T, first keystore.Store) keystore.Store { return otherNode(t, first.(*Store)) },
	})
}

// TestConformanceSmallPages runs the suite with pages far smaller than the
// data and a server that caps max_items below what the driver asks for.
func TestConformanceSmallPages(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		cfg := configFor(startEmulator(t, emulator.Config{MaxItems: 7, PathPrefix: "/kc"}))
		cfg.PageSize = 10
		return openStore(t, cfg)
	}, keystoretest.Options{ManyKeys: 60})
}

func TestString(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	cfg := configFor(em)
	cfg.Endpoint += "/"
	s := openStore(t, cfg)
	if got, want := s.String(), "Entrust KeyControl: "+em.URL(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// TestWireFormat checks the stored form against the reference: secret_data
// is the standard base64 of the value bytes, exactly as minio/kes writes it.
func TestWireFormat(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	ctx := context.Background()

	// The reference example: secret_data "c2VjcmV0LWJ5dGVzLWJhc2U2NA==" on
	// the wire holds the value bytes "secret-bytes-base64".
	if err := s.Create(ctx, "my-key", []byte("secret-bytes-base64")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	raw, ok := em.Secret(testBox, "my-key")
	if !ok {
		t.Fatal("the emulator has no secret my-key")
	}
	if got, want := string(raw.Data), `"c2VjcmV0LWJ5dGVzLWJhc2U2NA=="`; got != want {
		t.Fatalf("stored secret_data = %s, want %s", got, want)
	}

	// A key as minio/kes stores it: the value is itself base64 text
	// (here a legacy JSON key, reference §5.1), and secret_data is the
	// base64 of that text.
	value := "eyJieXRlcyI6IkFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE9IiwiYWxnb3JpdGhtIjoiQUVTMjU2In0="
	wire := `"ZXlKaWVYUmxjeUk2SWtGQlFVRkJRVUZCUVVGQlFVRkJRVUZCUVVGQlFVRkJRVUZCUVVGQlFVRkJRVUZCUVVGQlFVRkJRVUU5SWl3aVlXeG5iM0pwZEdodElqb2lRVVZUTWpVMkluMD0="`
	if err := em.SeedSecret(testBox, emulator.RawSecret{Name: "from-minio-kes", Data: json.RawMessage(wire)}); err != nil {
		t.Fatalf("SeedSecret: %v", err)
	}
	got, err := s.Get(ctx, "from-minio-kes")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if string(got) != value {
		t.Fatalf("Get = %q, want %q", got, value)
	}

	// A key value that this driver writes is read back the same way by
	// anyone who decodes secret_data once.
	if err := s.Create(ctx, "round-trip", []byte(value)); err != nil {
		t.Fatalf("Create: %v", err)
	}
	raw, _ = em.Secret(testBox, "round-trip")
	if string(raw.Data) != wire {
		t.Fatalf("stored secret_data = %s, want %s", raw.Data, wire)
	}
}

func TestGetForeignSecret(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	for name, data := range map[string]string{
		"kv":         `{"user":"x","password":"y"}`,
		"not-base64": `"not base64!"`,
	} {
		if err := em.SeedSecret(testBox, emulator.RawSecret{Name: name, Data: json.RawMessage(data)}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Get(context.Background(), name)
		if err == nil || errors.Is(err, keystore.ErrKeyNotFound) || keystore.IsUnreachable(err) {
			t.Errorf("Get(%q) = %v, want a plain error", name, err)
		}
	}
}

func TestListSkipsExpired(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		if err := s.Create(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	err := em.SeedSecret(testBox, emulator.RawSecret{Name: "b-expired", Data: json.RawMessage(`"eA=="`), ExpiresAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(names, want) {
		t.Fatalf("List = %q, want %q", names, want)
	}
}

// TestNodesShareBox runs two stores on one box, as two KES nodes would.
func TestNodesShareBox(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	a, b := openStore(t, configFor(em)), openStore(t, configFor(em))
	ctx := context.Background()
	if err := a.Create(ctx, "shared", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "shared"); err != nil || string(got) != "v1" {
		t.Fatalf("other node: Get = %q, %v", got, err)
	}
	if err := b.Create(ctx, "shared", []byte("v2")); !errors.Is(err, keystore.ErrKeyExists) {
		t.Fatalf("other node: Create = %v, want ErrKeyExists", err)
	}
	if err := b.Replace(ctx, "shared", []byte("v1"), []byte("v2")); err != nil {
		t.Fatalf("other node: Replace: %v", err)
	}
	if got, err := a.Get(ctx, "shared"); err != nil || string(got) != "v2" {
		t.Fatalf("first node after Replace: Get = %q, %v", got, err)
	}
	if err := a.Delete(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "shared"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("other node after Delete: Get = %v", err)
	}
}

func TestReplaceKeepsVersions(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(ctx, "k", []byte("v1"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	raw, _ := em.Secret(testBox, "k")
	if raw.Versions != 2 || string(raw.Data) != `"djI="` {
		t.Fatalf("after Replace the secret has %d versions, current %s; want 2, \"djI=\"", raw.Versions, raw.Data)
	}
}

// Start-up failures must name the wrong setting and never show the
// password.
func TestStartupErrors(t *testing.T) {
	em := startEmulator(t, emulator.Config{
		Boxes: []emulator.Box{{Name: testBox}, {Name: "private", Users: []string{"somebody-else"}}},
	})
	other := startEmulator(t, emulator.Config{})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name        string
		edit        func(*Config)
		reason      string // UnavailableError reason; "" means UnreachableError
		mustContain string
	}{
		{"wrong password", func(c *Config) { c.Password = keystore.NewSecret("wrong-password-value") }, "authentication failed", "credentials.password"},
		{"unknown user", func(c *Config) { c.Username = "nobody" }, "authentication failed", "credentials.username"},
		{"unknown vault", func(c *Config) { c.VaultID = "00000000-0000-4000-8000-000000000000" }, "vault not found", "vault_id"},
		{"unknown box", func(c *Config) { c.BoxID = "no-such-box" }, "box not found", "box_id"},
		{"forbidden box", func(c *Config) { c.BoxID = "private" }, "permission denied", "Vault User role"},
		{"untrusted CA", func(c *Config) { c.RootCAs = other.CertPool() }, "server certificate not trusted", "tls.ca"},
		{"wrong path", func(c *Config) { c.Endpoint += "/not-keycontrol" }, "vault API not found", "endpoint"},
		{"unreachable", func(c *Config) { c.Endpoint = "https://" + closedAddr }, "", closedAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := configFor(em)
			cfg.Retries = -1
			tt.edit(&cfg)
			s, err := New(context.Background(), cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, cfg.Password.Reveal()) || strings.Contains(msg, testPassword) {
				t.Fatal("the error shows the password") // printing it would too
			}
			if !strings.Contains(msg, tt.mustContain) {
				t.Errorf("error %q does not mention %q", msg, tt.mustContain)
			}
			var ue *keystore.UnavailableError
			switch {
			case tt.reason == "":
				if !keystore.IsUnreachable(err) {
					t.Errorf("error %v is not an UnreachableError", err)
				}
			case !errors.As(err, &ue):
				t.Errorf("error %v is not an UnavailableError", err)
			case ue.Reason != tt.reason:
				t.Errorf("reason = %q, want %q (error: %v)", ue.Reason, tt.reason, err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	base := Config{Endpoint: "https://kc.example", VaultID: "v", BoxID: "b", Username: "u", Password: keystore.NewSecret("p")}
	for name, edit := range map[string]func(*Config){
		"no endpoint":      func(c *Config) { c.Endpoint = "" },
		"http endpoint":    func(c *Config) { c.Endpoint = "http://kc.example" },
		"credentials":      func(c *Config) { c.Endpoint = "https://u:p@kc.example" },
		"query":            func(c *Config) { c.Endpoint = "https://kc.example/?a=b" },
		"no vault":         func(c *Config) { c.VaultID = "" },
		"no box":           func(c *Config) { c.BoxID = "" },
		"no user":          func(c *Config) { c.Username = "" },
		"no password":      func(c *Config) { c.Password = keystore.Secret{} },
		"malformed scheme": func(c *Config) { c.Endpoint = "://" },
	} {
		cfg := base
		edit(&cfg)
		if s, err := New(context.Background(), cfg); err == nil {
			s.Close()
			t.Errorf("%s: New succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "keycontrol: ") {
			t.Errorf("%s: error %q lacks the keycontrol prefix", name, err)
		}
	}
}

// hammer runs Gets of key from several goroutines until stop is closed
// and returns every error.
func hammer(ctx context.Context, s *Store, key string, want []byte, stop <-chan struct{}) func() []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		n    int
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := s.Get(ctx, key)
				mu.Lock()
				n++
				if err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("Get returned a wrong value")
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	return func() []error {
		wg.Wait()
		if n == 0 {
			errs = append(errs, errors.New("no Get ran"))
		}
		return errs
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTokenExpiryUnderLoad(t *testing.T) {
	em := startEmulator(t, emulator.Config{TokenTTL: 300 * time.Millisecond})
	s := openStore(t, configFor(em))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wait := hammer(ctx, s, "k", []byte("value"), stop)
	// Run across several token lifetimes.
	start := em.Count("Renew") + em.Count("Login")
	waitFor(t, "several token renewals", func() bool { return em.Count("Renew")+em.Count("Login") >= start+6 })
	close(stop)
	if errs := wait(); len(errs) > 0 {
		t.Fatalf("%d Gets failed across token expiries, first: %v", len(errs), errs[0])
	}
}

func TestTokenRevocation(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wait := hammer(ctx, s, "k", []byte("value"), stop)
	for i := range 5 {
		logins := em.Count("Login")
		em.RevokeTokens()
		waitFor(t, fmt.Sprintf("login %d after revocation", i+1), func() bool { return em.Count("Login") > logins })
		// Revoke again only after the new token is in use, as an
		// administrator would; a token revoked while the request that
		// obtained it is still being repeated is a real failure.
		gets := em.Count("CheckoutSecret")
		waitFor(t, "Gets with the new token", func() bool { return em.Count("CheckoutSecret") > gets+20 })
	}
	close(stop)
	if errs := wait(); len(errs) > 0 {
		t.Fatalf("%d Gets failed across token revocations, first: %v", len(errs), errs[0])
	}
	// Writes also survive a revoked token.
	em.RevokeTokens()
	if err := s.Create(ctx, "after-revoke", []byte("v")); err != nil {
		t.Fatalf("Create after revocation: %v", err)
	}
}

func TestPasswordChangedWhileRunning(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	cfg := configFor(em)
	s := openStore(t, cfg)
	// The administrator changes the password and revokes the sessions:
	// the request's new login fails, and says so. (The store's copy is
	// changed instead of the emulator's, which has no such switch.)
	s.password = keystore.NewSecret("changed-by-the-administrator")
	em.RevokeTokens()
	_, err := s.Get(context.Background(), "k")
	var ue *keystore.UnavailableError
	if !errors.As(err, &ue) || ue.Reason != "authentication failed" {
		t.Fatalf("Get with rejected credentials = %v, want UnavailableError(authentication failed)", err)
	}
	if strings.Contains(err.Error(), s.password.Reveal()) {
		t.Fatal("the error shows the password") // printing it would too
	}
}

func TestServerErrorBursts(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{500, 502, 503} {
		em.FailNext(DefaultRetries, status)
		if got, err := s.Get(ctx, "k"); err != nil || string(got) != "value" {
			t.Fatalf("Get through %d×%d: %q, %v", DefaultRetries, status, got, err)
		}
		em.FailNext(2, status)
		if names, err := s.List(ctx, ""); err != nil || !slices.Equal(names, []string{"k"}) {
			t.Fatalf("List through 2×%d: %q, %v", status, names, err)
		}
		em.FailNext(2, status)
		if _, err := s.Status(ctx); err != nil {
			t.Fatalf("Status through 2×%d: %v", status, err)
		}
	}
	// A burst longer than the retries reaches the caller, classified.
	em.FailNext(DefaultRetries+1, 503)
	if _, err := s.Get(ctx, "k"); !keystore.IsUnreachable(err) {
		t.Fatalf("Get through a long burst = %v, want UnreachableError", err)
	}
	em.FailNext(0, 0)
	// Creates, deletes and replaces survive bursts too, without
	// duplicating or losing anything.
	em.FailNext(1, 500)
	if err := s.Create(ctx, "k2", []byte("v2")); err != nil {
		t.Fatalf("Create through a 500: %v", err)
	}
	em.FailNext(1, 503)
	if err := s.Replace(ctx, "k2", []byte("v2"), []byte("v3")); err != nil {
		t.Fatalf("Replace through a 503: %v", err)
	}
	em.FailNext(1, 500)
	if err := s.Delete(ctx, "k2"); err != nil {
		t.Fatalf("Delete through a 500: %v", err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "value" {
		t.Fatalf("k after the bursts: %q, %v", got, err)
	}
}

func TestSlowServer(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	cfg := configFor(em)
	cfg.Timeout = 200 * time.Millisecond
	s := openStore(t, cfg)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	// Far beyond any test deadline: only the driver's timeout can end
	// these calls.
	em.SetLatency(time.Hour)
	for name, call := range map[string]func() error{
		"Get":    func() error { _, err := s.Get(ctx, "k"); return err },
		"List":   func() error { _, err := s.List(ctx, ""); return err },
		"Status": func() error { _, err := s.Status(ctx); return err },
		"Create": func() error { return s.Create(ctx, "k2", []byte("v")) },
	} {
		err := call()
		var ue *keystore.UnreachableError
		if !errors.As(err, &ue) || !ue.Timeout() {
			t.Errorf("%s on a slow server = %v, want a timeout UnreachableError", name, err)
		}
	}
	em.SetLatency(0)
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "value" {
		t.Fatalf("Get after the server is fast again: %q, %v", got, err)
	}
}

func TestCallerDeadline(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	em.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx, "k"); !keystore.IsUnreachable(err) {
		t.Fatalf("Get past the caller's deadline = %v, want UnreachableError", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestConnectionResets(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	em.ResetNext(2)
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "value" {
		t.Fatalf("Get through 2 resets: %q, %v", got, err)
	}
	em.ResetNext(1)
	if err := s.Create(ctx, "k2", []byte("v2")); err != nil {
		t.Fatalf("Create through a reset: %v", err)
	}
	em.ResetNext(1)
	if err := s.Replace(ctx, "k2", []byte("v2"), []byte("v3")); err != nil {
		t.Fatalf("Replace through a reset: %v", err)
	}
	em.ResetNext(1)
	if err := s.Delete(ctx, "k2"); err != nil {
		t.Fatalf("Delete through a reset: %v", err)
	}
	em.ResetNext(DefaultRetries + 1)
	if _, err := s.Get(ctx, "k"); !keystore.IsUnreachable(err) {
		t.Fatalf("Get through endless resets = %v, want UnreachableError", err)
	}
	em.ResetNext(0)
}

// TestLostAnswers covers writes that took effect on the server but whose
// answer never arrived: their repetition must not report the writer's own
// effect as somebody else's.
func TestLostAnswers(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	ctx := context.Background()

	em.DropResponseNext(1)
	if err := s.Create(ctx, "k", []byte("mine")); err != nil {
		t.Fatalf("Create whose answer was lost: %v (must not be ErrKeyExists)", err)
	}
	if got, _ := s.Get(ctx, "k"); string(got) != "mine" {
		t.Fatalf("value after lost-answer Create = %q", got)
	}
	if n := em.Count("CreateSecret"); n != 2 {
		t.Fatalf("CreateSecret was sent %d times, want 2 (the lost one and one repetition)", n)
	}

	// Somebody else's key under the name stays somebody else's.
	if err := em.SeedSecret(testBox, emulator.RawSecret{Name: "theirs", Data: json.RawMessage(`"dGhlaXJz"`)}); err != nil {
		t.Fatal(err)
	}
	em.ResetNext(1)
	if err := s.Create(ctx, "theirs", []byte("mine")); !errors.Is(err, keystore.ErrKeyExists) {
		t.Fatalf("Create of a taken name after a reset = %v, want ErrKeyExists", err)
	}

	em.SetFaultFilter("PutSecretValue")
	em.DropResponseNext(1)
	if err := s.Replace(ctx, "k", []byte("mine"), []byte("new")); err != nil {
		t.Fatalf("Replace whose answer was lost: %v", err)
	}
	if raw, _ := em.Secret(testBox, "k"); raw.Versions != 2 || string(raw.Data) != `"bmV3"` {
		t.Fatalf("lost-answer Replace left %d versions, current %s; want 2, \"bmV3\"", raw.Versions, raw.Data)
	}
	if n := em.Count("PutSecretValue"); n != 1 {
		t.Fatalf("PutSecretValue was sent %d times, want 1: a landed version must not be written twice", n)
	}

	em.SetFaultFilter("DeleteSecret")
	em.DropResponseNext(1)
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete whose answer was lost: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get after lost-answer Delete = %v", err)
	}
}

func TestDownAndRecovery(t *testing.T) {
	em := startEmulator(t, emulator.Config{TokenTTL: 200 * time.Millisecond})
	var logs emutest.SyncBuffer
	cfg := configFor(em)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := openStore(t, cfg)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	em.SetDown(true)
	for name, call := range map[string]func() error{
		"Get":    func() error { _, err := s.Get(ctx, "k"); return err },
		"List":   func() error { _, err := s.List(ctx, ""); return err },
		"Status": func() error { _, err := s.Status(ctx); return err },
		"Create": func() error { return s.Create(ctx, "k2", []byte("v")) },
	} {
		if err := call(); !keystore.IsUnreachable(err) {
			t.Errorf("%s while down = %v, want UnreachableError", name, err)
		}
	}
	// Let every token expire while the refresher keeps failing.
	time.Sleep(500 * time.Millisecond)
	refreshes := em.Count("Renew") + em.Count("Login")
	em.SetDown(false)

	// The refresher gets a token again by itself...
	waitFor(t, "the refresher to renew or log in", func() bool { return em.Count("Renew")+em.Count("Login") > refreshes })
	// ...and requests work again.
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "value" {
		t.Fatalf("Get after recovery: %q, %v", got, err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status after recovery: %v", err)
	}
	text := logs.String()
	if !strings.Contains(text, "cannot refresh the access token") {
		t.Errorf("the outage was not logged:\n%s", text)
	}
	if strings.Contains(text, testPassword) || strings.Contains(text, s.tok.Load().value) {
		t.Error("the log shows a credential") // printing it would too
	}
}

func TestResponseSizeLimit(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	// A secret whose checkout answer is larger than 1 MB.
	huge := `"` + strings.Repeat("QUFB", 300_000) + `"`
	if err := em.SeedSecret(testBox, emulator.RawSecret{Name: "huge", Data: json.RawMessage(huge)}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(context.Background(), "huge")
	if err == nil || !strings.Contains(err.Error(), "size limit") || keystore.IsUnreachable(err) {
		t.Fatalf("Get of a secret above the limit = %v, want a size limit error", err)
	}
	if n := em.Count("CheckoutSecret"); n != 1 {
		t.Fatalf("an oversized answer was fetched %d times, want 1", n)
	}
	// Just below the limit works.
	value := bytes.Repeat([]byte("k"), 700_000)
	if err := s.Create(context.Background(), "big", value); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(context.Background(), "big"); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Get of a 700 kB value: %d bytes, %v", len(got), err)
	}
}

func TestCloseStopsRefresher(t *testing.T) {
	em := startEmulator(t, emulator.Config{TokenTTL: 50 * time.Millisecond})
	s := openStore(t, configFor(em))
	waitFor(t, "a renewal", func() bool { return em.Count("Renew") > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waits for the refresher to exit, so nothing is sent after it.
	n := em.Count("Renew") + em.Count("Login")
	time.Sleep(200 * time.Millisecond)
	if m := em.Count("Renew") + em.Count("Login"); m != n {
		t.Fatalf("%d token requests after Close", m-n)
	}
	if _, err := s.Get(context.Background(), "k"); !errors.Is(err, keystore.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestBoxDeletedWhileRunning(t *testing.T) {
	em := startEmulator(t, emulator.Config{Boxes: []emulator.Box{{Name: testBox}, {Name: "other"}}})
	cfg := configFor(em)
	s := openStore(t, cfg)
	// The box disappears: Get must not claim the key is missing, or a
	// caller might create a new one.
	s.boxID = "gone"
	_, err := s.Get(context.Background(), "k")
	var ue *keystore.UnavailableError
	if !errors.As(err, &ue) || ue.Reason != "box not found" || errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get in a missing box = %v, want UnavailableError(box not found)", err)
	}
}

// TestReplaceFaults drives Replace through failures of its write and
// through a writer that slips in between its steps.
func TestReplaceFaults(t *testing.T) {
	em := startEmulator(t, emulator.Config{})
	s := openStore(t, configFor(em))
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	em.SetFaultFilter("PutSecretValue")

	// The write never reached the server: it is repeated once.
	em.ResetNext(1)
	if err := s.Replace(ctx, "k", []byte("v1"), []byte("v2")); err != nil {
		t.Fatalf("Replace through a reset write: %v", err)
	}
	em.FailNext(1, 503)
	if err := s.Replace(ctx, "k", []byte("v2"), []byte("v3")); err != nil {
		t.Fatalf("Replace through a 503 write: %v", err)
	}
	if raw, _ := em.Secret(testBox, "k"); raw.Versions != 3 || string(raw.Data) != `"djM="` {
		t.Fatalf("after two Replaces: %d versions, current %s; want 3, \"djM=\"", raw.Versions, raw.Data)
	}
	// Failing for good: the caller sees the classified error, the key
	// keeps its value.
	em.FailNext(DefaultRetries+1, 500)
	if err := s.Replace(ctx, "k", []byte("v3"), []byte("v4")); !keystore.IsUnreachable(err) {
		t.Fatalf("Replace through endless 500s = %v, want UnreachableError", err)
	}
	em.FailNext(0, 0)
	if got, _ := s.Get(ctx, "k"); string(got) != "v3" {
		t.Fatalf("value after a failed Replace = %q, want v3", got)
	}

	// Another node writes between our write and our re-check.
	checkouts := 0
	em.SetHook(func(action string) {
		if action != "CheckoutSecret" {
			return
		}
		if checkouts++; checkouts == 2 {
			em.SeedSecret(testBox, emulator.RawSecret{Name: "k", Data: json.RawMessage(`"b3RoZXI="`)})
		}
	})
	if err := s.Replace(ctx, "k", []byte("v3"), []byte("v4")); !errors.Is(err, keystore.ErrConflict) {
		t.Fatalf("Replace overtaken by another writer = %v, want ErrConflict", err)
	}
	em.SetHook(nil)
	if got, _ := s.Get(ctx, "k"); string(got) != "other" {
		t.Fatalf("value = %q, want the other writer's", got)
	}

	// The key is deleted between our read and our write.
	em.SetHook(func(action string) {
		if action == "PutSecretValue" {
			em.SetHook(nil)
			if err := s.Delete(ctx, "k"); err != nil {
				t.Errorf("Delete from the hook: %v", err)
			}
		}
	})
	if err := s.Replace(ctx, "k", []byte("other"), []byte("v5")); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Replace of a key deleted meanwhile = %v, want ErrKeyNotFound", err)
	}
}

// TestForbiddenDoesNotFloodLogins checks that a box the user may not use
// costs at most one login per second, not one per request.
func TestForbiddenDoesNotFloodLogins(t *testing.T) {
	em := startEmulator(t, emulator.Config{Boxes: []emulator.Box{{Name: testBox}, {Name: "private", Users: []string{"somebody-else"}}}})
	s := openStore(t, configFor(em))
	s.boxID = "private" // access withdrawn while running
	logins, start := em.Count("Login"), time.Now()
	for range 20 {
		_, err := s.Get(context.Background(), "k")
		var ue *keystore.UnavailableError
		if !errors.As(err, &ue) || ue.Reason != "permission denied" {
			t.Fatalf("Get in a forbidden box = %v, want UnavailableError(permission denied)", err)
		}
	}
	// One login per freshToken interval at most, however slow the
	// machine is.
	allowed := 1 + int(time.Since(start)/freshToken)
	if n := em.Count("Login") - logins; n > allowed || n >= 20 {
		t.Fatalf("%d logins for 20 forbidden requests, allowed %d", n, allowed)
	}
}
