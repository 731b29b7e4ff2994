// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/keystoretest"
	"github.com/miekg/pkcs11"
)

func newTestStore(t *testing.T, cfg Config) keystore.Store {
	t.Helper()
	s, err := NewStore(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func hsmOf(t *testing.T, s keystore.Store) *hsm {
	t.Helper()
	switch s := s.(type) {
	case *tokenStore:
		return s.h
	case *dirStore:
		return s.h
	}
	t.Fatalf("unexpected store type %T", s)
	return nil
}

// The PKCS#11 suites wire no second instance (Options.Second): the store
// serialises writers only inside one Store, and says so (one writer per
// token); it declares no LinearizableReplace, so the cross-instance race
// would be skipped anyway.
func TestTokenStoreConformance(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		return newTestStore(t, newToken(t))
	}, keystoretest.Options{})
}

func TestDirStoreConformance(t *testing.T) {
	cfg := newToken(t)
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		cfg := cfg
		cfg.Dir = filepath.Join(t.TempDir(), "blobs") // created by NewStore
		return newTestStore(t, cfg)
	}, keystoretest.Options{})
}

func TestSealerConformance(t *testing.T) {
	keystoretest.RunSealer(t, newSealer(t, newToken(t)))
}

// TestSealedFormat checks the documented format against the standard
// library's AES-GCM, with a root key whose value the test chose.
func TestSealedFormat(t *testing.T) {
	cfg := newToken(t)
	cfg.CreateRootKey = false
	key := make([]byte, 32)
	rand.Read(key)
	importRootKey(t, cfg, key)
	s := newSealer(t, cfg)
	ctx := context.Background()

	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	plaintext := []byte("a stored key value")

	sealed, err := s.Seal(ctx, "my-key", plaintext)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if len(sealed) != 1+12+len(plaintext)+16 || sealed[0] != 0x01 {
		t.Fatalf("sealed value has %d bytes and version %#x, want %d and 0x01", len(sealed), sealed[0], 1+12+len(plaintext)+16)
	}
	got, err := aead.Open(nil, sealed[1:13], sealed[13:], []byte("my-key"))
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("crypto/cipher cannot open the sealed value with the key name as AAD: %v", err)
	}

	iv := make([]byte, 12)
	rand.Read(iv)
	foreign := append(append([]byte{0x01}, iv...), aead.Seal(nil, iv, plaintext, []byte("other-key"))...)
	got, _, err = s.Unseal(ctx, "other-key", foreign)
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("Unseal of a value sealed by crypto/cipher: %v", err)
	}
	if _, _, err := s.Unseal(ctx, "my-key", foreign); !errors.Is(err, ErrNotAuthentic) {
		t.Fatalf("Unseal under the wrong name: got %v, want ErrNotAuthentic", err)
	}
	foreign[0] = 0x02
	if _, _, err := s.Unseal(ctx, "other-key", foreign); err == nil || errors.Is(err, ErrNotAuthentic) {
		t.Fatalf("Unseal of version 2: got %v, want a version error", err)
	}
}

// importRootKey puts an AES key with a known value on the token under the
// root key label, through a module handle of the test's own.
func importRootKey(t *testing.T, cfg Config, key []byte) {
	t.Helper()
	ctx := pkcs11.New(cfg.Module)
	if err := ctx.Initialize(); err != nil {
		t.Fatalf("C_Initialize: %v", err)
	}
	defer ctx.Finalize()
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range slots {
		if info, err := ctx.GetTokenInfo(slot); err != nil || info.Label != cfg.TokenLabel {
			continue
		}
		sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctx.Login(sh, pkcs11.CKU_USER, cfg.PIN.Reveal()); err != nil {
			t.Fatal(err)
		}
		_, err = ctx.CreateObject(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, cfg.RootKeyLabel),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, key),
		})
		if err != nil {
			t.Fatalf("C_CreateObject: %v", err)
		}
		return
	}
	t.Fatalf("token %s not found", cfg.TokenLabel)
}

func TestWrongPIN(t *testing.T) {
	cfg := newToken(t)
	cfg.PIN = keystore.NewSecret("not-the-pin-4711")
	for name, open := range map[string]func() error{
		"Sealer": func() error { _, err := NewSealer(context.Background(), cfg); return err },
		"Store":  func() error { _, err := NewStore(context.Background(), cfg); return err },
	} {
		err := open()
		if err == nil {
			t.Fatalf("%s: login with a wrong PIN succeeded", name)
		}
		if err.Error() != "pkcs11: login failed: wrong PIN" {
			t.Errorf("%s: error = %q, want %q", name, err, "pkcs11: login failed: wrong PIN")
		}
		if strings.Contains(err.Error(), cfg.PIN.Reveal()) {
			t.Errorf("%s: error echoes the PIN", name)
		}
	}
	// The right PIN still works: nothing got locked.
	cfg.PIN = keystore.NewSecret(testPIN)
	newSealer(t, cfg)
}

func TestTokenNotFound(t *testing.T) {
	cfg := newToken(t)
	cfg.TokenLabel = "no-such-token"
	_, err := NewSealer(context.Background(), cfg)
	if err == nil || err.Error() != "pkcs11: token 'no-such-token' not found" {
		t.Fatalf("NewSealer on a missing token: got %v", err)
	}
}

func TestModuleNotFound(t *testing.T) {
	cfg := Config{Module: filepath.Join(t.TempDir(), "missing.so"), TokenLabel: "t", PIN: keystore.NewSecret("p"), RootKeyLabel: "k"}
	if _, err := NewSealer(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "cannot load module") {
		t.Fatalf("NewSealer with a missing module: got %v", err)
	}
}

func TestMissingRootKey(t *testing.T) {
	cfg := newToken(t)
	cfg.CreateRootKey = false
	_, err := NewSealer(context.Background(), cfg)
	want := fmt.Sprintf("pkcs11: root key 'kes-root' not found on token '%s'", cfg.TokenLabel)
	if err == nil || err.Error() != want {
		t.Fatalf("NewSealer without a root key: got %v, want %q", err, want)
	}

	cfg.CreateRootKey = true
	first := newSealer(t, cfg)
	sealed, err := first.Seal(context.Background(), "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	// The created key persists and is found without creating another.
	cfg.CreateRootKey = false
	second := newSealer(t, cfg)
	if got, _, err := second.Unseal(context.Background(), "k", sealed); err != nil || string(got) != "v" {
		t.Fatalf("Unseal with the persisted root key: %v", err)
	}
	sh := rawSession(t, second.h)
	if n := len(findRaw(t, second.h, sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, testRootKey)})); n != 1 {
		t.Fatalf("%d objects labelled %s, want 1", n, testRootKey)
	}
}

func TestRootKeyNotExtractable(t *testing.T) {
	s := newSealer(t, newToken(t))
	ctx := s.h.mod.ctx
	sh := rawSession(t, s.h)
	objs := findRaw(t, s.h, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, testRootKey),
	})
	if len(objs) != 1 {
		t.Fatalf("found %d root keys, want 1", len(objs))
	}
	_, err := ctx.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if !hasCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Fatalf("reading CKA_VALUE of the root key: got %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}
	attrs, err := ctx.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{{0}, {1}, {1}, {1}}
	for i, w := range want {
		if !bytes.Equal(attrs[i].Value, w) {
			t.Errorf("attribute %#x = %v, want %v", attrs[i].Type, attrs[i].Value, w)
		}
	}
	if kt, _ := ulong(attrs[4].Value); kt != pkcs11.CKK_AES {
		t.Errorf("CKA_KEY_TYPE = %d, want CKK_AES", kt)
	}
	if n, _ := ulong(attrs[5].Value); n != 32 {
		t.Errorf("CKA_VALUE_LEN = %d, want 32", n)
	}
}

// TestBlobSwap copies one key's sealed value over another's, on the token
// and in a blob directory. Neither may unseal under the other name.
func TestBlobSwap(t *testing.T) {
	ctx := context.Background()
	t.Run("Token", func(t *testing.T) {
		s := newTestStore(t, newToken(t))
		for _, n := range []string{"key-a", "key-b"} {
			if err := s.Create(ctx, n, []byte("value of "+n)); err != nil {
				t.Fatal(err)
			}
		}
		h := hsmOf(t, s)
		sh := rawSession(t, h)
		a := findRaw(t, h, sh, dataTemplate("key-a"))
		b := findRaw(t, h, sh, dataTemplate("key-b"))
		if len(a) != 1 || len(b) != 1 {
			t.Fatalf("found %d and %d objects, want one each", len(a), len(b))
		}
		attrs, err := h.mod.ctx.GetAttributeValue(sh, a[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			t.Fatal(err)
		}
		// SoftHSM2 refuses to change CKA_VALUE of a data object, so the
		// swap replaces the object of key-b by a copy of key-a's.
		err = h.mod.ctx.SetAttributeValue(sh, b[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, attrs[0].Value)})
		if !hasCode(err, pkcs11.CKR_ATTRIBUTE_READ_ONLY) {
			t.Logf("C_SetAttributeValue(CKA_VALUE) on a data object: %v (SoftHSM 2.6.1 says CKR_ATTRIBUTE_READ_ONLY)", err)
		}
		if err := h.mod.ctx.DestroyObject(sh, b[0]); err != nil {
			t.Fatal(err)
		}
		_, err = h.mod.ctx.CreateObject(sh, append(dataTemplate("key-b"),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, attrs[0].Value)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "key-b"); !errors.Is(err, ErrNotAuthentic) {
			t.Fatalf("Get of a swapped value: got %v, want ErrNotAuthentic", err)
		}
		if got, err := s.Get(ctx, "key-a"); err != nil || string(got) != "value of key-a" {
			t.Fatalf("Get(key-a) = %q, %v", got, err)
		}
	})
	t.Run("Dir", func(t *testing.T) {
		cfg := newToken(t)
		cfg.Dir = t.TempDir()
		s := newTestStore(t, cfg)
		for _, n := range []string{"key-a", "key-b"} {
			if err := s.Create(ctx, n, []byte("value of "+n)); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(filepath.Join(cfg.Dir, "key-a"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.Dir, "key-b"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "key-b"); !errors.Is(err, ErrNotAuthentic) {
			t.Fatalf("Get of a swapped value: got %v, want ErrNotAuthentic", err)
		}
	})
}

func TestDirFiles(t *testing.T) {
	ctx := context.Background()
	cfg := newToken(t)
	cfg.Dir = t.TempDir()
	s := newTestStore(t, cfg)
	if err := s.Create(ctx, "my-key", []byte("secret value")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(cfg.Dir, "my-key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("blob file mode = %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(filepath.Join(cfg.Dir, "my-key"))
	if bytes.Contains(b, []byte("secret value")) || b[0] != 0x01 {
		t.Errorf("blob file is not a sealed value")
	}
	if err := s.Replace(ctx, "my-key", []byte("secret value"), []byte("new")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(cfg.Dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Replace, want 1 (no temporary files)", len(entries))
	}
	for _, bad := range []string{".hidden", "a/b", "..", ""} {
		if err := s.Create(ctx, bad, []byte("v")); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
	// Blobs of a token-object store are not visible to a directory store
	// and the other way round.
	if err := newTestStore(t, Config{Module: cfg.Module, TokenLabel: cfg.TokenLabel, PIN: cfg.PIN, RootKeyLabel: cfg.RootKeyLabel}).Create(ctx, "on-token", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if names, err := s.List(ctx, ""); err != nil || !slices.Equal(names, []string{"my-key"}) {
		t.Fatalf("List = %q, %v", names, err)
	}
}

// TestLeftoverObjects simulates a crash inside Replace: two objects with
// the same name. The newer one wins, List shows the name once, and the
// next write cleans up.
func TestLeftoverObjects(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, newToken(t)).(*tokenStore)
	if err := s.Create(ctx, "my-key", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	sh := rawSession(t, s.h)
	obj := findRaw(t, s.h, sh, dataTemplate("my-key"))[0]
	attrs, err := s.h.mod.ctx.GetAttributeValue(sh, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		t.Fatal(err)
	}
	old := attrs[0].Value
	// A newer object, as written by an interrupted Replace to "v2".
	var sealed []byte
	if err := s.h.do(ctx, func(sh pkcs11.SessionHandle) (err error) {
		sealed, err = s.h.seal(sh, "my-key", []byte("v2"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.create(sh, "my-key", 2, sealed); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "my-key"); err != nil || string(got) != "v2" {
		t.Fatalf("Get = %q, %v; want the newer value v2", got, err)
	}
	if names, err := s.List(ctx, ""); err != nil || !slices.Equal(names, []string{"my-key", "other"}) {
		t.Fatalf("List = %q, %v", names, err)
	}
	if err := s.Replace(ctx, "my-key", []byte("v1"), []byte("v3")); !errors.Is(err, keystore.ErrConflict) {
		t.Fatalf("Replace from the older value: got %v, want ErrConflict", err)
	}
	if err := s.Replace(ctx, "my-key", []byte("v2"), []byte("v3")); err != nil {
		t.Fatal(err)
	}
	objs := findRaw(t, s.h, sh, dataTemplate("my-key"))
	if len(objs) != 1 {
		t.Fatalf("%d objects after Replace, want 1", len(objs))
	}
	attrs, err = s.h.mod.ctx.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if seq, _, _ := parseRecord(attrs[0].Value); seq != 3 || bytes.Equal(attrs[0].Value, old) {
		t.Fatalf("remaining object has sequence %d, want 3", seq)
	}
	// Delete removes every object of the name.
	if err := s.create(sh, "my-key", 1, sealed); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "my-key"); err != nil {
		t.Fatal(err)
	}
	if n := len(findRaw(t, s.h, sh, dataTemplate("my-key"))); n != 0 {
		t.Fatalf("%d objects after Delete, want 0", n)
	}
}

func TestForeignObjectsNotListed(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, newToken(t)).(*tokenStore)
	sh := rawSession(t, s.h)
	_, err := s.h.mod.ctx.CreateObject(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "foreign"),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, "another application"),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, []byte("not ours")),
	})
	if err != nil {
		t.Fatal(err)
	}
	if names, err := s.List(ctx, ""); err != nil || len(names) != 0 {
		t.Fatalf("List = %q, %v; want nothing", names, err)
	}
	if _, err := s.Get(ctx, "foreign"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get of a foreign object: got %v, want ErrKeyNotFound", err)
	}
	if err := s.Create(ctx, "foreign", []byte("ours")); err != nil {
		t.Fatalf("Create next to a foreign object: %v", err)
	}
}

// restartModule finalises the library underneath the driver, through a
// handle of the test's own, as a restarted HSM or another library user
// in the process would. With reinit it initialises it again, which
// invalidates sessions without leaving the library uninitialised.
func restartModule(t *testing.T, reinit bool) {
	t.Helper()
	other := pkcs11.New(softhsmModule)
	if other == nil {
		t.Fatal("cannot load the module")
	}
	if err := other.Finalize(); err != nil {
		t.Fatalf("C_Finalize: %v", err)
	}
	if reinit {
		if err := other.Initialize(); err != nil {
			t.Fatalf("C_Initialize: %v", err)
		}
	}
}

func TestRecovery(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, s keystore.Store, sealer *Sealer, want string) {
		t.Helper()
		if got, err := s.Get(ctx, "my-key"); err != nil || string(got) != want {
			t.Fatalf("Get after restart = %q, %v", got, err)
		}
		if err := s.Create(ctx, "new-"+want, []byte("x")); err != nil {
			t.Fatalf("Create after restart: %v", err)
		}
		if _, err := sealer.Status(ctx); err != nil {
			t.Fatalf("sealer Status after restart: %v", err)
		}
		if _, err := sealer.Seal(ctx, "n", []byte("p")); err != nil {
			t.Fatalf("Seal after restart: %v", err)
		}
	}
	for _, tt := range []struct {
		name    string
		restart func(t *testing.T, s keystore.Store)
	}{
		{"Finalize", func(t *testing.T, _ keystore.Store) { restartModule(t, false) }},
		{"FinalizeInitialize", func(t *testing.T, _ keystore.Store) { restartModule(t, true) }},
		{"Logout", func(t *testing.T, s keystore.Store) {
			h := hsmOf(t, s)
			if err := h.mod.ctx.Logout(rawSession(t, h)); err != nil {
				t.Fatalf("C_Logout: %v", err)
			}
		}},
		{"CloseAllSessions", func(t *testing.T, s keystore.Store) {
			h := hsmOf(t, s)
			slot, err := h.findSlot()
			if err != nil {
				t.Fatal(err)
			}
			if err := h.mod.ctx.CloseAllSessions(slot); err != nil {
				t.Fatalf("C_CloseAllSessions: %v", err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newToken(t)
			s := newTestStore(t, cfg)
			// A second user of the same module and token in the process.
			sealer := newSealer(t, cfg)
			if err := s.Create(ctx, "my-key", []byte("v1")); err != nil {
				t.Fatal(err)
			}
			tt.restart(t, s)
			check(t, s, sealer, "v1")
			if err := s.Replace(ctx, "my-key", []byte("v1"), []byte("v2")); err != nil {
				t.Fatal(err)
			}
			tt.restart(t, s)
			check(t, s, sealer, "v2")
		})
	}
}

// TestConcurrentRecovery restarts the module under many waiting callers:
// each must recover, whether it runs the recovery or waits for another.
func TestConcurrentRecovery(t *testing.T) {
	ctx := context.Background()
	cfg := newToken(t)
	s := newTestStore(t, cfg)
	if err := s.Create(ctx, "my-key", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, reinit := range []bool{false, true} {
		// Fill the pool with sessions that the restart invalidates.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { s.Get(ctx, "my-key") })
		}
		wg.Wait()
		restartModule(t, reinit)
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				if got, err := s.Get(ctx, "my-key"); err != nil || string(got) != "v" {
					errs <- fmt.Errorf("Get = %q, %v", got, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("reinit=%v: %v", reinit, err)
		}
	}
}

func TestRootKeyDeleted(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, newToken(t))
	if err := s.Create(ctx, "my-key", []byte("v")); err != nil {
		t.Fatal(err)
	}
	h := hsmOf(t, s)
	sh := rawSession(t, h)
	for _, o := range findRaw(t, h, sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, testRootKey)}) {
		if err := h.mod.ctx.DestroyObject(sh, o); err != nil {
			t.Fatal(err)
		}
	}
	var ue *keystore.UnavailableError
	if _, err := s.Status(ctx); !errors.As(err, &ue) || ue.Reason != "root key not found" {
		t.Fatalf("Status without root key: got %v, want UnavailableError{root key not found}", err)
	}
	if _, err := s.Get(ctx, "my-key"); !errors.As(err, &ue) || ue.Reason != "root key not found" {
		t.Fatalf("Get without root key: got %v, want UnavailableError{root key not found}", err)
	}
	// A new root key under the same label is found, but it cannot open
	// values of the old one.
	if _, err := h.createRootKey(sh); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status with a new root key: %v", err)
	}
	if _, err := s.Get(ctx, "my-key"); !errors.Is(err, ErrNotAuthentic) {
		t.Fatalf("Get under a new root key: got %v, want ErrNotAuthentic", err)
	}
}

func TestTokenGone(t *testing.T) {
	ctx := context.Background()
	cfg := newToken(t)
	s := newTestStore(t, cfg)
	if err := s.Create(ctx, "my-key", []byte("v")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("softhsm2-util", "--delete-token", "--token", cfg.TokenLabel).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --delete-token: %v\n%s", err, out)
	}
	restartModule(t, false)
	_, err = s.Get(ctx, "my-key")
	if !keystore.IsUnreachable(err) {
		t.Fatalf("Get with the token gone: got %v, want an UnreachableError", err)
	}
	if !strings.Contains(err.Error(), "token '"+cfg.TokenLabel+"' not found") {
		t.Errorf("error %q does not say that the token is missing", err)
	}
	if _, err := s.Status(ctx); !keystore.IsUnreachable(err) {
		t.Fatalf("Status with the token gone: got %v, want an UnreachableError", err)
	}
}

func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	cfg := newToken(t)
	cfg.PoolSize = 2
	for _, dir := range []bool{false, true} {
		t.Run(fmt.Sprintf("dir=%v", dir), func(t *testing.T) {
			cfg := cfg
			if dir {
				cfg.Dir = t.TempDir()
			}
			s := newTestStore(t, cfg)
			sealer := newSealer(t, cfg)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("key-%d", g)
					value := []byte("v0")
					if err := s.Create(ctx, name, value); err != nil {
						errs <- err
						return
					}
					for i := 1; i <= 5; i++ {
						next := []byte(fmt.Sprintf("v%d", i))
						if err := s.Replace(ctx, name, value, next); err != nil {
							errs <- fmt.Errorf("Replace %s: %w", name, err)
							return
						}
						value = next
						if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, value) {
							errs <- fmt.Errorf("Get %s = %q, %v; want %q", name, got, err, value)
							return
						}
						if _, err := s.List(ctx, "key-"); err != nil {
							errs <- err
							return
						}
						sealed, err := sealer.Seal(ctx, name, value)
						if err != nil {
							errs <- err
							return
						}
						if got, _, err := sealer.Unseal(ctx, name, sealed); err != nil || !bytes.Equal(got, value) {
							errs <- fmt.Errorf("Unseal: %v", err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			names, err := s.List(ctx, "")
			if err != nil || len(names) != 6 {
				t.Fatalf("List = %q, %v; want 6 names", names, err)
			}
		})
	}
}

func TestPoolWaitsWithContext(t *testing.T) {
	cfg := newToken(t)
	cfg.PoolSize = 1
	s := newTestStore(t, cfg)
	h := hsmOf(t, s)
	held, err := h.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(canceled, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a busy pool and a canceled context: got %v", err)
	}
	expired, cancel2 := context.WithTimeout(context.Background(), 0)
	defer cancel2()
	var ue *keystore.UnreachableError
	if _, err := s.Get(expired, "k"); !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("Get with a busy pool and an expired context: got %v, want a timeout UnreachableError", err)
	}
	h.release(held, nil)
	if _, err := s.Get(context.Background(), "k"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get after the session came back: got %v", err)
	}
}

func TestCloseAndString(t *testing.T) {
	ctx := context.Background()
	cfg := newToken(t)
	for _, dir := range []string{"", t.TempDir()} {
		cfg.Dir = dir
		s, err := NewStore(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("PKCS#11: token %s, root key %s", cfg.TokenLabel, testRootKey)
		if dir != "" {
			want += ", directory " + dir
		}
		if got := s.String(); got != want || strings.Contains(got, cfg.PIN.Reveal()) {
			t.Errorf("String() = %q, want %q", got, want)
		}
		if err := s.Create(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("Get after Close: got %v, want ErrClosed", err)
		}
		if err := s.Delete(ctx, "k"); !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("Delete after Close: got %v, want ErrClosed", err)
		}
		if _, err := s.List(ctx, ""); !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("List after Close: got %v, want ErrClosed", err)
		}
	}
	sealer := newSealer(t, cfg)
	if got := sealer.String(); got != fmt.Sprintf("PKCS#11: token %s, root key %s", cfg.TokenLabel, testRootKey) {
		t.Errorf("Sealer.String() = %q", got)
	}
}

// TestSharedModule checks that closing one user of a module and token
// leaves the others logged in and working.
func TestSharedModule(t *testing.T) {
	ctx := context.Background()
	cfg := newToken(t)
	var logs bytes.Buffer // only written under the handler's own lock
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a := newTestStore(t, cfg)
	// The same library under its real path (the Debian path is a
	// symlink) is the same module.
	real := cfg
	if p, err := filepath.EvalSymlinks(cfg.Module); err == nil {
		real.Module = p
	}
	b := newSealer(t, real)
	if hsmOf(t, a).mod != b.h.mod {
		t.Fatal("two paths to one library loaded two modules")
	}
	if err := a.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Seal(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Seal after another user closed: %v", err)
	}
	c := newTestStore(t, cfg)
	if got, err := c.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get from a new store = %q, %v", got, err)
	}
	// Closing a must neither finalise the module nor log b out.
	if strings.Contains(logs.String(), "recovering") {
		t.Fatalf("a user of the module had to recover after another one closed:\n%s", logs.String())
	}
}

func TestConfigValidation(t *testing.T) {
	full := Config{Module: "m", TokenLabel: "t", PIN: keystore.NewSecret("p"), RootKeyLabel: "k"}
	for name, mutate := range map[string]func(*Config){
		"module": func(c *Config) { c.Module = "" },
		"token":  func(c *Config) { c.TokenLabel = "" },
		"pin":    func(c *Config) { c.PIN = keystore.Secret{} },
		"root":   func(c *Config) { c.RootKeyLabel = "" },
		"pool":   func(c *Config) { c.PoolSize = -1 },
	} {
		c := full
		mutate(&c)
		if _, err := NewSealer(context.Background(), c); err == nil {
			t.Errorf("%s: NewSealer accepted an invalid config", name)
		}
	}
}

// TestTwoStoresOneToken writes through one store and reads through
// another on the same token, as a second process would: the reader must
// not serve a value from an object that was replaced or deleted.
func TestTwoStoresOneToken(t *testing.T) {
	ctx := context.Background()
	cfg := newToken(t)
	w := newTestStore(t, cfg)
	r := newTestStore(t, cfg)
	if err := w.Create(ctx, "my-key", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx, "my-key"); err != nil || string(got) != "v1" {
		t.Fatalf("Get = %q, %v; want v1", got, err)
	}
	if err := w.Replace(ctx, "my-key", []byte("v1"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx, "my-key"); err != nil || string(got) != "v2" {
		t.Fatalf("Get after Replace elsewhere = %q, %v; want v2", got, err)
	}
	if err := w.Delete(ctx, "my-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "my-key"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get after Delete elsewhere: got %v, want ErrKeyNotFound", err)
	}
	if err := r.Create(ctx, "my-key", []byte("v3")); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Get(ctx, "my-key"); err != nil || string(got) != "v3" {
		t.Fatalf("Get after re-create elsewhere = %q, %v; want v3", got, err)
	}
}
