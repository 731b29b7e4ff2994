// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// verbs are the fmt verbs and flags a secret-holding value is printed with
// in the redaction tests.
var verbs = []string{
	"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%#x", "%d",
	"%10v", "%-60s", "%.3s", "%+q", "%#q", "%o", "%b", "%c", "%U", "%T",
}

// secretForms returns the forms in which b must not appear in output:
// raw, hex, base64, and fmt's decimal rendering of a []byte. Each form
// is of a prefix long enough that a chance match is impossible.
func secretForms(b []byte) map[string]string {
	p := b[:12]
	dec := fmt.Sprint(p[:6])
	return map[string]string{
		"raw":          string(p),
		"hex":          hex.EncodeToString(p),
		"HEX":          strings.ToUpper(hex.EncodeToString(p)),
		"spaced hex":   fmt.Sprintf("% x", p),
		"base64":       base64.StdEncoding.EncodeToString(b)[:16],
		"base64url":    base64.URLEncoding.EncodeToString(b)[:16],
		"decimal list": dec[1 : len(dec)-1],
		"byte escapes": strings.Trim(fmt.Sprintf("%q", string(p)), `"`)[:20],
	}
}

// assertRedacted fails if out contains any form of secret.
func assertRedacted(t *testing.T, what, out string, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		for form, f := range secretForms(s) {
			if strings.Contains(out, f) {
				t.Errorf("%s leaks the secret (%s form): %q", what, form, out)
			}
		}
	}
}

// printAll prints v in every way the process might: every fmt verb,
// inside an error, and through slog's text and JSON handlers and
// encoding/json. Output of each is passed to check.
func printAll(t *testing.T, v any, check func(what, out string)) {
	t.Helper()
	for _, verb := range verbs {
		check("Sprintf("+verb+")", fmt.Sprintf(verb, v))
	}
	check("Sprint", fmt.Sprint(v))
	check("Sprintln", fmt.Sprintln(v))
	check("error", fmt.Errorf("crypto: failed to use %v: %w", v, errors.New("x")).Error())
	check("wrapped error %+v", fmt.Sprintf("%+v", fmt.Errorf("outer: %w", fmt.Errorf("inner %#v", v))))

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("msg", "value", v, slog.Group("g", "value", v))
	slog.New(slog.NewJSONHandler(&js, nil)).Info("msg", "value", v, slog.Group("g", "value", v))
	check("slog text", text.String())
	check("slog JSON", js.String())
	if b, err := json.Marshal(v); err == nil {
		check("json.Marshal", string(b))
	}
}

func TestRedaction(t *testing.T) {
	raw := make([]byte, KeySize)
	hmacRaw := make([]byte, KeySize)
	material := make([]byte, 100) // larger than a slot: lives on the heap
	for i := range raw {
		raw[i] = byte(0x91 + 7*i)
		hmacRaw[i] = byte(0x37 + 13*i)
	}
	for i := range material {
		material[i] = byte(0xe5 + 11*i)
	}
	key, err := NewSecretKey(AES256, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Destroy()
	hk, err := NewHMACKey(hmacRaw)
	if err != nil {
		t.Fatal(err)
	}
	defer hk.Destroy()
	small := NewSecretBytes(raw[:24])
	defer small.Destroy()
	big := NewSecretBytes(material)
	defer big.Destroy()
	v := &KeyVersion{Key: key, HMACKey: hk, CreatedAt: time.Unix(1700000000, 0), CreatedBy: "admin", Material: big}
	stored, err := v.MarshalText()
	if err != nil {
		t.Fatal(err)
	}

	type holder struct {
		Exported   any
		unexported any
	}
	type keyHolder struct {
		Key *SecretKey
		key *SecretKey
		v   *KeyVersion
	}
	values := map[string]any{
		"SecretKey":         key,
		"HMACKey":           hk,
		"SecretBytes/small": small,
		"SecretBytes/large": big,
		"KeyVersion":        v,
		// A copy of the value behind the pointer has none of the
		// pointer's methods: fmt prints its fields by reflection.
		"SecretKey value":   reflect.ValueOf(key).Elem(),
		"HMACKey value":     reflect.ValueOf(hk).Elem(),
		"SecretBytes value": reflect.ValueOf(big).Elem(),
		"KeyVersion value":  *v,
		"struct":            holder{Exported: key, unexported: hk},
		"struct of values":  holder{Exported: reflect.ValueOf(key).Elem().Interface(), unexported: reflect.ValueOf(hk).Elem().Interface()},
		"unexported fields": keyHolder{Key: key, key: key, v: v},
		"pointer to struct": &keyHolder{Key: key, key: key, v: v},
		"slice":             []any{key, hk, small, v},
		"map":               map[string]any{"key": key, "hmac": hk, "v": v},
	}
	for name, val := range values {
		t.Run(name, func(t *testing.T) {
			printAll(t, val, func(what, out string) {
				assertRedacted(t, what, out, raw, hmacRaw, material)
				if strings.Contains(out, string(stored[:24])) {
					t.Errorf("%s leaks the stored value: %q", what, out)
				}
			})
		})
	}
}

// TestRedactedForm checks that the redacted form still says what the
// value is, so that logs stay useful.
func TestRedactedForm(t *testing.T) {
	key, err := GenerateSecretKey(ChaCha20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Destroy()
	hk, err := GenerateHMACKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hk.Destroy()
	b := NewSecretBytes(make([]byte, 16))
	defer b.Destroy()
	var nilKey *SecretKey
	for _, tt := range []struct {
		v    any
		want string
	}{
		{key, "crypto.SecretKey(ChaCha20, redacted)"},
		{hk, "crypto.HMACKey(redacted)"},
		{b, "crypto.SecretBytes(16 bytes, redacted)"},
		{nilKey, "crypto.SecretKey(nil)"},
		{&KeyVersion{Key: key, HMACKey: hk, CreatedBy: "x"}, `crypto.KeyVersion(ChaCha20, HMAC, by "x", redacted)`},
	} {
		for _, verb := range []string{"%v", "%s", "%#v", "%x", "%d"} {
			if got := fmt.Sprintf(verb, tt.v); got != tt.want {
				t.Errorf("Sprintf(%s) = %q, want %q", verb, got, tt.want)
			}
		}
	}
	if _, err := json.Marshal(key); err == nil {
		t.Error("json.Marshal of a secret key succeeded")
	}
	if _, err := json.Marshal(struct{ V *KeyVersion }{&KeyVersion{Key: key, HMACKey: hk}}); err == nil {
		t.Error("json.Marshal of a key version succeeded")
	}
}
