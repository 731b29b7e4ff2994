// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package fs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// crashHelperEnv selects the writer mode of the test binary: it names the
// directory the child writes keys to until it is killed.
const crashHelperEnv = "KES_FS_CRASH_HELPER_DIR"

// crashKeys are the names the writer works on; few, so that every name
// sees creates, replaces and deletes in each round.
var crashKeys = []string{"k0", "k1", "k2", "k3", "k4", "k5"}

// TestCrashHelper is the child side of TestCrash. Run without the
// environment variable it does nothing.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestCrash")
	}
	if err := crashWriter(dir, os.Stdout); err != nil {
		fmt.Fprintf(os.Stdout, "E %v\n", err)
		os.Exit(3)
	}
}

// crashWriter creates, replaces and deletes keys in dir until the process
// is killed. Before each call it prints "I <op> <name> <value>" and after
// each successful call "A"; each line is one write of less than PIPE_BUF
// bytes, so the parent reads whole lines only.
func crashWriter(dir string, out io.Writer) error {
	ctx := context.Background()
	s, err := New(dir)
	if err != nil {
		return err
	}
	state := map[string][]byte{}
	for _, name := range crashKeys {
		v, err := s.Get(ctx, name)
		if errors.Is(err, keystore.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		state[name] = v
	}
	for {
		name := crashKeys[mathrand.IntN(len(crashKeys))]
		old, exists := state[name]
		id := crashID()
		value := crashValue(id)
		var op string
		switch {
		case !exists:
			op = "C"
		case mathrand.IntN(2) == 0:
			op = "R"
		default:
			op = "D"
		}
		fmt.Fprintf(out, "I %s %s %s\n", op, name, id)
		switch op {
		case "C":
			err = s.Create(ctx, name, value)
			state[name] = value
		case "R":
			err = s.Replace(ctx, name, old, value)
			state[name] = value
		case "D":
			err = s.Delete(ctx, name)
			delete(state, name)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", op, name, err)
		}
		io.WriteString(out, "A\n")
	}
}

// crashID makes every written value unique, so that finding a value in a
// file says which write it came from.
func crashID() string {
	var r [16]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// crashValue is the value written for id: a few KiB, like a stored key,
// and only the id goes through the pipe.
func crashValue(id string) []byte {
	return []byte(id + strings.Repeat("x", 4096))
}

// crashOp is one call of the writer, acknowledged or not.
type crashOp struct {
	op, name string
	value    []byte
}

// TestCrash kills a writing process at random moments and checks after
// every kill that no acknowledged write is lost, that no file holds a
// value that was acknowledged as deleted or replaced, and that opening
// the store leaves nothing but key files in the directory.
func TestCrash(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "" {
		t.Skip("running as the helper")
	}
	if testing.Short() {
		t.Skip("kills child processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := mathrand.New(mathrand.NewPCG(uint64(seed), 0))

	dir := t.TempDir()
	model := map[string][]byte{} // acknowledged state
	dead := map[string]bool{}    // values acknowledged as deleted or replaced
	cutOff, temps := 0, 0        // how often a kill hit a call, and left a temporary file
	defer func() { t.Logf("%d of 20 kills hit a call, %d temporary files left by them", cutOff, temps) }()
	for round := range 20 {
		cmd := exec.Command(exe, "-test.run=^TestCrashHelper$", "-test.count=1", "-test.timeout=1m")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A failing check must not leave the writer running.
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		// Buffered, so that the writer never waits for the pipe: it
		// must be killed in the middle of its work.
		lines := make(chan string, 1<<14)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(nil, 1<<16)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()

		var pending *crashOp
		apply := func(line string) {
			switch {
			case strings.HasPrefix(line, "I "):
				f := strings.SplitN(line, " ", 4)
				pending = &crashOp{op: f[1], name: f[2], value: crashValue(f[3])}
			case line == "A":
				if pending == nil {
					t.Fatalf("round %d: acknowledgement without a call", round)
				}
				applyOp(model, dead, *pending)
				pending = nil
			case strings.HasPrefix(line, "E "):
				t.Fatalf("round %d: writer failed: %s", round, line)
			}
		}
		// Kill after the writer has made some progress, at a random
		// moment within its next few writes.
		acks := 0
		for acks < 3 {
			line, ok := <-lines
			if !ok {
				t.Fatalf("round %d: writer exited early: %v", round, cmd.Wait())
			}
			apply(line)
			if line == "A" {
				acks++
			}
		}
		time.Sleep(time.Duration(rng.IntN(30_000)) * time.Microsecond)
		cmd.Process.Signal(os.Kill)
		for line := range lines {
			apply(line)
		}
		cmd.Wait()
		if pending != nil {
			cutOff++
		}

		// Before the store is opened again: nothing that was
		// acknowledged as gone may be readable from any file.
		for _, name := range dirFiles(t, dir) {
			if strings.HasPrefix(name, ".tmp-") {
				temps++
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if dead[string(b)] {
				t.Fatalf("round %d: file %s holds a value that was deleted or replaced", round, name)
			}
		}

		s, err := New(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range dirFiles(t, dir) {
			if checkName(name) != nil {
				t.Errorf("round %d: %s left in the directory after Open", round, name)
			}
		}
		for _, name := range crashKeys {
			got, err := s.Get(context.Background(), name)
			if errors.Is(err, keystore.ErrKeyNotFound) {
				got, err = nil, nil
			}
			if err != nil {
				t.Fatal(err)
			}
			want, exists := model[name]
			if pending != nil && pending.name == name && !sameState(got, want, exists) {
				// The call was cut off: it may have happened.
				applyOp(model, dead, *pending)
				want, exists = model[name]
			}
			if !sameState(got, want, exists) {
				t.Fatalf("round %d: key %s holds %.32q, want %.32q (exists %v)", round, name, got, want, exists)
			}
		}
		s.Close()
		if t.Failed() {
			return
		}
	}
}

func applyOp(model map[string][]byte, dead map[string]bool, op crashOp) {
	if old, ok := model[op.name]; ok && op.op != "C" {
		dead[string(old)] = true
	}
	if op.op == "D" {
		delete(model, op.name)
	} else {
		model[op.name] = op.value
	}
}

func sameState(got, want []byte, exists bool) bool {
	if !exists {
		return got == nil
	}
	return got != nil && bytes.Equal(got, want)
}

// dirFiles returns the names of all entries of dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
