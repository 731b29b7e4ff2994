// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"

	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/fs"
	"github.com/kesbridge/kes/keystore/hpcs"
	"github.com/kesbridge/kes/keystore/keycontrol"
	"github.com/kesbridge/kes/keystore/pkcs11"
	"github.com/kesbridge/kes/keystore/vault"
)

// OpenKeystore connects to the keystore of cfg and, if cfg has a seal
// section, wraps it with the sealer. The caller owns the store and must
// Close it. log receives the drivers' background messages; nil discards
// them.
func OpenKeystore(ctx context.Context, cfg *Config, log *slog.Logger) (keystore.Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, err := openStore(ctx, &cfg.Keystore, log)
	if err != nil {
		return nil, err
	}
	if cfg.Seal == nil {
		return store, nil
	}
	sealer, err := openSealer(ctx, cfg.Seal, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	return keystore.Seal(store, sealer, log), nil
}

func openStore(ctx context.Context, k *KeystoreConfig, log *slog.Logger) (keystore.Store, error) {
	switch {
	case k.mem:
		return keystore.NewMem(), nil
	case k.FS != nil:
		s, err := fs.New(k.FS.Path)
		if err != nil {
			return nil, fmt.Errorf("failed to open keystore: %w", err)
		}
		return s, nil
	case k.KeyControl != nil:
		c := k.KeyControl
		roots, err := rootCAs(c.CAFile)
		if err != nil {
			return nil, err
		}
		s, err := keycontrol.New(ctx, keycontrol.Config{
			Endpoint: c.Endpoint, VaultID: c.VaultID, BoxID: c.BoxID,
			Username: c.Username, Password: c.Password,
			RootCAs: roots, Logger: log, TokenObserver: k.tokens,
		})
		if err != nil {
			return nil, fmt.Errorf("failed to connect to Entrust KeyControl: %w", err)
		}
		return s, nil
	case k.HPCS != nil:
		cfg, err := hpcsConfig(k.HPCS, log)
		if err != nil {
			return nil, err
		}
		cfg.TokenObserver = k.tokens
		s, err := hpcs.NewStore(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("failed to connect to IBM HPCS: %w", err)
		}
		return s, nil
	case k.Vault != nil:
		return openVault(ctx, k.Vault, k.tokens, log)
	case k.PKCS11 != nil:
		// Checked again here, not only at load: dlopen of a FIFO blocks.
		if err := checkPath("keystore.pkcs11.module", k.PKCS11.Module, false); err != nil {
			return nil, err
		}
		s, err := pkcs11.NewStore(ctx, pkcs11Config(k.PKCS11, log))
		if err != nil {
			return nil, fmt.Errorf("failed to open PKCS#11 keystore: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("no keystore specified")
	}
}

// openVault connects to the keystore.vault section's Vault.
func openVault(ctx context.Context, v *VaultConfig, tokens keystore.TokenObserver, log *slog.Logger) (keystore.Store, error) {
	if v.LegacyRetry {
		log.Warn("keystore.vault: 'approle.retry' and 'kubernetes.retry' are deprecated and have no effect: the server retries logins with backoff by itself")
	}
	roots, err := rootCAs(v.CAFile)
	if err != nil {
		return nil, err
	}
	cfg := vault.Config{
		Endpoint: v.Endpoint, Engine: v.Engine, Version: v.Version, Namespace: v.Namespace, Prefix: v.Prefix,
		RootCAs: roots, StatusPing: v.StatusPing, Logger: log, TokenObserver: tokens,
	}
	if a := v.AppRole; a != nil {
		cfg.AppRole = &vault.AppRole{Engine: a.Engine, Namespace: a.Namespace, ID: a.ID, Secret: a.Secret}
	}
	if k := v.Kubernetes; k != nil {
		cfg.Kubernetes = &vault.Kubernetes{Engine: k.Engine, Namespace: k.Namespace, Role: k.Role, JWT: k.JWT}
	}
	if v.TransitKey != "" {
		cfg.Transit = &vault.Transit{Engine: v.TransitEngine, Key: v.TransitKey}
	}
	if v.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(v.CertFile, v.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("keystore.vault.tls: failed to load the client certificate: %w", err)
		}
		cfg.ClientCert = &cert
	}
	s, err := vault.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to Hashicorp Vault: %w", err)
	}
	return s, nil
}

func openSealer(ctx context.Context, s *SealConfig, log *slog.Logger) (keystore.Sealer, error) {
	switch {
	case s.HPCS != nil:
		cfg, err := hpcsConfig(s.HPCS, log)
		if err != nil {
			return nil, err
		}
		sealer, err := hpcs.NewSealer(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("failed to connect to the IBM HPCS sealer: %w", err)
		}
		return sealer, nil
	case s.PKCS11 != nil:
		if err := checkPath("seal.pkcs11.module", s.PKCS11.Module, false); err != nil {
			return nil, err
		}
		sealer, err := pkcs11.NewSealer(ctx, pkcs11Config(s.PKCS11, log))
		if err != nil {
			return nil, fmt.Errorf("failed to open PKCS#11 sealer: %w", err)
		}
		return sealer, nil
	default:
		return nil, fmt.Errorf("no sealer specified")
	}
}

func hpcsConfig(h *HPCSConfig, log *slog.Logger) (hpcs.Config, error) {
	roots, err := rootCAs(h.CAFile)
	if err != nil {
		return hpcs.Config{}, err
	}
	return hpcs.Config{
		Endpoint: h.Endpoint, InstanceID: h.InstanceID, RootKeyID: h.RootKeyID, KeyRing: h.KeyRing,
		IAMEndpoint: h.IAMEndpoint, APIKey: h.APIKey, RootCAs: roots, Logger: log,
	}, nil
}

func pkcs11Config(p *PKCS11Config, log *slog.Logger) pkcs11.Config {
	return pkcs11.Config{
		Module: p.Module, TokenLabel: p.Token, PIN: p.PIN, RootKeyLabel: p.RootKey,
		CreateRootKey: p.CreateRootKey, PreviousRootKeyLabels: p.PreviousRootKeys, Dir: p.Store, Logger: log,
	}
}

// rootCAs returns nil (the system roots) for an empty path.
func rootCAs(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	return loadCAs(path)
}
