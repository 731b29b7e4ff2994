// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"aead.dev/minisign"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary act as the kes command in scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kes": func() { os.Exit(run(os.Args[1:])) },
	})
}

// TestScript runs the terminal sessions in testdata/*.txtar.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:   "testdata",
		Setup: setupScript,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"kesserver":     cmdKESServer,
			"perm":          cmdPerm,
			"getjson":       cmdGetJSON,
			"wantjson":      cmdWantJSON,
			"softhsm":       cmdSoftHSM,
			"hpcsemulator":  cmdHPCSEmulator,
			"kcemulator":    cmdKCEmulator,
			"makerun":       cmdMakeRun,
			"readmetry":     cmdReadmeTry,
			"vaultemulator": cmdVaultEmulator,
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "server":
				return haveServer, nil
			case "cgo":
				return haveCgo, nil
			case "softhsm":
				_, err := exec.LookPath("softhsm2-util")
				if err == nil {
					_, err = os.Stat(softhsmModule)
				}
				return err == nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		RequireUniqueNames: true,
	})
}

// setupScript provides signed update files for the update scripts:
// $WORK/update/kes-new with a valid signature by $MINISIGN_KEY, a copy
// with one byte changed and the original signature (kes-tampered), and a
// file signed by another key (kes-other). The private keys never leave
// this function.
func setupScript(env *testscript.Env) error {
	// Under -race every exited command would sleep a second (the race
	// runtime's atexit_sleep_ms): scripts exec kes many times.
	env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))

	dir := filepath.Join(env.WorkDir, "update")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	_, otherPriv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	bin := []byte("#!/bin/sh\necho 'kes, new version'\n")
	tampered := append([]byte(nil), bin...)
	tampered[len(tampered)-2] ^= 0x01

	files := map[string][]byte{
		"kes-new":              bin,
		"kes-new.minisig":      minisign.Sign(priv, bin),
		"kes-tampered":         tampered,
		"kes-tampered.minisig": minisign.Sign(priv, bin),
		"kes-other":            bin,
		"kes-other.minisig":    minisign.Sign(otherPriv, bin),
		"kes-nosig":            bin,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	pubText, _ := pub.MarshalText() // with the "untrusted comment" line of a .pub file
	if err := os.WriteFile(filepath.Join(dir, "minisign.pub"), pubText, 0o644); err != nil {
		return err
	}
	env.Setenv("MINISIGN_KEY", pub.String())
	return nil
}

// cmdPerm checks the permission bits of a file: perm FILE 0600.
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	if err != nil {
		ts.Fatalf("invalid mode %q", args[1])
	}
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	got := fi.Mode().Perm()
	if (got == os.FileMode(want)) == neg {
		ts.Fatalf("%s has mode %s (%#o), want %s%#o", args[0], got, uint32(got), map[bool]string{true: "not ", false: ""}[neg], want)
	}
	fmt.Fprintf(ts.Stdout(), "%#o\n", uint32(got))
}

// cmdGetJSON sets an environment variable to a string field of the JSON
// object on the last command's stdout: getjson VAR FIELD.
func cmdGetJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: getjson VAR FIELD")
	}
	ts.Setenv(args[0], jsonField(ts, args[1]))
}

// cmdWantJSON checks a string field of the JSON object on the last
// command's stdout: wantjson FIELD VALUE. Unlike a stdout regexp it
// compares base64 values literally.
func cmdWantJSON(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: wantjson FIELD VALUE")
	}
	if got := jsonField(ts, args[0]); (got == args[1]) == neg {
		ts.Fatalf("field %q is %q; want %s%q", args[0], got, map[bool]string{true: "not ", false: ""}[neg], args[1])
	}
}

func jsonField(ts *testscript.TestScript, field string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &m); err != nil {
		ts.Fatalf("stdout is not a JSON object: %v", err)
	}
	v, ok := m[field].(string)
	if !ok {
		ts.Fatalf("stdout has no string field %q", field)
	}
	return v
}

// softhsmModule is where Debian's softhsm2 package installs the module.
const softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"

// cmdSoftHSM initialises a SoftHSM2 token with PIN 1234 in $WORK and
// points SOFTHSM2_CONF at it for the commands that follow:
//
//	softhsm LABEL
func cmdSoftHSM(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: softhsm LABEL")
	}
	tokens := ts.MkAbs("softhsm-tokens")
	ts.Check(os.MkdirAll(tokens, 0o700))
	conf := ts.MkAbs("softhsm2.conf")
	ts.Check(os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600))
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", args[0], "--pin", "1234", "--so-pin", "123456")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		ts.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	ts.Setenv("SOFTHSM2_CONF", conf)
}
