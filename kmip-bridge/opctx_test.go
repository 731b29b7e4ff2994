// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// The operation context behaves as context.WithTimeout's: it ends at the
// read timeout, for Done, Err and contexts derived from it; it ends when
// released; it keeps the parent's values and an earlier parent deadline.
func TestOpContext(t *testing.T) {
	s := &Server{readTO: 30 * time.Second}
	t.Run("Deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := &message{}
			parent := context.WithValue(context.WithValue(context.Background(), messageKey{}, m), sessionKey{}, &session{remote: "r"})
			ctx, cancel := s.opContext(parent)
			defer cancel()
			if d, ok := ctx.Deadline(); !ok || !d.Equal(time.Now().Add(30*time.Second)) {
				t.Fatalf("deadline %v, %v; want now+30s", d, ok)
			}
			if messageOf(ctx) != m || sessionOf(ctx).remote != "r" {
				t.Fatal("the parent's values are lost")
			}
			derived, cancelDerived := context.WithCancel(ctx)
			defer cancelDerived()
			if ctx.Err() != nil || derived.Err() != nil {
				t.Fatal("ended before its deadline")
			}
			time.Sleep(30*time.Second - time.Nanosecond)
			synctest.Wait()
			if ctx.Err() != nil {
				t.Fatal("ended before its deadline")
			}
			time.Sleep(time.Nanosecond)
			<-ctx.Done()
			<-derived.Done()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(derived), context.DeadlineExceeded) {
				t.Fatalf("err %v, derived cause %v; want the deadline", ctx.Err(), context.Cause(derived))
			}
		})
	})
	t.Run("Released", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Released before anything waited, and after.
			ctx, cancel := s.opContext(context.Background())
			cancel()
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Fatalf("err %v after release; want canceled", ctx.Err())
			}
			ctx, cancel = s.opContext(context.Background())
			done := ctx.Done()
			cancel()
			<-done
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Fatalf("err %v after release; want canceled", ctx.Err())
			}
		})
	})
	t.Run("EarlierParent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			parent, cancelParent := context.WithTimeout(context.Background(), time.Second)
			defer cancelParent()
			ctx, cancel := s.opContext(parent)
			defer cancel()
			if d, _ := ctx.Deadline(); !d.Equal(time.Now().Add(time.Second)) {
				t.Fatalf("deadline %v; want the parent's", d)
			}
			time.Sleep(time.Second)
			<-ctx.Done()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatalf("err %v; want the parent's deadline", ctx.Err())
			}
		})
	})
}

// stallStore is a keystore whose reads answer only when their context
// ends.
type stallStore struct{ keystore.Store }

func (stallStore) Get(ctx context.Context, _ string) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A Get that the keystore does not answer ends at the read timeout after
// its batch item began, as General Failure "operation timed out".
func TestGetTimeout(t *testing.T) {
	p := testPKI(t)
	client := p.issue(t, "client", false)
	synctest.Test(t, func(t *testing.T) {
		ks := keys.New(keys.Config{Store: stallStore{keystore.NewMem()}})
		defer ks.Close()
		set := &policy.Set{
			Policies:   map[string]*policy.Policy{"kmip": {Allow: []string{"/kmip/*"}}},
			Identities: map[string]string{idOf(client): "kmip"},
		}
		srv, err := New(Config{
			Keys:        ks,
			Policies:    func() *policy.Set { return set },
			TLSConfig:   &tls.Config{Certificates: []tls.Certificate{p.server}},
			ReadTimeout: 2 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.WithValue(context.Background(), sessionKey{}, &session{identity: identity.Identity(idOf(client))})
		req := ttlv.MarshalTTLV(request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: "k"}))
		start := time.Now()
		out := srv.handleMessage(ctx, req)
		if took := time.Since(start); took != 2*time.Second {
			t.Errorf("the Get took %v; want the read timeout, 2s", took)
		}
		var resp kmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(out, &resp); err != nil {
			t.Fatal(err)
		}
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonGeneralFailure)
		if msg := resp.BatchItem[0].ResultMessage; msg != "operation timed out" {
			t.Errorf("message %q", msg)
		}
		// The load the Get started ends at the cache's own timeout.
		time.Sleep(time.Minute)
	})
}
