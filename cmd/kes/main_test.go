// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/minio/kms-go/kes"
)

// runCommand runs the CLI in-process with args and ctx as the parent of
// its contexts. It swaps package state: callers must not run in parallel.
func runCommand(ctx context.Context, args ...string) (code int, out, errOut string) {
	o, e := &syncBuffer{}, &syncBuffer{}
	code = runCommandTo(ctx, o, e, args...)
	return code, o.String(), e.String()
}

// runCommandTo is runCommand writing to o and e, which callers may read
// while the command runs.
func runCommandTo(ctx context.Context, o, e *syncBuffer, args ...string) int {
	oldOut, oldErr, oldCtx := stdout, stderr, baseContext
	stdout, stderr, baseContext = o, e, func() context.Context { return ctx }
	defer func() { stdout, stderr, baseContext = oldOut, oldErr, oldCtx }()
	return run(args)
}

// waitFor polls cond until it holds. If done delivers first, whatever
// was waited for ended early: the test fails with ended's description of
// it. The test's own timeout bounds the wait.
func waitFor[T any](t *testing.T, cond func() bool, done <-chan T, ended func(T) string) {
	t.Helper()
	for !cond() {
		select {
		case r := <-done:
			t.Fatal(ended(r))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a
// moment ago, for commands that take an address instead of a listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// logStreamFunc is streamAuditLog or streamErrorLog.
type logStreamFunc func(ctx context.Context, client *kes.Client, w io.Writer, asJSON bool, subscribed func()) error

// subscribeLog runs stream in the background until cancel is called and
// returns once the server has accepted the subscription. out collects
// what the stream writes; done delivers the stream's result.
func subscribeLog(t *testing.T, stream logStreamFunc, client *kes.Client, asJSON bool) (out *syncBuffer, done <-chan error, cancel context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	out = new(syncBuffer)
	subscribed := make(chan struct{})
	result := make(chan error, 1)
	go func() { result <- stream(ctx, client, out, asJSON, func() { close(subscribed) }) }()
	select {
	case <-subscribed:
	case err := <-result:
		t.Fatalf("subscribing to the log: %v", err)
	}
	return out, result, cancel
}

// startTestServer starts a server with a fresh data directory, stopped
// when the test ends, and returns an admin client of it.
func startTestServer(t *testing.T) (*testServer, *kes.Client) {
	t.Helper()
	srv, err := startServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	client, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	return srv, client
}

func TestExitCodes(t *testing.T) {
	t.Setenv("KES_SERVER", "127.0.0.1:1")
	t.Setenv("KES_API_KEY", "")
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "Usage:"},
		{[]string{"--help"}, 2, "kmip"},
		{[]string{"-v"}, 0, ""},
		{[]string{"no-such-command"}, 2, "kes: error: kes: 'no-such-command' is not a command"},
		{[]string{"--no-such-flag"}, 2, "kes: error: kes: unknown option '--no-such-flag'"},
		{[]string{"key"}, 2, "Usage:\n    kes key <command>"},
		{[]string{"key", "frobnicate"}, 2, "'frobnicate' is not a command"},
		{[]string{"key", "create", "-h"}, 2, "Usage:\n    kes key create"},
		{[]string{"key", "create"}, 2, "missing argument"},
		{[]string{"key", "create", "--bogus", "k"}, 2, "unknown flag: --bogus"},
		{[]string{"key", "info", "a", "b"}, 2, "too many arguments"},
		{[]string{"key", "create", "k"}, 1, "kes: error: no credentials"},
		{[]string{"key", "create", "-e", "enclave", "k"}, 1, "kes: error: no credentials"},
		{[]string{"status", "--json", "-s", "--api", "-k"}, 1, "no credentials"},
		{[]string{"ls", "-i", "-p"}, 2, "cannot be used together"},
		{[]string{"log", "--audit", "--error"}, 2, "cannot be used together"},
		{[]string{"metric", "--rate", "0s"}, 2, "must be positive"},
		{[]string{"server"}, 2, "no config file specified"},
		{[]string{"server", "--dev", "--config", "x.yml"}, 2, "cannot be used together"},
		{[]string{"server", "--auth", "off"}, 2, "kes: warning: '--auth' flag is deprecated and no longer honored\n"},
		{[]string{"server", "--mlok"}, 2, "unknown flag: --mlok"},
		{[]string{"migrate", "--from", "a.yml"}, 2, "no destination specified"},
		{[]string{"update"}, 2, "no update source"},
		{[]string{"dev"}, 2, "Usage:\n    kes dev <command>"},
		{[]string{"dev", "keycontrol", "--user", "nopassword"}, 2, "NAME:PASSWORD"},
		{[]string{"identity", "of", "a", "b"}, 2, "too many arguments"},
		{[]string{"identity", "a", "b"}, 2, "too many arguments"},
		{[]string{"policy", "show"}, 2, "missing argument"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runCommand(context.Background(), tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr: %s)", code, tt.code, errOut)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCommand(context.Background(), "--version")
	if code != 0 || !strings.Contains(out, "Version") || !strings.Contains(out, "License    AGPLv3") {
		t.Fatalf("kes --version: exit %d, output %q", code, out)
	}
}

func TestParseEndpoints(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"127.0.0.1:7373", []string{"https://127.0.0.1:7373"}},
		{"http://kes-1:7373, https://kes-2:7373/,kes-3:7373", []string{"https://kes-1:7373", "https://kes-2:7373", "https://kes-3:7373"}},
		{" , ", nil},
	} {
		got, err := parseEndpoints(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("parseEndpoints(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parseEndpoints(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestEnvOrder checks the lookup order of minio/kes: MINIO_KES_* first,
// then KES_*, then MinIO's MINIO_KMS_KES_*.
func TestEnvOrder(t *testing.T) {
	const key = "kes:v1:ACQpoGqx3rHHjT938Hfu5hVVQJHZWSqVI2Xp1KlYxFVw"
	for _, name := range slices.Concat(envServer, envAPIKey, envKeyFile, envCertFile) {
		t.Setenv(name, "")
	}
	endpoint := func() string {
		t.Helper()
		c, err := (&clientFlags{}).newClient()
		if err != nil {
			t.Fatalf("newClient: %v", err)
		}
		return strings.Join(c.Endpoints, ",")
	}
	t.Setenv("MINIO_KMS_KES_API_KEY", key)
	if got := endpoint(); got != "https://127.0.0.1:7373" {
		t.Fatalf("default server: %s", got)
	}
	t.Setenv("MINIO_KMS_KES_ENDPOINT", "c:7373")
	if got := endpoint(); got != "https://c:7373" {
		t.Fatalf("MINIO_KMS_KES_ENDPOINT: %s", got)
	}
	t.Setenv("KES_SERVER", "b:7373")
	if got := endpoint(); got != "https://b:7373" {
		t.Fatalf("KES_SERVER must win over MINIO_KMS_KES_ENDPOINT: %s", got)
	}
	t.Setenv("MINIO_KES_SERVER", "a:7373")
	if got := endpoint(); got != "https://a:7373" {
		t.Fatalf("MINIO_KES_SERVER must win over KES_SERVER: %s", got)
	}
	if got, _ := lookupEnv(envAPIKey); got != key {
		t.Fatal("MINIO_KMS_KES_API_KEY was not found")
	}
	t.Setenv("KES_API_KEY", "kes:v1:invalid")
	if _, err := (&clientFlags{}).newClient(); err == nil || strings.Contains(err.Error(), "kes:v1") {
		t.Fatalf("KES_API_KEY must win over MINIO_KMS_KES_API_KEY, without echoing it: %v", err)
	}
	t.Setenv("MINIO_KES_API_KEY", key)
	if _, err := (&clientFlags{}).newClient(); err != nil {
		t.Fatalf("MINIO_KES_API_KEY must win over KES_API_KEY: %v", err)
	}
	t.Setenv("MINIO_KES_CLIENT_KEY", "client.key")
	if _, err := (&clientFlags{}).newClient(); err == nil || !strings.Contains(err.Error(), "mutually exclusive") {
		t.Fatalf("an API key and a key file were accepted together: %v", err)
	}
}

func TestOutputShapes(t *testing.T) {
	fields := []field{{"plaintext", []byte{0, 1, 2}}, {"ciphertext", []byte("abc")}}
	var b bytes.Buffer
	printFields(&b, false, fields)
	if got, want := b.String(), `{"plaintext":"AAEC","ciphertext":"YWJj"}`; got != want {
		t.Errorf("pipe: got %q, want %q", got, want)
	}
	b.Reset()
	printFields(&b, true, fields)
	if got, want := b.String(), "plaintext: AAEC\nciphertext: YWJj\n"; got != want {
		t.Errorf("terminal: got %q, want %q", got, want)
	}

	b.Reset()
	printStatus(&b, "127.0.0.1:7373", kes.State{Version: "v1", OS: "linux", Arch: "amd64", UpTime: 3 * time.Hour, CPUs: 4, UsableCPUs: 2, HeapAlloc: 3 << 20, StackAlloc: 512 << 10},
		1500*time.Microsecond, statusExtra{Linearizable: new(bool)}, false, []kes.API{{Method: "PUT", Path: "/v1/key/create/", Timeout: 15 * time.Second}, {Method: "GET", Path: "/v1/log/audit"}})
	for _, want := range []string{"● 127.0.0.1:7373\n", "Version  v1\n", "Uptime   3 hours\n", "Latency  1.5ms\n", "OS       linux/amd64\n", "CPUs     2 of 4\n", "Heap  3.0 MiB\n", "Stack 512.0 KiB\n", "Note  compare-and-swap within one node",
		"Method  API", "PUT     /v1/key/create/              15s\n", "GET     /v1/log/audit                none\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status does not contain %q:\n%s", want, b.String())
		}
	}

	row := formatAuditEvent(kes.AuditEvent{
		Timestamp:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local),
		APIPath:        "/v1/key/create/my-key",
		ClientIP:       net.ParseIP("10.1.2.3"),
		ClientIdentity: "0426fa9a04bc2756b92fbe8a97e1a1e07b53ecf04ed33da22c33e5c9faeb8cbb",
		StatusCode:     200,
		ResponseTime:   12*time.Millisecond + 345*time.Nanosecond,
	})
	for _, want := range []string{"03:04:05", " 200 ", "0426fa9a04 ", "10.1.2.3", "/v1/key/create/my-key", "12ms\n"} {
		if !strings.Contains(row, want) {
			t.Errorf("audit row %q does not contain %q", row, want)
		}
	}

	b.Reset()
	printNames(&b, "Key", []string{"a", "b"}, false)
	if b.String() != "Key\na\nb\n" {
		t.Errorf("names: %q", b.String())
	}
	b.Reset()
	printNames(&b, "Key", nil, true)
	if b.String() != "[]\n" {
		t.Errorf("empty JSON list: %q", b.String())
	}
}

func TestFormatUptime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Second:              "5 seconds",
		3 * time.Minute:              "3 minutes",
		5*time.Hour + 59*time.Minute: "5 hours",
		50 * time.Hour:               "2 days 2 hours",
	} {
		if got := formatUptime(d); got != want {
			t.Errorf("formatUptime(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestPercentile(t *testing.T) {
	hist := map[time.Duration]uint64{10 * time.Millisecond: 50, 50 * time.Millisecond: 90, 100 * time.Millisecond: 99}
	for q, want := range map[float64]string{0.5: "≤10ms", 0.9: "≤50ms", 0.99: "≤100ms", 1: ">100ms"} {
		if got := percentile(hist, 100, q); got != want {
			t.Errorf("percentile(%v) = %q, want %q", q, got, want)
		}
	}
}

// TestLogStream subscribes to the audit log of a real server and sees
// the event of a request made after the subscription.
func TestLogStream(t *testing.T) {
	_, client := startTestServer(t)

	for _, asJSON := range []bool{true, false} {
		out, done, cancel := subscribeLog(t, streamAuditLog, client, asJSON)
		name := "log-key-" + map[bool]string{true: "json", false: "text"}[asJSON]
		if err := client.CreateKey(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.Contains(out.String(), "/v1/key/create/"+name) }, done, func(err error) string {
			return fmt.Sprintf("stream ended before the event: %v\n%s", err, out.String())
		})
		cancel()
		<-done
		if asJSON {
			line, _, _ := strings.Cut(out.String(), "\n")
			var ev struct {
				Request struct {
					Path     string `json:"path"`
					Identity string `json:"identity"`
				} `json:"request"`
				Response struct {
					Code int `json:"code"`
				} `json:"response"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("not NDJSON: %q: %v", line, err)
			}
			if ev.Request.Path != "/v1/key/create/"+name || ev.Response.Code != 200 || len(ev.Request.Identity) != 64 {
				t.Fatalf("unexpected event %+v", ev)
			}
		} else if !strings.HasPrefix(out.String(), auditHeader) {
			t.Fatalf("no table header:\n%s", out.String())
		}
	}
}

// TestErrorLogStream subscribes to the error log of a real server and
// sees the TLS handshake error of a client that speaks plain text.
func TestErrorLogStream(t *testing.T) {
	srv, client := startTestServer(t)
	out, done, cancel := subscribeLog(t, streamErrorLog, client, false)
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	c.Close()
	waitFor(t, func() bool { return strings.Contains(out.String(), "handshake") }, done, func(err error) string {
		return fmt.Sprintf("stream ended before the event: %v\n%s", err, out.String())
	})
	cancel()
	<-done
}

// TestServerCommand runs 'kes server --dev' in-process until cancelled.
func TestServerCommand(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o, e := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runCommandTo(ctx, o, e, "server", "--dev", "--addr", addr, "--data", t.TempDir(), "--key", "old.key")
	}()
	listening := func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	waitFor(t, listening, done, func(code int) string {
		return fmt.Sprintf("kes server exited with %d: %s", code, e.String())
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("kes server: exit %d: %s", code, e.String())
	}
	if !strings.Contains(e.String(), "'--key' flag is deprecated and no longer honored") {
		t.Errorf("no deprecation warning for --key: %q", e.String())
	}
	// The banner holds the admin API key: say what is missing, never print it.
	if !strings.Contains(o.String(), "KES_API_KEY=kes:v1:") {
		t.Error("the dev banner shows no admin API key")
	}
}

// TestDevEmulators starts each emulator command and checks that it
// serves and stops when its context ends.
func TestDevEmulators(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"dev", "keycontrol", "--ca-file", filepath.Join(t.TempDir(), "ca.pem"), "--box", "tenant-1"}, "box_id:    tenant-1"},
		{[]string{"dev", "hpcs"}, "https://127.0.0.1:"},
	} {
		t.Run(tt.args[1], func(t *testing.T) {
			addr := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o, e := &syncBuffer{}, &syncBuffer{}
			done := make(chan int, 1)
			go func() { done <- runCommandTo(ctx, o, e, append(tt.args, "--addr", addr)...) }()
			waitFor(t, func() bool { return strings.Contains(o.String(), tt.want) }, done, func(code int) string {
				return fmt.Sprintf("exited with %d: %s%s", code, o.String(), e.String())
			})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("the emulator does not listen on %s: %v", addr, err)
			}
			c.Close()
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("exit code %d: %s", code, e.String())
			}
		})
	}
}

// TestUpdateFromURL fetches a release from a local HTTP server: the
// binary of a version and its signature.
func TestUpdateFromURL(t *testing.T) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bin := []byte("new kes binary")
	files := map[string][]byte{
		"/releases/v2.0.0/kes-linux-arm64":         bin,
		"/releases/v2.0.0/kes-linux-arm64.minisig": minisign.Sign(priv, bin),
		"/releases/v2.0.1/kes-linux-arm64":         append(bin, '!'),
		"/releases/v2.0.1/kes-linux-arm64.minisig": minisign.Sign(priv, bin),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	out := filepath.Join(dir, "kes")
	args := []string{"update", "--from", srv.URL + "/releases", "--minisign-key", pub.String(), "--os", "linux", "--arch", "arm64", "-o", out}
	code, stdoutText, errText := runCommand(context.Background(), append(args, "v2.0.0")...)
	if code != 0 {
		t.Fatalf("update v2.0.0: exit %d: %s", code, errText)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, bin) {
		t.Fatalf("written binary %q, want %q", got, bin)
	}
	if !strings.Contains(stdoutText, "/releases/v2.0.0/kes-linux-arm64") {
		t.Errorf("output does not name the download: %q", stdoutText)
	}

	os.Remove(out)
	code, _, errText = runCommand(context.Background(), append(args, "v2.0.1")...)
	if code != 1 || !strings.Contains(errText, "signature verification failed") {
		t.Fatalf("tampered release: exit %d: %s", code, errText)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a binary that failed verification was written")
	}

	code, _, errText = runCommand(context.Background(), append(args, "v9.9.9")...)
	if code != 1 || !strings.Contains(errText, "404 Not Found") {
		t.Fatalf("missing release: exit %d: %s", code, errText)
	}
}

// TestInstallBinary replaces an executable the way 'kes update' replaces
// the running one.
func TestInstallBinary(t *testing.T) {
	target := filepath.Join(t.TempDir(), "kes")
	if err := os.WriteFile(target, []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := installBinary([]byte("new"), target); err != nil {
		t.Fatalf("installBinary: %v", err)
	}
	got, err := os.ReadFile(target)
	if err != nil || string(got) != "new" {
		t.Fatalf("target holds %q, %v; want \"new\"", got, err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("installed binary is not executable: %v", fi.Mode())
	}
}
