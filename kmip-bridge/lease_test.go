// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovh/kmip-go"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
)

// notLinearizable is a store whose Replace is declared exact only within
// one process, as KeyControl's is: the key service takes leases on it.
type notLinearizable struct{ keystore.Store }

func (notLinearizable) Capabilities() keystore.Capabilities { return keystore.Capabilities{} }

// A lifecycle change of a key whose lease another node holds fails with
// a message that says to try again, once the operation's time is up;
// Locate never shows the lease record.
func TestLeasedKey(t *testing.T) {
	store := notLinearizable{keystore.NewMem()}
	ks := keys.New(keys.Config{Store: store})
	t.Cleanup(func() { ks.Close() })
	e := newEnv(t, func(cfg *Config) {
		cfg.Keys = ks
		cfg.ReadTimeout = time.Second
	})
	c := e.dial(e.client)
	ctx := context.Background()
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier

	// Another node holds the lease: its record, as internal/keys names it.
	h := sha256.Sum256([]byte(id))
	lease := keys.LeasePrefix + hex.EncodeToString(h[:16]) + "-0"
	value := `{"key":"` + id + `","holder":"other","expires":"` + time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano) + `"}`
	if err := store.Create(ctx, lease, []byte(value)); err != nil {
		t.Fatal(err)
	}
	p, _ := c.Activate(id).Build()
	br, err := c.Batch(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, br[0], kmip.ResultReasonGeneralFailure)
	if !strings.Contains(br[0].ResultMessage, "busy") {
		t.Fatalf("activate of a leased key: %q", br[0].ResultMessage)
	}

	loc := c.Locate().MustExec()
	if !slices.Equal(loc.UniqueIdentifier, []string{id}) {
		t.Fatalf("locate: %v", loc.UniqueIdentifier)
	}

	// The holder releases: the change goes through.
	if err := store.Delete(ctx, lease); err != nil {
		t.Fatal(err)
	}
	c.Activate(id).MustExec()
}
