// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/emulator/hpcs"
	"github.com/kesbridge/kes/keystore"
	hpcsstore "github.com/kesbridge/kes/keystore/hpcs"
	"github.com/rogpeppe/go-internal/testscript"
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
		APIKey:      keystore.NewSecret(em.APIKey()),
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

	if n, err := rewrapKeys(ctx, store, "*", ignoreProgress, ignoreProgress); err != nil || n != 0 {
		t.Fatalf("before rotation: rewrapKeys = %d, %v; want 0, nil", n, err)
	}
	if err := rotateRootKey(em, root); err != nil {
		t.Fatal(err)
	}
	if v := em.KeyVersions(root); len(v) != 2 {
		t.Fatalf("root key has %d versions after rotation, want 2", len(v))
	}
	if n, err := rewrapKeys(ctx, store, "*", ignoreProgress, ignoreProgress); err != nil || n != 2 {
		t.Fatalf("after rotation: rewrapKeys = %d, %v; want 2, nil", n, err)
	}
	if n, err := rewrapKeys(ctx, store, "*", ignoreProgress, ignoreProgress); err != nil || n != 0 {
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
func rotateRootKey(em *hpcs.Server, id string) error {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: em.CertPool()}}}
	form := url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {em.APIKey()}}
	resp, err := client.Post(em.TokenURL(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	var token struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&token)
	resp.Body.Close()
	if err != nil || token.AccessToken == "" {
		return fmt.Errorf("IAM token: status %d, %v", resp.StatusCode, err)
	}

	req, err := http.NewRequest(http.MethodPost, em.URL()+"/api/v2/keys/"+id+"/actions/rotate", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token.AccessToken)
	req.Header.Set("bluemix-instance", em.InstanceID())
	req.Header.Set("Content-Type", "application/vnd.ibm.kms.key_action+json")
	resp, err = client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("rotate: %s: %s", resp.Status, body)
	}
	return nil
}

// cmdHPCSEmulator starts an HPCS emulator with a root key for the rest of
// the script and sets what a config needs: HPCS_ENDPOINT,
// HPCS_INSTANCE_ID, HPCS_ROOT_KEY_ID, HPCS_API_KEY and HPCS_CA (a file in
// $WORK). 'hpcsemulator rotate' rotates the root key.
//
//	hpcsemulator [rotate]
func cmdHPCSEmulator(ts *testscript.TestScript, neg bool, args []string) {
	switch {
	case neg || len(args) > 1 || (len(args) == 1 && args[0] != "rotate"):
		ts.Fatalf("usage: hpcsemulator [rotate]")
	case len(args) == 1:
		em, ok := emulators.Load(ts)
		if !ok {
			ts.Fatalf("no HPCS emulator running")
		}
		ts.Check(rotateRootKey(em.(*hpcs.Server), ts.Getenv("HPCS_ROOT_KEY_ID")))
		return
	}
	em, err := hpcs.Start("127.0.0.1:0", hpcs.Config{AllowFrequentRotation: true})
	ts.Check(err)
	ts.Defer(func() { emulators.Delete(ts); em.Close() })
	root, err := em.CreateRootKey("kes-root")
	ts.Check(err)
	ca := ts.MkAbs("hpcs-ca.pem")
	ts.Check(os.WriteFile(ca, em.CAPEM(), 0o644))
	ts.Setenv("HPCS_ENDPOINT", em.URL())
	ts.Setenv("HPCS_INSTANCE_ID", em.InstanceID())
	ts.Setenv("HPCS_ROOT_KEY_ID", root)
	ts.Setenv("HPCS_API_KEY", em.APIKey())
	ts.Setenv("HPCS_CA", ca)
	emulators.Store(ts, em)
}

// Running scripts' emulators, by *testscript.TestScript.
var emulators, kcEmulators sync.Map
