// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// cachedAnswers returns how many Discover Versions answers srv remembers.
func cachedAnswers(srv *Server) int {
	if m := srv.answers.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// dvExchange sends msg over a new connection and returns the answer's
// bytes.
func dvExchange(t *testing.T, e *env, msg []byte) []byte {
	t.Helper()
	c := e.raw(e.client)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	return readMessage(t, c)
}

// A Discover Versions request seen before is answered from memory: the
// same bytes as the full path but for a current time stamp, with the
// policy checked and the audit record made every time.
func TestDiscoverVersionsCache(t *testing.T) {
	e := newEnv(t)
	dv := ttlv.MarshalTTLV(request(kmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}))
	first := dvExchange(t, e, dv)
	if n := cachedAnswers(e.srv); n != 1 {
		t.Fatalf("%d answers remembered after the first Discover Versions; want 1", n)
	}
	// Age the remembered answer: a served copy must carry the time of
	// its own request.
	for _, a := range *e.srv.answers.m.Load() {
		binary.BigEndian.PutUint64(a[stampOffset:], 0)
	}
	before := time.Now().Truncate(time.Second)
	second := dvExchange(t, e, dv)
	after := time.Now()
	var resp kmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(second, &resp); err != nil {
		t.Fatal(err)
	}
	if ts := resp.Header.TimeStamp; ts.Before(before) || ts.After(after) {
		t.Errorf("time stamp %v of the remembered answer; want between %v and %v", ts, before, after)
	}
	wantOK(t, resp.BatchItem[0])
	if got := resp.BatchItem[0].ResponsePayload.(*payloads.DiscoverVersionsResponsePayload).ProtocolVersion; len(got) != len(supportedVersions) {
		t.Errorf("versions %v; want %v", got, supportedVersions)
	}
	if !bytes.Equal(first[:stampOffset], second[:stampOffset]) || !bytes.Equal(first[stampOffset+8:], second[stampOffset+8:]) {
		t.Errorf("remembered answer differs beyond the time stamp:\n%x\n%x", first, second)
	}
	e.mu.Lock()
	var audited int
	for _, r := range e.records {
		if r.operation == "discover-versions" && r.identity == idOf(e.client) && r.err == nil {
			audited++
		}
	}
	e.mu.Unlock()
	if audited != 2 {
		t.Errorf("%d audit records of discover-versions; want 2", audited)
	}

	// A client the policy no longer allows to discover versions is
	// refused, as by the full path, and the refusal is audited.
	e.policies.Store(&policy.Set{
		Policies:   map[string]*policy.Policy{"kmip": {Allow: []string{"/kmip/get/*"}}},
		Identities: map[string]string{idOf(e.client): "kmip"},
	})
	var refused kmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(dvExchange(t, e, dv), &refused); err != nil {
		t.Fatal(err)
	}
	wantReason(t, refused.BatchItem[0], kmip.ResultReasonPermissionDenied)
	if !e.audited(idOf(e.client), "discover-versions", "", true) {
		t.Error("the refused Discover Versions is not audited")
	}
}

// Requests whose answer depends on more than their bytes, or that are not
// KMIP 1.x Discover Versions, are never remembered; neither are more than
// maxCachedAnswers requests.
func TestDiscoverVersionsCacheLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Users = map[string]User{"vcenter": {Password: keystore.NewSecret("s3cret"), Policy: "kmip"}}
	})
	withAuth := request(kmip.V1_4, &payloads.DiscoverVersionsRequestPayload{})
	withAuth.Header.Authentication = &kmip.Authentication{Credential: kmip.Credential{
		CredentialType:  kmip.CredentialTypeUsernameAndPassword,
		CredentialValue: kmip.CredentialValue{UserPassword: &kmip.CredentialValueUserPassword{Username: "vcenter", Password: "s3cret"}},
	}}
	for name, msg := range map[string]*kmip.RequestMessage{
		"credential": withAuth,
		"query":      request(kmip.V1_4, &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionOperations}}),
		"two items":  request(kmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}, &payloads.DiscoverVersionsRequestPayload{}),
		"version 2":  request(kmip.V2_0, &payloads.DiscoverVersionsRequestPayload{}),
	} {
		dvExchange(t, e, ttlv.MarshalTTLV(msg))
		if n := cachedAnswers(e.srv); n != 0 {
			t.Fatalf("%s: %d answers remembered; want none", name, n)
		}
	}
	// Every Unique Batch Item ID makes another request; each answer
	// echoes its own.
	for i := range 2 * maxCachedAnswers {
		msg := request(kmip.V1_2, &payloads.DiscoverVersionsRequestPayload{})
		msg.BatchItem[0].UniqueBatchItemID = []byte{byte(i)}
		for range 2 {
			var resp kmip.ResponseMessage
			if err := ttlv.UnmarshalTTLV(dvExchange(t, e, ttlv.MarshalTTLV(msg)), &resp); err != nil {
				t.Fatal(err)
			}
			wantOK(t, resp.BatchItem[0])
			if id := resp.BatchItem[0].UniqueBatchItemID; !bytes.Equal(id, []byte{byte(i)}) {
				t.Fatalf("batch item ID %x; want %x", id, i)
			}
		}
	}
	if n := cachedAnswers(e.srv); n != maxCachedAnswers {
		t.Fatalf("%d answers remembered; want %d", n, maxCachedAnswers)
	}
}
