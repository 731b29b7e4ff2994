// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"context"
	"testing"
	"time"

	hpcsemu "github.com/kesbridge/kes/internal/emulator/hpcs"
	kcemu "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/hpcs"
	"github.com/kesbridge/kes/keystore/keycontrol"
)

// startKeyControlEmulator starts the KeyControl emulator on loopback and
// stops it when the test ends.
func startKeyControlEmulator(tb testing.TB, cfg kcemu.Config) *kcemu.Server {
	tb.Helper()
	emu, err := kcemu.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { emu.Close() })
	return emu
}

// keyControlStore opens the KeyControl driver on the emulator's box, with
// short timeouts and retry delays for tests.
func keyControlStore(tb testing.TB, emu *kcemu.Server) *keycontrol.Store {
	tb.Helper()
	store, err := keycontrol.New(context.Background(), keycontrol.Config{
		Endpoint:      emu.URL(),
		VaultID:       emu.VaultID(),
		BoxID:         kcemu.DefaultBox,
		Username:      kcemu.DefaultUsername,
		Password:      keystore.NewSecret(emu.Password(kcemu.DefaultUsername)),
		RootCAs:       emu.CertPool(),
		Timeout:       time.Second,
		RetryDelay:    10 * time.Millisecond,
		MaxRetryDelay: 200 * time.Millisecond,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return store
}

// startHPCS starts the HPCS emulator with a root key, and returns it with
// a driver config that points at it.
func startHPCS(tb testing.TB, cfg hpcsemu.Config) (*hpcsemu.Server, hpcs.Config) {
	tb.Helper()
	em, err := hpcsemu.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { em.Close() })
	root, err := em.CreateRootKey("kes-root")
	if err != nil {
		tb.Fatal(err)
	}
	return em, hpcs.Config{
		Endpoint:    em.URL(),
		InstanceID:  em.InstanceID(),
		RootKeyID:   root,
		IAMEndpoint: em.URL(),
		APIKey:      keystore.NewSecret(em.APIKey()),
		RootCAs:     em.CertPool(),
	}
}
