// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/emulator/emutest"
	emulator "github.com/kesbridge/kes/internal/emulator/hpcs"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out emutest.SyncBuffer
	done := make(chan error, 1)
	envFile := filepath.Join(t.TempDir(), "hpcs.env")
	go func() {
		done <- emulator.Run(ctx, "127.0.0.1:0", emulator.Config{InstanceID: "inst-1", EnvFile: envFile}, &out)
	}()
	caRE := regexp.MustCompile(`CA PEM: +(\S+)`)
	var caPath string
	for caPath == "" {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if m := caRE.FindStringSubmatch(out.String()); m != nil && strings.Contains(out.String(), "The values above are in "+envFile) {
			caPath = m[1]
		}
	}
	for _, want := range []string{`endpoint: +https://127\.0\.0\.1:\d+`, `instance ID: +inst-1`, `root key ID: +[0-9a-f-]{36}`, `API key: +\S+`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
	pem, err := os.ReadFile(caPath)
	if err != nil || !bytes.Contains(pem, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("CA file %s: %v", caPath, err)
	}
	env := emutest.ReadEnvFile(t, envFile)
	printed := func(label string) string {
		m := regexp.MustCompile(label + `: +(\S+)`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("output lacks %s:\n%s", label, out.String())
		}
		return m[1]
	}
	want := map[string]string{
		"HPCS_ENDPOINT":     printed("  endpoint"),
		"HPCS_IAM_ENDPOINT": printed("iam endpoint"),
		"HPCS_INSTANCE_ID":  "inst-1",
		"HPCS_ROOT_KEY_ID":  printed("root key ID"),
		"HPCS_API_KEY":      printed("API key"),
		"HPCS_CA":           caPath,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env file: %s=%q, want %q", k, env[k], v)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(caPath); !os.IsNotExist(err) {
		t.Fatalf("CA file left behind: %v", err)
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Fatalf("env file left behind: %v", err)
	}
}
