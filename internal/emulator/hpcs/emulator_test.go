// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	kp "github.com/IBM/keyprotect-go-client"

	emulator "github.com/kesbridge/kes/internal/emulator/hpcs"
)

type fixture struct {
	em     *emulator.Server
	client *http.Client
	token  string
}

func newFixture(t *testing.T, cfg emulator.Config) *fixture {
	t.Helper()
	em, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	f := &fixture{em: em, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: em.CertPool()}},
	}}
	status, body := f.iam(t, "/identity/token", em.APIKey())
	if status != http.StatusOK {
		t.Fatalf("token: %d %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 || tok.AccessToken == "" {
		// Not the body: it holds the token.
		t.Fatalf("token response: type %q, expires_in %d, token present %v, %v", tok.TokenType, tok.ExpiresIn, tok.AccessToken != "", err)
	}
	f.token = tok.AccessToken
	return f
}

func (f *fixture) iam(t *testing.T, path, apiKey string) (int, []byte) {
	t.Helper()
	form := url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {apiKey}}
	resp, err := f.client.Post(f.em.URL()+path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// call makes a Key Protect request with the fixture's token and
// instance, unless hdr overrides them.
func (f *fixture) call(t *testing.T, method, path, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.em.URL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("bluemix-instance", f.em.InstanceID())
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

type errBody struct {
	Metadata struct {
		CollectionType  string `json:"collectionType"`
		CollectionTotal int    `json:"collectionTotal"`
	} `json:"metadata"`
	Resources []struct {
		ErrorMsg string `json:"errorMsg"`
		Reasons  []struct {
			Code     string `json:"code"`
			Message  string `json:"message"`
			Status   int    `json:"status"`
			MoreInfo string `json:"moreInfo"`
		} `json:"reasons"`
	} `json:"resources"`
}

// wantError checks status, envelope and reason code ("" = no reasons).
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	var e errBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %s", body)
	}
	if e.Metadata.CollectionType != "application/vnd.ibm.kms.error+json" || e.Metadata.CollectionTotal != 1 || len(e.Resources) != 1 || e.Resources[0].ErrorMsg == "" {
		t.Fatalf("error envelope malformed: %s", body)
	}
	if code == "" {
		if len(e.Resources[0].Reasons) != 0 {
			t.Fatalf("error has reasons, want none: %s", body)
		}
		return
	}
	r := e.Resources[0].Reasons
	if len(r) != 1 || r[0].Code != code || r[0].Status != status || r[0].MoreInfo != "https://cloud.ibm.com/apidocs/key-protect" {
		t.Fatalf("reason is not %s/%d: %s", code, status, body)
	}
	if !strings.Contains(e.Resources[0].ErrorMsg, "("+code+")") {
		t.Fatalf("errorMsg does not name %s: %s", code, body)
	}
}

func createKey(t *testing.T, f *fixture, res string) map[string]any {
	t.Helper()
	body := `{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[` + res + `]}`
	resp, b := f.call(t, "POST", "/api/v2/keys", body, map[string]string{"Content-Type": "application/vnd.ibm.kms.key+json"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Resources []map[string]any `json:"resources"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Resources) != 1 {
		t.Fatalf("create response %s", b)
	}
	return out.Resources[0]
}

func TestIAM(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	for _, path := range []string{"/identity/token", "/oidc/token"} {
		if status, _ := f.iam(t, path, f.em.APIKey()); status != http.StatusOK {
			t.Fatalf("%s: status %d", path, status)
		}
		status, body := f.iam(t, path, "wrong")
		var e struct {
			ErrorCode    string `json:"errorCode"`
			ErrorMessage string `json:"errorMessage"`
			Context      struct {
				RequestID string `json:"requestId"`
			} `json:"context"`
		}
		if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.ErrorCode != "BXNIM0415E" ||
			e.ErrorMessage != "Provided API key could not be found." || e.Context.RequestID == "" {
			t.Fatalf("%s with a wrong key: %d %s", path, status, body)
		}
	}
	resp, err := f.client.Post(f.em.URL()+"/identity/token", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("JSON body: status %d", resp.StatusCode)
	}
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	resp, b := f.call(t, "GET", "/api/v2/keys", "", map[string]string{"Authorization": ""})
	wantError(t, resp, b, 401, "")
	resp, b = f.call(t, "GET", "/api/v2/keys", "", map[string]string{"Authorization": "Bearer unknown"})
	wantError(t, resp, b, 401, "")
	resp, b = f.call(t, "GET", "/api/v2/keys", "", map[string]string{"Authorization": "Basic"})
	wantError(t, resp, b, 400, "BEARER_SUB_EXTRACTION_ERR")
	resp, b = f.call(t, "GET", "/api/v2/keys", "", map[string]string{"bluemix-instance": "other"})
	wantError(t, resp, b, 401, "")
	resp, b = f.call(t, "GET", "/api/v2/keys", "", map[string]string{"x-kms-key-ring": "nope"})
	wantError(t, resp, b, 404, "KEY_RING_NOT_FOUND_ERR")
	if resp, b := f.call(t, "GET", "/api/v2/keys", "", map[string]string{"Accept": "application/vnd.ibm.collection+json"}); resp.StatusCode != 200 {
		t.Fatalf("list with the documented Accept: %d %s", resp.StatusCode, b)
	}
	f.em.InvalidateTokens()
	resp, b = f.call(t, "GET", "/api/v2/keys", "", nil)
	wantError(t, resp, b, 401, "")
}

func TestCreateAndGet(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	payload := base64.StdEncoding.EncodeToString([]byte("standard key material"))
	std := createKey(t, f, `{"type":"application/vnd.ibm.kms.key+json","name":"std","extractable":true,"payload":"`+payload+`","aliases":["my-alias"]}`)
	if std["state"] != 1.0 || std["extractable"] != true || std["imported"] != true || std["payload"] != nil {
		t.Fatalf("created standard key: %v", std)
	}
	id := std["id"].(string)
	for _, path := range []string{"/api/v2/keys/" + id, "/api/v2/keys/my-alias"} {
		resp, b := f.call(t, "GET", path, "", nil)
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"payload":"`+payload+`"`)) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	if _, b := f.call(t, "GET", "/api/v2/keys/"+id+"/metadata", "", nil); bytes.Contains(b, []byte("payload")) {
		t.Fatalf("metadata has a payload: %s", b)
	}
	root := createKey(t, f, `{"type":"application/vnd.ibm.kms.key+json","name":"root","extractable":false}`)
	if _, b := f.call(t, "GET", "/api/v2/keys/"+root["id"].(string), "", nil); bytes.Contains(b, []byte("payload")) {
		t.Fatalf("root key returned material: %s", b)
	}

	resp, b := f.call(t, "GET", "/api/v2/keys/00000000-0000-4000-8000-000000000000", "", nil)
	wantError(t, resp, b, 404, "KEY_NOT_FOUND_ERR")

	for name, tt := range map[string]struct {
		body   string
		status int
		code   string
	}{
		"total mismatch": {`{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":2},"resources":[{"name":"ab"}]}`, 400, "COLLECTION_TOTAL_MISMATCH_ERR"},
		"no metadata":    {`{"resources":[{"name":"ab"}]}`, 400, "BAD_BODY_ERR"},
		"unknown field":  {`{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"name":"ab","extra_field":1}]}`, 400, "BAD_BODY_ERR"},
		"two resources":  {`{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":2},"resources":[{"name":"ab"},{"name":"cd"}]}`, 400, "BAD_BODY_ERR"},
		"short name":     {`{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"name":"a"}]}`, 400, "INVALID_FIELD_ERR"},
		"bad root size":  {`{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"name":"ab","extractable":false,"payload":"` + payload + `"}]}`, 400, "INVALID_FIELD_ERR"},
		"large payload":  {`{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"name":"ab","extractable":true,"payload":"` + base64.StdEncoding.EncodeToString(make([]byte, 7501)) + `"}]}`, 400, "INVALID_FIELD_ERR"},
		"alias taken":    {`{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"name":"ab","aliases":["my-alias"]}]}`, 409, "KEY_ALIAS_NOT_UNIQUE_ERR"},
		"reserved alias": {`{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"name":"ab","aliases":["wrap"]}]}`, 400, "INVALID_FIELD_ERR"},
		"uuid alias":     {`{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"name":"ab","aliases":["` + id + `"]}]}`, 400, "INVALID_FIELD_ERR"},
		"no body":        {``, 400, "NO_BODY_ERR"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, b := f.call(t, "POST", "/api/v2/keys", tt.body, nil)
			wantError(t, resp, b, tt.status, tt.code)
		})
	}
}

func TestWrapUnwrapRotate(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	root := createKey(t, f, `{"name":"root","extractable":false}`)["id"].(string)
	action := func(a, body string) (*http.Response, []byte) {
		return f.call(t, "POST", "/api/v2/keys/"+root+"/actions/"+a, body,
			map[string]string{"Content-Type": "application/vnd.ibm.kms.key_action+json"})
	}
	dek := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	resp, b := action("wrap", `{"plaintext":"`+dek+`","aad":["tenant-1","kek-v1"]}`)
	var w struct {
		Plaintext           string
		Ciphertext          string
		KeyVersion          struct{ ID string }
		RewrappedKeyVersion *struct{ ID string }
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &w) != nil || w.Ciphertext == "" || w.Plaintext != "" {
		t.Fatalf("wrap: %d %s", resp.StatusCode, b)
	}
	v1 := f.em.KeyVersions(root)
	if w.KeyVersion.ID != v1[0] {
		t.Fatalf("wrap keyVersion %s, want %s", w.KeyVersion.ID, v1[0])
	}
	ct1 := w.Ciphertext

	// Create & wrap.
	resp, b = action("wrap", `{}`)
	w.Plaintext = ""
	if resp.StatusCode != 200 || json.Unmarshal(b, &w) != nil {
		t.Fatalf("create and wrap: %d %s", resp.StatusCode, b)
	}
	if p, _ := base64.StdEncoding.DecodeString(w.Plaintext); len(p) != 32 {
		t.Fatalf("create and wrap returned %d bytes", len(p))
	}

	resp, b = action("unwrap", `{"ciphertext":"`+ct1+`","aad":["tenant-1","kek-v1"]}`)
	w = struct {
		Plaintext           string
		Ciphertext          string
		KeyVersion          struct{ ID string }
		RewrappedKeyVersion *struct{ ID string }
	}{}
	if resp.StatusCode != 200 || json.Unmarshal(b, &w) != nil || w.Plaintext != dek || w.Ciphertext != "" || w.RewrappedKeyVersion != nil {
		t.Fatalf("unwrap: %d %s", resp.StatusCode, b)
	}
	for name, body := range map[string]string{
		"wrong aad":      `{"ciphertext":"` + ct1 + `","aad":["tenant-2","kek-v1"]}`,
		"aad split":      `{"ciphertext":"` + ct1 + `","aad":["tenant-1kek-v1"]}`,
		"no aad":         `{"ciphertext":"` + ct1 + `"}`,
		"other envelope": `{"ciphertext":"` + base64.StdEncoding.EncodeToString([]byte(`{"ciphertext":"AAAA","iv":"AAAA","version":"4.0.0","handle":"x"}`)) + `","aad":["tenant-1","kek-v1"]}`,
	} {
		resp, b := action("unwrap", body)
		if name == "other envelope" {
			wantError(t, resp, b, 422, "UNPROCESSABLE_CIPHERTEXT_ERR")
			continue
		}
		wantError(t, resp, b, 422, "UNPROCESSABLE_CIPHERTEXT_ERR")
	}
	resp, b = action("unwrap", `{"ciphertext":"not base64!","aad":[]}`)
	wantError(t, resp, b, 400, "INVALID_FIELD_ERR")
	resp, b = action("unwrap", ``)
	wantError(t, resp, b, 400, "NO_BODY_ERR")
	resp, b = action("wrap", `{"plaintext":"%%%"}`)
	wantError(t, resp, b, 400, "INVALID_FIELD_ERR")

	// Rotation: once an hour.
	resp, b = action("rotate", `{}`)
	if resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("rotate: %d %s", resp.StatusCode, b)
	}
	resp, b = action("rotate", `null`)
	wantError(t, resp, b, 409, "KEY_ROTATION_NOT_PERMITTED")
	v2 := f.em.KeyVersions(root)
	if len(v2) != 2 {
		t.Fatalf("versions after rotate: %v", v2)
	}
	var meta struct {
		Resources []struct {
			KeyVersion     struct{ ID string } `json:"keyVersion"`
			LastRotateDate string              `json:"lastRotateDate"`
		}
	}
	_, b = f.call(t, "GET", "/api/v2/keys/"+root+"/metadata", "", nil)
	if json.Unmarshal(b, &meta) != nil || meta.Resources[0].KeyVersion.ID != v2[1] || meta.Resources[0].LastRotateDate == "" {
		t.Fatalf("metadata after rotate: %s", b)
	}

	// Unwrap of an old version: plaintext plus a rewrapped ciphertext.
	resp, b = action("unwrap", `{"ciphertext":"`+ct1+`","aad":["tenant-1","kek-v1"]}`)
	if resp.StatusCode != 200 || json.Unmarshal(b, &w) != nil || w.Plaintext != dek || w.Ciphertext == "" ||
		w.KeyVersion.ID != v2[0] || w.RewrappedKeyVersion == nil || w.RewrappedKeyVersion.ID != v2[1] {
		t.Fatalf("unwrap of an old version: %d %s", resp.StatusCode, b)
	}
	if v, _ := emulator.CiphertextVersion(w.Ciphertext); v != v2[1] {
		t.Fatalf("rewrapped ciphertext is under %s", v)
	}
	// Rewrap.
	resp, b = action("rewrap", `{"ciphertext":"`+ct1+`","aad":["tenant-1","kek-v1"]}`)
	w = struct {
		Plaintext           string
		Ciphertext          string
		KeyVersion          struct{ ID string }
		RewrappedKeyVersion *struct{ ID string }
	}{}
	if resp.StatusCode != 200 || json.Unmarshal(b, &w) != nil || w.Plaintext != "" || w.KeyVersion.ID != v2[0] ||
		w.RewrappedKeyVersion == nil || w.RewrappedKeyVersion.ID != v2[1] {
		t.Fatalf("rewrap: %d %s", resp.StatusCode, b)
	}
	f.em.SetAllowFrequentRotation(true)
	if resp, b := action("rotate", ``); resp.StatusCode != 204 {
		t.Fatalf("rotate with the test switch: %d %s", resp.StatusCode, b)
	}

	// Standard keys cannot wrap.
	std := createKey(t, f, `{"name":"std","extractable":true}`)["id"].(string)
	resp, b = f.call(t, "POST", "/api/v2/keys/"+std+"/actions/wrap", `{}`, nil)
	wantError(t, resp, b, 400, "KEY_ROOT_REQ_ERR")
	resp, b = f.call(t, "POST", "/api/v2/keys/"+std+"/actions/rotate", `{}`, nil)
	wantError(t, resp, b, 400, "KEY_ROOT_REQ_ERR")
}

func TestDisableEnableDelete(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	root := createKey(t, f, `{"name":"root","extractable":false}`)["id"].(string)
	action := func(a, body string) (*http.Response, []byte) {
		return f.call(t, "POST", "/api/v2/keys/"+root+"/actions/"+a, body, nil)
	}
	_, b := action("wrap", `{"plaintext":"AAAA"}`)
	var w struct{ Ciphertext string }
	json.Unmarshal(b, &w)

	// The Go client sends "null" as the body of disable and enable.
	if resp, b := action("disable", `null`); resp.StatusCode != 204 {
		t.Fatalf("disable: %d %s", resp.StatusCode, b)
	}
	if st := f.em.KeyState(root); st != emulator.StateSuspended {
		t.Fatalf("state after disable: %d", st)
	}
	resp, b := action("disable", ``)
	wantError(t, resp, b, 409, "KEY_ACTION_INVALID_STATE_ERR")
	resp, b = action("wrap", `{"plaintext":"AAAA"}`)
	wantError(t, resp, b, 409, "KEY_ACTION_INVALID_STATE_ERR")
	resp, b = action("unwrap", `{"ciphertext":"`+w.Ciphertext+`"}`)
	wantError(t, resp, b, 409, "KEY_ACTION_INVALID_STATE_ERR")
	resp, b = action("enable", ``)
	wantError(t, resp, b, 409, "REQ_TOO_EARLY_ERR")
	if st := f.em.KeyState(root); st != emulator.StateSuspended {
		t.Fatalf("state after early enable: %d", st)
	}

	f2 := newFixture(t, emulator.Config{AllowEarlyEnable: true})
	root2 := createKey(t, f2, `{"name":"root","extractable":false}`)["id"].(string)
	if resp, b := f2.call(t, "POST", "/api/v2/keys/"+root2+"/actions/disable", ``, nil); resp.StatusCode != 204 {
		t.Fatalf("disable: %d %s", resp.StatusCode, b)
	}
	if resp, b := f2.call(t, "POST", "/api/v2/keys/"+root2+"/actions/enable", ``, nil); resp.StatusCode != 204 {
		t.Fatalf("enable: %d %s", resp.StatusCode, b)
	}
	resp, b = f2.call(t, "POST", "/api/v2/keys/"+root2+"/actions/enable", ``, nil)
	wantError(t, resp, b, 409, "KEY_ACTION_INVALID_STATE_ERR")

	// Delete: protected resources need force; a second delete is gone.
	f.em.Protect(root, 1)
	resp, b = f.call(t, "DELETE", "/api/v2/keys/"+root, "", map[string]string{"Prefer": "return=minimal"})
	wantError(t, resp, b, 409, "PROTECTED_RESOURCE_ERR")
	resp, b = f.call(t, "DELETE", "/api/v2/keys/"+root+"?force=true", "", map[string]string{"Prefer": "return=representation"})
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"state":5`)) || !bytes.Contains(b, []byte(`"deleted":true`)) || !bytes.Contains(b, []byte(`"deletionDate"`)) {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	resp, b = f.call(t, "DELETE", "/api/v2/keys/"+root, "", nil)
	wantError(t, resp, b, 410, "KEY_DELETED_ERR")
	resp, b = action("unwrap", `{"ciphertext":"`+w.Ciphertext+`"}`)
	wantError(t, resp, b, 410, "KEY_DELETED_ERR")
	if resp, b := f.call(t, "GET", "/api/v2/keys/"+root, "", nil); resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"state":5`)) {
		t.Fatalf("get of a deleted key: %d %s", resp.StatusCode, b)
	}
	std := createKey(t, f, `{"name":"std","extractable":true}`)["id"].(string)
	if resp, b := f.call(t, "DELETE", "/api/v2/keys/"+std, "", map[string]string{"Prefer": "return=minimal"}); resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("delete minimal: %d %s", resp.StatusCode, b)
	}
}

func TestListAndAliases(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	for i := range 7 {
		createKey(t, f, `{"name":"std-`+string(rune('a'+i))+`","extractable":true}`)
	}
	root := createKey(t, f, `{"name":"root","extractable":false,"aliases":["the-root"]}`)["id"].(string)
	count := func(query string) int {
		t.Helper()
		resp, b := f.call(t, "GET", "/api/v2/keys?"+query, "", nil)
		var l struct {
			Metadata struct {
				CollectionType  string `json:"collectionType"`
				CollectionTotal int    `json:"collectionTotal"`
			} `json:"metadata"`
			Resources []map[string]any `json:"resources"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &l) != nil || l.Metadata.CollectionTotal != len(l.Resources) {
			t.Fatalf("list %s: %d %s", query, resp.StatusCode, b)
		}
		if bytes.Contains(b, []byte("payload")) {
			t.Fatal("list returned key material")
		}
		return len(l.Resources)
	}
	for q, want := range map[string]int{
		"":                                8,
		"extractable=true":                7,
		"extractable=false":               1,
		"limit=3&offset=0":                3,
		"limit=3&offset=6":                2,
		"limit=3&offset=9":                0,
		"state=5":                         0,
		"search=exact:std-a,":             1,
		"search=name:std,":                7,
		"search=alias:the-root,":          1,
		"search=not:std,":                 1,
		"extractable=true&state=1,2,3,5":  7,
		"search=std-b&extractable=true":   1,
		"search=exact%3Astd-c%2C&limit=1": 1,
	} {
		if got := count(q); got != want {
			t.Errorf("list ?%s returned %d keys, want %d", q, got, want)
		}
	}
	resp, _ := f.call(t, "HEAD", "/api/v2/keys?extractable=true", "", nil)
	if resp.Header.Get("Key-Total") != "7" {
		t.Fatalf("HEAD Key-Total = %q", resp.Header.Get("Key-Total"))
	}
	resp, b := f.call(t, "GET", "/api/v2/keys?limit=5001", "", nil)
	wantError(t, resp, b, 400, "INVALID_FIELD_ERR")

	// Aliases: unique in the instance, removable only from their key.
	other := createKey(t, f, `{"name":"other","extractable":true}`)["id"].(string)
	if resp, b := f.call(t, "POST", "/api/v2/keys/"+other+"/aliases/second", "", nil); resp.StatusCode != 201 || !bytes.Contains(b, []byte(`"alias":"second"`)) {
		t.Fatalf("create alias: %d %s", resp.StatusCode, b)
	}
	resp, b = f.call(t, "POST", "/api/v2/keys/"+other+"/aliases/the-root", "", nil)
	wantError(t, resp, b, 409, "KEY_ALIAS_NOT_UNIQUE_ERR")
	resp, b = f.call(t, "DELETE", "/api/v2/keys/"+other+"/aliases/the-root", "", nil)
	wantError(t, resp, b, 404, "KEY_ALIAS_NOT_FOUND_ERR")
	if resp, _ := f.call(t, "DELETE", "/api/v2/keys/"+root+"/aliases/the-root", "", nil); resp.StatusCode != 204 {
		t.Fatalf("delete alias: %d", resp.StatusCode)
	}
	resp, b = f.call(t, "GET", "/api/v2/keys/the-root", "", nil)
	wantError(t, resp, b, 404, "KEY_NOT_FOUND_ERR")
}

func TestFaults(t *testing.T) {
	f := newFixture(t, emulator.Config{})
	f.em.FailNext(2, 503)
	for range 2 {
		resp, b := f.call(t, "GET", "/api/v2/keys", "", nil)
		if resp.StatusCode != 503 {
			t.Fatalf("status %d during a burst: %s", resp.StatusCode, b)
		}
	}
	if resp, _ := f.call(t, "GET", "/api/v2/keys", "", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d after the burst", resp.StatusCode)
	}
	f.em.SetDown(true)
	req, _ := http.NewRequest("GET", f.em.URL()+"/api/v2/keys", nil)
	if resp, err := f.client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("request succeeded while down")
	}
	f.em.SetDown(false)
	f.em.SetLatency(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", f.em.URL()+"/api/v2/keys", nil)
	if resp, err := f.client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("request succeeded despite latency beyond its deadline")
	}
	f.em.SetLatency(0)
}

// TestGoClient runs the Key Protect Go client against the emulator: the
// calls the driver makes and the ones an operator would.
func TestGoClient(t *testing.T) {
	em, err := emulator.New(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	client, err := kp.New(kp.ClientConfig{BaseURL: em.URL(), InstanceID: em.InstanceID(), Authorization: "placeholder"},
		&http.Transport{TLSClientConfig: &tls.Config{RootCAs: em.CertPool()}})
	if err != nil {
		t.Fatal(err)
	}
	// The client's own IAM source uses the system roots, so fetch the
	// token here and hand it over through the context.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: em.CertPool()}}}
	form := url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {em.APIKey()}}
	resp, err := hc.Post(em.URL()+"/oidc/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	ctx := kp.NewContextWithAuth(context.Background(), tok.TokenType+" "+tok.AccessToken)

	root, err := client.CreateRootKey(ctx, "root", nil)
	if err != nil || root.ID == "" || root.Extractable || root.State != int(kp.Active) {
		t.Fatalf("CreateRootKey: %+v, %v", root, err)
	}
	std, err := client.CreateImportedStandardKey(ctx, "std", nil, base64.StdEncoding.EncodeToString([]byte("material")))
	if err != nil || !std.Extractable {
		t.Fatalf("CreateImportedStandardKey: %v", err)
	}
	got, err := client.GetKey(ctx, std.ID)
	if err != nil || got.Payload != base64.StdEncoding.EncodeToString([]byte("material")) {
		t.Fatalf("GetKey: %+v, %v", got, err)
	}
	if _, err := client.CreateKeyAlias(ctx, "std-alias", std.ID); err != nil {
		t.Fatalf("CreateKeyAlias: %v", err)
	}
	if got, err := client.GetKeyMetadata(ctx, "std-alias"); err != nil || got.ID != std.ID || got.Payload != "" {
		t.Fatalf("GetKeyMetadata by alias: %+v, %v", got, err)
	}
	if err := client.DeleteKeyAlias(ctx, "std-alias", std.ID); err != nil {
		t.Fatalf("DeleteKeyAlias: %v", err)
	}
	keys, err := client.GetKeys(ctx, 0, 0)
	if err != nil || len(keys.Keys) != 2 {
		t.Fatalf("GetKeys: %v, %v", keys, err)
	}
	yes, limit, off := true, uint32(10), uint32(0)
	search := "std"
	keys, err = client.ListKeys(ctx, &kp.ListKeysOptions{Extractable: &yes, Limit: &limit, Offset: &off, State: []kp.KeyState{kp.Active}, Search: &search})
	if err != nil || len(keys.Keys) != 1 {
		t.Fatalf("ListKeys: %v, %v", keys, err)
	}
	dek := []byte(base64.StdEncoding.EncodeToString([]byte("dek")))
	aad := []string{"a"}
	wr, err := client.WrapV2(ctx, root.ID, dek, &aad)
	if err != nil || wr.KeyVersion == nil || wr.KeyVersion.ID == "" {
		t.Fatalf("WrapV2: %+v, %v", wr, err)
	}
	pt, rewrapped, err := client.UnwrapV2(ctx, root.ID, []byte(wr.CipherText), &aad)
	if err != nil || string(pt) != string(dek) || len(rewrapped) != 0 {
		t.Fatalf("UnwrapV2: %v", err)
	}
	if _, _, err := client.WrapCreateDEK(ctx, root.ID, nil); err != nil {
		t.Fatalf("WrapCreateDEK: %v", err)
	}
	if err := client.Rotate(ctx, root.ID, ""); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	err = client.RotateV2(ctx, root.ID, nil)
	var kerr *kp.Error
	if !errors.As(err, &kerr) || kerr.StatusCode != 409 || len(kerr.Reasons) != 1 || kerr.Reasons[0].Code != "KEY_ROTATION_NOT_PERMITTED" {
		t.Fatalf("second rotation: %v", err)
	}
	pt, rewrapped, err = client.UnwrapV2(ctx, root.ID, []byte(wr.CipherText), &aad)
	if err != nil || string(pt) != string(dek) || len(rewrapped) == 0 {
		t.Fatalf("UnwrapV2 after rotate: rewrapped %d bytes, %v", len(rewrapped), err)
	}
	versions, err := client.ListKeyVersions(ctx, root.ID, nil)
	if err != nil || len(versions.KeyVersion) != 2 {
		t.Fatalf("ListKeyVersions: %v, %v", versions, err)
	}
	if err := client.DisableKey(ctx, root.ID); err != nil {
		t.Fatalf("DisableKey: %v", err)
	}
	if _, err := client.Unwrap(ctx, root.ID, []byte(wr.CipherText), &aad); err == nil {
		t.Fatal("Unwrap with a disabled key succeeded")
	}
	if err := client.EnableKey(ctx, root.ID); !errors.As(err, &kerr) || kerr.StatusCode != 409 {
		t.Fatalf("EnableKey right after DisableKey: %v", err)
	}
	if _, err := client.DeleteKey(ctx, std.ID, kp.ReturnMinimal); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	deleted, err := client.DeleteKey(ctx, root.ID, kp.ReturnRepresentation, kp.ForceOpt{Force: true})
	if err != nil || deleted == nil || deleted.State != int(kp.Destroyed) {
		t.Fatalf("DeleteKey with representation: %+v, %v", deleted, err)
	}
	if _, err := client.GetKey(ctx, "00000000-0000-4000-8000-000000000000"); !errors.As(err, &kerr) || kerr.StatusCode != 404 ||
		kerr.Reasons[0].Code != "KEY_NOT_FOUND_ERR" {
		t.Fatalf("GetKey of a missing key: %v", err)
	}
}

func TestAliasReleaseDelay(t *testing.T) {
	f := newFixture(t, emulator.Config{AliasReleaseDelay: time.Hour})
	a := createKey(t, f, `{"name":"aa","extractable":true,"aliases":["shared"]}`)["id"].(string)
	b := createKey(t, f, `{"name":"bb","extractable":true}`)["id"].(string)
	if resp, _ := f.call(t, "DELETE", "/api/v2/keys/"+a+"/aliases/shared", "", nil); resp.StatusCode != 204 {
		t.Fatalf("delete alias: %d", resp.StatusCode)
	}
	resp, body := f.call(t, "GET", "/api/v2/keys/shared", "", nil)
	wantError(t, resp, body, 404, "KEY_NOT_FOUND_ERR")
	resp, body = f.call(t, "POST", "/api/v2/keys/"+b+"/aliases/shared", "", nil)
	wantError(t, resp, body, 409, "KEY_ALIAS_NOT_UNIQUE_ERR")
}
