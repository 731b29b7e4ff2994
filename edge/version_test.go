// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// Rotating a key 20 times while MinIO's clients (kms-go and kes-go over
// real TLS) generate and decrypt: no request fails, and afterwards every
// ciphertext of every version decrypts.
func TestRotateUnderLoad(t *testing.T) {
	p := newPKI(t)
	admin, minio := newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), ""))
	ctx := context.Background()
	kms, kesgo := e.kms(minio), e.kesgo(minio)
	if err := kms.CreateKey(ctx, "minio-rot"); err != nil {
		t.Fatal(err)
	}
	type dek struct{ pt, ct []byte }
	var (
		mu   sync.Mutex
		deks []dek
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	work := func(generate func() (dek, error), decrypt func(ct []byte) ([]byte, error)) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			d, err := generate()
			if err != nil {
				t.Errorf("generate during rotation: %v", err)
				return
			}
			pt, err := decrypt(d.ct)
			if err != nil || !bytes.Equal(pt, d.pt) {
				t.Errorf("decrypt during rotation: %v", err)
				return
			}
			mu.Lock()
			deks = append(deks, d)
			mu.Unlock()
		}
	}
	adCtx := []byte(`{"bucket":"b/o"}`)
	wg.Add(2)
	go work(func() (dek, error) {
		d, err := kms.GenerateKey(ctx, "minio-rot", adCtx)
		return dek{d.Plaintext, d.Ciphertext}, err
	}, func(ct []byte) ([]byte, error) { return kms.Decrypt(ctx, "minio-rot", ct, adCtx) })
	go work(func() (dek, error) {
		d, err := kesgo.GenerateKey(ctx, "minio-rot", adCtx)
		return dek{d.Plaintext, d.Ciphertext}, err
	}, func(ct []byte) ([]byte, error) { return kesgo.Decrypt(ctx, "minio-rot", ct, adCtx) })

	rc := e.raw(apiCert(t, admin))
	for i := range 20 {
		r := e.do(rc, "PUT", "/v1/key/rotate/minio-rot", nil)
		if want := `{"name":"minio-rot","version":"` + itoa(i+2) + `"}` + "\n"; r.code != 200 || r.body != want {
			t.Fatalf("rotate %d: %d %s", i+1, r.code, r.body)
		}
	}
	close(stop)
	wg.Wait()

	versions := map[string]bool{}
	for _, d := range deks {
		pt, err := kms.Decrypt(ctx, "minio-rot", d.ct, adCtx)
		if err != nil || !bytes.Equal(pt, d.pt) {
			t.Fatalf("decrypt after 20 rotations: %v", err)
		}
		pt, err = kesgo.Decrypt(ctx, "minio-rot", d.ct, adCtx)
		if err != nil || !bytes.Equal(pt, d.pt) {
			t.Fatalf("decrypt (kes-go) after 20 rotations: %v", err)
		}
		versions[itoa(int(ciphertextVersionInt(d.ct)))] = true
	}
	if len(versions) < 2 {
		t.Fatalf("ciphertexts of %d versions only; the load did not overlap the rotations", len(versions))
	}
	t.Logf("%d ciphertexts of %d versions", len(deks), len(versions))

	// The listing and describe show the versions.
	r := e.do(rc, "GET", "/v1/key/versions/minio-rot", nil)
	var list struct {
		Name     string
		Versions []struct {
			Version, State string
			CreatedBy      string `json:"created_by"`
			Current        bool
		}
	}
	if r.code != 200 || json.Unmarshal([]byte(r.body), &list) != nil || len(list.Versions) != 21 || !list.Versions[20].Current {
		t.Fatalf("versions: %d %s", r.code, r.body)
	}
	if r := e.do(rc, "GET", "/v1/key/describe/minio-rot", nil); r.code != 200 || !strings.Contains(r.body, `"version":"21"`) {
		t.Fatalf("describe: %d %s", r.code, r.body)
	}
	info, err := kms.DescribeKey(ctx, "minio-rot")
	if err != nil || info.Name != "minio-rot" {
		t.Fatalf("kms-go describe of a rotated key: %+v %v", info, err)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func ciphertextVersionInt(ct []byte) uint32 {
	var n uint32
	json.Unmarshal([]byte(ciphertextVersion(ct)), &n)
	return n
}

// The version routes: policy paths, the version field, retire and
// destroy with their answers.
func TestVersionRoutes(t *testing.T) {
	p := newPKI(t)
	admin, minio := newAPIKey(t), newAPIKey(t)
	e := start(t, p, admin, baseConfig(p, identityOf(admin), identityOf(minio), ""))
	ctx := context.Background()
	rc, mc := e.raw(apiCert(t, admin)), e.raw(apiCert(t, minio))
	kms := e.kms(minio)
	kms.CreateKey(ctx, "minio-v")
	old, err := kms.GenerateKey(ctx, "minio-v", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The minio policy does not allow rotation.
	if r := e.do(mc, "PUT", "/v1/key/rotate/minio-v", nil); r.code != 403 {
		t.Fatalf("rotate without permission: %d %s", r.code, r.body)
	}
	if r := e.do(rc, "POST", "/v1/key/rotate/minio-v", nil); r.code != 200 {
		t.Fatalf("rotate with POST: %d %s", r.code, r.body)
	}
	for body, want := range map[string]string{`{"version":"1"}`: `"version":"1"`, `{"version":"v2"}`: `"version":"2"`, ``: `"version":"2"`} {
		r := e.do(mc, "PUT", "/v1/key/generate/minio-v", strings.NewReader(body))
		if r.code != 200 || !strings.Contains(r.body, want) {
			t.Fatalf("generate %s: %d %s, want %s", body, r.code, r.body, want)
		}
	}
	for body, want := range map[string]string{
		`{"version":"0"}`:  errorBody("invalid key version '0'"),
		`{"version":"x"}`:  errorBody("invalid key version 'x'"),
		`{"version":"99"}`: errorBody("key version does not exist"),
	} {
		if r := e.do(mc, "PUT", "/v1/key/generate/minio-v", strings.NewReader(body)); r.body != want {
			t.Fatalf("generate %s: %d %s, want %s", body, r.code, r.body, want)
		}
	}
	for path, want := range map[string]struct {
		code int
		body string
	}{
		"/v1/key/version/retire/minio-v/2":   {409, errorBody("key version is the current version: rotate the key first")},
		"/v1/key/version/retire/minio-v/7":   {404, errorBody("key version does not exist")},
		"/v1/key/version/retire/minio-v/x":   {400, errorBody("invalid key version 'x'")},
		"/v1/key/version/retire/minio-v":     {400, errorBody("key name 'minio-v' is empty, too long or contains invalid characters")},
		"/v1/key/version/retire/missing-k/1": {404, errorBody("key does not exist")},
	} {
		if r := e.do(rc, "PUT", path, nil); r.code != want.code || r.body != want.body {
			t.Errorf("PUT %s: %d %s, want %d %s", path, r.code, r.body, want.code, want.body)
		}
	}
	if r := e.do(rc, "DELETE", "/v1/key/version/destroy/minio-v/1", nil); r.code != 409 {
		t.Fatalf("destroy of an active version: %d %s", r.code, r.body)
	}
	if r := e.do(rc, "PUT", "/v1/key/version/retire/minio-v/1", nil); r.code != 200 {
		t.Fatalf("retire: %d %s", r.code, r.body)
	}
	if r := e.do(mc, "PUT", "/v1/key/generate/minio-v", strings.NewReader(`{"version":"1"}`)); r.code != 409 || r.body != errorBody("key version is retired: it can only decrypt") {
		t.Fatalf("generate with a retired version: %d %s", r.code, r.body)
	}
	if _, err := kms.Decrypt(ctx, "minio-v", old.Ciphertext, nil); err != nil {
		t.Fatalf("decrypt with a retired version: %v", err)
	}
	if r := e.do(rc, "DELETE", "/v1/key/version/destroy/minio-v/1", nil); r.code != 200 {
		t.Fatalf("destroy: %d %s", r.code, r.body)
	}
	r := e.do(mc, "PUT", "/v1/key/decrypt/minio-v", strings.NewReader(`{"ciphertext":"`+b64s(old.Ciphertext)+`"}`))
	if r.code != 400 || r.body != errorBody("decryption failed: ciphertext is not authentic") {
		t.Fatalf("decrypt with a destroyed version: %d %s", r.code, r.body)
	}
	apis, err := kms.APIs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, a := range apis {
		switch a.Path {
		case "/v1/key/rotate/", "/v1/key/versions/", "/v1/key/version/retire/", "/v1/key/version/destroy/":
			found++
		}
	}
	if found != 4 {
		t.Fatalf("/v1/api lists %d of the 4 version routes", found)
	}
}

func b64s(b []byte) string {
	s, _ := json.Marshal(b)
	return strings.Trim(string(s), `"`)
}
