// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"crypto/tls"
	"sync/atomic"
	"testing"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// TestConfigState swaps the State between the messages of one
// connection: each message runs on the state current when it arrived,
// its key service, policies and users, takes one snapshot for all its
// batch items, and releases every snapshot it took.
func TestConfigState(t *testing.T) {
	var (
		cur               atomic.Pointer[State]
		taken, released   atomic.Int64
		storeA, storeB    = keys.New(keys.Config{Store: keystore.NewMem()}), keys.New(keys.Config{Store: keystore.NewMem()})
		allowAll, getOnly = &policy.Policy{Allow: []string{"/kmip/*"}}, &policy.Policy{Allow: []string{"/kmip/get/*"}}
	)
	t.Cleanup(func() { storeA.Close(); storeB.Close() })
	e := newEnv(t, func(c *Config) {
		c.Keys, c.Policies = nil, nil
		c.State = func() (*State, func()) {
			taken.Add(1)
			return cur.Load(), func() { released.Add(1) }
		}
	})
	set := func(ks *keys.Service, p *policy.Policy, users map[string]User) {
		cur.Store(&State{Keys: ks, Policies: &policy.Set{
			Policies:   map[string]*policy.Policy{"kmip": p, "reader": getOnly},
			Identities: map[string]string{idOf(e.client): "kmip"},
		}, Users: users})
	}
	set(storeA, allowAll, nil)
	c := e.raw(e.client)
	createMsg := func() *kmip.RequestMessage {
		return request(kmip.V1_4, &payloads.CreateRequestPayload{
			ObjectType: kmip.ObjectTypeSymmetricKey,
			TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
				{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
				{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
				{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt},
			}},
		})
	}
	resp := send(t, c, createMsg())
	wantOK(t, resp.BatchItem[0])
	id := resp.BatchItem[0].ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
	if _, err := storeA.Describe(t.Context(), id); err != nil {
		t.Fatalf("key not created in the state's key service: %v", err)
	}

	// Another key service and a policy without create: the same
	// connection sees both with its next message.
	set(storeB, getOnly, nil)
	get := request(kmip.V1_4, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id})
	wantReason(t, send(t, c, get).BatchItem[0], kmip.ResultReasonPermissionDenied)
	set(storeB, allowAll, nil)
	wantReason(t, send(t, c, get).BatchItem[0], kmip.ResultReasonItemNotFound)
	set(storeA, allowAll, nil)
	wantOK(t, send(t, c, get).BatchItem[0])

	// Users come from the state too.
	login := func(password string) *kmip.RequestMessage {
		m := request(kmip.V1_4, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id})
		m.Header.Authentication = &kmip.Authentication{Credential: kmip.Credential{
			CredentialType:  kmip.CredentialTypeUsernameAndPassword,
			CredentialValue: kmip.CredentialValue{UserPassword: &kmip.CredentialValueUserPassword{Username: "vcenter", Password: password}},
		}}
		return m
	}
	// No users: the credential is ignored and the certificate decides.
	wantOK(t, send(t, c, login("s3cret")).BatchItem[0])
	set(storeA, getOnly, nil)
	wantReason(t, send(t, c, login("s3cret")).BatchItem[0], kmip.ResultReasonPermissionDenied)
	set(storeA, allowAll, map[string]User{"vcenter": {Password: keystore.NewSecret("s3cret"), Policy: "kmip"}})
	wantOK(t, send(t, c, login("s3cret")).BatchItem[0])
	// A State is not validated like Config.Users: a user without a
	// password never logs in, not even with an empty one.
	set(storeA, allowAll, map[string]User{"vcenter": {Password: keystore.NewSecret(""), Policy: "kmip"}})
	wantReason(t, send(t, c, login("")).BatchItem[0], kmip.ResultReasonAuthenticationNotSuccessful)

	// One snapshot for a batch of two items.
	before := taken.Load()
	resp = send(t, c, request(kmip.V1_4, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id}, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id}))
	if len(resp.BatchItem) != 2 {
		t.Fatalf("%d batch items", len(resp.BatchItem))
	}
	if n := taken.Load() - before; n != 1 {
		t.Fatalf("State called %d times for one message", n)
	}
	if taken.Load() != released.Load() || taken.Load() == 0 {
		t.Fatalf("%d states taken, %d released", taken.Load(), released.Load())
	}
}

// TestConfigStateExclusive: State replaces Keys, Policies and Users;
// a config with both is ambiguous and refused.
func TestConfigStateExclusive(t *testing.T) {
	p := testPKI(t)
	ks := keys.New(keys.Config{Store: keystore.NewMem()})
	t.Cleanup(func() { ks.Close() })
	state := func() (*State, func()) { return &State{Keys: ks}, nil }
	tc := &tls.Config{Certificates: []tls.Certificate{p.server}}
	for name, cfg := range map[string]Config{
		"keys":     {State: state, Keys: ks, TLSConfig: tc},
		"policies": {State: state, Policies: func() *policy.Set { return nil }, TLSConfig: tc},
		"users":    {State: state, Users: map[string]User{"u": {Password: keystore.NewSecret("p")}}, TLSConfig: tc},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: State with %s accepted", name, name)
		}
	}
	if _, err := New(Config{State: state, TLSConfig: tc}); err != nil {
		t.Fatal(err)
	}
}
