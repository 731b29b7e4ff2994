// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// countingWriter records each Write it gets.
type countingWriter struct {
	mu     sync.Mutex
	writes [][]byte
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *countingWriter) all() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, p := range w.writes {
		b.Write(p)
	}
	return b.String(), len(w.writes)
}

func TestAuditWriterFlushesAfterDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &countingWriter{}
		a := newAuditWriter(out)
		for i := range 3 {
			fmt.Fprintf(a, "record %d\n", i)
		}
		time.Sleep(auditFlushDelay - time.Millisecond)
		synctest.Wait()
		if s, n := out.all(); n != 0 {
			t.Fatalf("written before the flush delay: %q", s)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		s, n := out.all()
		if want := "record 0\nrecord 1\nrecord 2\n"; s != want || n != 1 {
			t.Fatalf("after the delay: %d writes %q, want one write %q", n, s, want)
		}
		// The next record arms the timer again.
		fmt.Fprintf(a, "record 3\n")
		time.Sleep(auditFlushDelay)
		synctest.Wait()
		if s, n := out.all(); n != 2 || !strings.HasSuffix(s, "record 3\n") {
			t.Fatalf("second record: %d writes %q", n, s)
		}
		a.Close()
	})
}

func TestAuditWriterBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &countingWriter{}
		a := newAuditWriter(out)
		rec := strings.Repeat("x", 999) + "\n"
		var want strings.Builder
		for range 3 * auditBufferSize / len(rec) {
			a.Write([]byte(rec))
			want.WriteString(rec)
		}
		_, n := out.all()
		if n < 2 {
			t.Fatalf("%d writes of %d bytes: the buffer is not bounded", n, want.Len())
		}
		for _, w := range out.writes {
			if len(w) > auditBufferSize {
				t.Fatalf("a write of %d bytes, more than the buffer's %d", len(w), auditBufferSize)
			}
		}
		// A record larger than the buffer goes out whole, after the
		// ones before it.
		big := strings.Repeat("y", auditBufferSize+1) + "\n"
		a.Write([]byte(big))
		want.WriteString(big)
		a.Close()
		if s, _ := out.all(); s != want.String() {
			t.Fatalf("records lost or out of order: got %d bytes, want %d", len(s), want.Len())
		}
	})
}

func TestAuditWriterClosedWritesAtOnce(t *testing.T) {
	out := &countingWriter{}
	a := newAuditWriter(out)
	a.Write([]byte("before\n"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if s, _ := out.all(); s != "before\n" {
		t.Fatalf("close did not flush: %q", s)
	}
	a.Write([]byte("after\n"))
	if s, _ := out.all(); s != "before\nafter\n" {
		t.Fatalf("a record after close was held back: %q", s)
	}
}

// A server whose audit log is a file buffers it, and Shutdown writes out
// what is buffered; other writers get each record at once.
func TestAuditFileFlushedOnShutdown(t *testing.T) {
	p := newPKI(t)
	admin := newAPIKey(t)
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(baseConfig(p, identityOf(admin), identityOf(newAPIKey(t)), "log:\n  audit: on\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	f, err := os.Create(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv, err := NewServer(context.Background(), cfg, ServerOptions{Stdout: f})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.auditOut.(*auditWriter); !ok {
		t.Fatalf("the audit log to a file is not buffered: %T", srv.auditOut)
	}
	srv.auditEntry("api call", "PUT", "/v1/key/create/flushed", nil, identityOf(admin), 200, "", time.Millisecond)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "req.path=/v1/key/create/flushed ") {
		t.Fatalf("audit record lost at shutdown: %q", b)
	}

	var buf syncBuffer
	srv2, err := NewServer(context.Background(), cfg, ServerOptions{Stdout: &buf})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Shutdown(context.Background())
	srv2.auditEntry("api call", "PUT", "/v1/key/create/direct", nil, identityOf(admin), 200, "", time.Millisecond)
	if !strings.Contains(buf.String(), "req.path=/v1/key/create/direct ") {
		t.Fatalf("audit record to a writer that is no file was held back: %q", buf.String())
	}
}
