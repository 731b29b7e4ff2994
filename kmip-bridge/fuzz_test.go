// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// panicLog fails the fuzz target when the server logs a recovered panic.
type panicLog struct {
	panics atomic.Int64
	last   atomic.Value
}

func (h *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicLog) Handle(_ context.Context, r slog.Record) error {
	// A response over its size limit is caught at the last moment and
	// logged: the accounting that should have prevented it failed.
	if strings.Contains(r.Message, "panic") || strings.Contains(r.Message, "exceeds the size limit") {
		h.panics.Add(1)
		var b strings.Builder
		r.Attrs(func(a slog.Attr) bool { b.WriteString(a.String()); return true })
		h.last.Store(b.String())
	}
	return nil
}
func (h *panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicLog) WithGroup(string) slog.Handler      { return h }

// FuzzHandleMessage feeds random and mutated TTLV messages through the
// whole message path (decoding, authentication, batch execution, every
// operation handler, encoding) without a network, seeded with the OASIS
// test-case requests, the vCenter captures and batches that reach the
// limits. Every answer must decode, match its batch count and stay within
// the response size limit.
func FuzzHandleMessage(f *testing.F) {
	// Small enough that fuzzed batches reach it.
	const maxResponse = 8192
	srv, ks, log, sess, ctx := newFuzzServer(f, maxResponse)
	// Known keys, so that mutated identifiers sometimes hit and Locate
	// finds some.
	for _, name := range []string{"1", "2", "3"} {
		if err := ks.Create(context.Background(), name, "fuzz"); err != nil {
			f.Fatal(err)
		}
	}
	// A key with a large attribute, so that a few Get Attributes items
	// reach the response size limit.
	big := kmip.Attribute{AttributeName: "x-big", AttributeValue: strings.Repeat("v", 3000)}
	add := srv.handleMessage(ctx, ttlv.MarshalTTLV(request(kmip.V1_4, &payloads.AddAttributeRequestPayload{UniqueIdentifier: "2", Attribute: big})))
	var added kmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(add, &added); err != nil || added.BatchItem[0].ResultStatus != kmip.ResultStatusSuccess {
		f.Fatalf("add attribute: %v %+v", err, added.BatchItem)
	}
	getBig := &payloads.GetAttributesRequestPayload{UniqueIdentifier: "2", AttributeName: []kmip.AttributeName{"x-big"}}
	for _, seed := range []*kmip.RequestMessage{
		request(kmip.V1_4, repeat(10, &payloads.LocateRequestPayload{})...),
		request(kmip.V1_2, repeat(MaxBatchItems+1, &payloads.DiscoverVersionsRequestPayload{})...),
		request(kmip.V1_4, getBig, getBig, getBig,
			&payloads.GetAttributesRequestPayload{UniqueIdentifier: "2", AttributeName: []kmip.AttributeName{"x-big", "x-big"}},
			&payloads.GetAttributesRequestPayload{UniqueIdentifier: "2"}),
	} {
		f.Add(ttlv.MarshalTTLV(seed))
		seed.Header.MaximumResponseSize = 1024
		seed.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionContinue
		f.Add(ttlv.MarshalTTLV(seed))
	}

	for _, h := range []string{vcDiscoverVersions, vcCreate, vcGetAttributes, vcAddAttributes} {
		f.Add(unhex(f, h))
	}
	root := oasisRoot(f)
	for _, file := range []string{
		"v1.4/SKLC-M-2-14.xml", "v1.4/SKFF-M-9-14.xml", "v1.4/TL-M-2-14.xml", "v1.4/TL-M-3-14.xml",
		"v1.4/OMOS-M-1-14.xml", "v1.0/TC_315_10_Register_Destroy_Secret_Data.xml", "v1.2/SKLC_M_3_12_SymmetricKeyLifecycle_3.xml",
		"v1.4/CS-AC-M-1-14.xml", "v1.4/CS-AC-M-2-14.xml", "v1.4/CS-AC-M-8-14.xml", // registered key pairs, Sign, Signature Verify
	} {
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			continue
		}
		for _, m := range msgRe.FindAllString(string(data), -1) {
			if !strings.HasPrefix(m, "<RequestMessage>") {
				continue
			}
			m = nowRe.ReplaceAllString(m, time.Now().UTC().Format(time.RFC3339))
			m = uidRe.ReplaceAllString(m, "1")
			var req kmip.RequestMessage
			if ttlv.UnmarshalXML([]byte(m), &req) == nil {
				f.Add(ttlv.MarshalTTLV(&req))
			}
		}
	}

	f.Fuzz(func(t *testing.T, msg []byte) {
		out := srv.handleMessage(ctx, msg)
		sess.wipe = sess.wipe[:0]
		if log.panics.Load() != 0 {
			t.Fatalf("handler panicked: %v", log.last.Load())
		}
		if isV2(msg) {
			// 2.x answers do not fit the library's 1.x types;
			// FuzzV2Message checks them.
			return
		}
		var resp kmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(out, &resp); err != nil {
			t.Fatalf("undecodable response: %v", err)
		}
		if int(resp.Header.BatchCount) != len(resp.BatchItem) || len(resp.BatchItem) == 0 {
			t.Fatalf("batch count %d with %d items", resp.Header.BatchCount, len(resp.BatchItem))
		}
		if len(out) > maxResponse {
			t.Fatalf("response of %d bytes over the server's limit of %d", len(out), maxResponse)
		}
		// A client limit holds unless it is below the smallest answer:
		// one failed item.
		var req kmip.RequestMessage
		if checkTTLV(msg) == nil && ttlv.UnmarshalTTLV(msg, &req) == nil {
			if m := int(req.Header.MaximumResponseSize); m > 0 && len(out) > m &&
				(len(resp.BatchItem) != 1 || resp.BatchItem[0].ResultStatus == kmip.ResultStatusSuccess || resp.BatchItem[0].ResponsePayload != nil) {
				t.Fatalf("response of %d bytes over the client's limit of %d", len(out), m)
			}
		}
	})
}

// newFuzzServer returns the bridge the message fuzz targets drive
// without a network: an in-memory keystore, a client allowed every
// /kmip/ path, a user "vcenter", responses of at most maxResponse bytes,
// a log that records panics, and the context of that client's session.
func newFuzzServer(f *testing.F, maxResponse int) (*Server, *keys.Service, *panicLog, *session, context.Context) {
	p := testPKI(f)
	client := p.issue(f, "client", false)
	ks := keys.New(keys.Config{Store: keystore.NewMem()})
	f.Cleanup(func() { ks.Close() })
	log := &panicLog{}
	srv, err := New(Config{
		Keys: ks,
		Policies: func() *policy.Set {
			return &policy.Set{
				Policies:   map[string]*policy.Policy{"all": {Allow: []string{"/kmip/*"}}},
				Identities: map[string]string{idOf(client): "all"},
			}
		},
		TLSConfig:       &tls.Config{Certificates: []tls.Certificate{p.server}},
		Users:           map[string]User{"vcenter": {Password: keystore.NewSecret("s3cret"), Policy: "all"}},
		MaxMessageSize:  64 << 10,
		MaxResponseSize: maxResponse,
		ReadTimeout:     5 * time.Second,
		Logger:          slog.New(log),
	})
	if err != nil {
		f.Fatal(err)
	}
	sess := &session{identity: identity.Identity(idOf(client))}
	return srv, ks, log, sess, context.WithValue(context.Background(), sessionKey{}, sess)
}
