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
	"github.com/ovh/kmip-go/ttlv"
)

// panicLog fails the fuzz target when the server logs a recovered panic.
type panicLog struct {
	panics atomic.Int64
	last   atomic.Value
}

func (h *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
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
// test-case requests and the vCenter captures.
func FuzzHandleMessage(f *testing.F) {
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
		TLSConfig:      &tls.Config{Certificates: []tls.Certificate{p.server}},
		Users:          map[string]User{"vcenter": {Password: "s3cret", Policy: "all"}},
		MaxMessageSize: 64 << 10,
		ReadTimeout:    5 * time.Second,
		Logger:         slog.New(log),
	})
	if err != nil {
		f.Fatal(err)
	}
	// A known key, so that mutated identifiers sometimes hit.
	if err := ks.Create(context.Background(), "1", "fuzz"); err != nil {
		f.Fatal(err)
	}

	for _, h := range []string{vcDiscoverVersions, vcCreate, vcGetAttributes, vcAddAttributes} {
		f.Add(unhex(f, h))
	}
	root := oasisRoot(f)
	for _, file := range []string{
		"v1.4/SKLC-M-2-14.xml", "v1.4/SKFF-M-9-14.xml", "v1.4/TL-M-2-14.xml", "v1.4/TL-M-3-14.xml",
		"v1.4/OMOS-M-1-14.xml", "v1.0/TC_315_10_Register_Destroy_Secret_Data.xml", "v1.2/SKLC_M_3_12_SymmetricKeyLifecycle_3.xml",
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

	sess := &session{identity: identity.Identity(idOf(client))}
	ctx := context.WithValue(context.Background(), sessionKey{}, sess)
	f.Fuzz(func(t *testing.T, msg []byte) {
		out := srv.handleMessage(ctx, msg)
		sess.wipe = sess.wipe[:0]
		if log.panics.Load() != 0 {
			t.Fatalf("handler panicked: %v", log.last.Load())
		}
		var resp kmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(out, &resp); err != nil {
			t.Fatalf("undecodable response: %v", err)
		}
		if int(resp.Header.BatchCount) != len(resp.BatchItem) || len(resp.BatchItem) == 0 {
			t.Fatalf("batch count %d with %d items", resp.Header.BatchCount, len(resp.BatchItem))
		}
	})
}
