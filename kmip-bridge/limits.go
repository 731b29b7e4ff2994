// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/ttlv"
)

// MaxBatchItems is the most batch items one request message may carry, as
// many as one bulk decrypt on the HTTP API. A message with more is refused
// as a whole, with Invalid Message, before any item runs.
const MaxBatchItems = 1000

// DefaultMaxResponseSize is the server's limit on a response message when
// Config.MaxResponseSize is zero.
const DefaultMaxResponseSize = 4_000_000

// minMaxResponseSize is the smallest Config.MaxResponseSize: every
// message-level failure answer fits in it.
const minMaxResponseSize = 4096

// Response size accounting.
//
// A response message is its header followed by its batch items. Before the
// first item runs, every item is charged the size of its own failure
// answer (Response Too Large, or the library's Operation Canceled By
// Requester after a Stop, whichever is larger): however the items end,
// the response then never exceeds the limit. When an item completes, its
// real size replaces its charge if the bytes still free allow it;
// otherwise the item fails with Response Too Large, which its charge
// covers. Items run one after the other, so one budget per message
// suffices, and no item's answer is kept once it is known not to fit.
//
// An item's size is that of its encoding in the message's protocol
// version, the bytes the response message carries for it: limitItem keeps
// that encoding and handleMessage assembles the response from it
// (assemble.go) instead of encoding every answer a second time. The
// up-front charges are computed without a version, so fields that exist
// only in some versions are always counted and a charge is never less
// than the answer it stands for.

// budget is what is left of a message's response size limit.
type budget struct {
	// free is the number of bytes not charged to the header or any
	// item; it is never negative once the message is admitted.
	free int
	// charge is what the running item was charged up front.
	charge int
	// derived is the PBKDF2 work the message's items have asked for
	// (derive.go): a batch may not multiply the cap of one derivation.
	derived int
	// keygen is the key generation cost of the message's Create Key
	// Pair items (keygenCost, keypair.go).
	keygen int
	// signs is the private-key cost of the message's Sign items
	// (signCost, sign.go).
	signs int
}

const (
	// tooLargeMessage is the Result Message of an item that did not fit.
	tooLargeMessage = "response exceeds the maximum response size"
	// canceledMessage is the library's Result Message for the items it
	// skips after a failed item under Batch Error Continuation Stop
	// (kmipserver.BatchExecutor).
	canceledMessage = "Batch has stopped because of an error"
)

// maxResponseSize is the effective response size limit of req: the
// client's Maximum Response Size if it gave a smaller one than the
// server's.
func (s *Server) maxResponseSize(req *kmip.RequestMessage) int {
	if m := int(req.Header.MaximumResponseSize); m > 0 && m < s.maxResp {
		return m
	}
	return s.maxResp
}

// messageErrorSize bounds a failure answer for the message as a whole
// (one batch item without operation, with a short Result Message), which
// authentication or the batch executor may still give once the message
// is admitted. The charge of any batch item is at least as large, so only
// a message without items needs it reserved.
const messageErrorSize = 128

// limitMessage refuses a message with too many batch items, or one whose
// items could not even all fail within the response size limit, before
// any item runs, and otherwise starts the message's budget.
func (s *Server) limitMessage(next kmipserver.Next, ctx context.Context, req *kmip.RequestMessage) (*kmip.ResponseMessage, error) {
	limit := s.maxResponseSize(req)
	hdr := responseHeaderSize(req.Header.ProtocolVersion, req.Header.ClientCorrelationValue, req.Header.ServerCorrelationValue)
	m := messageOf(ctx)
	if m == nil {
		// Unreachable: the executor runs below handleMessage.
		panic("kmip: no request state")
	}
	b := &m.budget
	*b = budget{free: limit - 8 - hdr}
	m.version = req.Header.ProtocolVersion
	m.items = itemBuf()
	if len(req.BatchItem) == 0 {
		b.free -= messageErrorSize
	}
	refuse := func(err error) (*kmip.ResponseMessage, error) {
		if b.free < 0 {
			// The library's failure answer echoes the correlation
			// values, which may be what does not fit.
			req.Header.ClientCorrelationValue, req.Header.ServerCorrelationValue = "", ""
		}
		return nil, err
	}
	if n := len(req.BatchItem); n > MaxBatchItems {
		s.log.Info("kmip: invalid message", "reason", "too many batch items", "items", n, "identity", sessionOf(ctx).identity.String())
		return refuse(kerr(kmip.ResultReasonInvalidMessage, fmt.Sprintf("batch of %d items exceeds the limit of %d", n, MaxBatchItems)))
	}
	for i := range req.BatchItem {
		charge, _ := failureSizes(&req.BatchItem[i])
		b.free -= charge
	}
	if b.free < 0 {
		return refuse(kerr(kmip.ResultReasonResponseTooLarge, fmt.Sprintf("maximum response size of %d bytes is too small for a batch of %d items", limit, len(req.BatchItem))))
	}
	m.limited = true
	return next(ctx, req)
}

// responseHeaderSize is the size of the encoded Response Header of a
// message in protocol version v with the given correlation values. Like
// failureSizes it adds the sizes of the fields to that of the header
// without them, computed once per version (TestResponseHeaderSize checks
// this against real encodings): encoding the header for every message
// cost as much as a tenth of a Get.
func responseHeaderSize(v kmip.ProtocolVersion, client, server string) int {
	sizes := headerSizesOf(v)
	n := sizes[0]
	if sizes[1] != 0 { // the version has correlation values
		if client != "" {
			n += ttlvSize(len(client))
		}
		if server != "" {
			n += ttlvSize(len(server))
		}
	}
	return n
}

// headerSizeCache holds headerSizesOf's answers for the versions a
// client may name with some use (major 1 or 2, minor below 10), so that
// clients naming other versions cannot grow it.
var headerSizeCache sync.Map // kmip.ProtocolVersion → [2]int

// headerSizesOf returns the size of the Response Header of version v
// without correlation values, and 1 if that version encodes them (else
// 0).
func headerSizesOf(v kmip.ProtocolVersion) [2]int {
	cacheable := v.ProtocolVersionMajor >= 1 && v.ProtocolVersionMajor <= 2 && v.ProtocolVersionMinor >= 0 && v.ProtocolVersionMinor < 10
	if cacheable {
		if c, ok := headerSizeCache.Load(v); ok {
			return c.([2]int)
		}
	}
	// The time stamp and the batch count have fixed sizes.
	h := kmip.ResponseHeader{ProtocolVersion: v, TimeStamp: time.Now()}
	base := len(encodeTagged(kmip.TagResponseHeader, &h))
	h.ClientCorrelationValue = "c"
	sizes := [2]int{base, 0}
	if len(encodeTagged(kmip.TagResponseHeader, &h)) != base {
		sizes[1] = 1
	}
	if cacheable {
		headerSizeCache.Store(v, sizes)
	}
	return sizes
}

// failureSizes returns what bi is charged up front, the larger of the
// sizes of its two failure answers that do not come from its handler
// (Operation Canceled By Requester after a Stop, and Response Too Large),
// and the size of the Response Too Large one. A structure's encoding is
// the sum of its fields', so the sizes are those of the same answers
// without a Unique Batch Item ID, computed once per operation, plus the
// ID's (TestFailureSizes checks this against real encodings).
func failureSizes(bi *kmip.RequestBatchItem) (charge, tooLarge int) {
	sizes := failureSizesOf(bi.Operation)
	charge, tooLarge = sizes[0], sizes[1]
	if n := len(bi.UniqueBatchItemID); n > 0 {
		charge += ttlvSize(n)
		tooLarge += ttlvSize(n)
	}
	return charge, tooLarge
}

// failureSizeCache holds failureSizesOf's answers by operation.
var failureSizeCache sync.Map // kmip.Operation → [2]int

// failureSizesOf returns the charge and the Response Too Large size of
// an item of operation op without a Unique Batch Item ID.
func failureSizesOf(op kmip.Operation) [2]int {
	if v, ok := failureSizeCache.Load(op); ok {
		return v.([2]int)
	}
	fail := kmip.ResponseBatchItem{
		Operation:     op,
		ResultStatus:  kmip.ResultStatusOperationFailed,
		ResultReason:  kmip.ResultReasonOperationCanceledByRequester,
		ResultMessage: canceledMessage,
	}
	canceled := len(encodeTagged(kmip.TagBatchItem, &fail))
	fail.ResultReason, fail.ResultMessage = kmip.ResultReasonResponseTooLarge, tooLargeMessage
	tooLarge := len(encodeTagged(kmip.TagBatchItem, &fail))
	sizes := [2]int{max(canceled, tooLarge), tooLarge}
	failureSizeCache.Store(op, sizes)
	return sizes
}

// limitItem keeps the response of a message within its budget: an item
// whose answer does not fit in the bytes left fails with Response Too
// Large. It runs innermost, so that the item's answer is final (errors
// already mapped to their wire form) and the audit hook, outside it,
// records the outcome the client sees.
func (s *Server) limitItem(next kmipserver.BatchItemNext, ctx context.Context, bi *kmip.RequestBatchItem) (*kmip.ResponseBatchItem, error) {
	b := budgetOf(ctx)
	if b == nil {
		return next(ctx, bi)
	}
	charge, tooLarge := failureSizes(bi)
	b.charge = charge
	resp, err := next(ctx, bi)
	if err != nil {
		err = s.wireError(err)
	}
	m := messageOf(ctx)
	item := answerOf(resp, err)
	start := len(m.items)
	m.items = encodeItem(m.items, m.version, &item)
	size := len(m.items) - start + v2Growth(ctx, bi, resp, err)
	if size-charge <= b.free {
		b.free -= size - charge
		if err != nil {
			// A failed item carries no payload (handlers return a
			// typed nil, which would encode as an empty one).
			resp.ResponsePayload = nil
		}
		m.keep(item)
		return resp, err
	}
	// What does not fit is dropped at once; the charge covers the
	// failure answer. Its encoding may hold key material (a Get
	// answer): it is wiped before the buffer is used again.
	clear(m.items[start:])
	m.items = m.items[:start]
	resp.ResponsePayload = nil
	resp.ResultMessage = ""
	b.free += charge - tooLarge
	kmipserver.ClearIdPlaceholder(ctx)
	return resp, errTooLarge
}

// answerOf returns resp once err, if not nil, has been applied to it as
// the batch executor does.
func answerOf(resp *kmip.ResponseBatchItem, err error) kmip.ResponseBatchItem {
	item := *resp
	if err != nil {
		item.ResponsePayload = nil
		item.ResultStatus = kmip.ResultStatusOperationFailed
		item.ResultReason = kmip.ResultReasonGeneralFailure
		var ke kmipserver.Error
		if errors.As(err, &ke) {
			item.ResultReason = ke.Reason
		}
		item.ResultMessage = err.Error()
	}
	return item
}

// versionedItem encodes a batch item in a protocol version: encoding the
// version field sets the encoder's version, as the Response Header's does
// in a whole message, for the fields that follow.
type versionedItem struct {
	ProtocolVersion kmip.ProtocolVersion `ttlv:",set-version"`
	BatchItem       *kmip.ResponseBatchItem
}

// encodeItem appends the encoding of item in protocol version v to dst,
// the bytes a response message of that version carries for it.
func encodeItem(dst []byte, v kmip.ProtocolVersion, item *kmip.ResponseBatchItem) []byte {
	if out, ok := appendGetItem(dst, item); ok {
		return out
	}
	return encodeItemReflect(dst, v, item)
}

// encodeItemReflect is encodeItem by the library's reflection encoder,
// which encodes every answer.
func encodeItemReflect(dst []byte, v kmip.ProtocolVersion, item *kmip.ResponseBatchItem) []byte {
	enc := sizeEncoders.Get().(*ttlv.Encoder)
	enc.TagAny(kmip.TagResponseMessage, &versionedItem{ProtocolVersion: v, BatchItem: item})
	b := enc.Bytes()
	// Skip the wrapper's header and its version field.
	off := 16 + int(binary.BigEndian.Uint32(b[12:16]))
	dst = append(growWiped(dst, len(b)-off), b[off:]...)
	// The encoding may hold key material (a Get answer): wipe it before
	// the buffer is used again.
	clear(b)
	enc.Clear()
	sizeEncoders.Put(enc)
	return dst
}

// sizeEncoders are the encoders encodeItem uses, kept so that encoding
// an answer does not allocate a buffer for it every time.
var sizeEncoders = sync.Pool{New: func() any {
	enc := ttlv.NewTTLVEncoder()
	return &enc
}}

// encodeTagged returns the TTLV encoding of v with tag.
func encodeTagged(tag int, v any) []byte {
	enc := ttlv.NewTTLVEncoder()
	enc.TagAny(tag, v)
	return enc.Bytes()
}

// roomFor reports whether an answer of about n bytes to the running item
// could still fit in the message's response, so that a handler can stop
// building one that cannot. Without a budget (a handler called outside a
// message) there is always room.
func roomFor(ctx context.Context, n int) bool {
	b := budgetOf(ctx)
	return b == nil || n <= b.free+b.charge
}

// budgetOf returns the budget of the message being handled, or nil
// outside an admitted message.
func budgetOf(ctx context.Context) *budget {
	if m := messageOf(ctx); m != nil && m.limited {
		return &m.budget
	}
	return nil
}

// errTooLarge fails an item whose answer cannot fit.
var errTooLarge = kerr(kmip.ResultReasonResponseTooLarge, tooLargeMessage)

// ttlvSize is the encoded size of a Text or Byte String of n bytes.
func ttlvSize(n int) int { return 8 + (n+7)/8*8 }

// checkResponseSize returns out, the encoded response to req, if it is
// within the response size limit. The accounting above keeps it there;
// the check guards against a handler or library change that breaks it.
// Only a client limit below the size of any answer lets through a
// response over it: one failed item, the smallest answer there is.
func (s *Server) checkResponseSize(req *kmip.RequestMessage, resp *kmip.ResponseMessage, out []byte) []byte {
	limit := s.maxResponseSize(req)
	if len(out) <= limit {
		return out
	}
	if len(out) <= s.maxResp && len(resp.BatchItem) == 1 && resp.BatchItem[0].ResultStatus != kmip.ResultStatusSuccess && resp.BatchItem[0].ResponsePayload == nil {
		return out
	}
	s.log.Error("kmip: response exceeds the size limit", "size", len(out), "limit", limit)
	clear(out)
	return ttlv.MarshalTTLV(&kmip.ResponseMessage{
		Header: kmip.ResponseHeader{
			ProtocolVersion: resp.Header.ProtocolVersion,
			TimeStamp:       time.Now().Truncate(time.Second),
			BatchCount:      1,
		},
		BatchItem: []kmip.ResponseBatchItem{{
			ResultStatus:  kmip.ResultStatusOperationFailed,
			ResultReason:  kmip.ResultReasonResponseTooLarge,
			ResultMessage: tooLargeMessage,
		}},
	})
}
