// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// wantClosed reads until the server closes the connection.
func wantClosed(t *testing.T, c io.Reader) {
	t.Helper()
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, io.EOF) {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection not closed by the server")
		}
	}
}

func TestFraming(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMessageSize = 4096 })
	dv := unhex(t, vcDiscoverVersions)

	t.Run("garbage inside a well-framed message", func(t *testing.T) {
		c := e.raw(e.client)
		msg := append([]byte{0x42, 0x00, 0x78, 0x01, 0, 0, 0, 16}, []byte("0123456789abcdef")...)
		resp := exchange(t, c, msg)
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)
		// Framing is intact: the connection keeps working.
		wantOK(t, exchange(t, c, dv).BatchItem[0])
	})

	t.Run("undecodable batch item keeps the version", func(t *testing.T) {
		c := e.raw(e.client)
		// Discover Versions with a Text String where a version belongs.
		bad := append([]byte(nil), dv...)
		bad = append(bad[:len(bad)-8], 0x42, 0x00, 0x79, 0x01, 0, 0, 0, 16, 0x42, 0x00, 0x69, 0x07, 0, 0, 0, 1, 'x', 0, 0, 0, 0, 0, 0, 0)
		bad[7] += 16
		bad[0x5b] += 16 // batch item length
		resp := exchange(t, c, bad)
		if resp.Header.ProtocolVersion != kmip.V1_1 {
			t.Fatalf("version %v", resp.Header.ProtocolVersion)
		}
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)
		wantOK(t, exchange(t, c, dv).BatchItem[0])
	})

	t.Run("wrong tag", func(t *testing.T) {
		c := e.raw(e.client)
		resp := exchange(t, c, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)
		wantClosed(t, c)
	})

	t.Run("oversized", func(t *testing.T) {
		c := e.raw(e.client)
		resp := exchange(t, c, []byte{0x42, 0x00, 0x78, 0x01, 0, 0, 0x10, 0})
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)
		wantClosed(t, c)
	})

	t.Run("truncated", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.ReadTimeout = time.Second })
		c := e.raw(e.client)
		if _, err := c.Write(dv[:60]); err != nil {
			t.Fatal(err)
		}
		// The read timeout ends the half message: the server answers
		// Invalid Message and closes.
		var resp kmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(readMessage(t, c), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Header.ProtocolVersion != kmip.V1_1 {
			t.Fatalf("version %v", resp.Header.ProtocolVersion)
		}
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)
		wantClosed(t, c)
	})

	t.Run("unsupported version", func(t *testing.T) {
		c := e.raw(e.client)
		resp := send(t, c, request(kmip.ProtocolVersion{ProtocolVersionMajor: 2, ProtocolVersionMinor: 2}, &payloads.QueryRequestPayload{}))
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)
		wantOK(t, exchange(t, c, dv).BatchItem[0])
	})

	t.Run("maximum response size", func(t *testing.T) {
		c := e.raw(e.client)
		msg := request(kmip.V1_2, &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionOperations}})
		msg.Header.MaximumResponseSize = 64
		wantReason(t, send(t, c, msg).BatchItem[0], kmip.ResultReasonResponseTooLarge)
	})
}

func TestIdleTimeout(t *testing.T) {
	// Long enough for a handshake and one exchange on a loaded machine.
	e := newEnv(t, func(c *Config) { c.IdleTimeout = time.Second })
	c := e.raw(e.client)
	wantOK(t, exchange(t, c, unhex(t, vcDiscoverVersions)).BatchItem[0])
	wantClosed(t, c)
}

func TestManyShortConnections(t *testing.T) {
	e := newEnv(t)
	id := e.dial(e.client).Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	get := ttlv.MarshalTTLV(request(kmip.V1_1, &payloads.GetRequestPayload{UniqueIdentifier: id}))
	for range 100 {
		c := e.raw(e.client)
		wantOK(t, exchange(t, c, unhex(t, vcDiscoverVersions)).BatchItem[0])
		wantOK(t, exchange(t, c, get).BatchItem[0])
		c.Close()
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	wantOK(t, exchange(t, c, unhex(t, vcDiscoverVersions)).BatchItem[0])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, c)
}
