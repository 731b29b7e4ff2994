// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// A client that opens a connection and never completes the handshake is
// closed after ReadTimeout: the connection deadline bounds the handshake.
func TestHandshakeDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, func(c *Config) { c.ReadTimeout = timeout })
	for _, tt := range []struct {
		name string
		send []byte
	}{
		{"silent", nil},
		// The start of a ClientHello record that never ends.
		{"partial hello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			c.SetReadDeadline(start.Add(20 * timeout))
			_, err = io.Copy(io.Discard, c)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the bridge kept a stalled handshake open for %v", time.Since(start))
			}
			if d := time.Since(start); d < timeout/2 {
				t.Fatalf("closed after %v, before the read timeout", d)
			}
		})
	}
}
