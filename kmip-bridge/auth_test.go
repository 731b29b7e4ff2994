// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"fmt"
	"github.com/kesbridge/kes/keystore"
	"strings"
	"testing"

	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

func TestNoClientCertificate(t *testing.T) {
	e := newEnv(t)
	if !e.refused(nil) {
		t.Fatal("session without a client certificate")
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	// Self-signed, as the certificate of a KES API key.
	stranger := e.pki.selfSigned(t)
	getter := e.pki.issue(t, "getter", false)
	e.policies.Store(&policy.Set{
		Policies: map[string]*policy.Policy{
			"kmip": {Allow: []string{"/kmip/*"}},
			"get":  {Allow: []string{"/kmip/get/*", "/kmip/discover-versions"}},
		},
		Identities: map[string]string{idOf(e.client): "kmip", idOf(getter): "get"},
	})
	id := e.dial(e.client).Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier

	t.Run("identity without policy", func(t *testing.T) {
		c := e.raw(stranger)
		resp := send(t, c, request(kmip.V1_2, &payloads.GetRequestPayload{UniqueIdentifier: id}))
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonPermissionDenied)
		// The connection stays usable.
		resp = send(t, c, request(kmip.V1_2, &payloads.DiscoverVersionsRequestPayload{}))
		wantReason(t, resp.BatchItem[0], kmip.ResultReasonPermissionDenied)
	})

	t.Run("get but not create", func(t *testing.T) {
		c := e.raw(getter)
		create := &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey}
		msg := request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: id}, create, &payloads.DestroyRequestPayload{UniqueIdentifier: id}, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id})
		msg.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionContinue
		resp := send(t, c, msg)
		wantOK(t, resp.BatchItem[0])
		wantReason(t, resp.BatchItem[1], kmip.ResultReasonPermissionDenied)
		wantReason(t, resp.BatchItem[2], kmip.ResultReasonPermissionDenied)
		wantReason(t, resp.BatchItem[3], kmip.ResultReasonPermissionDenied)
		if !e.audited(idOf(getter), "destroy", id, true) || !e.audited(idOf(getter), "get", id, false) {
			t.Fatal("audit records missing")
		}
	})

	t.Run("policy reload", func(t *testing.T) {
		c := e.raw(stranger)
		msg := request(kmip.V1_2, &payloads.GetRequestPayload{UniqueIdentifier: id})
		wantReason(t, send(t, c, msg).BatchItem[0], kmip.ResultReasonPermissionDenied)
		old := e.policies.Load()
		e.policies.Store(&policy.Set{Admin: idOf(stranger), Policies: old.Policies, Identities: old.Identities})
		wantOK(t, send(t, c, msg).BatchItem[0])
		e.policies.Store(old)
	})
}

func TestUsernamePassword(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Users = map[string]User{"vcenter": {Password: keystore.NewSecret("s3cret"), Policy: "reader"}}
	})
	stranger := e.pki.issue(t, "stranger", false)
	old := e.policies.Load()
	e.policies.Store(&policy.Set{
		Policies:   map[string]*policy.Policy{"kmip": old.Policies["kmip"], "reader": {Allow: []string{"/kmip/discover-versions", "/kmip/get/*"}}},
		Identities: old.Identities,
	})

	// The captured PyKMIP request: Discover Versions with Username
	// "vcenter", Password "s3cret", versions 1.4, 1.2, 1.1.
	const captured = `42007801000001204200770100000080420069010000002042006a0200000004000000010000000042006b0200000004000000010000000042000c0100000040420023010000003842002405000000040000000100000000420025010000002042009907000000077663656e746572004200a10700000006733363726574000042000d0200000004000000010000000042000f010000009042005c05000000040000001e000000004200790100000078420069010000002042006a0200000004000000010000000042006b02000000040000000400000000420069010000002042006a0200000004000000010000000042006b02000000040000000200000000420069010000002042006a0200000004000000010000000042006b02000000040000000100000000`

	t.Run("right password", func(t *testing.T) {
		// The certificate identity has no policy: the user's applies.
		resp := exchange(t, e.raw(stranger), unhex(t, captured))
		wantOK(t, resp.BatchItem[0])
		vs := resp.BatchItem[0].ResponsePayload.(*payloads.DiscoverVersionsResponsePayload).ProtocolVersion
		if len(vs) != 3 || vs[0] != kmip.V1_4 || vs[1] != kmip.V1_2 || vs[2] != kmip.V1_1 {
			t.Fatalf("versions %v", vs)
		}
	})

	auth := func(user, pass string) *kmip.Authentication {
		return &kmip.Authentication{Credential: kmip.Credential{
			CredentialType:  kmip.CredentialTypeUsernameAndPassword,
			CredentialValue: kmip.CredentialValue{UserPassword: &kmip.CredentialValueUserPassword{Username: user, Password: pass}},
		}}
	}
	t.Run("user policy replaces identity policy", func(t *testing.T) {
		msg := request(kmip.V1_1, &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey})
		msg.Header.Authentication = auth("vcenter", "s3cret")
		// e.client may create, but the user's policy may not.
		wantReason(t, send(t, e.raw(e.client), msg).BatchItem[0], kmip.ResultReasonPermissionDenied)
	})
	for name, a := range map[string]*kmip.Authentication{
		"wrong password": auth("vcenter", "s3cret!"),
		"unknown user":   auth("root", "s3cret"),
		"no password":    auth("vcenter", ""),
	} {
		t.Run(name, func(t *testing.T) {
			msg := request(kmip.V1_1, &payloads.DiscoverVersionsRequestPayload{}, &payloads.QueryRequestPayload{})
			msg.Header.Authentication = a
			resp := send(t, e.raw(e.client), msg)
			if len(resp.BatchItem) != 1 {
				t.Fatalf("%d batch items, want 1 for the whole message", len(resp.BatchItem))
			}
			wantReason(t, resp.BatchItem[0], kmip.ResultReasonAuthenticationNotSuccessful)
		})
	}
}

// TestUserPasswordRedacted checks that printing a Config or State, as a
// debugging log line might, shows no password.
func TestUserPasswordRedacted(t *testing.T) {
	users := map[string]User{"vcenter": {Password: keystore.NewSecret("s3cret-pw"), Policy: "reader"}}
	for _, v := range []any{Config{Users: users}, &State{Users: users}, users} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, "s3cret-pw") || strings.Contains(out, fmt.Sprintf("%x", "s3cret-pw")) {
				t.Fatalf("%s of %T shows the password: %s", verb, v, out)
			}
		}
	}
}
