// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"fmt"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// exchangeSized sends msg and returns the response and its encoded size.
func exchangeSized(t testing.TB, c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
}, msg *kmip.RequestMessage) (*kmip.ResponseMessage, int) {
	t.Helper()
	b := ttlv.MarshalTTLV(msg)
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	raw := readMessage(t, c)
	var resp kmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(raw, &resp); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	if int(resp.Header.BatchCount) != len(resp.BatchItem) {
		t.Fatalf("batch count %d with %d items", resp.Header.BatchCount, len(resp.BatchItem))
	}
	return &resp, len(raw)
}

// allocated returns the bytes allocated by the whole process (the bridge
// runs in it) while fn runs.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// addKeys creates n keys with long names, so that a Locate answer is
// large.
func addKeys(t testing.TB, e *env, n int) {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("key-%03d-%s", i, strings.Repeat("x", 56))
		if err := e.keys.Create(context.Background(), name, "test"); err != nil {
			t.Fatal(err)
		}
	}
}

func repeat(n int, p kmip.OperationPayload) []kmip.OperationPayload {
	pls := make([]kmip.OperationPayload, n)
	for i := range pls {
		pls[i] = p
	}
	return pls
}

// TestBatchItemLimit sends the measured attack: a 96 KB message of 2,000
// Locate items, which made a 193 MB answer. It is refused as a whole
// before any item runs, and the connection keeps working.
func TestBatchItemLimit(t *testing.T) {
	e := newEnv(t)
	addKeys(t, e, 20)
	c := e.raw(e.client)

	msg := request(kmip.V1_4, repeat(2000, &payloads.LocateRequestPayload{})...)
	msg.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionContinue
	if n := len(ttlv.MarshalTTLV(msg)); n > DefaultMaxMessageSize {
		t.Fatalf("attack message of %d bytes is over the message limit", n)
	}
	var (
		resp *kmip.ResponseMessage
		size int
	)
	alloc := allocated(func() { resp, size = exchangeSized(t, c, msg) })
	if len(resp.BatchItem) != 1 {
		t.Fatalf("%d batch items in the refusal (%d bytes)", len(resp.BatchItem), size)
	}
	wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)
	if !strings.Contains(resp.BatchItem[0].ResultMessage, "limit of 1000") {
		t.Errorf("result message %q does not name the limit", resp.BatchItem[0].ResultMessage)
	}
	if size > 1024 {
		t.Errorf("refusal of %d bytes", size)
	}
	if n := e.audit.Load(); n != 0 {
		t.Errorf("%d batch items ran", n)
	}
	// Decoding the 96 KB request is what it costs; running the items
	// would cost hundreds of megabytes.
	if alloc > 32<<20 {
		t.Errorf("%d MB allocated to refuse the message", alloc>>20)
	}
	wantOK(t, exchange(t, c, unhex(t, vcDiscoverVersions)).BatchItem[0])

	// The limit itself is allowed.
	resp, _ = exchangeSized(t, c, request(kmip.V1_4, repeat(MaxBatchItems, &payloads.DiscoverVersionsRequestPayload{})...))
	if len(resp.BatchItem) != MaxBatchItems {
		t.Fatalf("%d batch items", len(resp.BatchItem))
	}
	for _, bi := range resp.BatchItem {
		wantOK(t, bi)
	}
}

// TestResponseSizeLimit checks that a batch whose answers add up to more
// than the limit gets an answer under it, with the items that do not fit
// failed as Response Too Large.
func TestResponseSizeLimit(t *testing.T) {
	const limit = 256 << 10
	e := newEnv(t, func(c *Config) { c.MaxResponseSize = limit })
	addKeys(t, e, 10)
	c := e.raw(e.client)

	// Each Locate answers about 800 bytes: 1,000 of them about 800 KB.
	// Each item is charged its failure answer up front, about 130 bytes.
	check := func(t *testing.T, msg *kmip.RequestMessage, limit int) (ok, tooLarge, canceled int) {
		t.Helper()
		resp, size := exchangeSized(t, c, msg)
		if size > limit {
			t.Fatalf("response of %d bytes over the limit of %d", size, limit)
		}
		if len(resp.BatchItem) != len(msg.BatchItem) {
			t.Fatalf("%d batch items for %d", len(resp.BatchItem), len(msg.BatchItem))
		}
		for i, bi := range resp.BatchItem {
			switch {
			case bi.ResultStatus == kmip.ResultStatusSuccess:
				if tooLarge+canceled > 0 {
					t.Fatalf("item %d succeeded after a failed one", i)
				}
				if got := len(bi.ResponsePayload.(*payloads.LocateResponsePayload).UniqueIdentifier); got != 10 {
					t.Fatalf("item %d located %d keys", i, got)
				}
				ok++
			case bi.ResultReason == kmip.ResultReasonResponseTooLarge:
				if bi.ResponsePayload != nil {
					t.Fatalf("item %d failed with a payload", i)
				}
				tooLarge++
			case bi.ResultReason == kmip.ResultReasonOperationCanceledByRequester:
				canceled++
			default:
				wantOK(t, bi)
			}
		}
		if ok == 0 || tooLarge == 0 {
			t.Fatalf("%d items answered, %d too large: the limit was not reached or nothing fit", ok, tooLarge)
		}
		return ok, tooLarge, canceled
	}

	t.Run("server limit", func(t *testing.T) {
		msg := request(kmip.V1_4, repeat(MaxBatchItems, &payloads.LocateRequestPayload{})...)
		msg.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionContinue
		var canceled int
		alloc := allocated(func() { _, _, canceled = check(t, msg, limit) })
		if canceled != 0 {
			t.Fatalf("%d items canceled under Continue", canceled)
		}
		// Locate reads every key for every item; what is answered stays
		// within the limit.
		if alloc > 512<<20 {
			t.Errorf("%d MB allocated", alloc>>20)
		}
		if !e.audited(idOf(e.client), "locate", "", true) {
			t.Error("no failed locate audited")
		}
	})

	t.Run("client limit", func(t *testing.T) {
		msg := request(kmip.V1_4, repeat(100, &payloads.LocateRequestPayload{})...)
		msg.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionContinue
		msg.Header.MaximumResponseSize = 16 << 10
		check(t, msg, 16<<10)
	})

	t.Run("stop", func(t *testing.T) {
		// KMIP's default continuation option: the items after the first
		// one that does not fit are canceled, and their answers fit too.
		msg := request(kmip.V1_4, repeat(MaxBatchItems, &payloads.LocateRequestPayload{})...)
		if _, tooLarge, canceled := check(t, msg, limit); tooLarge != 1 || canceled == 0 {
			t.Fatalf("%d too large, %d canceled", tooLarge, canceled)
		}
	})

	t.Run("limit too small for the batch", func(t *testing.T) {
		msg := request(kmip.V1_4, repeat(MaxBatchItems, &payloads.DiscoverVersionsRequestPayload{})...)
		msg.Header.MaximumResponseSize = 4096
		resp, size := exchangeSized(t, c, msg)
		if len(resp.BatchItem) != 1 || size > 4096 {
			t.Fatalf("%d batch items, %d bytes", len(resp.BatchItem), size)
		}
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonResponseTooLarge)
	})

	t.Run("echoed correlation value", func(t *testing.T) {
		// KMIP 1.4 echoes the Client Correlation Value: a large one
		// counts against the limit.
		msg := request(kmip.V1_4, &payloads.DiscoverVersionsRequestPayload{})
		msg.Header.ClientCorrelationValue = strings.Repeat("c", 2*limit)
		resp, size := exchangeSized(t, c, msg)
		if size > limit {
			t.Fatalf("response of %d bytes", size)
		}
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonResponseTooLarge)
		many := request(kmip.V1_4, repeat(MaxBatchItems+1, &payloads.DiscoverVersionsRequestPayload{})...)
		many.Header.ClientCorrelationValue = msg.Header.ClientCorrelationValue
		resp, size = exchangeSized(t, c, many)
		if size > limit {
			t.Fatalf("refusal of %d bytes", size)
		}
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)

		msg.Header.ClientCorrelationValue = strings.Repeat("c", 1000)
		resp, _ = exchangeSized(t, c, msg)
		wantOK(t, resp.BatchItem[0])
		if resp.Header.ClientCorrelationValue != msg.Header.ClientCorrelationValue {
			t.Fatal("correlation value not echoed")
		}
	})
}

// TestLargeAttribute sends the second measured attack: a 16 KB Get
// Attributes naming one large attribute 1,000 times (with a 100 KB value
// it made a 100 MB answer; values are now capped at
// keys.MaxAttributeValueSize, the largest one used here), and then many
// Get Attributes items of that attribute, each alone within the limits,
// under the default response size limit.
func TestLargeAttribute(t *testing.T) {
	e := newEnv(t)
	cl := e.dial(e.client)
	id := cl.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	big := strings.Repeat("v", keys.MaxAttributeValueSize)
	cl.AddAttribute(id, "x-big", big).MustExec()
	c := e.raw(e.client)

	t.Run("repeated name", func(t *testing.T) {
		names := make([]kmip.AttributeName, 1000)
		for i := range names {
			names[i] = "x-big"
		}
		msg := request(kmip.V1_4, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: names})
		var (
			resp *kmip.ResponseMessage
			size int
		)
		alloc := allocated(func() { resp, size = exchangeSized(t, c, msg) })
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidMessage)
		if size > 1024 {
			t.Errorf("answer of %d bytes", size)
		}
		if alloc > 16<<20 {
			t.Errorf("%d MB allocated", alloc>>20)
		}
		// The same through the ovh client, with a name twice.
		if _, err := cl.GetAttributes(id, "x-big", kmip.AttributeNameState, "x-big").Exec(); err == nil || !strings.Contains(err.Error(), "more than once") {
			t.Fatalf("repeated names: %v", err)
		}
		attrs := cl.GetAttributes(id, "x-big", kmip.AttributeNameState).MustExec().Attribute
		if v, ok := attrs[0].AttributeValue.(ttlv.Value); len(attrs) != 2 || !ok || v.Value != big {
			t.Fatalf("%d attributes, first %s", len(attrs), attrs[0].AttributeName)
		}
	})

	t.Run("many items", func(t *testing.T) {
		const items = MaxBatchItems
		msg := request(kmip.V1_4, repeat(items, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []kmip.AttributeName{"x-big"}})...)
		msg.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionContinue
		resp, size := exchangeSized(t, c, msg)
		if size > DefaultMaxResponseSize {
			t.Fatalf("response of %d bytes", size)
		}
		var ok, tooLarge int
		for _, bi := range resp.BatchItem {
			if bi.ResultStatus == kmip.ResultStatusSuccess {
				ok++
				continue
			}
			wantReason(t, bi, kmip.ResultReasonResponseTooLarge)
			tooLarge++
		}
		// Each answer holds the whole value: at most limit/len(big)
		// fit, and the limit is used, not a fraction of it (each
		// answer's framing is well under 512 bytes).
		most, least := DefaultMaxResponseSize/len(big), DefaultMaxResponseSize/(len(big)+512)
		if ok > most || ok < least || tooLarge != items-ok {
			t.Fatalf("%d answered, %d too large", ok, tooLarge)
		}
	})
}

func TestMaxResponseSizeConfig(t *testing.T) {
	e := newEnv(t)
	for _, n := range []int{-1, 1, minMaxResponseSize - 1} {
		cfg := Config{Keys: e.keys, Policies: func() *policy.Set { return nil }, TLSConfig: e.srv.tls, MaxResponseSize: n}
		if _, err := New(cfg); err == nil {
			t.Errorf("MaxResponseSize %d accepted", n)
		}
	}
}

// TestFailureSizes checks the arithmetic of failureSizes against the real
// encodings of both failure answers, for operations with and without a
// Unique Batch Item ID of several lengths.
func TestFailureSizes(t *testing.T) {
	for _, op := range []kmip.Operation{kmip.OperationGet, kmip.OperationLocate, kmip.OperationCreate, kmip.OperationDiscoverVersions, kmip.Operation(0x7777)} {
		for _, id := range [][]byte{nil, {1}, make([]byte, 7), make([]byte, 8), make([]byte, 9), make([]byte, 100)} {
			bi := &kmip.RequestBatchItem{Operation: op, UniqueBatchItemID: id}
			charge, tooLarge := failureSizes(bi)
			fail := kmip.ResponseBatchItem{Operation: op, UniqueBatchItemID: id, ResultStatus: kmip.ResultStatusOperationFailed,
				ResultReason: kmip.ResultReasonOperationCanceledByRequester, ResultMessage: canceledMessage}
			canceled := len(encodeTagged(kmip.TagBatchItem, &fail))
			fail.ResultReason, fail.ResultMessage = kmip.ResultReasonResponseTooLarge, tooLargeMessage
			wantTooLarge := len(encodeTagged(kmip.TagBatchItem, &fail))
			if charge != max(canceled, wantTooLarge) || tooLarge != wantTooLarge {
				t.Errorf("op %v, id of %d bytes: sizes %d/%d, encodings %d/%d", op, len(id), charge, tooLarge, max(canceled, wantTooLarge), wantTooLarge)
			}
		}
	}
}

// TestResponseHeaderSize checks the arithmetic of responseHeaderSize
// against real encodings of the header, for versions with and without
// correlation values, and versions outside the cache.
func TestResponseHeaderSize(t *testing.T) {
	versions := append(slices.Clone(supportedVersions), kmip.ProtocolVersion{ProtocolVersionMajor: 2, ProtocolVersionMinor: 1},
		kmip.ProtocolVersion{ProtocolVersionMajor: 9, ProtocolVersionMinor: 9}, kmip.ProtocolVersion{ProtocolVersionMajor: -1, ProtocolVersionMinor: 3})
	values := []string{"", "x", strings.Repeat("c", 7), strings.Repeat("c", 8), strings.Repeat("c", 9), strings.Repeat("c", 100)}
	for _, v := range versions {
		for _, client := range values {
			for _, server := range values {
				for range 2 { // computed, then from the cache
					got := responseHeaderSize(v, client, server)
					want := len(encodeTagged(kmip.TagResponseHeader, &kmip.ResponseHeader{
						ProtocolVersion: v, TimeStamp: time.Now(), BatchCount: 1000,
						ClientCorrelationValue: client, ServerCorrelationValue: server,
					}))
					if got != want {
						t.Errorf("version %d.%d, correlation values of %d and %d bytes: size %d, encoding %d",
							v.ProtocolVersionMajor, v.ProtocolVersionMinor, len(client), len(server), got, want)
					}
				}
			}
		}
	}
}
