// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// v2Seeds are real 2.x messages: the OASIS 2.1 SKLC flow, PyKMIP 2.0
// shapes and the refusals of TestV2Refusals.
func v2Seeds() [][]byte {
	id := text(kmip.TagUniqueIdentifier, "1")
	ph := enum(kmip.TagUniqueIdentifier, 1)
	return [][]byte{
		v2Request(1, op(kmip.OperationDiscoverVersions, pv(2, 1), pv(1, 4))),
		v2Request(1, sklcCreate("fuzz"), op(kmip.OperationGetAttributes, ph, aref(kmip.TagState), aref(kmip.TagDigest))),
		v2Request(0, op(kmip.OperationGetAttributes, id)),
		v2Request(1, op(kmip.OperationGetAttributeList, id)),
		v2Request(1, op(kmip.OperationAddAttribute, id, st(tagNewAttribute, vendor("x", "a", text(0, "v")))),
			op(kmip.OperationModifyAttribute, id, st(tagCurrentAttribute, vendor("x", "a", text(0, "v"))), st(tagNewAttribute, vendor("x", "a", text(0, "w")))),
			op(kmip.OperationDeleteAttribute, id, st(tagCurrentAttribute, vendor("x", "a", text(0, "w"))))),
		v2Request(1, op(operationSetAttribute, id, st(tagNewAttribute, text(kmip.TagComment, "c"))),
			op(operationAdjustAttribute, id, aref(kmip.TagProtectStopDate), enum(tagAdjustmentType, uint32(adjustIncrement)), integer(tagAdjustmentValue, 60))),
		v2Request(1, op(kmip.OperationLocate, integer(kmip.TagMaximumItems, 2), st(tagAttributes, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey))))),
		v2Request(1, op(kmip.OperationRegister, enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSecretData)),
			st(tagAttributes, integer(kmip.TagCryptographicUsageMask, int32(kmip.CryptographicUsageVerify))),
			st(kmip.TagSecretData, enum(kmip.TagSecretDataType, uint32(kmip.SecretDataTypePassword)),
				st(kmip.TagKeyBlock, enum(kmip.TagKeyFormatType, uint32(kmip.KeyFormatTypeOpaque)),
					st(kmip.TagKeyValue, tv{Tag: kmip.TagKeyMaterial, Value: []byte("password")}, st(tagAttributes, text(kmip.TagComment, "kv"))))))),
		v2Request(1, op(kmip.OperationQuery, enum(kmip.TagQueryFunction, uint32(kmip.QueryFunctionOperations)), enum(kmip.TagQueryFunction, uint32(kmip.QueryFunctionCapabilities)))),
		v2Request(1, op(kmip.OperationRevoke, id, st(kmip.TagRevocationReason, enum(kmip.TagRevocationReasonCode, uint32(kmip.RevocationReasonCodeKeyCompromise))),
			tv{Tag: kmip.TagCompromiseOccurrenceDate, Value: time.Unix(6, 0)}), op(kmip.OperationDestroy, id)),
		v2Request(1, op(kmip.OperationCreate, st(tagAttributes, st(kmip.TagAttribute, text(kmip.TagAttributeName, "x-a"), text(kmip.TagAttributeValue, "v"))))),
		v2Request(1, op(kmip.OperationGet, integer(kmip.TagUniqueIdentifier, 0))),
	}
}

// FuzzV2Message feeds mutated KMIP 2.x messages through the whole message
// path, translation included. Every answer must decode, carry the
// request's version when that is a supported one, match its batch count
// and stay within the response size limit; nothing may panic. It also
// checks the translation on its own: what fromV2 produces passes the
// framing check, and a translated answer still parses.
func FuzzV2Message(f *testing.F) {
	const maxResponse = 8192
	srv, ks, log, sess, ctx := newFuzzServer(f, maxResponse)
	// An object "1"-like identifier is what the seeds name: create a
	// few KMIP keys and a KES key named 1.
	if err := ks.Create(ctx, "1", "fuzz"); err != nil {
		f.Fatal(err)
	}
	for _, s := range v2Seeds() {
		srv.handleMessage(ctx, s)
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if tr, _, err := fromV2(msg, &session{}); err == nil {
			if err := checkTTLV(tr); err != nil {
				t.Fatalf("translation produced malformed TTLV: %v", err)
			}
		}
		out := srv.handleMessage(ctx, msg)
		sess.wipe = sess.wipe[:0]
		if log.panics.Load() != 0 {
			t.Fatalf("handler panicked or overran the limit: %v", log.last.Load())
		}
		// 2.x answers do not fit the library's 1.x types: read them
		// generically.
		var resp tv
		if err := ttlv.UnmarshalTTLV(out, &resp); err != nil || resp.Tag != kmip.TagResponseMessage {
			t.Fatalf("undecodable response: %v", err)
		}
		count := get(resp, kmip.TagResponseHeader, kmip.TagBatchCount)
		if n := len(items(resp)); count == nil || count.Value != int32(n) || n == 0 {
			t.Fatalf("batch count %v with %d items", count, n)
		}
		if v := requestVersion(msg); v != kmip.V1_0 {
			ma, mi := headerVersion(t, resp)
			if ma != v.ProtocolVersionMajor || mi != v.ProtocolVersionMinor {
				t.Fatalf("answer version %d.%d to a %v request", ma, mi, v)
			}
		}
		if len(out) > maxResponse {
			t.Fatalf("response of %d bytes over the limit of %d", len(out), maxResponse)
		}
	})
}
