// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	kp "github.com/IBM/keyprotect-go-client"

	"github.com/kesbridge/kes/internal/cache"
	emulator "github.com/kesbridge/kes/internal/emulator/hpcs"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/hpcs"
)

// Crypto-shredding through the key service: disabling the HPCS root key
// makes every key unusable within one cache expiry, with the reason
// said; enabling it restores access; deleting it makes the loss
// permanent.
func TestCryptoShredding(t *testing.T) {
	ctx := context.Background()
	em, cfg := startHPCS(t, emulator.Config{AllowEarlyEnable: true})
	root := cfg.RootKeyID
	sealer, err := hpcs.NewSealer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const expiry = 200 * time.Millisecond
	svc := keys.New(keys.Config{
		Store:          keystore.Seal(keystore.NewMem(), sealer, nil),
		Cache:          cache.Config{Expiry: expiry, ExpiryOffline: time.Hour},
		HealthInterval: 50 * time.Millisecond,
	})
	t.Cleanup(func() { svc.Close() })

	if err := svc.Create(ctx, "k", "me"); err != nil {
		t.Fatal(err)
	}
	_, ct, err := svc.Generate(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}

	admin := adminClient(t, em)
	wantReason := func(reason string) {
		t.Helper()
		time.Sleep(3 * expiry) // one cache expiry, with room
		_, err := svc.Decrypt(ctx, "k", ct, nil)
		var ue *keystore.UnavailableError
		if !errors.As(err, &ue) || ue.Reason != reason {
			t.Fatalf("Decrypt: %v, want an unavailable keystore with reason %q", err, reason)
		}
		if _, err := svc.Status(ctx); !errors.As(err, &ue) || ue.Reason != reason {
			t.Fatalf("Status: %v, want reason %q", err, reason)
		}
	}

	if err := admin.DisableKey(authContext(t, em), root); err != nil {
		t.Fatal(err)
	}
	wantReason("root key disabled")

	if err := admin.EnableKey(authContext(t, em), root); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Decrypt(ctx, "k", ct, nil); err != nil {
		t.Fatalf("Decrypt after the root key was enabled again: %v", err)
	}

	if _, err := admin.DeleteKey(authContext(t, em), root, kp.ReturnMinimal); err != nil {
		t.Fatal(err)
	}
	wantReason("root key deleted")
}

func adminClient(t *testing.T, em *emulator.Server) *kp.Client {
	t.Helper()
	c, err := kp.New(kp.ClientConfig{BaseURL: em.URL(), InstanceID: em.InstanceID(), TokenURL: em.TokenURL()},
		&http.Transport{TLSClientConfig: &tls.Config{RootCAs: em.CertPool()}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// authContext fetches an IAM token from the emulator for the admin client.
func authContext(t *testing.T, em *emulator.Server) context.Context {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: em.CertPool()}}, Timeout: 10 * time.Second}
	form := url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {em.APIKey()}}
	resp, err := client.Post(em.TokenURL(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("IAM token: status %d, %v", resp.StatusCode, err)
	}
	return kp.NewContextWithAuth(context.Background(), "Bearer "+tok.AccessToken)
}
