// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	kp "github.com/IBM/keyprotect-go-client"

	emulator "github.com/kesbridge/kes/internal/emulator/hpcs"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/keystoretest"
)

func TestMain(m *testing.M) {
	// The client library backs off up to 30 s between retries of a 5xx;
	// the emulator needs no such patience.
	kp.RetryWaitMax = 5 * time.Millisecond
	// The service allows 1,000 aliases per instance, so the store holds
	// at most that many keys; small pages let List cross page
	// boundaries within that.
	listPage = 40
	os.Exit(m.Run())
}

type env struct {
	em   *emulator.Server
	root string
	cfg  Config
}

func newEnv(t testing.TB, ecfg emulator.Config) *env {
	t.Helper()
	ecfg.AllowFrequentRotation = true
	ecfg.AllowEarlyEnable = true
	em, err := emulator.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	root, err := em.CreateRootKey("kes-test-root")
	if err != nil {
		t.Fatal(err)
	}
	return &env{em: em, root: root, cfg: Config{
		Endpoint:    em.URL(),
		InstanceID:  em.InstanceID(),
		RootKeyID:   root,
		IAMEndpoint: em.URL(),
		APIKey:      keystore.NewSecret(em.APIKey()),
		RootCAs:     em.CertPool(),
		Timeout:     10 * time.Second,
	}}
}

func (e *env) sealer(t testing.TB) *Sealer {
	t.Helper()
	s, err := NewSealer(context.Background(), e.cfg)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (e *env) store(t testing.TB) *Store {
	t.Helper()
	ks, err := NewStore(context.Background(), e.cfg)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { ks.Close() })
	s, ok := ks.(*Store)
	if !ok {
		t.Fatalf("NewStore returned a %T", ks)
	}
	if _, ok := ks.(interface {
		Rewrap(context.Context) (int, error)
	}); !ok {
		t.Fatal("the store has no Rewrap method")
	}
	return s
}

// admin is a Key Protect client for the test's own calls (rotate,
// disable, …), authenticated like the driver.
func (e *env) admin(t testing.TB) (*kp.Client, context.Context) {
	t.Helper()
	c, err := newConn(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.tokens.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.client, kp.NewContextWithAuth(context.Background(), tok)
}

func (e *env) rotate(t testing.TB) {
	t.Helper()
	c, ctx := e.admin(t)
	if err := c.Rotate(ctx, e.root, ""); err != nil {
		t.Fatalf("rotate: %v", err)
	}
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var ue *keystore.UnavailableError
	if !errors.As(err, &ue) || ue.Reason != reason {
		t.Fatalf("got %v, want an UnavailableError %q", err, reason)
	}
	if ue.Store != "hpcs" {
		t.Fatalf("UnavailableError.Store = %q", ue.Store)
	}
}

func wantUnreachable(t *testing.T, err error) *keystore.UnreachableError {
	t.Helper()
	var ue *keystore.UnreachableError
	if !errors.As(err, &ue) || ue.Store != "hpcs" {
		t.Fatalf("got %v, want an UnreachableError of store hpcs", err)
	}
	return ue
}

// versionOf reports the root key version a sealed value was wrapped
// under, read from the service's ciphertext envelope.
func versionOf(t *testing.T, sealed []byte) string {
	t.Helper()
	v, err := parseSealed(sealed)
	if err != nil {
		t.Fatal(err)
	}
	id, err := emulator.CiphertextVersion(base64.StdEncoding.EncodeToString(v.wrapped))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestStoreConformance(t *testing.T) {
	var (
		mu   sync.Mutex
		envs = map[keystore.Store]*env{}
	)
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		e := newEnv(t, emulator.Config{})
		s := e.store(t)
		mu.Lock()
		envs[s] = e
		mu.Unlock()
		return s
	}, keystoretest.Options{ManyKeys: 2*listPage + 10, Timeout: time.Minute,
		// Another node: a second client with its own connections and
		// token on the same instance.
		Second: func(t *testing.T, first keystore.Store) keystore.Store {
			mu.Lock()
			e := envs[first]
			mu.Unlock()
			return e.store(t)
		},
	})
}

func TestSealerConformance(t *testing.T) {
	keystoretest.RunSealer(t, newEnv(t, emulator.Config{}).sealer(t))
}

func TestString(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	want := "IBM HPCS: " + e.cfg.Endpoint + " (root key " + e.root + ")"
	if s.String() != want || e.sealer(t).String() != want {
		t.Fatalf("String() = %q, want %q", s.String(), want)
	}
	if strings.Contains(s.String(), e.cfg.APIKey.Reveal()) {
		t.Fatal("String() contains the API key")
	}
}

func TestConfigCheck(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	for name, mod := range map[string]func(*Config){
		"no endpoint":  func(c *Config) { c.Endpoint = "" },
		"no instance":  func(c *Config) { c.InstanceID = "" },
		"no root key":  func(c *Config) { c.RootKeyID = "" },
		"no API key":   func(c *Config) { c.APIKey = keystore.Secret{} },
		"bad endpoint": func(c *Config) { c.Endpoint = "ftp://x" },
		"bad IAM":      func(c *Config) { c.IAMEndpoint = "::" },
		"bad root key": func(c *Config) { c.RootKeyID = "a/b" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := e.cfg
			mod(&cfg)
			if _, err := NewSealer(context.Background(), cfg); err == nil {
				t.Fatal("NewSealer accepted an invalid config")
			}
		})
	}
}

func TestSealEmpty(t *testing.T) {
	s := newEnv(t, emulator.Config{}).sealer(t)
	ctx := context.Background()
	sealed, err := s.Seal(ctx, "empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, _, err := s.Unseal(ctx, "empty", sealed)
	if err != nil || len(pt) != 0 {
		t.Fatalf("Unseal of an empty value = %d bytes, %v", len(pt), err)
	}
}

func TestSealerRotation(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.sealer(t)
	ctx := context.Background()
	small := []byte("a stored key value")
	large := bytes.Repeat([]byte{0x5a}, 3*maxDirect)
	sealedSmall, err := s.Seal(ctx, "small", small)
	if err != nil {
		t.Fatal(err)
	}
	sealedLarge, err := s.Seal(ctx, "large", large)
	if err != nil {
		t.Fatal(err)
	}
	v1 := e.em.KeyVersions(e.root)
	if len(v1) != 1 || versionOf(t, sealedSmall) != v1[0] || versionOf(t, sealedLarge) != v1[0] {
		t.Fatalf("sealed under %s/%s, root key versions %v", versionOf(t, sealedSmall), versionOf(t, sealedLarge), v1)
	}
	if again, err := s.Reseal(ctx, "small", sealedSmall); err != nil || !bytes.Equal(again, sealedSmall) {
		t.Fatalf("Reseal of a value under the newest version changed it (err %v)", err)
	}

	e.rotate(t)
	v2 := e.em.KeyVersions(e.root)
	if len(v2) != 2 {
		t.Fatalf("root key versions after rotate: %v", v2)
	}
	for name, tt := range map[string]struct{ sealed, want []byte }{
		"small": {sealedSmall, small},
		"large": {sealedLarge, large},
	} {
		pt, resealed, err := s.Unseal(ctx, name, tt.sealed)
		if err != nil {
			t.Fatalf("Unseal(%s) after rotate: %v", name, err)
		}
		if !bytes.Equal(pt, tt.want) {
			t.Fatalf("Unseal(%s) after rotate returned the wrong value", name)
		}
		if resealed == nil {
			t.Fatalf("Unseal(%s) after rotate returned no resealed value", name)
		}
		if got := versionOf(t, resealed); got != v2[1] {
			t.Fatalf("resealed %s is under version %s, want %s", name, got, v2[1])
		}
		pt, again, err := s.Unseal(ctx, name, resealed)
		if err != nil || !bytes.Equal(pt, tt.want) || again != nil {
			t.Fatalf("Unseal(%s) of the resealed value: %v, resealed again: %v", name, err, again != nil)
		}
		r, err := s.Reseal(ctx, name, tt.sealed)
		if err != nil || versionOf(t, r) != v2[1] {
			t.Fatalf("Reseal(%s): %v", name, err)
		}
	}
}

func TestSealedStoreWriteBack(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	mem := keystore.NewMem()
	store := keystore.Seal(mem, e.sealer(t), nil)
	ctx := context.Background()
	if err := store.Create(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	before, _ := mem.Get(ctx, "k")
	e.rotate(t)
	latest := e.em.KeyVersions(e.root)[1]
	if versionOf(t, before) == latest {
		t.Fatal("value was sealed under a version that did not exist yet")
	}
	got, err := store.Get(ctx, "k")
	if err != nil || string(got) != "value" {
		t.Fatalf("Get after rotate = %q, %v", got, err)
	}
	after, _ := mem.Get(ctx, "k")
	if versionOf(t, after) != latest {
		t.Fatal("the resealed value was not written back")
	}

	// kes key rewrap: Reseal of every key of a SealedStore.
	if err := store.Create(ctx, "k2", []byte("value 2")); err != nil {
		t.Fatal(err)
	}
	e.rotate(t)
	newest := e.em.KeyVersions(e.root)[2]
	for _, name := range []string{"k", "k2"} {
		changed, err := store.Reseal(ctx, name)
		if err != nil || !changed {
			t.Fatalf("Reseal(%s) = %v, %v", name, changed, err)
		}
		v, _ := mem.Get(ctx, name)
		if versionOf(t, v) != newest {
			t.Fatalf("Reseal(%s) did not move the value to the newest version", name)
		}
		if changed, err := store.Reseal(ctx, name); err != nil || changed {
			t.Fatalf("second Reseal(%s) = %v, %v", name, changed, err)
		}
	}
}

// storedVersions returns the root key version of every value the store
// holds, read from the emulator's standard keys.
func storedVersions(t *testing.T, e *env, s *Store, names []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range names {
		rec, _, err := s.read(context.Background(), name)
		if err != nil {
			t.Fatalf("read(%s): %v", name, err)
		}
		head := e.em.Payload(rec.id)
		if len(head) == 0 {
			t.Fatalf("emulator has no payload for %s", name)
		}
		out[name] = versionOf(t, rec.sealed)
	}
	return out
}

func TestStoreRotationAndRewrap(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	names := []string{"a", "b", "c", "big"}
	values := map[string][]byte{"a": []byte("A"), "b": []byte("B"), "c": []byte("C"), "big": bytes.Repeat([]byte("big"), 8000)}
	for _, n := range names {
		if err := s.Create(ctx, n, values[n]); err != nil {
			t.Fatal(err)
		}
	}
	e.rotate(t)
	v := e.em.KeyVersions(e.root)
	// Reading "a" writes it back under the new version.
	if got, err := s.Get(ctx, "a"); err != nil || !bytes.Equal(got, values["a"]) {
		t.Fatalf("Get(a) after rotate: %q, %v", got, err)
	}
	vs := storedVersions(t, e, s, names)
	if vs["a"] != v[1] || vs["b"] != v[0] || vs["big"] != v[0] {
		t.Fatalf("versions after one read: %v (root versions %v)", vs, v)
	}
	n, err := s.Rewrap(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Rewrap = %d, %v; want 3 rewrapped", n, err)
	}
	for name, ver := range storedVersions(t, e, s, names) {
		if ver != v[1] {
			t.Fatalf("%s is under %s after Rewrap, want %s", name, ver, v[1])
		}
	}
	for _, name := range names {
		if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, values[name]) {
			t.Fatalf("Get(%s) after Rewrap: %v", name, err)
		}
	}
	if n, err := s.Rewrap(ctx); err != nil || n != 0 {
		t.Fatalf("second Rewrap = %d, %v; want 0", n, err)
	}
	// The old standard keys are gone: one per key plus the parts of
	// "big".
	parts := (len(values["big"]) + 200) / maxInline
	if got := len(e.em.StandardKeys(emulator.StateActive)); got < len(names) || got > len(names)+parts+1 {
		t.Fatalf("%d active standard keys after Rewrap, want %d plus the parts of big", got, len(names))
	}
}

func TestRootKeyLifecycle(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	sealer := e.sealer(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	sealed, err := sealer.Seal(ctx, "x", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	admin, actx := e.admin(t)

	if err := admin.DisableKey(actx, e.root); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "k")
	wantReason(t, err, "root key disabled")
	_, _, err = sealer.Unseal(ctx, "x", sealed)
	wantReason(t, err, "root key disabled")
	_, err = sealer.Seal(ctx, "x", []byte("x"))
	wantReason(t, err, "root key disabled")
	_, err = s.Status(ctx)
	wantReason(t, err, "root key disabled")
	if err := s.Create(ctx, "k2", []byte("v")); err == nil {
		t.Fatal("Create succeeded with a disabled root key")
	}

	if err := admin.EnableKey(actx, e.root); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "value" {
		t.Fatalf("Get after enable = %q, %v", got, err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status after enable: %v", err)
	}

	if _, err := admin.DeleteKey(actx, e.root, kp.ReturnMinimal); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "k")
	wantReason(t, err, "root key deleted")
	_, _, err = sealer.Unseal(ctx, "x", sealed)
	wantReason(t, err, "root key deleted")
	_, err = sealer.Seal(ctx, "x", []byte("x"))
	wantReason(t, err, "root key deleted")
	_, err = s.Status(ctx)
	wantReason(t, err, "root key deleted")
	// The stored key still exists; its value is lost for good.
	if names, err := s.List(ctx, ""); err != nil || len(names) != 1 {
		t.Fatalf("List after root key deletion = %q, %v", names, err)
	}

	cfg := e.cfg
	cfg.RootKeyID = "00000000-0000-4000-8000-000000000000"
	_, err = NewSealer(ctx, cfg)
	wantReason(t, err, "root key not found")
}

func TestBlobSwap(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.sealer(t)
	ctx := context.Background()
	for _, size := range []int{16, 3 * maxDirect} {
		a, err := s.Seal(ctx, "key-a", bytes.Repeat([]byte("a"), size))
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Seal(ctx, "key-b", bytes.Repeat([]byte("b"), size))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Unseal(ctx, "key-b", a); !errors.Is(err, errNotAuthentic) {
			t.Fatalf("%d bytes: a's value unsealed as b: %v", size, err)
		}
		// Graft a's wrapped data key onto b's envelope.
		va, _ := parseSealed(a)
		vb, _ := parseSealed(b)
		vb.wrapped = va.wrapped
		if _, _, err := s.Unseal(ctx, "key-b", vb.marshal()); !errors.Is(err, errNotAuthentic) {
			t.Fatalf("%d bytes: grafted value unsealed: %v", size, err)
		}
	}
}

func TestWrongAPIKey(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	cfg := e.cfg
	cfg.APIKey = keystore.NewSecret("not-a-valid-api-key")
	_, err := NewSealer(context.Background(), cfg)
	wantReason(t, err, "authentication failed")
	if strings.Contains(err.Error(), cfg.APIKey.Reveal()) {
		t.Fatal("error contains the API key")
	}
	if !strings.Contains(err.Error(), "BXNIM0415E") {
		t.Fatalf("error does not carry the IAM error code: %v", err)
	}
}

func TestWrongInstance(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	cfg := e.cfg
	cfg.InstanceID = "11111111-1111-4111-8111-111111111111"
	_, err := NewSealer(context.Background(), cfg)
	wantReason(t, err, "authentication failed")
}

func TestTokenExpiry(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	var failed int
	for i := range 20 {
		if i%5 == 0 {
			e.em.InvalidateTokens()
		}
		if _, err := s.Get(ctx, "k"); err != nil {
			failed++
			t.Errorf("Get %d: %v", i, err)
		}
		if err := s.Replace(ctx, "k", []byte("v"), []byte("v")); err != nil {
			failed++
			t.Errorf("Replace %d: %v", i, err)
		}
	}
	if failed != 0 {
		t.Fatalf("%d calls failed across token invalidations", failed)
	}
}

func TestShortTokenLifetime(t *testing.T) {
	e := newEnv(t, emulator.Config{TokenTTL: time.Second})
	s := e.store(t)
	ctx := context.Background()
	// With a one second lifetime the cached token is renewed ahead of
	// expiry; whichever way the race goes, no call may fail.
	for i := range 10 {
		if err := s.Create(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
	}
}

func TestServerErrors(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// A short burst is absorbed by the client's retries.
	e.em.FailNext(3, http.StatusServiceUnavailable)
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get through a 5xx burst = %q, %v", got, err)
	}
	// A long one is reported as unreachable.
	e.em.FailNext(100, http.StatusInternalServerError)
	_, err := s.Get(ctx, "k")
	wantUnreachable(t, err)
	_, err = s.Status(ctx)
	wantUnreachable(t, err)
	e.em.FailNext(0, 0)
	if _, err := s.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after the burst: %v", err)
	}
}

func TestLatencyBeyondTimeout(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Timeout = 300 * time.Millisecond
	fast, err := NewStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	e.em.SetLatency(5 * time.Second)
	_, err = fast.Get(ctx, "k")
	if ue := wantUnreachable(t, err); !ue.Timeout() {
		t.Fatalf("UnreachableError.Timeout() = false for %v", err)
	}
	_, err = fast.Status(ctx)
	wantUnreachable(t, err)
	e.em.SetLatency(0)
	if _, err := fast.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after latency is gone: %v", err)
	}
}

func TestDownAndRecovery(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	e.em.SetDown(true)
	_, err := s.Get(ctx, "k")
	wantUnreachable(t, err)
	err = s.Create(ctx, "k2", []byte("v"))
	wantUnreachable(t, err)
	_, err = s.Status(ctx)
	wantUnreachable(t, err)
	e.em.SetDown(false)
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after recovery = %q, %v", got, err)
	}
}

func TestClosed(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	s.Close()
	if _, err := s.Get(context.Background(), "k"); !errors.Is(err, errClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestInvalidNames(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	for _, name := range []string{"", "a/b", "a b", strings.Repeat("k", maxName+1), "ü"} {
		if err := s.Create(ctx, name, []byte("v")); err == nil {
			t.Errorf("Create(%q) succeeded", name)
		}
	}
}

func TestConcurrentReaders(t *testing.T) {
	// Readers during Replaces see the old or the new value, never
	// "not found".
	e := newEnv(t, emulator.Config{})
	s := e.store(t)
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.Get(ctx, "k"); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	old := []byte("v0")
	for i := range 10 {
		next := []byte(fmt.Sprintf("v%d", i+1))
		if err := s.Replace(ctx, "k", old, next); err != nil {
			t.Errorf("Replace %d: %v", i, err)
		}
		old = next
	}
	close(done)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d Gets failed during Replaces, first: %v", len(errs), errs[0])
	}
}

// lostAnswer passes requests on, but swallows the answer to the first
// create request that carries an alias and reports a 503 instead, as a
// proxy that lost the service's answer would. The client library then
// repeats the create, which finds the alias taken by the first attempt.
type lostAnswer struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	done bool
}

func (l *lostAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := l.rt.RoundTrip(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || l.done || req.Method != http.MethodPost || req.URL.Path != "/api/v2/keys" || !bytes.Contains(body, []byte(`"aliases"`)) {
		return resp, err
	}
	l.done = true
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return &http.Response{
		StatusCode: http.StatusServiceUnavailable,
		Header:     http.Header{"Content-Type": {"text/plain"}},
		Body:       io.NopCloser(strings.NewReader("upstream answer lost")),
		Request:    req,
	}, nil
}

// TestLostCreateAnswer checks that a write whose answer was lost, and
// which the client library therefore repeated, counts as done rather
// than as a conflict with itself, and keeps its parts.
func TestLostCreateAnswer(t *testing.T) {
	e := newEnv(t, emulator.Config{})
	for name, size := range map[string]int{"small": 100, "large": 3 * maxInline} {
		t.Run(name, func(t *testing.T) {
			s := e.store(t)
			ctx := context.Background()
			value := bytes.Repeat([]byte{'v'}, size)

			s.c.ringClient.HttpClient.Transport = &lostAnswer{rt: s.c.ringClient.HttpClient.Transport}
			if err := s.Create(ctx, name, value); err != nil {
				t.Fatalf("Create with a lost answer: %v", err)
			}
			if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, value) {
				t.Fatalf("Get after Create with a lost answer: %d bytes, %v", len(got), err)
			}

			next := append(bytes.Clone(value), '2')
			s.c.ringClient.HttpClient.Transport = &lostAnswer{rt: s.c.ringClient.HttpClient.Transport.(*lostAnswer).rt}
			if err := s.Replace(ctx, name, value, next); err != nil {
				t.Fatalf("Replace with a lost answer: %v", err)
			}
			if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, next) {
				t.Fatalf("Get after Replace with a lost answer: %d bytes, %v", len(got), err)
			}
		})
	}
}
