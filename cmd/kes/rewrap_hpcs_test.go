// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/emulator/hpcs"
	hpcsstore "github.com/kesbridge/kes/keystore/hpcs"
)

// TestRewrapHPCS re-wraps the keys of a real HPCS store, backed by the
// emulator, after its root key was rotated: rewrapKeys finds the store's
// own Rewrap method.
func TestRewrapHPCS(t *testing.T) {
	em, err := hpcs.Start("127.0.0.1:0", hpcs.Config{AllowFrequentRotation: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	root, err := em.CreateRootKey("kes-root")
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	store, err := hpcsstore.NewStore(ctx, hpcsstore.Config{
		Endpoint:    em.URL(),
		InstanceID:  em.InstanceID(),
		RootKeyID:   root,
		IAMEndpoint: em.URL(),
		APIKey:      em.APIKey(),
		RootCAs:     em.CertPool(),
		Timeout:     10 * time.Second,
	})
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	for _, name := range []string{"key-1", "key-2"} {
		if err := store.Create(ctx, name, []byte("value of "+name)); err != nil {
			t.Fatalf("Create %s: %v", name, err)
		}
	}

	if n, err := rewrapKeys(ctx, store, "*"); err != nil || n != 0 {
		t.Fatalf("before rotation: rewrapKeys = %d, %v; want 0, nil", n, err)
	}
	rotateRootKey(t, em, root)
	if n, err := rewrapKeys(ctx, store, "*"); err != nil || n != 2 {
		t.Fatalf("after rotation: rewrapKeys = %d, %v; want 2, nil", n, err)
	}
	if n, err := rewrapKeys(ctx, store, "*"); err != nil || n != 0 {
		t.Fatalf("second rewrap: rewrapKeys = %d, %v; want 0, nil", n, err)
	}
	for _, name := range []string{"key-1", "key-2"} {
		v, err := store.Get(ctx, name)
		if err != nil || string(v) != "value of "+name {
			t.Fatalf("Get %s after rewrap: %q, %v", name, v, err)
		}
	}
}

// rotateRootKey rotates a root key through the Key Protect API, as an
// operator would.
func rotateRootKey(t *testing.T, em *hpcs.Server, id string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: em.CertPool()}}}
	form := url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {em.APIKey()}}
	resp, err := client.Post(em.TokenURL(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var token struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&token)
	resp.Body.Close()
	if err != nil || token.AccessToken == "" {
		t.Fatalf("IAM token: status %d, %v", resp.StatusCode, err)
	}

	req, err := http.NewRequest(http.MethodPost, em.URL()+"/api/v2/keys/"+id+"/actions/rotate", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token.AccessToken)
	req.Header.Set("bluemix-instance", em.InstanceID())
	req.Header.Set("Content-Type", "application/vnd.ibm.kms.key_action+json")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("rotate: %s: %s", resp.Status, body)
	}
	if v := em.KeyVersions(id); len(v) != 2 {
		t.Fatalf("root key has %d versions after rotation, want 2", len(v))
	}
}
