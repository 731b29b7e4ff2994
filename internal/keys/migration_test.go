// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/internal/keys"
)

// startKeyControl starts the KeyControl emulator and a key service on it.
func startKeyControl(t *testing.T, emuCfg emulator.Config, cacheCfg cache.Config) (*emulator.Server, *keys.Service) {
	t.Helper()
	emu := startKeyControlEmulator(t, emuCfg)
	return emu, keyControlService(t, emu, cacheCfg)
}

// keyControlService starts a key service (a node) on the emulator's box.
func keyControlService(t *testing.T, emu *emulator.Server, cacheCfg cache.Config) *keys.Service {
	t.Helper()
	svc := keys.New(keys.Config{Store: keyControlStore(t, emu), Cache: cacheCfg, HealthInterval: 250 * time.Millisecond})
	t.Cleanup(func() { svc.Close() })
	return svc
}

// A box that minio/kes filled, with keys in both of its stored-value
// formats, works as it is: ciphertexts made as reference kes-api.md §5
// describes decrypt with them. The secrets are seeded the way minio/kes
// writes them (§6: secret_data is the base64 of the stored value).
func TestKeyControlMigration(t *testing.T) {
	ctx := context.Background()
	emu, svc := startKeyControl(t, emulator.Config{}, cache.Config{})

	b64 := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seed := func(name, stored string) {
		data, _ := json.Marshal(base64.StdEncoding.EncodeToString([]byte(stored)))
		if err := emu.SeedSecret(emulator.DefaultBox, emulator.RawSecret{Name: name, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	// Protobuf format: the key file of a running minio/kes (§5.7).
	seed("minio-proto", "CiQKIMQrD3aHBH2z7EPmvKqcP8MKwQTDeUQkn+TfEyotvhMTEAESJAogMhSywaBOkm+8jk7gaYADYYZmgSERzq/UPTxkOlXQ9wYQARoMCOKakdgGEJ7Br/ECIkA3OTA1YjkzOGIxNzA3ODM3MmNiNjE4OTMzOTEwMzY1ODBjMjkzMzQ5OTU2NDk2MGYxMjU3NTNiMjI3ZGFlNGY0")
	// Legacy JSON format, AES256 and ChaCha20 keys of the upstream vectors.
	seed("minio-legacy-aes", `{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"AES256-GCM_SHA256","created_at":"2022-01-01T00:00:00Z","created_by":"minio"}`)
	seed("minio-legacy-chacha", `{"bytes":"dDHbTWgo+Yh3u804SYB5OyVMy6RiLeJYBQth1f6KlEU=","algorithm":"XCHACHA20-POLY1305","created_at":"2022-01-01T00:00:00Z"}`)

	for _, tt := range []struct {
		name, key       string
		ciphertext, ctx []byte
		plaintext       []byte
	}{
		{
			name:       "protobuf key, binary DEK ciphertext with context",
			key:        "minio-proto",
			ciphertext: b64("NnCrF1dniumqsCkG5GzVtnQjqz9NFrlkmrB1F3CPhEhazI13eWNVVgDf7a8JjwWAg8yLhod0yo6M52IjMmxpCZaq5YKNSOa1NMA7pQ=="),
			ctx:        []byte(`{"x-minio-bucket":"b1"}`),
			plaintext:  b64("y7ksiX9azDblHnZhYiZ8fPVFdvarJ0t/o7Iu/VMitv4="),
		},
		{
			name:       "legacy AES key, JSON ciphertext",
			key:        "minio-legacy-aes",
			ciphertext: []byte(`{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}`),
			plaintext:  make([]byte, 16),
		},
		{
			name:       "legacy AES key, binary ciphertext",
			key:        "minio-legacy-aes",
			ciphertext: b64("zwdDgHeRlIFRnJ7+DIhs/ka7GFK2CFSfDELqg1VCyTQzZ58o7MAdupMLk3ZjlMo2ZUDwldL2o41nAWDc"),
			plaintext:  make([]byte, 16),
		},
		{
			name:       "legacy ChaCha20 key, binary ciphertext with context",
			key:        "minio-legacy-chacha",
			ciphertext: b64("gO4woRIswAJdjUjW7z2ApsSQxJlwB24yjLrmH4eI7sB0uh5nfEJfk9ybTPFft5FRFaZCVBmzhx7OJs9n0WWtxH3sySIxecIK"),
			ctx:        make([]byte, 16),
			plaintext:  b64("CLcJoykFCWZDkEIiUq9bJRqwCwW9ZDvdgu8EMA=="),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := svc.Decrypt(ctx, tt.key, tt.ciphertext, tt.ctx)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Fatal("Decrypt returned the wrong plaintext")
			}
		})
	}

	// The migrated keys keep working for new data, and HMAC works where the
	// format has an HMAC key (§5.7: HMAC("hello")).
	if mac, err := svc.HMAC(ctx, "minio-proto", []byte("hello")); err != nil || base64.StdEncoding.EncodeToString(mac) != "MTWh+3h7iar9pTH6SEXgwU8E0gs/5IdVzUvYDSnjk8U=" {
		t.Fatalf("HMAC with the migrated key: %v", err)
	}
	for _, name := range []string{"minio-proto", "minio-legacy-aes", "minio-legacy-chacha"} {
		pt, ct, err := svc.Generate(ctx, name, []byte("ctx"))
		if err != nil {
			t.Fatalf("Generate with %s: %v", name, err)
		}
		if got, err := svc.Decrypt(ctx, name, ct, []byte("ctx")); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("round trip with %s: %v", name, err)
		}
	}

	// And a key we create is stored the way minio/kes stores it.
	if err := svc.Create(ctx, "ours", "me"); err != nil {
		t.Fatal(err)
	}
	raw, ok := emu.Secret(emulator.DefaultBox, "ours")
	if !ok {
		t.Fatal("created key is not in the box")
	}
	var wire string
	if err := json.Unmarshal(raw.Data, &wire); err != nil {
		t.Fatalf("secret_data is not a JSON string: %v", err)
	}
	stored, err := base64.StdEncoding.DecodeString(wire)
	if err != nil {
		t.Fatalf("secret_data is not base64: %v", err)
	}
	proto, err := base64.StdEncoding.DecodeString(string(stored))
	if err != nil || !bytes.HasPrefix(proto, []byte{0x0a, 0x24, 0x0a, 0x20}) {
		t.Fatalf("stored value is not base64 of the minio/kes protobuf (err %v)", err)
	}
}
