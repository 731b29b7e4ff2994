// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// vaultYAMLOf replaces the fs keystore of minimal with section.
func vaultYAMLOf(section string) string {
	return strings.Replace(minimal, "  fs:\n    path: ./keys\n", section, 1)
}

// TestVaultConfig parses a keystore.vault section with every field
// minio/kes reads, in minio/kes's layout, including the legacy retry
// fields of configs from before v0.22.
func TestVaultConfig(t *testing.T) {
	t.Setenv("EDGE_TEST_VAULT_SECRET", "approle-secret-id")
	cfg, err := ParseConfig([]byte(vaultYAMLOf(`  vault:
    endpoint: https://vault.example.com:8200
    engine: secrets
    version: v2
    namespace: tenant-1
    prefix: kes/minio
    approle:
      engine: approle-kes
      namespace: /
      id: 9f8e7d6c-role
      secret: ${EDGE_TEST_VAULT_SECRET}
      retry: 15s
    kubernetes:
      engine: kubernetes
      role: ""
      jwt: ""
      retry: 15s
    transit:
      engine: transit-kes
      key: minio
    tls:
      key: ./vault-client.key
      cert: ./vault-client.crt
      ca: ./vault-ca/
    status:
      ping: 10s
`)))
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.Keystore.Vault
	switch {
	case v == nil:
		t.Fatal("no vault keystore")
	case v.Endpoint != "https://vault.example.com:8200" || v.Engine != "secrets" || v.Version != "v2" || v.Namespace != "tenant-1" || v.Prefix != "kes/minio":
		t.Fatalf("vault: %+v", v)
	case v.AppRole == nil || v.AppRole.Engine != "approle-kes" || v.AppRole.Namespace != "/" || v.AppRole.ID != "9f8e7d6c-role" || v.AppRole.Secret.Reveal() != "approle-secret-id":
		t.Fatalf("approle: %+v", v.AppRole)
	case v.Kubernetes != nil:
		t.Fatalf("an empty kubernetes section counts as a login method: %+v", v.Kubernetes)
	case v.TransitEngine != "transit-kes" || v.TransitKey != "minio":
		t.Fatalf("transit: %q %q", v.TransitEngine, v.TransitKey)
	case v.KeyFile != "./vault-client.key" || v.CertFile != "./vault-client.crt" || v.CAFile != "./vault-ca/":
		t.Fatalf("tls: %+v", v)
	case v.StatusPing != 10*time.Second || !v.LegacyRetry:
		t.Fatalf("status/retry: %v %v", v.StatusPing, v.LegacyRetry)
	}
	if s := fmt.Sprintf("%+v %#v %v", cfg.Keystore.Vault, cfg.Keystore.Vault.AppRole, *cfg.Keystore.Vault.AppRole); strings.Contains(s, "approle-secret-id") {
		t.Fatal("the printed config shows the AppRole secret")
	}

	cfg, err = ParseConfig([]byte(vaultYAMLOf("  vault:\n    endpoint: http://127.0.0.1:8200\n    kubernetes:\n      role: kes\n      jwt: /var/run/secrets/kubernetes.io/serviceaccount/token\n")))
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Keystore.Vault.Kubernetes; k == nil || k.Role != "kes" || k.JWT.Reveal() != "/var/run/secrets/kubernetes.io/serviceaccount/token" || cfg.Keystore.Vault.LegacyRetry {
		t.Fatalf("kubernetes: %+v", cfg.Keystore.Vault)
	}
}

func TestVaultConfigErrors(t *testing.T) {
	for _, tt := range []struct{ name, section, want string }{
		{"no endpoint", "  vault:\n    engine: kv\n", "Hashicorp Vault keystore: no endpoint specified"},
		{"bad version", "  vault:\n    endpoint: https://v\n    version: v3\n", "invalid K/V engine version 'v3'"},
		{"two logins", "  vault:\n    endpoint: https://v\n    approle: {id: a, secret: b}\n    kubernetes: {role: r, jwt: j}\n", "more than one authentication method"},
		{"approle no secret", "  vault:\n    endpoint: https://v\n    approle: {id: a}\n", "approle: both id and secret are required"},
		{"kubernetes no jwt", "  vault:\n    endpoint: https://v\n    kubernetes: {role: r}\n", "kubernetes: both role and jwt are required"},
		{"transit no key", "  vault:\n    endpoint: https://v\n    transit: {engine: transit}\n", "transit: no key specified"},
		{"key without cert", "  vault:\n    endpoint: https://v\n    tls: {key: k.pem}\n", "tls.key specified without tls.cert"},
		{"unknown field", "  vault:\n    endpoint: https://v\n    endpoitn: x\n", "unknown field 'endpoitn'"},
		{"unknown approle field", "  vault:\n    endpoint: https://v\n    approle: {id: a, secret: b, sekret: c}\n", "unknown field 'sekret'"},
		{"two keystores", "  vault:\n    endpoint: https://v\n  fs:\n    path: ./keys\n", "more than one keystore specified"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(vaultYAMLOf(tt.section)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
