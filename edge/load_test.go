// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestConfigAliases checks that anchors, aliases and merge keys do not
// hide a misspelt key from the unknown-field check, and that the ones
// that are right still work.
func TestConfigAliases(t *testing.T) {
	bad := []struct{ name, yaml, want string }{
		{"aliased mapping", minimal + "policy:\n  p1: &p\n    allow: [/v1/status]\n  p2: *p\ncache: &c\n  expiry:\n    anyy: 1m\nx: *c\n", "line 16: unknown field 'anyy'"},
		{"alias used only", minimal + "policy:\n  p: *bad\n", "unknown anchor 'bad'"},
		// Valid where it is defined, misspelt where it is used.
		{"anchor valid elsewhere", minimal + "cache:\n  expiry: &e {any: 1m, unused: 1m}\nkmip:\n  tls: {key: k, cert: c, ca: a}\n  timeout: *e\n", "line 11: unknown field 'any'"},
		{"merge key", minimal + "policy:\n  base: &b\n    allow: [/v1/status]\n    denyy: [/v1/key/*]\n  p:\n    <<: *b\n", "line 13: unknown field 'denyy'"},
		{"merge sequence", minimal + "policy:\n  a: &a {allow: [/v1/status]}\n  b: &b {alow: [/v1/api]}\n  p:\n    <<: [*a, *b]\n", "line 12: unknown field 'alow'"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}

	cfg, err := ParseConfig([]byte(minimal + `policy:
  base: &base
    allow: &allow [/v1/status, /v1/key/generate/app-*]
    deny: [/v1/key/generate/app-internal*]
  p:
    <<: *base
    identities: [` + testID + `]
  q:
    allow: *allow
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Policies["p"]; len(p.Allow) != 2 || len(p.Deny) != 1 || len(p.Identities) != 1 || len(cfg.Policies["q"].Allow) != 2 {
		t.Fatalf("policies %+v", cfg.Policies)
	}

	// An alias of its own ancestor, and an alias bomb, end quickly.
	for _, y := range []string{
		minimal + "policy: &p\n  a: *p\n",
		minimal + aliasBomb(40),
	} {
		done := make(chan error, 1)
		go func() { _, err := ParseConfig([]byte(y)); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("config accepted: %q", y)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("ParseConfig does not return for a recursive or exponential alias")
		}
	}
}

// aliasBomb returns a keys list whose items each alias the previous one
// twice: 2^n nodes if expanded.
func aliasBomb(n int) string {
	var b strings.Builder
	b.WriteString("keys:\n- &a0 {name: k}\n")
	for i := 1; i <= n; i++ {
		b.WriteString("- &a" + strconv.Itoa(i) + " [*a" + strconv.Itoa(i-1) + ", *a" + strconv.Itoa(i-1) + "]\n")
	}
	return b.String()
}

// TestConfigEnvNull checks that a ${ENV} value YAML would read as null is
// the literal string, not an empty or default value.
func TestConfigEnvNull(t *testing.T) {
	for _, v := range []string{"null", "~", "NULL", "Null"} {
		t.Run(v, func(t *testing.T) {
			t.Setenv("EDGE_TEST_SECRET", v)
			cfg, err := ParseConfig([]byte(minimal + "policy:\n  p: {}\nkmip:\n  tls: {key: k, cert: c, ca: a}\n  users:\n    u: {password: \"${EDGE_TEST_SECRET}\", policy: p}\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.KMIP.Users["u"].Password.Reveal(); got != v {
				t.Fatalf("password %q, want %q", got, v)
			}
			cfg, err = ParseConfig([]byte(strings.Replace(minimal, "  fs:\n    path: ./keys\n",
				"  ibm:\n    hpcs: {endpoint: https://x, instance_id: i, root_key_id: r, iam: {api_key: \"${EDGE_TEST_SECRET}\"}}\n", 1)))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Keystore.HPCS.APIKey.Reveal(); got != v {
				t.Fatalf("API key %q, want %q", got, v)
			}
			// For a field that is not a string, it is a type error with
			// the line, not the default.
			_, err = ParseConfig([]byte(minimal + "cache:\n  expiry:\n    any: ${EDGE_TEST_SECRET}\n"))
			if err == nil || !strings.Contains(err.Error(), "line 12") {
				t.Fatalf("null duration from env: %v", err)
			}
			_, err = ParseConfig([]byte(minimal + "kmip:\n  tls: {key: k, cert: c, ca: a}\n  max_message_size: ${EDGE_TEST_SECRET}\n"))
			if err == nil || !strings.Contains(err.Error(), "line 12") {
				t.Fatalf("null size from env: %v", err)
			}
		})
	}
	// An empty value stays an empty string: a required secret is
	// reported missing.
	t.Setenv("EDGE_TEST_SECRET", "")
	_, err := ParseConfig([]byte(minimal + "policy:\n  p: {}\nkmip:\n  tls: {key: k, cert: c, ca: a}\n  users:\n    u: {password: \"${EDGE_TEST_SECRET}\", policy: p}\n"))
	if err == nil || !strings.Contains(err.Error(), "has no password") {
		t.Fatalf("empty password: %v", err)
	}
}

// TestConfigDocuments checks that a second YAML document is an error and
// an empty one is not.
func TestConfigDocuments(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{minimal + "---\naddress: 127.0.0.1:1\n", "line 10: the config must be a single YAML document"},
		{minimal + "---\n# comment\n---\npolicy: {}\n", "line 12: the config must be a single YAML document"},
		{minimal + "---\n[\n", "line 11"},
	} {
		if _, err := ParseConfig([]byte(tt.yaml)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want %q", err, tt.want)
		}
	}
	for _, y := range []string{"---\n" + minimal, minimal + "---\n", minimal + "...\n", minimal + "---\n# nothing\n"} {
		if _, err := ParseConfig([]byte(y)); err != nil {
			t.Errorf("%q: %v", y, err)
		}
	}
}

// TestConfigPolicyPatterns checks that patterns that can never match are
// errors that name the policy, the pattern and its line.
func TestConfigPolicyPatterns(t *testing.T) {
	for _, tt := range []struct{ pattern, want string }{
		{"/v1/key/*/secret", "line 14: policy 'p': deny pattern '/v1/key/*/secret': '*' is only a wildcard as the last character"},
		{"/v1/key/**", "'*' is only a wildcard as the last character"},
		{"v1/key/create/*", "does not start with '/'"},
		{`""`, "line 14: policy 'p': deny pattern '': empty pattern never matches"},
		{"/v1/key/?", "contains '?'"},
		{`"/v1/status "`, "whitespace"},
	} {
		y := minimal + "policy:\n  p:\n    allow: [/v1/status]\n    deny:\n    - " + tt.pattern + "\n"
		if _, err := ParseConfig([]byte(y)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.pattern, err, tt.want)
		}
	}
	// What minio/kes configs use stays valid.
	cfg, err := ParseConfig([]byte(minimal + "policy:\n  p:\n    allow: ['*', /v1/key/list/*, /v1/status, /kmip/*, /v1/key/create/minio-*]\n    deny: [/v1/key/decrypt/minio-internal*]\n"))
	if err != nil || len(cfg.Policies["p"].Allow) != 5 {
		t.Fatalf("valid patterns: %v", err)
	}
}

// TestConfigFileFIFO checks that a FIFO named as a file of the config is
// an error, both when the config is loaded and when the file is read at
// start-up, and that neither blocks.
func TestConfigFileFIFO(t *testing.T) {
	p := newPKI(t)
	fifo := filepath.Join(t.TempDir(), "fifo.pem")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	within := func(t *testing.T, what string, f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			// Unblock the goroutine so the test binary can end.
			if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				w.Close()
			}
			t.Fatalf("%s blocks on a FIFO", what)
			return nil
		}
	}
	base := "version: v1\nadmin: {identity: " + testAdmin + "}\ntls: {key: KEY, cert: CERT, ca: CA}\nkeystore: {fs: {path: ./keys}}\n"
	for _, tt := range []struct{ name, yaml, field string }{
		{"tls.cert", strings.NewReplacer("KEY", p.keyFile, "CERT", fifo, "CA", "\"\"").Replace(base), "tls.cert"},
		{"tls.key", strings.NewReplacer("KEY", fifo, "CERT", p.certFile, "CA", "\"\"").Replace(base), "tls.key"},
		{"tls.ca", strings.NewReplacer("KEY", p.keyFile, "CERT", p.certFile, "CA", fifo).Replace(base), "tls.ca"},
		{"kmip.tls.ca", strings.NewReplacer("KEY", p.keyFile, "CERT", p.certFile, "CA", "\"\"").Replace(base) + "kmip: {tls: {key: " + p.keyFile + ", cert: " + p.certFile + ", ca: " + fifo + "}}\n", "kmip.tls.ca"},
		{"pkcs11.module", strings.NewReplacer("KEY", p.keyFile, "CERT", p.certFile, "CA", "\"\"", "{fs: {path: ./keys}}", "{pkcs11: {module: "+fifo+", token: t, pin: p, root_key: r}}").Replace(base), "keystore.pkcs11.module"},
		{"keycontrol ca", strings.NewReplacer("KEY", p.keyFile, "CERT", p.certFile, "CA", "\"\"", "{fs: {path: ./keys}}", "{entrust: {keycontrol: {endpoint: https://kc, vault_id: v, box_id: b, credentials: {username: u, password: pw}, tls: {ca: "+fifo+"}}}}").Replace(base), "keystore.entrust.keycontrol.tls.ca"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			err := within(t, "ReadConfig", func() error { _, err := ReadConfig(file); return err })
			if err == nil || !strings.Contains(err.Error(), tt.field+": '"+fifo+"' is not a regular file") &&
				!strings.Contains(err.Error(), tt.field+": '"+fifo+"' is neither a regular file nor a directory") {
				t.Fatalf("error %v, want it to name %s and the FIFO", err, tt.field)
			}
		})
	}

	// A file replaced by a FIFO after the config was loaded (or on a
	// certificate reload) is refused when it is read.
	for _, tt := range []struct {
		name string
		f    func() error
	}{
		{"certificate", func() error { _, err := loadCertificate(fifo, p.keyFile, noPassword); return err }},
		{"key", func() error { _, err := loadCertificate(p.certFile, fifo, noPassword); return err }},
		{"CA", func() error { _, err := loadCAs(fifo); return err }},
		{"kmip", func() error {
			_, err := kmipTLS(&KMIPConfig{CertFile: p.certFile, KeyFile: p.keyFile, CAFile: fifo})
			return err
		}},
		{"server", func() error {
			_, _, err := serverTLS(&Config{TLS: TLSConfig{CertFile: fifo, KeyFile: p.keyFile}}, false, slogDiscard())
			return err
		}},
	} {
		t.Run("read "+tt.name, func(t *testing.T) {
			err := within(t, tt.name, tt.f)
			if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
				t.Fatalf("error %v, want 'not a regular file'", err)
			}
		})
	}
}

// TestReadConfigFileLimits checks the other files readConfigFile refuses.
func TestReadConfigFileLimits(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.pem")
	if err := os.WriteFile(big, make([]byte, maxPEMSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readFile(big); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("large file: %v", err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := readFile("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("/dev/zero: %v", err)
		}
	}
	if _, err := readFile(t.TempDir()); err == nil {
		t.Fatal("a directory was read as a file")
	}
}

// TestReadConfigPipe checks the config file itself: a pipe is read (as
// `--config <(...)` gives one), but a writer that never finishes cannot
// hang start-up or a reload, and a device is refused.
func TestReadConfigPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "config.yaml")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	old := configReadTimeout
	configReadTimeout = 300 * time.Millisecond
	t.Cleanup(func() { configReadTimeout = old })

	read := func() error {
		done := make(chan error, 1)
		go func() { _, err := ReadConfig(fifo); done <- err }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("ReadConfig hangs on a pipe")
			return nil
		}
	}

	t.Run("silent writer", func(t *testing.T) {
		// O_RDWR opens a FIFO without waiting for a reader: the writer
		// end stays open and never writes.
		w, err := os.OpenFile(fifo, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := read(); err == nil || !strings.Contains(err.Error(), "was not read within") {
			t.Fatalf("error %v, want a read timeout", err)
		}
	})
	t.Run("writer", func(t *testing.T) {
		w, err := os.OpenFile(fifo, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- read() }()
		// The config is written while the reader waits, then the
		// writer closes: the reader sees the document and EOF.
		if _, err := w.Write([]byte("address: 127.0.0.1:7373\nadmin: {identity: disabled}\ntls: {key: k, cert: c}\nkeystore: {fs: {path: ./keys}}\n")); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if err := <-done; err != nil && strings.Contains(err.Error(), "was not read within") {
			t.Fatalf("a written pipe timed out: %v", err)
		}
	})
	t.Run("device", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Skip("no /dev/zero")
		}
		if _, err := ReadConfig("/dev/zero"); err == nil || !strings.Contains(err.Error(), "neither a regular file nor a pipe") {
			t.Fatalf("/dev/zero: %v", err)
		}
	})
}
