// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kesbridge/kes/edge"
	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/internal/keys"
)

// backupConfig is a server config around a keystore block.
func backupConfig(t *testing.T, dir, name, keystore string) string {
	t.Helper()
	file := filepath.Join(dir, name)
	cfg := "version: v1\nadmin:\n  identity: disabled\ntls:\n  key: server.key\n  cert: server.crt\n" + keystore
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// openService opens the keystore of a config as the server does.
func openService(t *testing.T, config string) *keys.Service {
	t.Helper()
	cfg, err := edge.ReadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	store, err := edge.OpenKeystore(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys.New(keys.Config{Store: store})
}

// madeBefore is what the source box holds and served before the backup.
type madeBefore struct {
	cts     map[string][][]byte // key name → ciphertexts of (plain) "secret-<name>"
	kmipID  string
	kmipRec json.RawMessage
	kmipCT  keys.Sealed
	raw     map[string][]byte // the box's stored values
}

// TestBackupRestoreRoundTrip backs up a KeyControl box (the emulator)
// holding a never-rotated key, a rotated key and a key a KMIP client
// made with attributes, and restores it into an fs keystore and into one
// sealed by a PKCS#11 root key (SoftHSM2). Every ciphertext made before
// the backup decrypts afterwards, with the key's versions, state and KMIP
// record intact.
func TestBackupRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	em, err := keycontrol.New(keycontrol.Config{Users: map[string]string{"kes": "kc-test-password"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	ca := filepath.Join(dir, "kc-ca.pem")
	if err := os.WriteFile(ca, em.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	kc := backupConfig(t, dir, "kc.yml", "keystore:\n  entrust:\n    keycontrol:\n"+
		"      endpoint: "+em.URL()+"\n      vault_id: "+em.VaultID()+"\n      box_id: "+keycontrol.DefaultBox+"\n"+
		"      credentials:\n        username: kes\n        password: kc-test-password\n      tls:\n        ca: "+ca+"\n")

	before := fillBox(t, kc)

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(dir, "id.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "box.age")
	ctx := context.Background()
	if code, out, errOut := runCommand(ctx, "backup", "--config", kc, "-o", file, "-r", id.Recipient().String()); code != 0 || out != "Backed up 3 keys to "+file+"\n" {
		t.Fatalf("backup: exit %d: %s%s", code, out, errOut)
	}

	t.Run("fs", func(t *testing.T) {
		fsCfg := backupConfig(t, dir, "fs.yml", "keystore:\n  fs:\n    path: "+filepath.Join(dir, "fs-keys")+"\n")
		restoreAndCheck(t, fsCfg, idFile, file, before)
		// Unsealed, the fs keystore holds the box's values byte for byte.
		for name, want := range before.raw {
			got, err := os.ReadFile(filepath.Join(dir, "fs-keys", name))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("fs value of %s differs from the box's (%v)", name, err)
			}
		}
	})
	t.Run("pkcs11-sealed", func(t *testing.T) {
		if !haveCgo {
			t.Skip("PKCS#11 needs cgo")
		}
		if _, err := exec.LookPath("softhsm2-util"); err != nil {
			t.Skip("SoftHSM2 is not installed")
		}
		initSoftHSM(t, dir, "kes-backup")
		sealed := backupConfig(t, dir, "sealed.yml", "keystore:\n  fs:\n    path: "+filepath.Join(dir, "sealed-keys")+"\n"+
			"seal:\n  pkcs11:\n    module: "+softhsmModule+"\n    token: kes-backup\n    pin: \"1234\"\n    root_key: kes-root\n    create_root_key: true\n")
		restoreAndCheck(t, sealed, idFile, file, before)
		raw, err := os.ReadFile(filepath.Join(dir, "sealed-keys", "rotated"))
		if err != nil || bytes.Equal(raw, before.raw["rotated"]) {
			t.Fatalf("the sealed keystore holds the value unsealed (%v)", err)
		}

		// A backup of the sealed keystore holds sealed values: it
		// restores into a keystore sealed by the same root key, not into
		// an unsealed one; with --unseal it restores anywhere.
		sfile := filepath.Join(dir, "sealed.age")
		if code, out, errOut := runCommand(ctx, "backup", "--config", sealed, "-o", sfile, "-r", id.Recipient().String()); code != 0 || !bytes.Contains([]byte(out), []byte("(sealed by PKCS#11")) {
			t.Fatalf("backup: exit %d: %s%s", code, out, errOut)
		}
		plain := backupConfig(t, dir, "plain.yml", "keystore:\n  fs:\n    path: "+filepath.Join(dir, "plain-keys")+"\n")
		if code, _, errOut := runCommand(ctx, "restore", "--config", plain, "-i", idFile, sfile); code != 1 || !bytes.Contains([]byte(errOut), []byte("is not sealed")) {
			t.Fatalf("sealed backup into an unsealed keystore: exit %d: %s", code, errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, "plain-keys", "rotated")); err == nil {
			t.Fatal("a refused restore wrote a key")
		}
		resealed := backupConfig(t, dir, "resealed.yml", "keystore:\n  fs:\n    path: "+filepath.Join(dir, "resealed-keys")+"\n"+
			"seal:\n  pkcs11:\n    module: "+softhsmModule+"\n    token: kes-backup\n    pin: \"1234\"\n    root_key: kes-root\n")
		restoreAndCheck(t, resealed, idFile, sfile, before)
		ufile := filepath.Join(dir, "unsealed.age")
		if code, out, errOut := runCommand(ctx, "backup", "--config", sealed, "--unseal", "-o", ufile, "-r", id.Recipient().String()); code != 0 {
			t.Fatalf("backup --unseal: exit %d: %s%s", code, out, errOut)
		}
		restoreAndCheck(t, plain, idFile, ufile, before)
	})
}

// fillBox makes the keys of the test in the keystore of config and
// returns what they served.
func fillBox(t *testing.T, config string) madeBefore {
	t.Helper()
	ctx := t.Context()
	svc := openService(t, config)
	defer svc.Close()
	m := madeBefore{cts: map[string][][]byte{}, raw: map[string][]byte{}}
	dek := func(name string) {
		ct, err := svc.Encrypt(ctx, name, []byte("secret-"+name), nil)
		if err != nil {
			t.Fatal(err)
		}
		m.cts[name] = append(m.cts[name], ct)
	}
	for _, name := range []string{"plain", "rotated"} {
		if err := svc.Create(ctx, name, "test"); err != nil {
			t.Fatal(err)
		}
		dek(name)
	}
	for range 2 {
		if _, err := svc.Rotate(ctx, "rotated", "test"); err != nil {
			t.Fatal(err)
		}
		dek("rotated")
	}
	m.kmipRec = json.RawMessage(`{"name":"vm-disk-7","vendor":"x-hypervisor"}`)
	uid, err := svc.CreateKMIP(ctx, keys.NewObject{
		Algorithm: keys.AlgorithmAES, Bits: 256, Mask: keys.UsageEncrypt | keys.UsageDecrypt, CreatedBy: "test", CreatedAt: time.Now(),
		Meta: func(string, *crypto.KeyVersion) (keys.Metadata, error) {
			return keys.Metadata{State: keys.StateActive, KMIP: m.kmipRec}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.kmipID = uid
	if m.kmipCT, err = svc.EncryptKMIP(ctx, uid, keys.CipherParams{Mode: keys.ModeGCM}, []byte("secret-kmip")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"plain", "rotated", uid} {
		v, err := svc.Store().Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		m.raw[name] = v
	}
	return m
}

// restoreAndCheck restores file into the keystore of config and checks
// that everything made before decrypts.
func restoreAndCheck(t *testing.T, config, idFile, file string, m madeBefore) {
	t.Helper()
	ctx := context.Background()
	if code, out, errOut := runCommand(ctx, "restore", "--config", config, "-i", idFile, file); code != 0 || out != "Restored 3 keys\n" {
		t.Fatalf("restore: exit %d: %s%s", code, out, errOut)
	}
	// Again: the keys exist with the same values; nothing changes.
	if code, out, errOut := runCommand(ctx, "restore", "--config", config, "-i", idFile, file); code != 0 || out != "Restored 0 keys, 3 unchanged\n" {
		t.Fatalf("second restore: exit %d: %s%s", code, out, errOut)
	}
	svc := openService(t, config)
	defer svc.Close()
	for name, cts := range m.cts {
		for i, ct := range cts {
			pt, err := svc.Decrypt(ctx, name, ct, nil)
			if err != nil || string(pt) != "secret-"+name {
				t.Fatalf("ciphertext %d of %s: %q, %v", i, name, pt, err)
			}
		}
	}
	vs, err := svc.Versions(ctx, "rotated")
	if err != nil || len(vs) != 3 {
		t.Fatalf("rotated has %d versions (%v), want 3", len(vs), err)
	}
	pt, err := svc.DecryptKMIP(ctx, m.kmipID, keys.CipherParams{Mode: keys.ModeGCM, IV: m.kmipCT.IV, Tag: m.kmipCT.Tag}, m.kmipCT.Ciphertext)
	if err != nil || string(pt) != "secret-kmip" {
		t.Fatalf("KMIP ciphertext: %q, %v", pt, err)
	}
	err = svc.With(ctx, m.kmipID, func(o *keys.Object) error {
		if !bytes.Equal(o.Meta.KMIP, m.kmipRec) || o.Meta.Usage == nil || o.Meta.Usage.Mask != keys.UsageEncrypt|keys.UsageDecrypt {
			t.Errorf("KMIP record after restore: %s, usage %+v", o.Meta.KMIP, o.Meta.Usage)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// initSoftHSM initialises a SoftHSM2 token with PIN 1234 under dir.
func initSoftHSM(t *testing.T, dir, label string) {
	t.Helper()
	tokens := filepath.Join(dir, "softhsm-tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", "1234", "--so-pin", "123456").CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
}
