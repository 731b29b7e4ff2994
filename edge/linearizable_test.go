// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/keystore"
)

// statusLinearizable returns keystore_linearizable of GET /v1/status,
// and whether the field is there.
func statusLinearizable(t *testing.T, e *env) (value, ok bool) {
	t.Helper()
	r := e.do(e.raw(apiCert(t, e.admin)), "GET", "/v1/status", nil)
	if r.code != 200 {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatal(err)
	}
	v, ok := body["keystore_linearizable"].(bool)
	return v, ok
}

// A server on KeyControl, whose Replace is a compare-and-swap only within
// one process, says so in its banner and in /v1/status; the clients
// still decode the status.
func TestKeystoreNotLinearizable(t *testing.T) {
	em, yaml, p, admin := keyControlSetup(t, emulator.Config{}, "")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)

	out := &syncBuffer{}
	ctx := runInBackground(t, Options{ConfigFile: cfgFile, Addr: addr, Stdout: out, Stderr: &syncBuffer{}})
	eventually(t, "banner", func() bool { return strings.Contains(out.String(), "MLock") })
	var kms string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "KMS ") {
			kms = line
		}
	}
	if !strings.Contains(kms, "Entrust KeyControl: "+em.URL()) || !strings.Contains(kms, "(compare-and-swap within one node; KMIP lifecycle changes use leases)") {
		t.Fatalf("banner KMS line %q", kms)
	}

	e := &env{t: t, pki: p, url: "https://" + addr, admin: admin}
	if v, ok := statusLinearizable(t, e); !ok || v {
		t.Fatalf("keystore_linearizable = %v (present %v), want false", v, ok)
	}
	st, err := e.kms(admin).Status(ctx)
	if err != nil || !st.KeyStoreReachable || st.Version == "" {
		t.Fatalf("kms-go status: %+v %v", st, err)
	}
	if _, err := e.kesgo(admin).Status(ctx); err != nil {
		t.Fatalf("kes-go status: %v", err)
	}
}

// linearStore declares a linearizable Replace.
type linearStore struct{ *keystore.MemStore }

func (linearStore) Capabilities() keystore.Capabilities {
	return keystore.Capabilities{LinearizableReplace: true}
}

// A keystore with a linearizable Replace gets no note, and /v1/status
// says true.
func TestKeystoreLinearizable(t *testing.T) {
	store := linearStore{keystore.NewMem()}
	if got := keystoreLine(store); got != "In-Memory" {
		t.Fatalf("banner KMS line %q", got)
	}
	var declaresNothing keystore.Store = struct{ keystore.Store }{keystore.NewMem()}
	if got := keystoreLine(declaresNothing); got != "In-Memory ("+notLinearizableNote+")" {
		t.Fatalf("banner KMS line of a store that declares nothing: %q", got)
	}

	p := newPKI(t)
	admin := newAPIKey(t)
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(context.Background(), cfg, ServerOptions{
		Stdout: &syncBuffer{}, Stderr: &syncBuffer{},
		OpenStore: func(context.Context, *Config, *slog.Logger) (keystore.Store, error) { return store, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	e := &env{t: t, pki: p, url: "https://" + ln.Addr().String(), admin: admin}
	if v, ok := statusLinearizable(t, e); !ok || !v {
		t.Fatalf("keystore_linearizable = %v (present %v), want true", v, ok)
	}
}
