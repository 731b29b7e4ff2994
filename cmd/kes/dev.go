// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kesbridge/kes/internal/emulator/hpcs"
	"github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/internal/emulator/vault"
)

const devUsage = `Usage:
    kes dev <command>

Starts an in-memory emulator of a remote keystore, for local trials of the
server against it. The emulators protect nothing: never store real keys
in them.

Commands:
    keycontrol               Start an Entrust KeyControl (PASM vault) emulator.
    hpcs                     Start an IBM HPCS / Key Protect emulator.
    vault                    Start a HashiCorp Vault / OpenBao emulator.

Options:
    -h, --help               Print command line options.
`

func devCmd(args []string) error {
	return dispatch(map[string]func([]string) error{
		"keycontrol": devKeyControlCmd,
		"hpcs":       devHPCSCmd,
		"vault":      devVaultCmd,
	}, "kes dev", devUsage, args)
}

const devKeyControlUsage = `Usage:
    kes dev keycontrol [options]

Starts an Entrust KeyControl vault emulator and prints what a
keystore.entrust.keycontrol config section needs. Serves until interrupted.

Options:
        --addr IP:PORT       Listen address (default: 127.0.0.1:8443).
        --vault-id ID        Vault UUID (default: a fixed demo UUID).
        --box NAME           Create box NAME (repeatable; default: one box).
        --user NAME:PASSWORD Accept this user (repeatable; default: one user
                             with a random password).
        --token-ttl DURATION Lifetime of access tokens.
        --host NAME          Extra DNS name or IP for the server certificate
                             (repeatable).
        --ca-file FILE       Where to write the CA certificate (default: in
                             the temporary directory).
        --env FILE           Also write the printed values to FILE as
                             KC_ENDPOINT, KC_VAULT_ID, KC_BOX, KC_USER,
                             KC_PASSWORD and KC_CA lines (mode 0600) once
                             the emulator serves, for 'set -a; . FILE;
                             set +a'. Removed when the emulator stops.
    -h, --help               Print command line options.
`

func devKeyControlCmd(args []string) error {
	var (
		addr  string
		cfg   keycontrol.Config
		boxes []string
		users []string
	)
	fs := newFlagSet("kes dev keycontrol")
	fs.StringVar(&addr, "addr", "127.0.0.1:8443", "")
	fs.StringVar(&cfg.VaultID, "vault-id", "", "")
	fs.StringArrayVar(&boxes, "box", nil, "")
	fs.StringArrayVar(&users, "user", nil, "")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", 0, "")
	fs.StringArrayVar(&cfg.Hosts, "host", nil, "")
	fs.StringVar(&cfg.CAFile, "ca-file", "", "")
	fs.StringVar(&cfg.EnvFile, "env", "", "")
	if err := parseFlags(fs, devKeyControlUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	for _, b := range boxes {
		cfg.Boxes = append(cfg.Boxes, keycontrol.Box{Name: b})
	}
	if len(users) > 0 {
		cfg.Users = make(map[string]string, len(users))
		for _, u := range users {
			name, password, ok := strings.Cut(u, ":")
			if !ok || name == "" || password == "" {
				return usagef("kes dev keycontrol: '--user' must be NAME:PASSWORD")
			}
			cfg.Users[name] = password
		}
	}
	ctx, cancel := signalContext()
	defer cancel()
	return ignoreCanceled(keycontrol.Run(ctx, addr, cfg, stdout))
}

const devHPCSUsage = `Usage:
    kes dev hpcs [options]

Starts an IBM HPCS / Key Protect emulator (IAM token endpoint and the Key
Protect API), creates a root key and prints what a keystore config needs.
Serves until interrupted.

Options:
        --addr IP:PORT       Listen address (default: 127.0.0.1:8444).
        --instance-id ID     Service instance GUID (default: random).
        --api-key KEY        Accept this IAM API key (repeatable; default:
                             one random key).
        --key-ring NAME      Create key ring NAME besides 'default'
                             (repeatable).
        --token-ttl DURATION Lifetime of IAM access tokens (default: 1h).
        --allow-frequent-rotation
                             Allow more than one root key rotation per hour.
        --env FILE           Also write the printed values to FILE as
                             HPCS_ENDPOINT, HPCS_IAM_ENDPOINT,
                             HPCS_INSTANCE_ID, HPCS_ROOT_KEY_ID,
                             HPCS_API_KEY and HPCS_CA lines (mode 0600) once
                             the emulator serves, for 'set -a; . FILE;
                             set +a'. Removed when the emulator stops.
    -h, --help               Print command line options.
`

func devHPCSCmd(args []string) error {
	var (
		addr string
		cfg  hpcs.Config
	)
	fs := newFlagSet("kes dev hpcs")
	fs.StringVar(&addr, "addr", "127.0.0.1:8444", "")
	fs.StringVar(&cfg.InstanceID, "instance-id", "", "")
	fs.StringArrayVar(&cfg.APIKeys, "api-key", nil, "")
	fs.StringArrayVar(&cfg.KeyRings, "key-ring", nil, "")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", time.Hour, "")
	fs.BoolVar(&cfg.AllowFrequentRotation, "allow-frequent-rotation", false, "")
	fs.StringVar(&cfg.EnvFile, "env", "", "")
	if err := parseFlags(fs, devHPCSUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	return ignoreCanceled(hpcs.Run(ctx, addr, cfg, stdout))
}

const devVaultUsage = `Usage:
    kes dev vault [options]

Starts a HashiCorp Vault emulator (KV engine, transit, AppRole and
Kubernetes login, tokens, health) and prints the keystore.vault config
section to use. Serves until interrupted.

Options:
        --addr IP:PORT       Listen address, loopback only (default:
                             127.0.0.1:8200).
        --kv-version 1|2     Version of the KV engine 'kv' (default: 2).
        --namespace NAME     Put the engines and logins into namespace
                             NAME (default: the root namespace).
        --token-ttl DURATION Lease of tokens from logins (default: 1h).
        --token-max-ttl DURATION
                             Maximum life of tokens (default: 24h).
        --ca-file FILE       Where to write the CA certificate (default: in
                             the temporary directory).
        --env FILE           Also write the printed values to FILE as
                             VAULT_ENDPOINT, VAULT_ROLE_ID, VAULT_SECRET_ID,
                             VAULT_CA (and VAULT_NAMESPACE) lines (mode
                             0600) once the emulator serves, for 'set -a;
                             . FILE; set +a'. Removed when the emulator
                             stops.
    -h, --help               Print command line options.
`

func devVaultCmd(args []string) error {
	var (
		addr      string
		version   int
		namespace string
		cfg       vault.Config
	)
	fs := newFlagSet("kes dev vault")
	fs.StringVar(&addr, "addr", "127.0.0.1:8200", "")
	fs.IntVar(&version, "kv-version", 2, "")
	fs.StringVar(&namespace, "namespace", "", "")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", vault.DefaultTokenTTL, "")
	fs.DurationVar(&cfg.TokenMaxTTL, "token-max-ttl", vault.DefaultTokenMaxTTL, "")
	fs.StringVar(&cfg.CAFile, "ca-file", "", "")
	fs.StringVar(&cfg.EnvFile, "env", "", "")
	if err := parseFlags(fs, devVaultUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	if version != 1 && version != 2 {
		return usagef("kes dev vault: '--kv-version' must be 1 or 2")
	}
	if namespace != "" {
		cfg.Namespaces = []string{namespace}
	}
	cfg.KV = []vault.KVMount{{Namespace: namespace, Path: vault.DefaultKVMount, Version: version}}
	cfg.Transit = []vault.TransitMount{{Namespace: namespace, Path: vault.DefaultTransitMount, Keys: []string{vault.DefaultTransitKey}}}
	ctx, cancel := signalContext()
	defer cancel()
	return ignoreCanceled(vault.Run(ctx, addr, cfg, stdout))
}

// ignoreCanceled treats the end of a server by interruption as success.
func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
