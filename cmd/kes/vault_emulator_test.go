// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"os"
	"strings"
	"sync"

	emulator "github.com/kesbridge/kes/internal/emulator/vault"
	"github.com/rogpeppe/go-internal/testscript"
)

var vaultEmulators sync.Map // *testscript.TestScript → *emulator.Server

// cmdVaultEmulator starts a HashiCorp Vault emulator (KV v2 engine "kv",
// or KV v1 with 'v1') for the rest of the script and sets what a config
// needs: VAULT_ENDPOINT, VAULT_ROLE_ID, VAULT_SECRET_ID and VAULT_CA.
// 'vaultemulator seed NAME FILE' stores the content of FILE (without
// its final newline) under NAME exactly as minio/kes does: field NAME of
// the entry kes/NAME. 'vaultemulator want PREFIX NAME FILE' checks that
// the entry PREFIX/NAME holds exactly that in field NAME.
//
//	vaultemulator [v1 | seed NAME FILE | want PREFIX NAME FILE]
func cmdVaultEmulator(ts *testscript.TestScript, neg bool, args []string) {
	usage := func() { ts.Fatalf("usage: vaultemulator [v1 | seed NAME FILE | want PREFIX NAME FILE]") }
	switch {
	case neg, len(args) == 1 && args[0] != "v1", len(args) == 2, len(args) == 3 && args[0] != "seed", len(args) == 4 && args[0] != "want", len(args) > 4:
		usage()
	}
	if len(args) >= 3 {
		v, ok := vaultEmulators.Load(ts)
		if !ok {
			ts.Fatalf("no Vault emulator running")
		}
		em := v.(*emulator.Server)
		if args[0] == "seed" {
			ts.Check(em.SeedKV("", "kv", "kes/"+args[1], map[string]any{args[1]: strings.TrimSuffix(ts.ReadFile(args[2]), "\n")}))
			return
		}
		data, _, ok := em.ReadKV("", "kv", args[1]+"/"+args[2])
		if want := strings.TrimSuffix(ts.ReadFile(args[3]), "\n"); !ok || len(data) != 1 || data[args[2]] != want {
			ts.Fatalf("entry %s/%s = %v, want {%q: %q}", args[1], args[2], data, args[2], want)
		}
		return
	}
	version := 2
	if len(args) == 1 {
		version = 1
	}
	em, err := emulator.New(emulator.Config{KV: []emulator.KVMount{{Path: "kv", Version: version}}})
	ts.Check(err)
	ts.Check(em.Start("127.0.0.1:0"))
	ts.Defer(func() { vaultEmulators.Delete(ts); em.Close() })
	ca := ts.MkAbs("vault-ca.pem")
	ts.Check(os.WriteFile(ca, em.CACertPEM(), 0o644))
	a := em.AppRoles()[0]
	ts.Setenv("VAULT_ENDPOINT", em.URL())
	ts.Setenv("VAULT_ROLE_ID", a.RoleID)
	ts.Setenv("VAULT_SECRET_ID", a.SecretID)
	ts.Setenv("VAULT_CA", ca)
	vaultEmulators.Store(ts, em)
}
