// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/keystore"
)

// flakyStore counts reads and can be switched off like a keystore outage.
type flakyStore struct {
	keystore.Store
	gets atomic.Int32
	down atomic.Bool
}

func (s *flakyStore) Get(ctx context.Context, name string) ([]byte, error) {
	s.gets.Add(1)
	if s.down.Load() {
		return nil, &keystore.UnreachableError{Store: "test", Err: errors.New("connection refused")}
	}
	return s.Store.Get(ctx, name)
}

func (s *flakyStore) Status(ctx context.Context) (keystore.State, error) {
	if s.down.Load() {
		return keystore.State{}, &keystore.UnreachableError{Store: "test", Err: errors.New("connection refused")}
	}
	return s.Store.Status(ctx)
}

func newService(t *testing.T, cfg Config) (*Service, *flakyStore) {
	t.Helper()
	store := &flakyStore{Store: keystore.NewMem()}
	cfg.Store = store
	s := New(cfg)
	t.Cleanup(func() { s.Close() })
	return s, store
}

func TestGenerateDecrypt(t *testing.T) {
	ctx := context.Background()
	for _, typ := range []crypto.KeyType{crypto.AES256, crypto.ChaCha20} {
		t.Run(typ.String(), func(t *testing.T) {
			s, _ := newService(t, Config{KeyType: typ})
			if err := s.Create(ctx, "my-key", "me"); err != nil {
				t.Fatal(err)
			}
			if err := s.Create(ctx, "my-key", "me"); !errors.Is(err, ErrKeyExists) {
				t.Fatalf("second Create: %v", err)
			}
			info, err := s.Describe(ctx, "my-key")
			if err != nil || info.Algorithm != typ || info.CreatedBy != "me" || !info.State.Active() {
				t.Fatalf("Describe = %+v, %v", info, err)
			}
			pt, ct, err := s.Generate(ctx, "my-key", []byte("ctx"))
			if err != nil {
				t.Fatal(err)
			}
			if len(pt) != 32 || len(ct) != 76 {
				t.Fatalf("DEK sizes %d/%d, want 32/76", len(pt), len(ct))
			}
			got, err := s.Decrypt(ctx, "my-key", ct, []byte("ctx"))
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Decrypt: %v", err)
			}
			if _, err := s.Decrypt(ctx, "my-key", ct, []byte("other")); !errors.Is(err, crypto.ErrDecrypt) {
				t.Fatalf("Decrypt with wrong context: %v", err)
			}
			if _, _, err := s.Generate(ctx, "missing", nil); !errors.Is(err, ErrKeyNotFound) {
				t.Fatalf("Generate with a missing key: %v", err)
			}
		})
	}
}

// A keystore filled by minio/kes (reference kes-api.md §5.7) works as is.
func TestMinioKeyVector(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{})
	stored := "CiQKIMQrD3aHBH2z7EPmvKqcP8MKwQTDeUQkn+TfEyotvhMTEAESJAogMhSywaBOkm+8jk7gaYADYYZmgSERzq/UPTxkOlXQ9wYQARoMCOKakdgGEJ7Br/ECIkA3OTA1YjkzOGIxNzA3ODM3MmNiNjE4OTMzOTEwMzY1ODBjMjkzMzQ5OTU2NDk2MGYxMjU3NTNiMjI3ZGFlNGY0"
	store.Create(ctx, "minio", []byte(stored))
	ct, _ := base64.StdEncoding.DecodeString("NnCrF1dniumqsCkG5GzVtnQjqz9NFrlkmrB1F3CPhEhazI13eWNVVgDf7a8JjwWAg8yLhod0yo6M52IjMmxpCZaq5YKNSOa1NMA7pQ==")
	pt, err := s.Decrypt(ctx, "minio", ct, []byte(`{"x-minio-bucket":"b1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.StdEncoding.EncodeToString(pt); got != "y7ksiX9azDblHnZhYiZ8fPVFdvarJ0t/o7Iu/VMitv4=" {
		t.Fatalf("DEK = %s", got)
	}
	mac, err := s.HMAC(ctx, "minio", []byte("hello"))
	if err != nil || base64.StdEncoding.EncodeToString(mac) != "MTWh+3h7iar9pTH6SEXgwU8E0gs/5IdVzUvYDSnjk8U=" {
		t.Fatalf("HMAC = %x, %v", mac, err)
	}
}

func TestLegacyKeyHasNoHMAC(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{})
	store.Create(ctx, "old", []byte(`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"AES256-GCM_SHA256"}`))
	if _, err := s.HMAC(ctx, "old", []byte("m")); !errors.Is(err, ErrHMACNotSupported) {
		t.Fatalf("HMAC of a legacy key: %v", err)
	}
	ct := []byte(`{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}`)
	if pt, err := s.Decrypt(ctx, "old", ct, nil); err != nil || !bytes.Equal(pt, make([]byte, 16)) {
		t.Fatalf("Decrypt with a legacy key: %v", err)
	}
}

// Keys we create are stored exactly as minio/kes stores them: no extra
// fields, so minio/kes can read them back.
func TestCreatedValueIsMinioFormat(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{KeyType: crypto.AES256})
	s.Create(ctx, "k", "0123")
	value, _ := store.Store.Get(ctx, "k")
	raw, err := base64.StdEncoding.DecodeString(string(value))
	if err != nil {
		t.Fatal(err)
	}
	// 0a 24 0a 20 <32> 10 01 12 24 0a 20 <32> 10 01 1a .. <ts> 22 04 "0123"
	if !bytes.HasPrefix(raw, []byte{0x0a, 0x24, 0x0a, 0x20}) || raw[36] != 0x10 || raw[37] != 0x01 ||
		!bytes.Equal(raw[38:42], []byte{0x12, 0x24, 0x0a, 0x20}) || raw[74] != 0x10 || raw[75] != 0x01 || raw[76] != 0x1a {
		t.Fatalf("stored value does not have the minio/kes layout: % x", raw)
	}
	if !bytes.HasSuffix(raw, []byte{0x22, 0x04, '0', '1', '2', '3'}) {
		t.Fatalf("stored value does not end with created_by: % x", raw[len(raw)-8:])
	}
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	if err := s.Import(ctx, "short", crypto.AES256, make([]byte, 16), "me"); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Import of a 16-byte key: %v", err)
	}
	key := bytes.Repeat([]byte{7}, 32)
	if err := s.Import(ctx, "k", crypto.ChaCha20, key, "me"); err != nil {
		t.Fatal(err)
	}
	ref, _ := crypto.NewSecretKey(crypto.ChaCha20, key)
	defer ref.Destroy()
	ct, _ := ref.Encrypt([]byte("hello"), nil)
	if pt, err := s.Decrypt(ctx, "k", ct, nil); err != nil || string(pt) != "hello" {
		t.Fatalf("Decrypt with imported key: %q, %v", pt, err)
	}
}

func TestLifecycleState(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	s.Create(ctx, "k", "me")
	_, ct, _ := s.Generate(ctx, "k", nil)

	setState := func(st State) {
		t.Helper()
		if err := s.Update(ctx, "k", func(o *Object) error { o.Meta.State = st; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		state      State
		encrypt    bool
		decrypt    bool
		describeAs string
	}{
		{StatePreActive, false, false, "PreActive"},
		{StateActive, true, true, "Active"},
		{StateDeactivated, false, true, "Deactivated"},
		{StateCompromised, false, true, "Compromised"},
	} {
		setState(tt.state)
		_, _, err := s.Generate(ctx, "k", nil)
		if (err == nil) != tt.encrypt || (err != nil && !errors.Is(err, ErrNotActive)) {
			t.Errorf("%s: Generate: %v", tt.state, err)
		}
		_, err = s.Decrypt(ctx, "k", ct, nil)
		if (err == nil) != tt.decrypt {
			t.Errorf("%s: Decrypt: %v", tt.state, err)
		}
		if info, _ := s.Describe(ctx, "k"); info.State.String() != tt.describeAs {
			t.Errorf("%s: Describe state = %s", tt.state, info.State)
		}
	}
}

func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	s.Create(ctx, "k", "me")
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(ctx, "k", func(o *Object) error {
				var count int
				json.Unmarshal(o.Meta.KMIP, &count)
				o.Meta.KMIP, _ = json.Marshal(count + 1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var count int
	s.With(ctx, "k", func(o *Object) error { return json.Unmarshal(o.Meta.KMIP, &count) })
	if count != n {
		t.Fatalf("%d concurrent updates left count %d: updates were lost", n, count)
	}
}

func TestSingleFlightLoad(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{})
	s.Create(ctx, "k", "me")
	store.gets.Store(0)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Generate(ctx, "k", nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := store.gets.Load(); got != 1 {
		t.Fatalf("64 concurrent requests for a cold key caused %d keystore reads, want 1", got)
	}
}

func TestOfflineServesCachedKeys(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Config{
		Cache:          cache.Config{Expiry: 50 * time.Millisecond, ExpiryOffline: time.Hour},
		HealthInterval: 20 * time.Millisecond,
	})
	s.Create(ctx, "cached", "me")
	s.Create(ctx, "cold", "me")
	_, ct, err := s.Generate(ctx, "cached", nil)
	if err != nil {
		t.Fatal(err)
	}
	store.down.Store(true)
	deadline := time.Now().Add(300 * time.Millisecond) // several expiries and health checks
	for time.Now().Before(deadline) {
		if _, _, err := s.Generate(ctx, "cached", nil); err != nil {
			t.Fatalf("Generate with a cached key during an outage: %v", err)
		}
		if _, err := s.Decrypt(ctx, "cached", ct, nil); err != nil {
			t.Fatalf("Decrypt with a cached key during an outage: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := s.Generate(ctx, "cold", nil); !keystore.IsUnreachable(err) {
		t.Fatalf("Generate with an uncached key during an outage: %v, want unreachable", err)
	}
	if _, err := s.Status(ctx); !keystore.IsUnreachable(err) || !s.Offline() {
		t.Fatalf("Status during an outage: %v (offline %v)", err, s.Offline())
	}
	store.down.Store(false)
	if _, err := s.Status(ctx); err != nil || s.Offline() {
		t.Fatalf("Status after the outage: %v (offline %v)", err, s.Offline())
	}
	if _, _, err := s.Generate(ctx, "cold", nil); err != nil {
		t.Fatalf("Generate after the outage: %v", err)
	}
}

func TestDeleteEvicts(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	s.Create(ctx, "k", "me")
	s.Generate(ctx, "k", nil)
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Generate(ctx, "k", nil); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Generate after Delete: %v", err)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestMaterialObject(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	v := &crypto.KeyVersion{Material: crypto.NewSecretBytes(make([]byte, 16)), CreatedAt: time.Now()}
	if err := s.CreateObject(ctx, "aes128", v, Metadata{State: StatePreActive, KMIP: json.RawMessage(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Generate(ctx, "aes128", nil); !errors.Is(err, ErrNotEncryptionKey) {
		t.Fatalf("Generate with an AES-128 object: %v", err)
	}
	err := s.With(ctx, "aes128", func(o *Object) error {
		if o.Meta.State != StatePreActive || string(o.Meta.KMIP) != `{"x":1}` || o.Version.Material.Len() != 16 {
			t.Fatalf("object = %+v", o.Meta)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A key left in the Destroyed state (its delete failed half-way) is gone
// for every operation, and can still be deleted.
func TestDestroyedIsGone(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{})
	s.Create(ctx, "k", "me")
	_, ct, _ := s.Generate(ctx, "k", nil)
	if err := s.Update(ctx, "k", func(o *Object) error { o.Meta.State = StateDestroyed; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Generate(ctx, "k", nil); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Generate with a destroyed key: %v", err)
	}
	if _, err := s.Decrypt(ctx, "k", ct, nil); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Decrypt with a destroyed key: %v", err)
	}
	if _, err := s.Describe(ctx, "k"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Describe of a destroyed key: %v", err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete of a destroyed key: %v", err)
	}
}
