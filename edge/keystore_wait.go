// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
)

// openKeystore opens the keystore of a new state. At start, with
// WaitKeystore, a keystore that cannot be reached or refuses service is
// no reason to exit: the server starts with a keystore.BackgroundStore
// that keeps connecting and answers 503 until it has. Errors that no
// retry can fix (a missing CA file, an invalid endpoint) still fail. A
// reload never waits: it keeps the running keystore instead.
func (s *Server) openKeystore(ctx context.Context, cfg *Config, initial bool) (keystore.Store, *keystore.BackgroundStore, error) {
	store, err := s.opts.OpenStore(ctx, cfg, s.errLog)
	if err == nil {
		return store, nil, nil
	}
	if !initial || !s.opts.WaitKeystore || !(keystore.IsUnreachable(err) || keystore.IsUnavailable(err)) {
		return nil, nil, err
	}
	s.errLog.Warn("keystore is not available at start: serving 503 until it is", "keystore", driverName(cfg), "err", err)
	bg := keystore.OpenInBackground(keystore.BackgroundConfig{
		Name:    driverName(cfg),
		LastErr: err,
		Open: func(ctx context.Context) (keystore.Store, error) {
			return s.opts.OpenStore(ctx, cfg, s.errLog)
		},
		MinDelay: s.opts.KeystoreRetry,
		Logger:   s.errLog,
	})
	return bg, bg, nil
}

// createKeysWhenConnected creates the configured keys once bg has
// connected; it gives up when the state is closed first.
func (s *Server) createKeysWhenConnected(svc *keys.Service, bg *keystore.BackgroundStore, cfg *Config) {
	if len(cfg.Keys) == 0 || bg.Wait(context.Background()) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range cfg.Keys {
		if err := svc.Create(ctx, name, string(cfg.Admin)); err != nil && !errors.Is(err, keys.ErrKeyExists) {
			s.errLog.Error("failed to create configured key", "key", name, "err", err)
		}
	}
}

// driverName is the keystore section's driver in lower case ("fs",
// "keycontrol", "hpcs", "pkcs11", "mem"): the one set pointer field of
// KeystoreConfig, so that a new driver gets its name without a change
// here.
func driverName(cfg *Config) string {
	v := reflect.ValueOf(cfg.Keystore)
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() && v.Type().Field(i).IsExported() {
			return strings.ToLower(v.Type().Field(i).Name)
		}
	}
	if cfg.Keystore.mem {
		return "mem"
	}
	return "unknown"
}
