// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore/fs"
)

// minioKES returns the kes binary of minio/kes v0.24.0, built by
// scripts/build-minio-kes.sh from the Go module proxy and cached in the
// user's cache directory. Where it cannot be built (no network, no go)
// the test fails in CI (CI=true) and is skipped elsewhere.
func minioKES(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("minio/kes v0.24.0 is needed in CI: %s", msg)
		}
		t.Skipf("minio/kes v0.24.0 is not available: %s", msg)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kesbridge-test", "minio-kes")
	if _, err := exec.LookPath("go"); err != nil {
		if bin := filepath.Join(dir, "minio-kes-v0.24.0"); fileExists(bin) {
			return bin
		}
		unavailable("go is not on PATH")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "build-minio-kes.sh"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		unavailable("scripts/build-minio-kes.sh: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// TestRollbackToMinioKES writes keys with this server into an fs
// directory (a key never rotated, a rotated one, one a KMIP client made
// with attributes) and starts minio/kes v0.24.0 on that directory: it
// decrypts every ciphertext made with the keys' current versions and
// lists exactly those keys, so an operator can roll back.
func TestRollbackToMinioKES(t *testing.T) {
	bin := minioKES(t)
	dir := filepath.Join(t.TempDir(), "keys")
	ctx := context.Background()

	// Our server writes the KES keys; the rotation goes through the CLI.
	srv, err := startServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := srv.Client()
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	type made struct {
		name, plaintext     string
		ciphertext, context []byte
	}
	var cts []made
	dek := func(name string) {
		t.Helper()
		d, err := client.GenerateKey(ctx, name, []byte("ctx-"+name))
		if err != nil {
			t.Fatal(err)
		}
		cts = append(cts, made{name, string(d.Plaintext), d.Ciphertext, []byte("ctx-" + name)})
	}
	for _, name := range []string{"plain", "rotated"} {
		if err := client.CreateKey(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	dek("plain")
	t.Setenv("KES_SERVER", "https://"+srv.Addr)
	t.Setenv("KES_API_KEY", srv.APIKey)
	for range 2 {
		if code, out, errOut := runCommand(ctx, "key", "rotate", "-k", "rotated"); code != 0 {
			t.Fatalf("key rotate: exit %d: %s%s", code, out, errOut)
		}
	}
	dek("rotated") // made with the newest version, the one minio/kes sees
	srv.Stop()

	// A key as the KMIP bridge creates it: KMIP attributes and usage.
	store, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	svc := keys.New(keys.Config{Store: store})
	uid, err := svc.CreateKMIP(ctx, keys.NewObject{
		Algorithm: keys.AlgorithmAES, Bits: 256, Mask: keys.UsageEncrypt | keys.UsageDecrypt, CreatedBy: "test", CreatedAt: time.Now(),
		Meta: func(string, *crypto.KeyVersion) (keys.Metadata, error) {
			return keys.Metadata{State: keys.StateActive, KMIP: []byte(`{"name":"vm-disk-7"}`)}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := svc.Encrypt(ctx, uid, []byte("secret-kmip"), []byte("ctx-kmip"))
	if err != nil {
		t.Fatal(err)
	}
	cts = append(cts, made{uid, "secret-kmip", ct, []byte("ctx-kmip")})
	svc.Close()

	mk := startMinioKES(t, bin, dir)
	for _, c := range cts {
		name := c.name
		pt, err := mk.Decrypt(ctx, name, c.ciphertext, c.context)
		if err != nil || string(pt) != c.plaintext {
			t.Errorf("minio/kes decrypting a ciphertext of %s: %v", name, err)
		}
	}
	var names []string
	for prefix := ""; ; {
		page, next, err := mk.ListKeys(ctx, prefix, 100)
		if err != nil {
			t.Fatalf("minio/kes listing keys: %v", err)
		}
		names = append(names, page...)
		if next == "" {
			break
		}
		prefix = next
	}
	slices.Sort(names)
	want := []string{"plain", "rotated", uid}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("minio/kes lists %q, want %q", names, want)
	}
}

// startMinioKES starts the minio/kes binary on 127.0.0.1 with an fs
// keystore in dir and returns an admin client. The server is stopped at
// the end of the test.
func startMinioKES(t *testing.T, bin, dir string) *kes.Client {
	t.Helper()
	work := t.TempDir()
	certPEM, keyPEM := selfSignedCert(t)
	certFile, keyFile := filepath.Join(work, "server.crt"), filepath.Join(work, "server.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	apiKey, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	config := filepath.Join(work, "config.yml")
	yaml := "version: v1\naddress: " + addr + "\nadmin:\n  identity: " + apiKey.Identity().String() +
		"\ntls:\n  key: " + keyFile + "\n  cert: " + certFile + "\nkeystore:\n  fs:\n    path: " + dir + "\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd := exec.Command(bin, "server", "--config", config)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	client, err := kes.NewClient("https://"+addr, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	client.HTTPClient.Transport.(*http.Transport).TLSClientConfig.RootCAs = roots
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case err := <-exited:
			t.Fatalf("minio/kes exited: %v\n%s", err, out.String())
		default:
		}
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		if err == nil {
			c.Close()
			return client
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio/kes does not listen on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// selfSignedCert returns a certificate for 127.0.0.1 and its key.
func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
