// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	testAdmin = "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"
	testID    = "da9f4e5b8a2b41c4f6e9e2d1c2a0e28ac1a9a8b1f1a8b9a3e4c5d6e7f8091a2b"
)

// minimal is the smallest valid config; tests append or replace parts.
const minimal = `version: v1
admin:
  identity: ` + testAdmin + `
tls:
  key: ./server.key
  cert: ./server.crt
keystore:
  fs:
    path: ./keys
`

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "0.0.0.0:7373" || string(cfg.Admin) != testAdmin || cfg.TLS.VerifyClients || cfg.TLS.ProxyHeader != "X-Tls-Client-Cert" {
		t.Fatalf("%+v", cfg)
	}
	// The intended defaults, not minio/kes's configureCache bug.
	if cfg.Cache.Expiry != 5*time.Minute || cfg.Cache.ExpiryUnused != 30*time.Second || cfg.Cache.ExpiryOffline != 0 {
		t.Fatalf("cache %+v", cfg.Cache)
	}
	if cfg.ErrorLevel != slog.LevelInfo || cfg.AuditLevel != slog.LevelInfo {
		t.Fatalf("levels %v %v", cfg.ErrorLevel, cfg.AuditLevel)
	}
	if cfg.Keystore.FS == nil || cfg.Keystore.FS.Path != "./keys" || cfg.KMIP != nil || cfg.Seal != nil || cfg.MLock {
		t.Fatalf("%+v", cfg.Keystore)
	}
}

func TestParseConfigFull(t *testing.T) {
	t.Setenv("TEST_OFFLINE", "1h")
	t.Setenv("TEST_MLOCK", "true")
	t.Setenv("TEST_ID", testID)
	cfg, err := ParseConfig([]byte(`version: v1
address: 127.0.0.1:7000
admin:
  identity: disabled
tls:
  key: k
  cert: c
  password: pw
  auth: on
  ca: ca.pem
  proxy:
    identities: [` + testAdmin + `]
    header:
      cert: X-Cert
api:
  /v1/status:
    skip_auth: true
    timeout: 3s
  /v1/key/create/:
    timeout: 1m
policy:
  p1:
    allow: [/v1/status]
    deny: [/v1/key/*]
    identities: ["${TEST_ID}"]
cache:
  expiry:
    any: 0s
    unused: 1m
    offline: ${TEST_OFFLINE}
log:
  error: WARN+1
  audit: "off"
keys:
- name: a
- name: b
mlock: ${TEST_MLOCK}
keystore:
  entrust:
    keycontrol:
      endpoint: https://kc
      vault_id: v
      box_id: b
      credentials: {username: u, password: p}
      tls: {ca: kc.pem}
seal:
  pkcs11:
    module: /lib/p11.so
    token: t
    pin: "1234"
    root_key: r
    create_root_key: true
    previous_root_keys: [r-2024, r-2023]
kmip:
  tls: {key: k, cert: c, ca: ca, cipher_suites: compat}
  users:
    vc: {password: x, policy: p1}
  max_message_size: 5000
  timeout: {read: 1s, idle: 2s}
`))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case cfg.Admin != "", cfg.Addr != "127.0.0.1:7000", !cfg.TLS.VerifyClients, cfg.TLS.ProxyHeader != "X-Cert", len(cfg.TLS.ProxyIdentities) != 1:
		t.Fatalf("admin/tls: %+v", cfg)
	case !cfg.API["/v1/status"].SkipAuth || cfg.API["/v1/key/create/"].Timeout != time.Minute:
		t.Fatalf("api: %+v", cfg.API)
	case string(cfg.Policies["p1"].Identities[0]) != testID:
		t.Fatalf("policy: %+v", cfg.Policies)
	case cfg.Cache.Expiry != 0 || cfg.Cache.ExpiryUnused != time.Minute || cfg.Cache.ExpiryOffline != time.Hour:
		t.Fatalf("cache: %+v", cfg.Cache)
	case cfg.ErrorLevel != slog.LevelWarn+1 || cfg.AuditLevel != LevelOff:
		t.Fatalf("log: %v %v", cfg.ErrorLevel, cfg.AuditLevel)
	case len(cfg.Keys) != 2 || !cfg.MLock:
		t.Fatalf("keys/mlock: %v %v", cfg.Keys, cfg.MLock)
	case cfg.Keystore.KeyControl == nil || cfg.Keystore.KeyControl.Password.Reveal() != "p" || cfg.Keystore.KeyControl.CAFile != "kc.pem":
		t.Fatalf("keystore: %+v", cfg.Keystore)
	case cfg.Seal == nil || cfg.Seal.PKCS11 == nil || !cfg.Seal.PKCS11.CreateRootKey || cfg.Seal.PKCS11.PIN.Reveal() != "1234" || strings.Join(cfg.Seal.PKCS11.PreviousRootKeys, ",") != "r-2024,r-2023":
		t.Fatalf("seal: %+v", cfg.Seal)
	case cfg.KMIP == nil || cfg.KMIP.Addr != "0.0.0.0:5696" || !cfg.KMIP.Compat || cfg.KMIP.MaxMessageSize != 5000 ||
		cfg.KMIP.ReadTimeout != time.Second || cfg.KMIP.IdleTimeout != 2*time.Second || cfg.KMIP.Users["vc"].Policy != "p1":
		t.Fatalf("kmip: %+v", cfg.KMIP)
	}
}

func TestParseConfigHPCS(t *testing.T) {
	cfg, err := ParseConfig([]byte(strings.Replace(minimal, "  fs:\n    path: ./keys\n", `  ibm:
    hpcs:
      endpoint: https://x
      instance_id: i
      root_key_id: r
      key_ring: kr
      iam: {endpoint: https://iam, api_key: k}
      tls: {ca: ca}
`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Keystore.HPCS
	if h == nil || h.KeyRing != "kr" || h.IAMEndpoint != "https://iam" || h.APIKey.Reveal() != "k" || h.CAFile != "ca" {
		t.Fatalf("%+v", h)
	}
}

// TestParseConfigErrors checks that every mistake is reported, with the
// line where the file has one.
func TestParseConfigErrors(t *testing.T) {
	replace := func(old, new string) string { return strings.Replace(minimal, old, new, 1) }
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level", minimal + "roott: x\n", "config line 10: unknown field 'roott'"},
		{"unknown nested", replace("  cert: ./server.crt\n", "  cert: ./server.crt\n  certs: x\n"), "config line 7: unknown field 'certs'"},
		{"unknown in map value", minimal + "policy:\n  p:\n    alow: [x]\n", "config line 12: unknown field 'alow'"},
		{"unknown keystore field", replace("    path: ./keys", "    path: ./keys\n    paht: x"), "config line 10: unknown field 'paht'"},
		{"unsupported keystore", replace("  fs:\n    path: ./keys\n", "  fortanix:\n    sdkms: {}\n"), "config line 8: keystore 'fortanix' is not supported by this server"},
		{"unsupported aws", replace("  fs:\n    path: ./keys\n", "  aws:\n    secretsmanager: {}\n"), "keystore 'aws' is not supported by this server"},
		{"missing env", replace("./keys", "${EDGE_TEST_MISSING_VAR}"), "config line 9: referenced env. variable 'EDGE_TEST_MISSING_VAR' not found"},
		{"duplicate field", minimal + "address: 1.2.3.4:1\naddress: 1.2.3.4:2\n", "line 11: field 'address' appears twice"},
		{"bad version", replace("version: v1", "version: v2"), "version 'v2' is not supported"},
		{"bad type", minimal + "cache:\n  expiry:\n    any: soon\n", "config line 12: cannot unmarshal !!str `soon` into time.Duration"},
		{"no admin", replace("  identity: "+testAdmin, "  identity: \"\""), "no admin identity specified"},
		{"no key", replace("  key: ./server.key\n", ""), "no TLS private key specified"},
		{"no cert", replace("  cert: ./server.crt\n", ""), "no TLS certificate specified"},
		{"bad auth", replace("tls:\n", "tls:\n  auth: maybe\n"), "tls.auth 'maybe' is invalid"},
		{"bad address", minimal + "address: localhost:7373\n", "'localhost' is not a valid IP address"},
		{"bad api path", minimal + "api:\n  /v1/nope: {timeout: 1s}\n", "'/v1/nope' is not an API path"},
		{"negative timeout", minimal + "api:\n  /v1/status: {timeout: -1s}\n", "timeout is negative"},
		{"bad policy name", minimal + "policy:\n  a.b: {}\n", "policy name 'a.b'"},
		{"bad identity", minimal + "policy:\n  p: {identities: [bob]}\n", "'bob' is not an identity"},
		{"admin in policy", minimal + "policy:\n  p: {identities: [" + testAdmin + "]}\n", "is the admin and cannot have a policy"},
		{"two policies", minimal + "policy:\n  p: {identities: [" + testID + "]}\n  q: {identities: [" + testID + "]}\n", "already has a policy"},
		{"admin as proxy", replace("tls:\n", "tls:\n  proxy: {identities: ["+testAdmin+"]}\n"), "admin identity cannot be a proxy"},
		{"proxy in policy", replace("tls:\n", "tls:\n  proxy: {identities: ["+testID+"]}\n") + "policy:\n  p: {identities: [" + testID + "]}\n", "is a proxy and cannot have a policy"},
		{"negative cache", minimal + "cache:\n  expiry:\n    unused: -1s\n", "cache expiry is negative"},
		{"bad level", minimal + "log:\n  error: LOUD\n", "'LOUD' is not a log level"},
		{"bad key name", minimal + "keys:\n- name: a/b\n", "key name 'a/b'"},
		{"duplicate key", minimal + "keys:\n- name: a\n- name: a\n", "key 'a' is listed twice"},
		{"no keystore", replace("keystore:\n  fs:\n    path: ./keys\n", ""), "no keystore specified"},
		{"empty keystore", replace("  fs:\n    path: ./keys\n", "  {}\n"), "no keystore specified"},
		{"two keystores", replace("  fs:\n", "  pkcs11: {module: m, token: t, pin: p, root_key: r}\n  fs:\n"), "more than one keystore specified"},
		{"fs no path", replace("    path: ./keys\n", "    path: \"\"\n"), "keystore.fs: no path specified"},
		{"keycontrol no vault", replace("  fs:\n    path: ./keys\n", "  entrust:\n    keycontrol: {endpoint: x, box_id: b, credentials: {username: u, password: p}}\n"), "Entrust KeyControl keystore: no vault ID specified"},
		{"keycontrol no password", replace("  fs:\n    path: ./keys\n", "  entrust:\n    keycontrol: {endpoint: x, vault_id: v, box_id: b, credentials: {username: u}}\n"), "no password specified"},
		{"hpcs no api key", replace("  fs:\n    path: ./keys\n", "  ibm:\n    hpcs: {endpoint: x, instance_id: i, root_key_id: r}\n"), "keystore.ibm.hpcs: no IAM API key specified"},
		{"pkcs11 no pin", replace("  fs:\n    path: ./keys\n", "  pkcs11: {module: m, token: t, root_key: r}\n"), "keystore.pkcs11: no PIN specified"},
		{"seal empty", minimal + "seal: {}\n", "seal: no sealer specified"},
		{"seal two", minimal + "seal:\n  pkcs11: {module: m, token: t, pin: p, root_key: r}\n  ibm:\n    hpcs: {endpoint: x, instance_id: i, root_key_id: r, iam: {api_key: k}}\n", "seal: more than one sealer specified"},
		{"seal store", minimal + "seal:\n  pkcs11: {module: m, token: t, pin: p, root_key: r, store: d}\n", "'store' is only valid for keystore.pkcs11"},
		{"seal previous is root", minimal + "seal:\n  pkcs11: {module: m, token: t, pin: p, root_key: r, previous_root_keys: [old, r]}\n", "previous_root_keys: 'r' is empty or the root key"},
		{"kmip no ca", minimal + "kmip:\n  tls: {key: k, cert: c}\n", "kmip.tls: no CA specified"},
		{"kmip bad suites", minimal + "kmip:\n  tls: {key: k, cert: c, ca: a, cipher_suites: weak}\n", "cipher_suites 'weak' is invalid"},
		{"kmip unknown policy", minimal + "kmip:\n  tls: {key: k, cert: c, ca: a}\n  users:\n    u: {password: p, policy: nope}\n", "policy 'nope' does not exist"},
		{"kmip no password", minimal + "policy:\n  p: {}\nkmip:\n  tls: {key: k, cert: c, ca: a}\n  users:\n    u: {policy: p}\n", "user 'u' has no password"},
		{"kmip bad size", minimal + "kmip:\n  tls: {key: k, cert: c, ca: a}\n  max_message_size: 0\n", "max_message_size must be positive"},
		{"kmip unknown field", minimal + "kmip:\n  tls: {key: k, cert: c, ca: a}\n  port: 5696\n", "line 12: unknown field 'port'"},
		{"syntax", minimal + "cache: [\n", "config line 10: did not find expected node content"},
		{"not a mapping", "- a\n", "the config must be a mapping"},
		{"empty", "", "config is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
			// An operator reads these: no Go package names.
			if strings.HasPrefix(err.Error(), "edge:") {
				t.Fatalf("error %q names the internal package", err)
			}
		})
	}
}

// TestEnvSubstitution checks that ${ENV} works for every value type and
// only for whole values.
func TestEnvSubstitution(t *testing.T) {
	t.Setenv("EDGE_ADDR", "127.0.0.1:9999")
	t.Setenv("EDGE_DUR", "7s")
	t.Setenv("EDGE_BOOL", "true")
	cfg, err := ParseConfig([]byte(minimal + `address: " ${EDGE_ADDR} "
api:
  /v1/ready: {skip_auth: "${EDGE_BOOL}", timeout: "${EDGE_DUR}"}
keys:
- name: x-${EDGE_DUR}
`))
	if err == nil {
		t.Fatalf("partial reference accepted as key name: %v", cfg.Keys)
	}
	cfg, err = ParseConfig([]byte(minimal + `address: " ${EDGE_ADDR} "
api:
  /v1/ready: {skip_auth: "${EDGE_BOOL}", timeout: "${EDGE_DUR}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9999" || !cfg.API["/v1/ready"].SkipAuth || cfg.API["/v1/ready"].Timeout != 7*time.Second {
		t.Fatalf("%+v", cfg)
	}
}

// TestReferenceConfig parses the annotated server-config.yaml at the
// repository root.
func TestReferenceConfig(t *testing.T) {
	t.Setenv("KES_ADMIN_IDENTITY", testAdmin)
	t.Setenv("MINIO_KES_IDENTITY", testID)
	cfg, err := ReadConfig(filepath.Join("..", "server-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Keystore.FS == nil || len(cfg.Policies["minio"].Allow) == 0 || len(cfg.Keys) != 1 {
		t.Fatalf("%+v", cfg)
	}
}

// TestExampleConfigs parses the hypervisor examples, which must stay
// valid configs with their kmip section.
func TestExampleConfigs(t *testing.T) {
	t.Setenv("KES_ADMIN_IDENTITY", testAdmin)
	for i, env := range []string{"VCENTER_IDENTITY", "KMIP_CHECK_IDENTITY", "ZSTACK_IDENTITY"} {
		t.Setenv(env, strings.Repeat(string(rune('a'+i)), 64))
	}
	t.Setenv("KMIP_VCENTER_PASSWORD", "example-password")
	t.Setenv("KMIP_ZSTACK_PASSWORD", "example-password")
	for _, name := range []string{"vsphere", "zstack"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := ReadConfig(filepath.Join("..", "examples", name, "server-config.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			// Not printed: the section holds passwords.
			if cfg.KMIP == nil || cfg.KMIP.Addr != "0.0.0.0:5696" || len(cfg.KMIP.Users) == 0 {
				t.Fatal("kmip section missing or incomplete")
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "kmip:\n  tls: {key: k, cert: c, ca: a}\n"))
	f.Add([]byte(minimal + "kmip:\n  tls: {key: k, cert: c, ca: a}\n  max_connections: 5\n"))
	f.Add([]byte(minimal + "policy:\n  p: {identities: [${X}]}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	if b, err := os.ReadFile(filepath.Join("..", "server-config.yaml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
	})
}

// TestAllExampleConfigs parses every example config, with each ${VAR} it
// references set to a well-formed dummy value, so that the examples keep
// matching the schema.
func TestAllExampleConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "*", "server-config*.yaml"))
	if err != nil || len(files) < 7 {
		t.Fatalf("found %d example configs (%v), want every example's", len(files), err)
	}
	ref := regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)
	for _, file := range files {
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range ref.FindAllStringSubmatch(string(b), -1) {
				value := "example-value"
				if strings.Contains(m[1], "IDENTITY") {
					value = fmt.Sprintf("%064x", i+1)
				}
				t.Setenv(m[1], value)
			}
			cfg, err := ReadConfig(file)
			if err != nil {
				t.Fatal(err)
			}
			if cfg == nil {
				t.Fatal("nil config")
			}
		})
	}
}

// TestMLockAll checks that mlockall is its own option: mlock: true locks
// key memory only.
func TestMLockAll(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		yaml       string
		mlock, all bool
	}{
		{"mlock: true\n", true, false},
		{"mlockall: true\n", false, true},
		{"", false, false},
	} {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(baseConfig(p, identityOf(newAPIKey(t)), identityOf(newAPIKey(t)), tc.yaml)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := ReadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MLock != tc.mlock || cfg.MLockAll != tc.all {
			t.Errorf("%q: mlock %v, mlockall %v", tc.yaml, cfg.MLock, cfg.MLockAll)
		}
	}
}

// The keys section: names to create, patterns and rotation periods.
func TestKeysSection(t *testing.T) {
	for text, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "2160h": 2160 * time.Hour, "1h": time.Hour} {
		d, err := parseRotatePeriod(text)
		if err != nil || d != want {
			t.Errorf("parseRotatePeriod(%q) = %v, %v", text, d, err)
		}
	}
	create, rot, rules, err := keysConfig([]keyYAML{{Name: "k"}, {Name: "minio-*", Rotate: rotatePeriod(90 * 24 * time.Hour)}, {Name: "j", Rotate: rotatePeriod(time.Hour), Export: true}})
	if err != nil || len(create) != 2 || len(rot) != 2 || rot[0].Pattern != "minio-*" || rot[1].Pattern != "j" || len(rules) != 1 || rules[0].Pattern != "j" {
		t.Fatalf("keysConfig = %v %v %v %v", create, rot, rules, err)
	}
	for name, entries := range map[string][]keyYAML{
		"pattern without setting": {{Name: "minio-*"}},
		"too short":               {{Name: "k", Rotate: rotatePeriod(time.Minute)}},
		"twice":                   {{Name: "k"}, {Name: "k"}},
		"invalid pattern":         {{Name: "a/b*", Rotate: rotatePeriod(time.Hour)}},
	} {
		if _, _, _, err := keysConfig(entries); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, bad := range []string{"0d", "d", "-1h", "90 days", "1.5d"} {
		if _, err := parseRotatePeriod(bad); err == nil {
			t.Errorf("parseRotatePeriod(%q) accepted", bad)
		}
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("version: v1\naddress: 127.0.0.1:0\nadmin:\n  identity: disabled\ntls:\n  key: k\n  cert: c\nkeystore:\n  fs:\n    path: /tmp/x\nkeys:\n- name: minio-*\n  rotate: 90d\n"), 0o600)
	cfg, err := ReadConfig(path)
	if err != nil || len(cfg.Rotations) != 1 || cfg.Rotations[0].Period != 90*24*time.Hour || len(cfg.Keys) != 0 {
		t.Fatalf("ReadConfig: %+v %v", cfg, err)
	}
}
