// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/minio/kms-go/kes"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/keys"
)

// crossDoor starts a server with the KMIP door and returns it with an
// ovh kmipclient allowed everything under /kmip/.
func crossDoor(t *testing.T) (*env, *kmipclient.Client, kes.APIKey) {
	t.Helper()
	p := newPKI(t)
	admin, minio := newAPIKey(t), newAPIKey(t)
	clientCert := p.issue(t, "", "", x509.ExtKeyUsageServerAuth, nil)
	kid := string(identity.FromCertificate(clientCert.Leaf))
	yaml := baseConfig(p, identityOf(admin), identityOf(minio),
		"kmip:\n  address: 127.0.0.1:0\n  tls:\n    key: "+p.keyFile+"\n    cert: "+p.certFile+"\n    ca: "+p.caFile+"\n    cipher_suites: compat\n")
	yaml = strings.Replace(yaml, "policy:\n", "policy:\n  kmip:\n    allow: [/kmip/*]\n    identities: ["+kid+"]\n", 1)
	e := start(t, p, admin, yaml)
	if err := e.srv.StartKMIP(context.Background()); err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(p.caFile)
	c, err := kmipclient.Dial(e.srv.KMIPAddr().String(), kmipclient.WithRootCAPem(caPEM), kmipclient.WithClientCert(clientCert))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return e, c, admin
}

// links returns the Link attributes of a KMIP object by type.
func links(t *testing.T, c *kmipclient.Client, uid string) map[kmip.LinkType]string {
	t.Helper()
	out := map[kmip.LinkType]string{}
	for _, a := range c.GetAttributes(uid, kmip.AttributeNameLink).MustExec().Attribute {
		l := a.AttributeValue.(kmip.Link)
		out[l.LinkType] = l.LinkedObjectIdentifier
	}
	return out
}

// kmipRoundTrip encrypts and decrypts over KMIP (AES-GCM) with uid.
func kmipRoundTrip(t *testing.T, c *kmipclient.Client, uid string) {
	t.Helper()
	params := &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeGCM, TagLength: 16}
	enc := c.Encrypt(uid).WithCryptographicParameters(*params).Data([]byte("cross-door")).MustExec()
	if enc.UniqueIdentifier != uid {
		t.Fatalf("encrypt answered for %q, not %q", enc.UniqueIdentifier, uid)
	}
	dec := c.Decrypt(uid).WithCryptographicParameters(*params).WithIvCounterNonce(enc.IVCounterNonce).
		WithAuthTag(enc.AuthenticatedEncryptionTag).Data(enc.Data).MustExec()
	if string(dec.Data) != "cross-door" {
		t.Fatalf("decrypt over KMIP with %s: %q", uid, dec.Data)
	}
}

// Rotating over the KES API is KMIP Re-key seen from the other door: the
// KMIP client sees the old object linked to its replacement, "<name>.v2",
// and can use the replacement at once.
func TestRotateOverKESSeenOverKMIP(t *testing.T) {
	e, c, admin := crossDoor(t)
	ctx := context.Background()
	kc := e.kms(admin)
	if err := kc.CreateKey(ctx, "minio-cd"); err != nil {
		t.Fatal(err)
	}
	before, err := kc.GenerateKey(ctx, "minio-cd", nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := e.raw(apiCert(t, admin))
	if r := e.do(rc, "PUT", "/v1/key/rotate/minio-cd", nil); r.code != 200 {
		t.Fatalf("rotate: %d %s", r.code, r.body)
	}
	if l := links(t, c, "minio-cd"); l[kmip.LinkTypeReplacementObjectLink] != "minio-cd.v2" {
		t.Fatalf("links of the old version: %v", l)
	}
	if l := links(t, c, "minio-cd.v2"); l[kmip.LinkTypeReplacedObjectLink] != "minio-cd" || l[kmip.LinkTypeReplacementObjectLink] != "" {
		t.Fatalf("links of the new version: %v", l)
	}
	if loc := c.Locate().WithName("minio-cd").MustExec(); len(loc.UniqueIdentifier) != 1 || loc.UniqueIdentifier[0] != "minio-cd.v2" {
		t.Fatalf("locate by name: %v", loc.UniqueIdentifier)
	}
	kmipRoundTrip(t, c, "minio-cd.v2")
	kmipRoundTrip(t, c, "minio-cd") // the old version is still Active
	// Both doors keep using the key.
	after, err := kc.GenerateKey(ctx, "minio-cd", nil)
	if err != nil || ciphertextVersionInt(after.Ciphertext) != 2 {
		t.Fatalf("generate after rotate: version %d, %v", ciphertextVersionInt(after.Ciphertext), err)
	}
	if pt, err := kc.Decrypt(ctx, "minio-cd", before.Ciphertext, nil); err != nil || !bytes.Equal(pt, before.Plaintext) {
		t.Fatalf("decrypt of a version-1 ciphertext: %v", err)
	}
}

// KMIP Re-key is a rotation: KES generate uses the new version, a
// ciphertext made before the Re-key still decrypts, and the state of the
// old version (revoked, then destroyed over KMIP) is that version's only.
func TestRekeyOverKMIPSeenOverKES(t *testing.T) {
	e, c, admin := crossDoor(t)
	ctx := context.Background()
	kc := e.kms(admin)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).WithName("vm-disk").MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	before, err := kc.GenerateKey(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	nid := c.Rekey(id).MustExec().UniqueIdentifier
	if nid != id+".v2" {
		t.Fatalf("re-key answered %q", nid)
	}
	after, err := kc.GenerateKey(ctx, id, nil)
	if err != nil || ciphertextVersionInt(after.Ciphertext) != 2 {
		t.Fatalf("generate after re-key: version %d, %v", ciphertextVersionInt(after.Ciphertext), err)
	}
	for _, d := range [][2][]byte{{before.Plaintext, before.Ciphertext}, {after.Plaintext, after.Ciphertext}} {
		if pt, err := kc.Decrypt(ctx, id, d[1], nil); err != nil || !bytes.Equal(pt, d[0]) {
			t.Fatalf("decrypt after re-key: %v", err)
		}
	}
	// Revoking the old version leaves the new one Active.
	c.Revoke(id).WithRevocationReasonCode(kmip.RevocationReasonCodeKeyCompromise).MustExec()
	if _, err := kc.GenerateKey(ctx, id, nil); err != nil {
		t.Fatalf("generate after the old version was revoked: %v", err)
	}
	if pt, err := kc.Decrypt(ctx, id, before.Ciphertext, nil); err != nil || !bytes.Equal(pt, before.Plaintext) {
		t.Fatalf("decrypt with the compromised version: %v", err)
	}
	// Destroying it shreds its ciphertexts only.
	c.Destroy(id).MustExec()
	if _, err := kc.Decrypt(ctx, id, before.Ciphertext, nil); err == nil {
		t.Fatal("a ciphertext of the destroyed version decrypts")
	}
	if pt, err := kc.Decrypt(ctx, id, after.Ciphertext, nil); err != nil || !bytes.Equal(pt, after.Plaintext) {
		t.Fatalf("decrypt with the new version after the old one was destroyed: %v", err)
	}
	// The new version is the key's last: its Destroy destroys the key.
	br, err := c.Batch(ctx, &payloads.DestroyRequestPayload{UniqueIdentifier: nid})
	if err != nil || br[0].ResultReason != kmip.ResultReasonPermissionDenied {
		t.Fatalf("destroy of the active new version: %v %v", err, br)
	}
	c.Revoke(nid).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
	c.Destroy(nid).MustExec()
	if _, err := kc.DescribeKey(ctx, id); err == nil {
		t.Fatal("the key survived the destroy of its last version")
	}
}

// The usage mask of a KMIP key holds on the KES API too.
func TestUsageMaskOverKES(t *testing.T) {
	e, c, admin := crossDoor(t)
	ctx := context.Background()
	kc := e.kms(admin)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	rc := e.raw(apiCert(t, admin))
	body := `{"message":"` + base64.StdEncoding.EncodeToString([]byte("m")) + `"}`
	if r := e.do(rc, "PUT", "/v1/key/hmac/"+id, strings.NewReader(body)); r.code != 403 || !strings.Contains(r.body, "usage mask does not allow") {
		t.Fatalf("hmac with an encrypt-only key: %d %s", r.code, r.body)
	}
	d, err := kc.GenerateKey(ctx, id, nil)
	if err != nil {
		t.Fatalf("generate with an encrypt-only key: %v", err)
	}
	if _, err := kc.Decrypt(ctx, id, d.Ciphertext, nil); err == nil || !strings.Contains(err.Error(), "usage mask does not allow") {
		t.Fatalf("decrypt with an encrypt-only key: %v", err)
	}
	// KES keys keep their derived mask: everything the KES API does.
	if err := kc.CreateKey(ctx, "minio-m"); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.HMAC(ctx, "minio-m", []byte("m")); err != nil {
		t.Fatalf("hmac with a KES key: %v", err)
	}
}

// A key revoked over KMIP stays revoked: PUT /v1/key/rotate refuses it
// (409), so only KMIP Re-key gives it a working version.
func TestRotateOverKESKeepsRevocation(t *testing.T) {
	e, c, admin := crossDoor(t)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	c.Revoke(id).WithRevocationReasonCode(kmip.RevocationReasonCodeKeyCompromise).MustExec()
	rc := e.raw(apiCert(t, admin))
	if r := e.do(rc, "PUT", "/v1/key/rotate/"+id, nil); r.code != 409 || r.body != errorBody("key is not active") {
		t.Fatalf("rotate of a revoked key: %d %s", r.code, r.body)
	}
	if _, err := e.kms(admin).GenerateKey(context.Background(), id, nil); err == nil {
		t.Fatal("the revoked key generates after a refused rotation")
	}
	if nid := c.Rekey(id).MustExec().UniqueIdentifier; nid != id+".v2" {
		t.Fatalf("re-key answered %q", nid)
	}
	kmipRoundTrip(t, c, id+".v2")
}

// PUT /v1/key/rotate of secret data a KMIP client stored is refused
// (409): its material is the client's, and stays as it is.
func TestRotateOverKESRefusesSecretData(t *testing.T) {
	e, c, admin := crossDoor(t)
	id := c.Register().Secret(kmip.SecretDataTypePassword, []byte("hunter2hunter2")).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	rc := e.raw(apiCert(t, admin))
	if r := e.do(rc, "PUT", "/v1/key/rotate/"+id, nil); r.code != 409 || r.body != errorBody("key of this type cannot be rotated") {
		t.Fatalf("rotate of secret data: %d %s", r.code, r.body)
	}
	got := c.Get(id).MustExec().Object.(*kmip.SecretData)
	if b, _ := got.KeyBlock.GetBytes(); string(b) != "hunter2hunter2" {
		t.Fatalf("secret data after a refused rotation: %q", b)
	}
}

// DELETE /v1/key/delete removes every version: after a Re-key (version 1
// stays Active) and a Revoke of the new version, it is refused (409) and
// the Active version 1 keeps working.
func TestDeleteOverKESKeepsActiveOlderVersion(t *testing.T) {
	e, c, admin := crossDoor(t)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	c.Activate(id).MustExec()
	nid := c.Rekey(id).MustExec().UniqueIdentifier
	c.Revoke(nid).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
	rc := e.raw(apiCert(t, admin))
	if r := e.do(rc, "DELETE", "/v1/key/delete/"+id, nil); r.code != 409 || r.body != errorBody(keys.ErrActiveKMIPKey.Error()) {
		t.Fatalf("delete with an active older version: %d %s", r.code, r.body)
	}
	kmipRoundTrip(t, c, id)
	c.Revoke(id).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).MustExec()
	if r := e.do(rc, "DELETE", "/v1/key/delete/"+id, nil); r.code != 200 {
		t.Fatalf("delete with no active version: %d %s", r.code, r.body)
	}
}
