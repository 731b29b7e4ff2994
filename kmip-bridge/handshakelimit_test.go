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
// handshake (no certificate needed) hold at most half of the slots, the
// oldest giving way to each new one; an established client keeps its
// slot, a new client with a certificate gets in through the flood, and
// the silent ones that remain end at the handshake timeout, which is its
// own, shorter than the read timeout.
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
		if n, want := srv.Connections(), 1+maxHandshakes(limit); n != want {
			t.Fatalf("Connections = %d with a handshake flood, want %d", n, want)
		}
		// The oldest were closed at once to make room.
		for i, c := range silent[:len(silent)-maxHandshakes(limit)] {
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("silent connection %d: %v, want EOF", i, err)
			}
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("the oldest silent connections closed after %v, want at once", d)
		}
		// The established client works, a new one gets in.
		discover(t, est)
		discover(t, dial())
		if n := srv.Refused(); n != 0 {
			t.Fatalf("Refused = %d, want 0", n)
		}
		// The last silent one ends at the handshake timeout.
		last := silent[len(silent)-1]
		if _, err := last.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("last silent connection: %v, want EOF", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("silent connection closed after %v, want the handshake timeout 2s", d)
		}
		discover(t, est)
	})
}
