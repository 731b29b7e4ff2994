// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystoretest_test

import (
	"context"
	"testing"
	"time"

	hpcsemu "github.com/kesbridge/kes/internal/emulator/hpcs"
	kcemu "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/fs"
	"github.com/kesbridge/kes/keystore/hpcs"
	"github.com/kesbridge/kes/keystore/keycontrol"
	"github.com/kesbridge/kes/keystore/keystoretest"
)

// hpcsSealer starts the HPCS emulator with a root key and returns a
// sealer on it.
func hpcsSealer(t *testing.T) keystore.Sealer {
	t.Helper()
	em, err := hpcsemu.New(hpcsemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	root, err := em.CreateRootKey("kes-root")
	if err != nil {
		t.Fatal(err)
	}
	s, err := hpcs.NewSealer(context.Background(), hpcs.Config{
		Endpoint: em.URL(), InstanceID: em.InstanceID(), RootKeyID: root,
		IAMEndpoint: em.URL(), APIKey: keystore.NewSecret(em.APIKey()), RootCAs: em.CertPool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An fs keystore sealed by an HPCS root key.
func TestSealedFS(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		store, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		s := keystore.Seal(store, hpcsSealer(t), nil)
		t.Cleanup(func() { s.Close() })
		return s
	}, keystoretest.Options{})
}

// KeyControl storage with an HPCS root key: the Entrust DataControl + HPCS
// architecture.
func TestSealedKeyControl(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		em, err := kcemu.New(kcemu.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := em.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { em.Close() })
		store, err := keycontrol.New(context.Background(), keycontrol.Config{
			Endpoint: em.URL(), VaultID: em.VaultID(), BoxID: kcemu.DefaultBox,
			Username: kcemu.DefaultUsername, Password: keystore.NewSecret(em.Password(kcemu.DefaultUsername)),
			RootCAs: em.CertPool(), Timeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		s := keystore.Seal(store, hpcsSealer(t), nil)
		t.Cleanup(func() { s.Close() })
		return s
	}, keystoretest.Options{})
}
