// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"encoding/binary"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// TestInflightBudget: while the budget of large messages is spent, a
// large message waits for its share until its read deadline and is then
// refused with General Failure and its connection closed; small
// messages are not held up; once the budget is back, the same large
// message is handled.
func TestInflightBudget(t *testing.T) {
	testPKI(t) // outside the bubble: the shared CA is valid in real time
	now := time.Now()
	synctest.Test(t, func(t *testing.T) {
		srv, _, dial := bubbleServer(t, now, Config{})
		srv.inflight.large = 1 << 10
		// A message of 4 KiB: its body is no valid request, which
		// only matters once it is handled.
		large := make([]byte, 4<<10)
		binary.BigEndian.PutUint32(large[0:4], uint32(kmip.TagRequestMessage)<<8|uint32(ttlv.TypeStructure))
		binary.BigEndian.PutUint32(large[4:8], uint32(len(large)-8))

		if err := srv.inflight.sem.Acquire(t.Context(), srv.inflight.max); err != nil {
			t.Fatal(err)
		}
		discover(t, dial()) // small: not held up

		c := dial()
		start := time.Now()
		// The pipe has no buffer: the write waits for a server that
		// reads only the header before the refusal.
		go c.Write(large)
		var resp kmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(readMessage(t, c), &resp); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != DefaultReadTimeout {
			t.Fatalf("refused after %v, want the read timeout %v", d, DefaultReadTimeout)
		}
		if bi := resp.BatchItem[0]; bi.ResultReason != kmip.ResultReasonGeneralFailure {
			t.Fatalf("refusal %v %q, want General Failure", bi.ResultReason, bi.ResultMessage)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the connection stayed open after the refusal")
		}

		srv.inflight.sem.Release(srv.inflight.max)
		c = dial()
		start = time.Now()
		if _, err := c.Write(large); err != nil {
			t.Fatal(err)
		}
		resp = kmip.ResponseMessage{}
		if err := ttlv.UnmarshalTTLV(readMessage(t, c), &resp); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("answered after %v with the budget free", d)
		}
		if bi := resp.BatchItem[0]; bi.ResultReason != kmip.ResultReasonInvalidMessage {
			t.Fatalf("answer %v %q, want Invalid Message for the body", bi.ResultReason, bi.ResultMessage)
		}
		// Everything held was given back (once the server is done with
		// the answer it wrote).
		synctest.Wait()
		if !srv.inflight.sem.TryAcquire(srv.inflight.max) {
			t.Fatal("the budget was not given back")
		}
		srv.inflight.sem.Release(srv.inflight.max)
	})
}
