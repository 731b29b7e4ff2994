// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/kesbridge/kes/keystore/keycontrol"
)

// Distinct secret values, each set in the configs below, so that a leak
// names the field it came from.
var configSecrets = map[string]string{
	"tls.password":                  "TlsPem-Pa55word-0815",
	"keycontrol credentials":        "Kc-Vault-Pa55word-4711",
	"pkcs11 pin":                    "Pkcs11-Pin-97531",
	"hpcs api key":                  "Hpcs-ApiKey-Zx9Yw8Vu7",
	"kmip user password":            "Kmip-User-Pa55-vcenter",
	"kmip user password (from env)": "Kmip-Env-Pa55-zstack",
}

// secretConfigs are two configs that between them set every secret the
// config file has, literally and through ${ENV}.
func secretConfigs(t *testing.T) []*Config {
	t.Helper()
	t.Setenv("EDGE_TEST_ZSTACK_PASSWORD", configSecrets["kmip user password (from env)"])
	t.Setenv("EDGE_TEST_PIN", configSecrets["pkcs11 pin"])
	common := `version: v1
admin:
  identity: ` + testAdmin + `
tls:
  key: k
  cert: c
  password: ` + configSecrets["tls.password"] + `
policy:
  p1:
    allow: [/kmip/*]
kmip:
  tls: {key: k, cert: c, ca: ca}
  users:
    vc: {password: ` + configSecrets["kmip user password"] + `, policy: p1}
    zs: {password: "${EDGE_TEST_ZSTACK_PASSWORD}", policy: p1}
`
	a := common + `keystore:
  entrust:
    keycontrol:
      endpoint: https://kc
      vault_id: v
      box_id: b
      credentials: {username: u, password: ` + configSecrets["keycontrol credentials"] + `}
seal:
  ibm:
    hpcs: {endpoint: https://x, instance_id: i, root_key_id: r, iam: {api_key: ` + configSecrets["hpcs api key"] + `}}
`
	b := common + `keystore:
  pkcs11: {module: m, token: t, pin: "${EDGE_TEST_PIN}", root_key: r}
seal:
  pkcs11: {module: m, token: t, pin: "${EDGE_TEST_PIN}", root_key: r}
`
	var cfgs []*Config
	for _, y := range []string{a, b} {
		cfg, err := ParseConfig([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	return cfgs
}

// assertNoSecret fails if out holds any config secret in raw, hex,
// base64 or byte-list form.
func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for name, s := range configSecrets {
		b := []byte(s)
		dec := fmt.Sprint(b[:6])
		for form, f := range map[string]string{
			"raw":       s[:10],
			"hex":       hex.EncodeToString(b[:10]),
			"HEX":       strings.ToUpper(hex.EncodeToString(b[:10])),
			"spaced":    fmt.Sprintf("% x", b[:10]),
			"base64":    base64.StdEncoding.EncodeToString(b)[:12],
			"base64url": base64.URLEncoding.EncodeToString(b)[:12],
			"bytes":     dec[1 : len(dec)-1],
		} {
			if strings.Contains(out, f) {
				t.Errorf("%s leaks the %s (%s form): %s", what, name, form, out)
			}
		}
	}
}

// TestConfigRedaction prints whole loaded configs, their sections and the
// driver configs made from them in every way a server might, and checks
// that no secret appears.
func TestConfigRedaction(t *testing.T) {
	cfgs := secretConfigs(t)
	// The secrets must really be in there, or the test proves nothing.
	if cfgs[0].KMIP.Users["zs"].Password.Reveal() != configSecrets["kmip user password (from env)"] ||
		cfgs[0].Keystore.KeyControl.Password.Reveal() != configSecrets["keycontrol credentials"] ||
		cfgs[0].Seal.HPCS.APIKey.Reveal() != configSecrets["hpcs api key"] ||
		cfgs[1].Keystore.PKCS11.PIN.Reveal() != configSecrets["pkcs11 pin"] ||
		cfgs[1].TLS.Password.Reveal() != configSecrets["tls.password"] {
		t.Fatal("the configs do not hold the secrets")
	}
	hpcsCfg, err := hpcsConfig(cfgs[0].Seal.HPCS, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc := cfgs[0].Keystore.KeyControl
	values := map[string]any{
		"Config A":           cfgs[0],
		"Config B":           cfgs[1],
		"Config A value":     *cfgs[0],
		"Config B value":     *cfgs[1],
		"TLS":                cfgs[0].TLS,
		"Keystore":           cfgs[0].Keystore,
		"Seal":               cfgs[0].Seal,
		"KMIP":               cfgs[0].KMIP,
		"KMIP users":         cfgs[0].KMIP.Users,
		"PKCS11":             cfgs[1].Keystore.PKCS11,
		"hpcs.Config":        hpcsCfg,
		"pkcs11.Config":      pkcs11Config(cfgs[1].Keystore.PKCS11, nil),
		"keycontrol.Config":  keycontrol.Config{Endpoint: kc.Endpoint, Username: kc.Username, Password: kc.Password},
		"both configs":       cfgs,
		"configs in a map":   map[string]any{"a": cfgs[0], "b": *cfgs[1]},
		"wrapped in a error": fmt.Errorf("edge: reload failed for %+v: %w", cfgs[0], errors.New("x")),
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%#x", "%d", "%20v", "%-20s", "%.5s", "%+q", "%#q", "%c", "%U"}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for _, verb := range verbs {
				assertNoSecret(t, verb, fmt.Sprintf(verb, v))
			}
			assertNoSecret(t, "error", fmt.Errorf("edge: invalid %v: %w", v, errors.New("x")).Error())
			assertNoSecret(t, "wrapped error", fmt.Sprintf("%+v", fmt.Errorf("outer: %w", fmt.Errorf("inner %#v", v))))
			var text, js bytes.Buffer
			slog.New(slog.NewTextHandler(&text, nil)).Info("config", "cfg", v, slog.Group("g", "cfg", v))
			slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "cfg", v, slog.Group("g", "cfg", v))
			assertNoSecret(t, "slog text", text.String())
			assertNoSecret(t, "slog JSON", js.String())
			if b, err := json.Marshal(v); err == nil {
				assertNoSecret(t, "json.Marshal", string(b))
			}
		})
	}
}
