// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// TestConnLimitHandshakeFlood: connections that open and never
// handshake (no certificate needed) take the free slots, and once they
// have been silent for handshakeGrace the oldest gives way to each new
// one; an established client keeps its slot, a new client with a
// certificate gets in through the flood, and the silent ones that remain
// end at the handshake timeout, which is its own, shorter than the read
// timeout.
func TestConnLimitHandshakeFlood(t *testing.T) {
	testPKI(t) // outside the bubble: the shared CA is valid in real time
	now := time.Now()
	synctest.Test(t, func(t *testing.T) {
		const limit = 4
		srv, ln, dial := bubbleServer(t, now, Config{MaxConnections: limit, HandshakeTimeout: 2 * time.Second, ReadTimeout: time.Minute})
		est := dial()
		discover(t, est)

		start := time.Now()
		var silent []net.Conn
		for range 6 {
			c := ln.dial()
			defer c.Close()
			silent = append(silent, c)
		}
		synctest.Wait()
		// Within the grace the flood takes the free slots and the rest
		// is refused at the limit.
		if n := srv.Connections(); n != limit {
			t.Fatalf("Connections = %d with a fresh handshake flood, want %d", n, limit)
		}
		if n := srv.Refused(); n != 6-(limit-1) {
			t.Fatalf("Refused = %d, want %d", n, 6-(limit-1))
		}
		// Once the silent ones are handshakeGrace old, a client that
		// handshakes takes the oldest one's slot at once.
		time.Sleep(handshakeGrace)
		discover(t, est)
		next := dial()
		if _, err := silent[0].Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("oldest silent connection: %v, want EOF", err)
		}
		if d := time.Since(start); d != handshakeGrace {
			t.Fatalf("the oldest silent connection closed after %v, want %v", d, handshakeGrace)
		}
		discover(t, next)
		if n := srv.Refused(); n != 6-(limit-1) {
			t.Fatalf("Refused = %d after the grace, want %d", n, 6-(limit-1))
		}
		// The other admitted silent ones end at the handshake timeout.
		last := silent[limit-2]
		if _, err := last.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("last silent connection: %v, want EOF", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("silent connection closed after %v, want the handshake timeout 2s", d)
		}
		discover(t, est)
	})
}
