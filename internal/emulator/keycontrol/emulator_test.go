// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/emulator/emutest"
)

const (
	user     = "alice"
	password = "alice-password"
)

type client struct {
	t    *testing.T
	s    *Server
	http *http.Client
}

func start(t *testing.T, cfg Config) *client {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = map[string]string{user: password}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, s: s, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// do sends a raw request and returns status, content type and body.
func (c *client) do(method, path, token, body string) (int, string, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.s.URL()+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Auth", token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func (c *client) login() string {
	c.t.Helper()
	st, _, body := c.do("POST", "/vault/1.0/Login/"+c.s.VaultID()+"/", "", fmt.Sprintf(`{"username":%q,"password":%q}`, user, password))
	if st != 200 {
		c.t.Fatalf("login: %d %s", st, body)
	}
	var r struct {
		AccessToken string    `json:"access_token"`
		ExpiresAt   time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.AccessToken == "" || r.ExpiresAt.IsZero() {
		c.t.Fatalf("login response %s: %v", body, err)
	}
	return r.AccessToken
}

func (c *client) expect(method, path, token, body string, status int, want string) string {
	c.t.Helper()
	st, ct, got := c.do(method, path, token, body)
	if st != status {
		c.t.Fatalf("%s %s %s: status %d (%s), want %d", method, path, body, st, got, status)
	}
	if want != "" && got != want {
		c.t.Fatalf("%s %s %s: body %s, want %s", method, path, body, got, want)
	}
	if want != "" && !strings.HasPrefix(ct, "application/json") {
		c.t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	return got
}

func TestProtocol(t *testing.T) {
	c := start(t, Config{})
	tok := c.login()
	vault := c.s.VaultID()

	// Reference §1.11: exact texts for duplicate and unknown secrets.
	c.expect("POST", "/vault/1.0/CreateSecret/", tok, `{"box_id":"kes","name":"k","secret_data":"c2VjcmV0LWJ5dGVzLWJhc2U2NA=="}`, 200, "")
	c.expect("POST", "/vault/1.0/CreateSecret/", tok, `{"box_id":"kes","name":"k","secret_data":"eA=="}`, 409, `{"error":"Secret already exists"}`)
	c.expect("POST", "/vault/1.0/CheckoutSecret/", tok, `{"box_id":"kes","secret_id":"nope"}`, 404, `{"error":"Secret not found"}`)
	c.expect("POST", "/vault/1.0/DeleteSecret/", tok, `{"box_id":"kes","secret_id":"nope"}`, 404, `{"error":"Secret not found"}`)
	c.expect("POST", "/vault/1.0/PutSecretValue/", tok, `{"box_id":"kes","secret_id":"nope","secret_data":"eA=="}`, 404, `{"error":"Secret not found"}`)

	body := c.expect("POST", "/vault/1.0/CheckoutSecret/", tok, `{"box_id":"kes","secret_id":"k"}`, 200, "")
	var co struct {
		SecretData json.RawMessage `json:"secret_data"`
	}
	json.Unmarshal([]byte(body), &co)
	if string(co.SecretData) != `"c2VjcmV0LWJ5dGVzLWJhc2U2NA=="` {
		t.Fatalf("checkout secret_data = %s", co.SecretData)
	}
	// Versions: PutSecretValue adds one, checkout reads the latest by
	// default and an older one on request.
	c.expect("POST", "/vault/1.0/PutSecretValue/", tok, `{"box_id":"kes","secret_id":"k","secret_data":"djI="}`, 200, `{"version":2}`)
	c.expect("POST", "/vault/1.0/CheckoutSecret/", tok, `{"box_id":"kes","secret_id":"k"}`, 200, `{"secret_data":"djI=","secret_subtype_info":{"type":"text"}}`)
	c.expect("POST", "/vault/1.0/CheckoutSecret/", tok, `{"box_id":"kes","secret_id":"k","version":1}`, 200, `{"secret_data":"c2VjcmV0LWJ5dGVzLWJhc2U2NA==","secret_subtype_info":{"type":"text"}}`)
	c.expect("POST", "/vault/1.0/CheckoutSecret/", tok, `{"box_id":"kes","secret_id":"k","version":3}`, 404, "")
	// A KV secret keeps its object form.
	c.expect("POST", "/vault/1.0/CreateSecret/", tok, `{"box_id":"kes","name":"kv","secret_data":{"a":"b"}}`, 200, "")
	c.expect("POST", "/vault/1.0/CheckoutSecret/", tok, `{"box_id":"kes","secret_id":"kv"}`, 200, `{"secret_data":{"a":"b"},"secret_subtype_info":{"type":"text"}}`)
	c.expect("POST", "/vault/1.0/DeleteSecret/", tok, `{"box_id":"kes","secret_id":"kv"}`, 200, `{}`)
	c.expect("POST", "/vault/1.0/GetBox/", tok, `{"box_id":"kes"}`, 200, "")
	// KES sends Renew without a body, pasmcli with {}.
	c.expect("POST", "/vault/1.0/Renew/", tok, ``, 200, "")
	c.expect("POST", "/vault/1.0/Renew/", tok, `{}`, 200, "")

	for _, tt := range []struct {
		name, method, path, token, body string
		status                          int
		want                            string
	}{
		{"unknown action", "POST", "/vault/1.0/NoSuchAction/", tok, `{}`, 404, ""},
		{"no trailing slash", "POST", "/vault/1.0/GetBox", tok, `{"box_id":"kes"}`, 404, ""},
		{"login without slash", "POST", "/vault/1.0/Login/" + vault, "", `{"username":"alice","password":"alice-password"}`, 404, ""},
		{"other version", "POST", "/vault/2.0/GetBox/", tok, `{"box_id":"kes"}`, 404, ""},
		{"GET", "GET", "/vault/1.0/GetBox/", tok, ``, 405, `{"error":"Method not allowed"}`},
		{"GET login", "GET", "/vault/1.0/Login/" + vault + "/", "", ``, 405, `{"error":"Method not allowed"}`},
		{"no token", "POST", "/vault/1.0/GetBox/", "", `{"box_id":"kes"}`, 401, `{"error":"Authentication token is missing"}`},
		{"bad token", "POST", "/vault/1.0/GetBox/", "forged", `{"box_id":"kes"}`, 401, `{"error":"Invalid or expired token"}`},
		{"unknown vault", "POST", "/vault/1.0/Login/00000000-0000-0000-0000-000000000000/", "", `{"username":"alice","password":"alice-password"}`, 404, `{"error":"Vault not found"}`},
		{"bad password", "POST", "/vault/1.0/Login/" + vault + "/", "", `{"username":"alice","password":"wrong"}`, 401, `{"error":"Invalid username or password"}`},
		{"unknown user", "POST", "/vault/1.0/Login/" + vault + "/", "", `{"username":"bob","password":"alice-password"}`, 401, `{"error":"Invalid username or password"}`},
		{"login no password", "POST", "/vault/1.0/Login/" + vault + "/", "", `{"username":"alice"}`, 400, `{"error":"Missing required field: password"}`},
		{"malformed JSON", "POST", "/vault/1.0/GetBox/", tok, `{"box_id":`, 400, `{"error":"Invalid JSON in request body"}`},
		{"array body", "POST", "/vault/1.0/GetBox/", tok, `["kes"]`, 400, `{"error":"Invalid JSON in request body"}`},
		{"wrong type", "POST", "/vault/1.0/GetBox/", tok, `{"box_id":1}`, 400, `{"error":"Invalid JSON in request body"}`},
		{"empty body", "POST", "/vault/1.0/GetBox/", tok, ``, 400, `{"error":"Invalid JSON in request body"}`},
		{"missing box_id", "POST", "/vault/1.0/GetBox/", tok, `{}`, 400, `{"error":"Missing required field: box_id"}`},
		{"unknown box", "POST", "/vault/1.0/GetBox/", tok, `{"box_id":"nope"}`, 404, `{"error":"Box not found"}`},
		{"unknown box on checkout", "POST", "/vault/1.0/CheckoutSecret/", tok, `{"box_id":"nope","secret_id":"k"}`, 404, `{"error":"Box not found"}`},
		{"create without name", "POST", "/vault/1.0/CreateSecret/", tok, `{"box_id":"kes","secret_data":"eA=="}`, 400, `{"error":"Missing required field: name"}`},
		{"create without data", "POST", "/vault/1.0/CreateSecret/", tok, `{"box_id":"kes","name":"x"}`, 400, `{"error":"Missing required field: secret_data"}`},
		{"create with null data", "POST", "/vault/1.0/CreateSecret/", tok, `{"box_id":"kes","name":"x","secret_data":null}`, 400, `{"error":"Missing required field: secret_data"}`},
		{"create with number data", "POST", "/vault/1.0/CreateSecret/", tok, `{"box_id":"kes","name":"x","secret_data":1}`, 400, `{"error":"Invalid secret_data"}`},
		{"checkout without secret_id", "POST", "/vault/1.0/CheckoutSecret/", tok, `{"box_id":"kes"}`, 400, `{"error":"Missing required field: secret_id"}`},
		{"list without box", "POST", "/vault/1.0/ListSecretIds/", tok, `{}`, 400, `{"error":"Missing required field: box_id"}`},
		{"list bad max_items", "POST", "/vault/1.0/ListSecretIds/", tok, `{"box_id":"kes","max_items":0}`, 400, `{"error":"Invalid max_items"}`},
		{"list empty next_token", "POST", "/vault/1.0/ListSecretIds/", tok, `{"box_id":"kes","next_token":""}`, 400, `{"error":"Invalid next_token"}`},
		{"list garbage next_token", "POST", "/vault/1.0/ListSecretIds/", tok, `{"box_id":"kes","next_token":"%%%"}`, 400, `{"error":"Invalid next_token"}`},
		{"list foreign next_token", "POST", "/vault/1.0/ListSecretIds/", tok, `{"box_id":"kes","next_token":"eyJib3hfaWQiOiJ0ZW5hbnQtMSIsIm5leHRfY3R4IjoibXkta2V5In0="}`, 400, `{"error":"Invalid next_token"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			st, ct, got := c.do(tt.method, tt.path, tt.token, tt.body)
			if st != tt.status || got != tt.want {
				t.Fatalf("got %d %s, want %d %s", st, got, tt.status, tt.want)
			}
			if tt.want == "" && tt.status == 404 && ct != "" {
				t.Fatalf("unknown endpoint answered with content type %q, want an empty body", ct)
			}
		})
	}
}

func TestBoxByIDAndPermissions(t *testing.T) {
	c := start(t, Config{
		Users: map[string]string{user: password, "bob": "bob-pw"},
		Boxes: []Box{{Name: "a", ID: "11111111-2222-4333-8444-555555555555"}, {Name: "private", Users: []string{"bob"}}},
	})
	tok := c.login()
	c.expect("POST", "/vault/1.0/GetBox/", tok, `{"box_id":"11111111-2222-4333-8444-555555555555"}`, 200, "")
	c.expect("POST", "/vault/1.0/CreateSecret/", tok, `{"box_id":"a","name":"k","secret_data":"eA=="}`, 200, "")
	c.expect("POST", "/vault/1.0/CheckoutSecret/", tok, `{"box_id":"11111111-2222-4333-8444-555555555555","secret_id":"k"}`, 200, "")
	c.expect("POST", "/vault/1.0/GetBox/", tok, `{"box_id":"private"}`, 403, `{"error":"Permission denied"}`)
	c.expect("POST", "/vault/1.0/CreateSecret/", tok, `{"box_id":"private","name":"k","secret_data":"eA=="}`, 403, `{"error":"Permission denied"}`)
}

func TestTokenLifetimeAndRevocation(t *testing.T) {
	c := start(t, Config{TokenTTL: 100 * time.Millisecond})
	tok := c.login()
	c.expect("POST", "/vault/1.0/GetBox/", tok, `{"box_id":"kes"}`, 200, "")
	time.Sleep(150 * time.Millisecond)
	c.expect("POST", "/vault/1.0/GetBox/", tok, `{"box_id":"kes"}`, 401, `{"error":"Invalid or expired token"}`)
	c.expect("POST", "/vault/1.0/Renew/", tok, ``, 401, `{"error":"Invalid or expired token"}`)

	c = start(t, Config{})
	tok = c.login()
	c.s.RevokeTokens()
	c.expect("POST", "/vault/1.0/GetBox/", tok, `{"box_id":"kes"}`, 401, "")
	c.expect("POST", "/vault/1.0/GetBox/", c.login(), `{"box_id":"kes"}`, 200, "")
}

// TestListPaging walks ListSecretIds pages the way minio/kes does and
// checks the next_token format of the reference.
func TestListPaging(t *testing.T) {
	c := start(t, Config{MaxItems: 4, Boxes: []Box{{Name: "tenant-1"}}})
	tok := c.login()
	var want []string
	for i := range 10 {
		name := fmt.Sprintf("key-%02d", i)
		want = append(want, name)
		c.expect("POST", "/vault/1.0/CreateSecret/", tok, fmt.Sprintf(`{"box_id":"tenant-1","name":%q,"secret_data":"eA=="}`, name), 200, "")
	}
	c.s.SeedSecret("tenant-1", RawSecret{Name: "key-05x", Data: json.RawMessage(`"eA=="`), ExpiresAt: time.Now().Add(-time.Second)})

	var (
		got     []string
		expired []string
		next    string
		pages   int
	)
	for {
		req := `{"box_id":"tenant-1","max_items":100}` // above the cap of 4
		if next != "" {
			req = fmt.Sprintf(`{"box_id":"tenant-1","max_items":100,"next_token":%q}`, next)
		}
		body := c.expect("POST", "/vault/1.0/ListSecretIds/", tok, req, 200, "")
		var r struct {
			Secrets []struct {
				Name    string `json:"name"`
				Expired bool   `json:"expired"`
			} `json:"secrets"`
			NextToken string `json:"next_token"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Secrets) > 4 {
			t.Fatalf("page of %d items, cap is 4", len(r.Secrets))
		}
		pages++
		for _, s := range r.Secrets {
			if s.Expired {
				expired = append(expired, s.Name)
			} else {
				got = append(got, s.Name)
			}
		}
		if r.NextToken == "" {
			break
		}
		tokFields, err := decodeNextToken(r.NextToken)
		if err != nil || tokFields.BoxID != "tenant-1" || tokFields.NextCtx == "" {
			t.Fatalf("next_token %q: %+v, %v", r.NextToken, tokFields, err)
		}
		next = r.NextToken
	}
	if pages != 3 || !slices.Equal(got, want) || !slices.Equal(expired, []string{"key-05x"}) {
		t.Fatalf("%d pages, names %q, expired %q", pages, got, expired)
	}
	// The token minio/kes builds from a name (reference §6 example)
	// starts the listing at that name.
	body := c.expect("POST", "/vault/1.0/ListSecretIds/", tok,
		`{"box_id":"tenant-1","max_items":2,"next_token":"eyJib3hfaWQiOiJ0ZW5hbnQtMSIsIm5leHRfY3R4Ijoia2V5LTA4In0="}`, 200, "")
	if body != `{"secrets":[{"name":"key-08","expired":false},{"name":"key-09","expired":false}]}` {
		t.Fatalf("listing from key-08: %s", body)
	}
	c.expect("POST", "/vault/1.0/ListSecretIds/", tok, `{"box_id":"tenant-1","prefix":"key-0"}`, 200, "")
	c.expect("POST", "/vault/1.0/ListSecretIds/", tok, `{"box_id":"tenant-1","filters":"name eq 'x'"}`, 400, "")
}

func TestNextTokenFormat(t *testing.T) {
	// The example of the reference decodes to box tenant-1, name my-key.
	tk, err := decodeNextToken("eyJib3hfaWQiOiJ0ZW5hbnQtMSIsIm5leHRfY3R4IjoibXkta2V5In0=")
	if err != nil || tk != (nextToken{BoxID: "tenant-1", NextCtx: "my-key"}) {
		t.Fatalf("decode = %+v, %v", tk, err)
	}
	if got := encodeNextToken("tenant-1", "my-key"); got != "eyJib3hfaWQiOiJ0ZW5hbnQtMSIsIm5leHRfY3R4IjoibXkta2V5In0=" {
		t.Fatalf("encode = %q", got)
	}
}

func FuzzDecodeNextToken(f *testing.F) {
	f.Add("eyJib3hfaWQiOiJ0ZW5hbnQtMSIsIm5leHRfY3R4IjoibXkta2V5In0=")
	f.Add("e30=")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := decodeNextToken(s)
		if err != nil {
			return
		}
		// A valid token survives a round trip.
		again, err := decodeNextToken(encodeNextToken(tk.BoxID, tk.NextCtx))
		if err != nil || again != tk {
			t.Fatalf("round trip of %+v: %+v, %v", tk, again, err)
		}
	})
}

func TestFaults(t *testing.T) {
	c := start(t, Config{})
	tok := c.login()
	get := func() error {
		req, _ := http.NewRequest("POST", c.s.URL()+"/vault/1.0/GetBox/", strings.NewReader(`{"box_id":"kes"}`))
		req.Header.Set("X-Vault-Auth", tok)
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	c.s.FailNext(2, 503)
	for range 2 {
		if err := get(); err == nil || err.Error() != "status 503" {
			t.Fatalf("during a 503 burst: %v", err)
		}
	}
	if err := get(); err != nil {
		t.Fatalf("after the burst: %v", err)
	}
	c.s.ResetNext(1)
	if err := get(); err == nil {
		t.Fatal("reset request succeeded")
	}
	c.s.SetDown(true)
	for range 3 {
		if err := get(); err == nil {
			t.Fatal("request succeeded while down")
		}
	}
	c.s.SetDown(false)
	if err := get(); err != nil {
		t.Fatalf("after down mode: %v", err)
	}
	c.s.SetFaultFilter("CheckoutSecret")
	c.s.FailNext(1, 500)
	if err := get(); err != nil {
		t.Fatalf("filtered fault hit another action: %v", err)
	}
	// Dropped answers take effect: the secret exists although the
	// client saw an error.
	c.s.SetFaultFilter("")
	c.s.FailNext(0, 0)
	c.s.DropResponseNext(1)
	req, _ := http.NewRequest("POST", c.s.URL()+"/vault/1.0/CreateSecret/", strings.NewReader(`{"box_id":"kes","name":"dropped","secret_data":"eA=="}`))
	req.Header.Set("X-Vault-Auth", tok)
	if resp, err := c.http.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("dropped answer arrived")
	}
	if _, ok := c.s.Secret("kes", "dropped"); !ok {
		t.Fatal("the dropped create did not take effect")
	}
	// Latency ends when the client gives up.
	c.s.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "POST", c.s.URL()+"/vault/1.0/GetBox/", strings.NewReader(`{"box_id":"kes"}`))
	req.Header.Set("X-Vault-Auth", tok)
	if _, err := c.http.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow request: %v", err)
	}
	c.s.SetLatency(0)
	if err := get(); err != nil {
		t.Fatalf("after latency: %v", err)
	}
}

func TestConcurrentCreate(t *testing.T) {
	c := start(t, Config{})
	tok := c.login()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", c.s.URL()+"/vault/1.0/CreateSecret/", strings.NewReader(fmt.Sprintf(`{"box_id":"kes","name":"raced","secret_data":"%d"}`, i)))
			req.Header.Set("X-Vault-Auth", tok)
			resp, err := c.http.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode == 200 {
				ok++
			} else if resp.StatusCode != 409 {
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d creates succeeded", ok)
	}
}

func TestRun(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	envFile := filepath.Join(t.TempDir(), "kc.env")
	ctx, cancel := context.WithCancel(context.Background())
	var out emutest.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, "127.0.0.1:0", Config{CAFile: caFile, EnvFile: envFile}, &out) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "The values above are in "+envFile) {
		if time.Now().After(deadline) {
			t.Fatalf("Run printed: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	text := out.String()
	for _, want := range []string{"endpoint:  https://127.0.0.1:", "vault_id:  " + DefaultVaultID, "box_id:    kes", "tls.ca:    " + caFile, "KC_USER=kes"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	pem, err := os.ReadFile(caFile)
	if err != nil || !bytes.Contains(pem, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("CA file: %v", err)
	}
	env := emutest.ReadEnvFile(t, envFile)
	password := regexp.MustCompile(`KC_PASSWORD=(\S+)`).FindStringSubmatch(text)
	if password == nil {
		t.Fatalf("no password printed:\n%s", text)
	}
	want := map[string]string{"KC_VAULT_ID": DefaultVaultID, "KC_BOX": "kes", "KC_USER": "kes", "KC_PASSWORD": password[1], "KC_CA": caFile}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env file: %s=%q, want %q", k, env[k], v)
		}
	}
	if !strings.Contains(text, "endpoint:  "+env["KC_ENDPOINT"]+"\n") {
		t.Errorf("env file: KC_ENDPOINT=%q is not the endpoint printed:\n%s", env["KC_ENDPOINT"], text)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf("env file left behind: %v", err)
	}
}

// FuzzHandlers feeds arbitrary bodies to every action: the emulator must
// answer each with a documented or assumed status, never panic.
func FuzzHandlers(f *testing.F) {
	s, err := New(Config{Users: map[string]string{user: password}})
	if err != nil {
		f.Fatal(err)
	}
	tok, _ := s.issueToken(user)
	for _, seed := range []string{
		`{"box_id":"kes","name":"k","secret_data":"eA=="}`,
		`{"box_id":"kes","secret_id":"k","version":1}`,
		`{"box_id":"kes","max_items":2,"next_token":"eyJib3hfaWQiOiJrZXMiLCJuZXh0X2N0eCI6ImsifQ=="}`,
		`{"username":"alice","password":"alice-password"}`,
		``, `null`, `{"box_id":null}`,
	} {
		for _, a := range []string{"CreateSecret", "CheckoutSecret", "PutSecretValue", "DeleteSecret", "ListSecretIds", "GetBox", "Renew", "Login/" + DefaultVaultID} {
			f.Add(a, seed)
		}
	}
	f.Fuzz(func(t *testing.T, action, body string) {
		req, err := http.NewRequest("POST", "https://emulator/vault/1.0/"+action+"/", strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("X-Vault-Auth", tok)
		rec := &recorder{header: http.Header{}}
		s.ServeHTTP(rec, req)
		switch rec.status {
		case 200, 400, 401, 404, 405, 409, 413:
		default:
			t.Fatalf("%s %q: status %d", action, body, rec.status)
		}
	})
}

type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
