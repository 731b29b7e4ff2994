// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"os"
	"strconv"

	"github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/rogpeppe/go-internal/testscript"
)

// cmdKCEmulator starts an Entrust KeyControl emulator for the rest of the
// script and sets what a config needs: KC_ENDPOINT, KC_VAULT_ID, KC_BOX,
// KC_USER, KC_PASSWORD and KC_CA (a file in $WORK).
// 'kcemulator fail ACTION N STATUS' makes the next N requests for ACTION
// fail with STATUS; N = 0 ends that.
//
//	kcemulator [fail ACTION N STATUS]
func cmdKCEmulator(ts *testscript.TestScript, neg bool, args []string) {
	if neg || (len(args) != 0 && (len(args) != 4 || args[0] != "fail")) {
		ts.Fatalf("usage: kcemulator [fail ACTION N STATUS]")
	}
	if len(args) == 4 {
		v, ok := kcEmulators.Load(ts)
		if !ok {
			ts.Fatalf("no KeyControl emulator running")
		}
		n, err := strconv.Atoi(args[2])
		ts.Check(err)
		status, err := strconv.Atoi(args[3])
		ts.Check(err)
		em := v.(*keycontrol.Server)
		em.SetFaultFilter(args[1])
		em.FailNext(n, status)
		return
	}
	em, err := keycontrol.New(keycontrol.Config{Users: map[string]string{"kes": "kc-test-password"}})
	ts.Check(err)
	ts.Check(em.Start("127.0.0.1:0"))
	ts.Defer(func() { kcEmulators.Delete(ts); em.Close() })
	ca := ts.MkAbs("kc-ca.pem")
	ts.Check(os.WriteFile(ca, em.CACertPEM(), 0o644))
	ts.Setenv("KC_ENDPOINT", em.URL())
	ts.Setenv("KC_VAULT_ID", em.VaultID())
	ts.Setenv("KC_BOX", keycontrol.DefaultBox)
	ts.Setenv("KC_USER", "kes")
	ts.Setenv("KC_PASSWORD", "kc-test-password")
	ts.Setenv("KC_CA", ca)
	kcEmulators.Store(ts, em)
}
