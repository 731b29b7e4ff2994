// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package emutest holds test helpers shared by the emulators' tests and
// the tests of the drivers that run against them.
package emutest

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer safe for concurrent use: a test reads
// with String what a server or driver goroutine writes (logs, the
// output of an emulator's Run). The zero value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ReadEnvFile returns the NAME=value lines of an emulator's env file (see
// package emuenv), and fails t unless the file has mode 0600.
func ReadEnvFile(t testing.TB, path string) map[string]string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("env file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("env file %s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("env file: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("env file: line %q is no assignment", line)
		}
		if len(value) >= 2 && value[0] == '\'' {
			value = strings.ReplaceAll(value[1:len(value)-1], `'\''`, "'")
		}
		env[name] = value
	}
	return env
}
