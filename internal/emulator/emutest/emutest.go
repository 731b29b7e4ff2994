// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package emutest holds test helpers shared by the emulators' tests and
// the tests of the drivers that run against them.
package emutest

import (
	"bytes"
	"sync"
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
