// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"io"
	"os"
	"sync"
	"time"
)

// Audit buffering. Written one record at a time, the audit log costs a
// write system call per request, and with many requests at once they
// queue on the file's lock: at 64 concurrent requests that was 15 % of
// the server's CPU. So records to a file or pipe are gathered in a
// bounded buffer and written together: when the buffer is full, at the
// latest auditFlushDelay after the first record in it, at Reload and at
// Shutdown.
//
// The trade-off: a process that dies without shutting down (SIGKILL, an
// out-of-memory kill, a fatal runtime error) loses the records of its
// last auditFlushDelay, at most auditBufferSize bytes. Records written
// unbuffered are not synced to disk either, so after a power loss the
// difference is small; operators who need every record before the answer
// goes out should send the audit log to a collector, not rely on a file.
const (
	auditFlushDelay = 50 * time.Millisecond
	auditBufferSize = 64 << 10
)

// auditWriter is the buffered audit output. It is safe for concurrent
// use; each Write is one record (slog handlers write a record at once),
// and records are written in the order they were made.
type auditWriter struct {
	out io.Writer

	wmu sync.Mutex // held while writing to out: keeps flushes in order

	mu     sync.Mutex
	buf    []byte
	spare  []byte // the other buffer, written out while buf fills
	timer  *time.Timer
	armed  bool
	closed bool // after Close every record is written at once
}

// newAuditOutput returns what the audit log writes to: w itself, unless w
// is a file or pipe, whose writes are system calls; that gets a buffer.
// Other writers (an embedder's, a test's) see each record at once.
func newAuditOutput(w io.Writer) io.Writer {
	if _, ok := w.(*os.File); !ok {
		return w
	}
	return newAuditWriter(w)
}

func newAuditWriter(w io.Writer) *auditWriter {
	a := &auditWriter{out: w}
	a.timer = time.AfterFunc(time.Hour, func() { a.Flush() })
	a.timer.Stop()
	return a
}

// Write buffers one record. A record that does not fit what is left of
// the buffer first flushes it; a record larger than the whole buffer is
// written at once.
func (a *auditWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	if a.closed || len(p) > auditBufferSize {
		a.mu.Unlock()
		if err := a.Flush(); err != nil {
			return 0, err
		}
		a.wmu.Lock()
		defer a.wmu.Unlock()
		return a.out.Write(p)
	}
	for len(a.buf)+len(p) > auditBufferSize {
		a.mu.Unlock()
		a.Flush()
		a.mu.Lock()
	}
	a.buf = append(a.buf, p...)
	if !a.armed {
		a.armed = true
		a.timer.Reset(auditFlushDelay)
	}
	a.mu.Unlock()
	return len(p), nil
}

// Flush writes what is buffered. A failed write loses those records, as
// a failed unbuffered write would: slog does not retry either.
func (a *auditWriter) Flush() error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.mu.Lock()
	b := a.buf
	a.buf, a.spare = a.spare[:0], nil
	if a.armed {
		a.armed = false
		a.timer.Stop()
	}
	a.mu.Unlock()
	if len(b) == 0 {
		a.putSpare(b)
		return nil
	}
	_, err := a.out.Write(b)
	clear(b) // audit records hold no secrets, but need not linger either
	a.putSpare(b)
	return err
}

func (a *auditWriter) putSpare(b []byte) {
	a.mu.Lock()
	if a.spare == nil && cap(b) <= auditBufferSize {
		a.spare = b[:0]
	}
	a.mu.Unlock()
}

// Close flushes the buffer; records after it are written unbuffered.
func (a *auditWriter) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	return a.Flush()
}

// flushAudit flushes the audit buffer, if the audit log has one.
func (s *Server) flushAudit() {
	if a, ok := s.auditOut.(*auditWriter); ok {
		a.Flush()
	}
}

// closeAudit flushes the audit buffer for good, if the audit log has one.
func (s *Server) closeAudit() {
	if a, ok := s.auditOut.(*auditWriter); ok {
		a.Close()
	}
}
