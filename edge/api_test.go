// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	kesgo "github.com/minio/kes-go"
	"github.com/minio/kms-go/kes"
)

// TestMinIOSequence drives the calls MinIO makes, with kms-go (what
// MinIO uses today) and kes-go v0.2.1 (older MinIO and tools).
func TestMinIOSequence(t *testing.T) {
	p := newPKI(t)
	admin, minio := newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), ""))
	ctx := context.Background()
	adCtx := []byte(`{"MinIO admin API":"KMSKeyStatusHandler"}`)

	t.Run("kms-go", func(t *testing.T) {
		c := e.kms(minio)
		if _, err := c.GenerateKey(ctx, "minio-default", adCtx); !errors.Is(err, kes.ErrKeyNotFound) {
			t.Fatalf("generate before create: got %v, want ErrKeyNotFound", err)
		}
		if err := c.CreateKey(ctx, "minio-default"); err != nil {
			t.Fatal(err)
		}
		if err := c.CreateKey(ctx, "minio-default"); !errors.Is(err, kes.ErrKeyExists) {
			t.Fatalf("second create: got %v, want ErrKeyExists", err)
		}
		dek, err := c.GenerateKey(ctx, "minio-default", adCtx)
		if err != nil {
			t.Fatal(err)
		}
		if len(dek.Plaintext) != 32 || len(dek.Ciphertext) != 76 {
			t.Fatalf("DEK sizes %d/%d, want 32/76", len(dek.Plaintext), len(dek.Ciphertext))
		}
		pt, err := c.Decrypt(ctx, "minio-default", dek.Ciphertext, adCtx)
		if err != nil || !bytes.Equal(pt, dek.Plaintext) {
			t.Fatalf("decrypt: %v", err)
		}
		if _, err := c.Decrypt(ctx, "minio-default", dek.Ciphertext, []byte("other")); !errors.Is(err, kes.ErrDecrypt) {
			t.Fatalf("decrypt with wrong context: got %v, want ErrDecrypt", err)
		}
		info, err := c.DescribeKey(ctx, "minio-default")
		if err != nil || info.Name != "minio-default" || info.CreatedBy.String() != identityOf(minio) {
			t.Fatalf("describe: %+v %v", info, err)
		}
		sum, err := c.HMAC(ctx, "minio-default", []byte("root access key"))
		if err != nil || len(sum) != 32 {
			t.Fatalf("hmac: %v", err)
		}
		sum2, _ := c.HMAC(ctx, "minio-default", []byte("root access key"))
		if !hmac.Equal(sum, sum2) {
			t.Fatal("hmac is not deterministic")
		}
		st, err := c.Status(ctx)
		if err != nil || !st.KeyStoreReachable || st.KeyStoreLatency <= 0 {
			t.Fatalf("status: %+v %v", st, err)
		}
		apis, err := c.APIs(ctx)
		if err != nil || len(apis) != len(routes) {
			t.Fatalf("apis: %d %v", len(apis), err)
		}
		if v, err := c.Version(ctx); err != nil || v == "" {
			t.Fatalf("version: %q %v", v, err)
		}
		names, _, err := c.ListKeys(ctx, "", 100) // GET /v1/key/list, no slash
		if err != nil || !slices.Equal(names, []string{"minio-default"}) {
			t.Fatalf("list: %v %v", names, err)
		}
		if ok, err := c.IsReady(ctx); err != nil || !ok {
			t.Fatalf("ready: %v %v", ok, err)
		}
		if _, err := c.GenerateKey(ctx, "minio-internal-x", nil); !errors.Is(err, kes.ErrNotAllowed) {
			t.Fatalf("denied generate: got %v, want ErrNotAllowed", err)
		}
		if err := c.CreateKey(ctx, "other"); !errors.Is(err, kes.ErrNotAllowed) {
			t.Fatalf("create outside policy: got %v, want ErrNotAllowed", err)
		}
	})

	t.Run("kes-go", func(t *testing.T) {
		c := e.kesgo(minio)
		if _, err := c.GenerateKey(ctx, "minio-kesgo", nil); !errors.Is(err, kesgo.ErrKeyNotFound) {
			t.Fatalf("generate before create: got %v", err)
		}
		if err := c.CreateKey(ctx, "minio-kesgo"); err != nil {
			t.Fatal(err)
		}
		if err := c.CreateKey(ctx, "minio-kesgo"); !errors.Is(err, kesgo.ErrKeyExists) {
			t.Fatalf("second create: got %v", err)
		}
		dek, err := c.GenerateKey(ctx, "minio-kesgo", adCtx)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := c.Decrypt(ctx, "minio-kesgo", dek.Ciphertext, adCtx)
		if err != nil || !bytes.Equal(pt, dek.Plaintext) {
			t.Fatalf("decrypt: %v", err)
		}
		if _, err := c.Decrypt(ctx, "minio-kesgo", []byte("garbage garbage garbage garbage"), nil); !errors.Is(err, kesgo.ErrDecrypt) {
			t.Fatalf("garbage decrypt: got %v", err)
		}
		if _, err := c.DescribeKey(ctx, "minio-kesgo"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Status(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.APIs(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Version(ctx); err != nil {
			t.Fatal(err)
		}
		names, _, err := c.ListKeys(ctx, "", 100)
		if err != nil || !slices.Contains(names, "minio-kesgo") {
			t.Fatalf("list: %v %v", names, err)
		}
	})

	t.Run("admin", func(t *testing.T) {
		c := e.kms(admin)
		if err := c.CreateKey(ctx, "other"); err != nil {
			t.Fatal(err)
		}
		ct, err := c.Encrypt(ctx, "other", []byte("hello"), nil)
		if err != nil || len(ct) != 5+44 {
			t.Fatalf("encrypt: %d %v", len(ct), err)
		}
		pt, err := c.Decrypt(ctx, "other", ct, nil)
		if err != nil || string(pt) != "hello" {
			t.Fatalf("decrypt: %v", err)
		}
		key := bytes.Repeat([]byte{7}, 32)
		if err := c.ImportKey(ctx, "imported", &kes.ImportKeyRequest{Key: key, Cipher: kes.ChaCha20}); err != nil {
			t.Fatal(err)
		}
		info, err := c.DescribeKey(ctx, "imported")
		if err != nil || info.Algorithm != kes.ChaCha20 {
			t.Fatalf("describe imported: %+v %v", info, err)
		}
		if err := c.DeleteKey(ctx, "other"); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteKey(ctx, "other"); !errors.Is(err, kes.ErrKeyNotFound) {
			t.Fatalf("second delete: got %v", err)
		}
		names, _, err := c.ListKeys(ctx, "minio*", 100) // trailing '*' is a prefix
		if err != nil || !slices.Equal(names, []string{"minio-default", "minio-kesgo"}) {
			t.Fatalf("list minio*: %v %v", names, err)
		}
	})
}

// TestImportVector imports a key and decrypts a ciphertext that minio/kes
// produced with it (reference §5.7 vector), through the HTTP API.
func TestImportVector(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), ""))
	ctx := context.Background()
	c := e.kms(admin)
	key, _ := base64.StdEncoding.DecodeString("dDHbTWgo+Yh3u804SYB5OyVMy6RiLeJYBQth1f6KlEU=")
	if err := c.ImportKey(ctx, "vector", &kes.ImportKeyRequest{Key: key, Cipher: kes.ChaCha20}); err != nil {
		t.Fatal(err)
	}
	ct, _ := base64.StdEncoding.DecodeString("gO4woRIswAJdjUjW7z2ApsSQxJlwB24yjLrmH4eI7sB0uh5nfEJfk9ybTPFft5FRFaZCVBmzhx7OJs9n0WWtxH3sySIxecIK")
	pt, err := c.Decrypt(ctx, "vector", ct, make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.StdEncoding.EncodeToString(pt); got != "CLcJoykFCWZDkEIiUq9bJRqwCwW9ZDvdgu8EMA==" {
		t.Fatalf("plaintext %s", got)
	}
}

// TestWireErrors checks status codes and exact bodies of bad requests.
func TestWireErrors(t *testing.T) {
	p := newPKI(t)
	admin, minio := newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), ""))
	if err := e.kms(admin).CreateKey(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	ac := e.raw(apiCert(t, admin))
	mc := e.raw(apiCert(t, minio))
	stranger := e.raw(apiCert(t, newAPIKey(t)))
	long := strings.Repeat("a", 81)

	tests := []struct {
		name         string
		client       *http.Client
		method, path string
		body         string
		code         int
		msg          string // JSON error message; "" for other bodies
		raw          string // exact body when msg is ""
	}{
		{"unknown route", ac, "GET", "/v1/nothing", "", 404, "", "404 page not found\n"},
		{"unknown root", ac, "GET", "/", "", 404, "", "404 page not found\n"},
		{"wrong method", ac, "GET", "/v1/key/create/k2", "", 405, "received method 'GET' expected 'PUT'", ""},
		{"wrong method delete", ac, "POST", "/v1/key/delete/k", "", 405, "received method 'POST' expected 'DELETE'", ""},
		{"not found", ac, "GET", "/v1/key/describe/missing", "", 404, "key does not exist", ""},
		{"exists", ac, "POST", "/v1/key/create/k", "", 400, "key already exists", ""},
		{"name too long", ac, "POST", "/v1/key/create/" + long, "", 400, "key name '" + long + "' is empty, too long or contains invalid characters", ""},
		{"name underscore", ac, "POST", "/v1/key/create/_", "", 400, "key name '_' is empty, too long or contains invalid characters", ""},
		{"name empty", ac, "POST", "/v1/key/create/", "", 400, "key name '' is empty, too long or contains invalid characters", ""},
		{"name dash", ac, "POST", "/v1/key/create/-k", "", 400, "key name '-k' is empty, too long or contains invalid characters", ""},
		{"path traversal", ac, "POST", "/v1/key/create/..%2F..%2Fetc", "", 400, "key name '../../etc' is empty, too long or contains invalid characters", ""},
		{"nested path", ac, "GET", "/v1/key/describe/a/b", "", 400, "key name 'a/b' is empty, too long or contains invalid characters", ""},
		{"bad pattern", ac, "GET", "/v1/key/list/a*b", "", 400, "listing pattern 'a*b' is empty, too long or is invalid", ""},
		{"bad policy name", ac, "GET", "/v1/policy/read/a.b", "", 400, "policy name 'a.b' is empty, too long or contains invalid characters", ""},
		{"missing policy", ac, "GET", "/v1/policy/read/nope", "", 404, "policy does not exist", ""},
		{"missing identity", ac, "GET", "/v1/identity/describe/abc", "", 404, "identity does not exist", ""},
		{"malformed json", ac, "POST", "/v1/key/decrypt/k", "{", 400, "invalid request body", ""},
		{"unpadded base64", ac, "POST", "/v1/key/decrypt/k", `{"ciphertext":"YWJj"}`[:0] + `{"ciphertext":"YWI"}`, 400, "invalid request body", ""},
		{"garbage ciphertext", ac, "POST", "/v1/key/decrypt/k", `{"ciphertext":"` + base64.StdEncoding.EncodeToString(make([]byte, 40)) + `"}`, 400, "decryption failed: ciphertext is not authentic", ""},
		{"short ciphertext", ac, "POST", "/v1/key/decrypt/k", `{"ciphertext":"AAAA"}`, 400, "decryption failed: ciphertext is not authentic", ""},
		{"decrypt missing key first", ac, "POST", "/v1/key/decrypt/missing", `{"ciphertext":"AAAA"}`, 404, "key does not exist", ""},
		{"oversized body", ac, "POST", "/v1/key/encrypt/k", `{"plaintext":"` + strings.Repeat("A", mb) + `"}`, 400, "invalid request body", ""},
		{"import bad body", ac, "POST", "/v1/key/import/i", "[", 400, "invalid import key request body", ""},
		{"import bad cipher", ac, "POST", "/v1/key/import/i", `{"key":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `","cipher":"DES"}`, 406, "algorithm 'DES' is not supported", ""},
		{"import bad size", ac, "POST", "/v1/key/import/i", `{"key":"AAAA","cipher":"AES256"}`, 406, "invalid key size for 'AES256'", ""},
		{"hmac bad body", ac, "PUT", "/v1/key/hmac/k", `{"message":1}`, 400, "invalid request body", ""},
		{"bulk too many", ac, "POST", "/v1/key/bulk/decrypt/k", "[" + strings.Repeat(`{},`, 1000) + "{}]", 400, "too many ciphertexts: at most 1000 per request", ""},
		{"unknown identity", stranger, "GET", "/v1/key/describe/k", "", 403, "not authorized: insufficient permissions", ""},
		{"policy denies", mc, "GET", "/v1/key/describe/k", "", 403, "not authorized: insufficient permissions", ""},
		{"deny wins", mc, "POST", "/v1/key/generate/minio-internal-1", "", 403, "not authorized: insufficient permissions", ""},
		{"stranger self describe", stranger, "GET", "/v1/identity/self/describe", "", 404, "identity does not exist", ""},
		{"version without policy", stranger, "GET", "/version", "", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(tt.client, tt.method, tt.path, strings.NewReader(tt.body))
			if resp.code != tt.code {
				t.Fatalf("status %d, want %d (body %q)", resp.code, tt.code, resp.body)
			}
			switch {
			case tt.msg != "":
				if resp.body != errorBody(tt.msg) {
					t.Fatalf("body %q, want %q", resp.body, errorBody(tt.msg))
				}
				if ct := resp.header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("content type %q", ct)
				}
			case tt.raw != "":
				if resp.body != tt.raw {
					t.Fatalf("body %q, want %q", resp.body, tt.raw)
				}
			}
			if tt.code == 405 && resp.header.Get("Accept") == "" {
				t.Fatal("405 without Accept header")
			}
		})
	}
}

// TestBulkDecrypt checks the kes-go v0.2 bulk API shape.
func TestBulkDecrypt(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), ""))
	ctx := context.Background()
	c := e.kms(admin)
	if err := c.CreateKey(ctx, "bulk"); err != nil {
		t.Fatal(err)
	}
	var items []map[string][]byte
	var want [][]byte
	for i := range 3 {
		dek, err := c.GenerateKey(ctx, "bulk", []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, map[string][]byte{"ciphertext": dek.Ciphertext, "context": {byte(i)}})
		want = append(want, dek.Plaintext)
	}
	body, _ := json.Marshal(items)
	resp := e.do(e.raw(apiCert(t, admin)), "POST", "/v1/key/bulk/decrypt/bulk", bytes.NewReader(body))
	if resp.code != 200 {
		t.Fatalf("status %d: %s", resp.code, resp.body)
	}
	var got []struct {
		Plaintext []byte `json:"plaintext"`
	}
	if err := json.Unmarshal([]byte(resp.body), &got); err != nil || len(got) != 3 {
		t.Fatalf("%v %s", err, resp.body)
	}
	for i := range got {
		if !bytes.Equal(got[i].Plaintext, want[i]) {
			t.Fatalf("item %d differs", i)
		}
	}
}

// TestIdentityAndPolicyAPIs checks describe/list of identities and
// policies and self-describe (non-admin too) with both clients.
func TestIdentityAndPolicyAPIs(t *testing.T) {
	p := newPKI(t)
	admin, minio := newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), ""))
	ctx := context.Background()

	info, pol, err := e.kms(minio).DescribeSelf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Identity.String() != identityOf(minio) || info.Policy != "minio" || info.IsAdmin || info.CreatedBy.String() != identityOf(admin) {
		t.Fatalf("kms-go self: %+v", info)
	}
	if _, ok := pol.Allow["/v1/status"]; !ok {
		t.Fatalf("kms-go self policy: %+v", pol)
	}
	if _, ok := pol.Deny["/v1/key/generate/minio-internal*"]; !ok {
		t.Fatalf("kms-go self policy deny: %+v", pol)
	}
	ginfo, gpol, err := e.kesgo(minio).DescribeSelf(ctx)
	if err != nil || ginfo.Policy != "minio" || len(gpol.Allow) == 0 {
		t.Fatalf("kes-go self: %+v %v", ginfo, err)
	}
	ainfo, _, err := e.kms(admin).DescribeSelf(ctx)
	if err != nil || !ainfo.IsAdmin {
		t.Fatalf("admin self: %+v %v", ainfo, err)
	}

	c := e.kms(admin)
	id, err := c.DescribeIdentity(ctx, kes.Identity(identityOf(minio)))
	if err != nil || id.Policy != "minio" {
		t.Fatalf("describe identity: %+v %v", id, err)
	}
	id, err = c.DescribeIdentity(ctx, kes.Identity(identityOf(admin)))
	if err != nil || !id.IsAdmin {
		t.Fatalf("describe admin: %+v %v", id, err)
	}
	ids, _, err := c.ListIdentities(ctx, "", 100)
	if err != nil || len(ids) != 2 {
		t.Fatalf("list identities: %v %v", ids, err)
	}
	names, _, err := c.ListPolicies(ctx, "mi*", 100)
	if err != nil || !slices.Equal(names, []string{"minio"}) {
		t.Fatalf("list policies: %v %v", names, err)
	}
	pi, err := c.DescribePolicy(ctx, "minio")
	if err != nil || pi.CreatedBy.String() != identityOf(admin) {
		t.Fatalf("describe policy: %+v %v", pi, err)
	}
	gp, err := c.GetPolicy(ctx, "minio")
	if err != nil || len(gp.Allow) != 13 || len(gp.Deny) != 1 {
		t.Fatalf("get policy: %+v %v", gp, err)
	}
}

// TestMetrics checks that both clients decode the exposition and that
// only key, policy and identity routes are counted.
func TestMetrics(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), ""))
	ctx := context.Background()
	c := e.kms(admin)
	c.CreateKey(ctx, "m")
	c.CreateKey(ctx, "m") // 400
	c.Status(ctx)         // not counted
	m, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.RequestOK != 1 || m.RequestErr != 1 || m.RequestFail != 0 {
		t.Fatalf("counters: ok=%d err=%d fail=%d", m.RequestOK, m.RequestErr, m.RequestFail)
	}
	if len(m.LatencyHistogram) != 10 || m.CPUs == 0 {
		t.Fatalf("histogram %v cpus %d", m.LatencyHistogram, m.CPUs)
	}
	if _, err := e.kesgo(admin).Metrics(ctx); err != nil {
		t.Fatal(err)
	}
	resp := e.do(e.raw(apiCert(t, admin)), "GET", "/v1/metrics", nil)
	if !contains(resp.header.Get("Content-Type"), "text/plain") || !contains(resp.body, "kes_http_response_time_bucket") {
		t.Fatalf("exposition: %s", resp.header.Get("Content-Type"))
	}
}

// TestLegacyKey stores a key in minio/kes's legacy JSON format and uses it
// through the API: it decrypts minio/kes's reference ciphertexts (JSON and
// binary formats) and has no HMAC key (409).
func TestLegacyKey(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), ""))
	ctx := context.Background()
	legacy := `{"bytes":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `","algorithm":"AES256","created_at":"2020-01-01T00:00:00Z","created_by":"` + identityOf(admin) + `"}`
	if err := e.store.MemStore.Create(ctx, "legacy", []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	c := e.kms(admin)
	for _, ct := range []string{
		`{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}`,
		mustB64(t, "zwdDgHeRlIFRnJ7+DIhs/ka7GFK2CFSfDELqg1VCyTQzZ58o7MAdupMLk3ZjlMo2ZUDwldL2o41nAWDc"),
	} {
		pt, err := c.Decrypt(ctx, "legacy", []byte(ct), nil)
		if err != nil || !bytes.Equal(pt, make([]byte, 16)) {
			t.Fatalf("decrypt %q: %x %v", ct[:10], pt, err)
		}
	}
	r := e.do(e.raw(apiCert(t, admin)), "PUT", "/v1/key/hmac/legacy", strings.NewReader(`{"message":"aGVsbG8="}`))
	if r.code != 409 || r.body != errorBody("key does not support HMAC") {
		t.Fatalf("hmac on legacy key: %d %q", r.code, r.body)
	}
	info, err := c.DescribeKey(ctx, "legacy")
	if err != nil || info.CreatedAt.Year() != 2020 {
		t.Fatalf("describe: %+v %v", info, err)
	}
}

func mustB64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
