// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//lint:file-ignore SA1019 the deprecated 1.0 certificate attributes are what these tests check

package kmipbridge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// testCertificate returns a certificate for cn signed by the test CA.
func testCertificate(t testing.TB, e *env, cn string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"ACME"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, e.pki.ca, &key.PublicKey, e.pki.caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestCertificateClient registers certificates with the ovh client and
// reads them back: Get, Get Attributes, Get Attribute List and Locate by
// the certificate attributes and by Link.
func TestCertificateClient(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	pub := c.Register().Secret(kmip.SecretDataTypeSeed, []byte("stands in for a public key")).MustExec().UniqueIdentifier
	cert := testCertificate(t, e, "server-1", 0x9bba23d1)
	other := testCertificate(t, e, "server-2", 2)
	id := c.Register().X509Certificate(cert).WithLink(kmip.LinkTypePublicKeyLink, pub).WithName("cert-1").MustExec().UniqueIdentifier
	id2 := c.Register().X509Certificate(other).MustExec().UniqueIdentifier

	got := c.Get(id).MustExec()
	if got.ObjectType != kmip.ObjectTypeCertificate {
		t.Fatalf("object type %v", got.ObjectType)
	}
	if gc, err := got.X509Certificate(); err != nil || !bytes.Equal(gc.Raw, cert.Raw) {
		t.Fatalf("get: %v", err)
	}
	// Certificates are public: Get is no export.
	if e.audited(idOf(e.client), "export", id, false) {
		t.Fatal("get of a certificate was audited as an export")
	}

	serial, _ := asn1.Marshal(cert.SerialNumber)
	want := map[kmip.AttributeName]any{
		kmip.AttributeNameObjectType:                kmip.ObjectTypeCertificate,
		kmip.AttributeNameCertificateType:           kmip.CertificateTypeX_509,
		kmip.AttributeNameCertificateLength:         int32(len(cert.Raw)),
		kmip.AttributeNameX509CertificateIdentifier: kmip.X_509CertificateIdentifier{IssuerDistinguishedName: cert.RawIssuer, CertificateSerialNumber: serial},
		kmip.AttributeNameX509CertificateSubject:    kmip.X_509CertificateSubject{SubjectDistinguishedName: cert.RawSubject},
		kmip.AttributeNameX509CertificateIssuer:     kmip.X_509CertificateIssuer{IssuerDistinguishedName: cert.RawIssuer},
		kmip.AttributeNameCertificateIdentifier:     kmip.CertificateIdentifier{Issuer: "CN=test CA", SerialNumber: "9BBA23D1"},
		kmip.AttributeNameCertificateSubject:        kmip.CertificateSubject{CertificateSubjectDistinguishedName: "CN=server-1,O=ACME"},
		kmip.AttributeNameCertificateIssuer:         kmip.CertificateIssuer{CertificateIssuerDistinguishedName: "CN=test CA"},
		kmip.AttributeNameDigitalSignatureAlgorithm: kmip.DigitalSignatureAlgorithmECDSAWithSHA256,
		kmip.AttributeNameCryptographicAlgorithm:    kmip.CryptographicAlgorithmECDSA,
		kmip.AttributeNameCryptographicLength:       int32(384),
		kmip.AttributeNameLink:                      kmip.Link{LinkType: kmip.LinkTypePublicKeyLink, LinkedObjectIdentifier: pub},
		kmip.AttributeNameExtractable:               true,
		kmip.AttributeNameSensitive:                 false,
	}
	all := c.GetAttributes(id).MustExec().Attribute
	for name, v := range want {
		if got := attrValue(t, all, name); !reflect.DeepEqual(got, v) {
			t.Errorf("%s = %#v, want %#v", name, got, v)
		}
	}
	list := c.GetAttributeList(id).MustExec().AttributeName
	for name := range want {
		if !slices.Contains(list, name) {
			t.Errorf("attribute list lacks %s: %v", name, list)
		}
	}

	for _, tt := range []struct {
		name   string
		filter kmip.Attribute
		want   []string
	}{
		{"certificate type", kmip.Attribute{AttributeName: kmip.AttributeNameCertificateType, AttributeValue: kmip.CertificateTypeX_509}, []string{id, id2}},
		{"x.509 subject", kmip.Attribute{AttributeName: kmip.AttributeNameX509CertificateSubject, AttributeValue: kmip.X_509CertificateSubject{SubjectDistinguishedName: other.RawSubject}}, []string{id2}},
		{"x.509 issuer", kmip.Attribute{AttributeName: kmip.AttributeNameX509CertificateIssuer, AttributeValue: kmip.X_509CertificateIssuer{IssuerDistinguishedName: cert.RawIssuer}}, []string{id, id2}},
		{"x.509 identifier", kmip.Attribute{AttributeName: kmip.AttributeNameX509CertificateIdentifier, AttributeValue: want[kmip.AttributeNameX509CertificateIdentifier]}, []string{id}},
		{"1.0 identifier", kmip.Attribute{AttributeName: kmip.AttributeNameCertificateIdentifier, AttributeValue: kmip.CertificateIdentifier{Issuer: "CN=test CA", SerialNumber: "9bba23d1"}}, []string{id}},
		{"1.0 subject", kmip.Attribute{AttributeName: kmip.AttributeNameCertificateSubject, AttributeValue: kmip.CertificateSubject{CertificateSubjectDistinguishedName: "CN=server-2,O=ACME"}}, []string{id2}},
		{"1.0 issuer", kmip.Attribute{AttributeName: kmip.AttributeNameCertificateIssuer, AttributeValue: kmip.CertificateIssuer{CertificateIssuerDistinguishedName: "CN=other CA"}}, nil},
		{"link", kmip.Attribute{AttributeName: kmip.AttributeNameLink, AttributeValue: kmip.Link{LinkType: kmip.LinkTypePublicKeyLink, LinkedObjectIdentifier: pub}}, []string{id}},
		{"link type only", kmip.Attribute{AttributeName: kmip.AttributeNameLink, AttributeValue: kmip.Link{LinkType: kmip.LinkTypePublicKeyLink}}, []string{id}},
		{"link of another type", kmip.Attribute{AttributeName: kmip.AttributeNameLink, AttributeValue: kmip.Link{LinkType: kmip.LinkTypePrivateKeyLink, LinkedObjectIdentifier: pub}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Locate().WithAttributes(tt.filter).MustExec().UniqueIdentifier
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("located %v, want %v", got, want)
			}
		})
	}

	// A link added later is found, and gone once deleted; it may be
	// modified like any client attribute.
	c.AddAttribute(pub, kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeCertificateLink, LinkedObjectIdentifier: id}).MustExec()
	byLink := func(l kmip.Link) []string {
		return c.Locate().WithAttribute(kmip.AttributeNameLink, l).MustExec().UniqueIdentifier
	}
	if got := byLink(kmip.Link{LinkType: kmip.LinkTypeCertificateLink, LinkedObjectIdentifier: id}); !slices.Equal(got, []string{pub}) {
		t.Fatalf("locate by added link: %v", got)
	}
	c.ModifyAttribute(pub, kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeCertificateLink, LinkedObjectIdentifier: id2}).MustExec()
	if got := byLink(kmip.Link{LinkType: kmip.LinkTypeCertificateLink, LinkedObjectIdentifier: id}); len(got) != 0 {
		t.Fatalf("locate by modified-away link: %v", got)
	}
	if got := byLink(kmip.Link{LinkType: kmip.LinkTypeCertificateLink, LinkedObjectIdentifier: id2}); !slices.Equal(got, []string{pub}) {
		t.Fatalf("locate by modified link: %v", got)
	}
	c.DeleteAttribute(pub, kmip.AttributeNameLink).MustExec()
	if got := byLink(kmip.Link{LinkType: kmip.LinkTypeCertificateLink, LinkedObjectIdentifier: id2}); len(got) != 0 {
		t.Fatalf("locate by deleted link: %v", got)
	}
	c.Revoke(id).WithRevocationReasonCode(kmip.RevocationReasonCodeSuperseded).MustExec()
	c.Destroy(id).MustExec()
}

// TestCertificateVersions: the 1.0 forms of the certificate attributes
// are reported at every 1.x version (the OASIS 1.1 and 1.2 cases expect
// them), the X.509 forms from 1.1 on.
func TestCertificateVersions(t *testing.T) {
	e := newEnv(t)
	cert := testCertificate(t, e, "versions", 3)
	id := e.dial(e.client).Register().X509Certificate(cert).MustExec().UniqueIdentifier
	for _, v := range []kmip.ProtocolVersion{kmip.V1_0, kmip.V1_1, kmip.V1_4} {
		c := e.dial(e.client, kmipclient.EnforceVersion(v))
		list := c.GetAttributeList(id).MustExec().AttributeName
		if !slices.Contains(list, kmip.AttributeNameCertificateSubject) || !slices.Contains(list, kmip.AttributeNameCertificateType) {
			t.Errorf("%v: list lacks the 1.0 attributes: %v", v, list)
		}
		x509 := slices.Contains(list, kmip.AttributeNameX509CertificateSubject)
		if x509 != (v != kmip.V1_0) {
			t.Errorf("%v: X.509 Certificate Subject listed: %v", v, x509)
		}
	}
}

// TestCertificateHostile: what a client may not do with certificates,
// split keys and links.
func TestCertificateHostile(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	cert := testCertificate(t, e, "hostile", 4)
	id := c.Register().X509Certificate(cert).MustExec().UniqueIdentifier

	// A certificate over the cap that would parse: the cap is checked
	// before the parser runs.
	big := make([]byte, MaxCertificateSize+1)
	copy(big, cert.Raw)
	split := func(parts, id, threshold int32, method kmip.SplitKeyMethod) *payloads.RegisterRequestPayload {
		material := []byte("0123456789abcdef")
		return &payloads.RegisterRequestPayload{ObjectType: kmip.ObjectTypeSplitKey, Object: &kmip.SplitKey{
			SplitKeyParts: parts, KeyPartIdentifier: id, SplitKeyThreshold: threshold, SplitKeyMethod: method,
			KeyBlock: kmip.KeyBlock{KeyFormatType: kmip.KeyFormatTypeRaw, CryptographicAlgorithm: kmip.CryptographicAlgorithmAES, CryptographicLength: 128,
				KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &material}}}},
		}}
	}
	certReq := func(typ kmip.CertificateType, der []byte) *payloads.RegisterRequestPayload {
		return &payloads.RegisterRequestPayload{ObjectType: kmip.ObjectTypeCertificate, Object: &kmip.Certificate{CertificateType: typ, CertificateValue: der}}
	}
	link := func(l kmip.Link) kmip.Attribute {
		return kmip.Attribute{AttributeName: kmip.AttributeNameLink, AttributeValue: l}
	}
	for _, tt := range []struct {
		name    string
		payload kmip.OperationPayload
		reason  kmip.ResultReason
	}{
		{"garbage DER", certReq(kmip.CertificateTypeX_509, []byte("\x30\x03not a certificate")), kmip.ResultReasonInvalidField},
		{"truncated DER", certReq(kmip.CertificateTypeX_509, cert.Raw[:len(cert.Raw)-1]), kmip.ResultReasonInvalidField},
		{"certificate over the cap", certReq(kmip.CertificateTypeX_509, big), kmip.ResultReasonInvalidField},
		{"PGP", certReq(kmip.CertificateTypePGP, cert.Raw), kmip.ResultReasonFeatureNotSupported},
		{"modify certificate subject", &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id, Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameX509CertificateSubject, AttributeValue: kmip.X_509CertificateSubject{SubjectDistinguishedName: []byte{0x30, 0}}}}, kmip.ResultReasonPermissionDenied},
		{"modify certificate length", &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id, Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameCertificateLength, AttributeValue: int32(1)}}, kmip.ResultReasonPermissionDenied},
		{"delete certificate type", &payloads.DeleteAttributeRequestPayload{UniqueIdentifier: id, AttributeName: kmip.AttributeNameCertificateType}, kmip.ResultReasonPermissionDenied},
		{"add certificate identifier", &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameCertificateIdentifier, AttributeValue: kmip.CertificateIdentifier{Issuer: "CN=x", SerialNumber: "01"}}}, kmip.ResultReasonPermissionDenied},
		{"split key identifier above parts", split(3, 4, 2, kmip.SplitKeyMethodPolynomialSharingGF216), kmip.ResultReasonInvalidField},
		{"split key identifier 0", split(3, 0, 2, kmip.SplitKeyMethodPolynomialSharingGF216), kmip.ResultReasonInvalidField},
		{"split key threshold above parts", split(3, 1, 4, kmip.SplitKeyMethodPolynomialSharingGF216), kmip.ResultReasonInvalidField},
		{"split key unknown method", split(3, 1, 2, 0x77), kmip.ResultReasonInvalidField},
		{"split key XOR threshold", split(3, 1, 2, kmip.SplitKeyMethodXOR), kmip.ResultReasonInvalidField},
		{"split key prime field without size", split(3, 1, 2, kmip.SplitKeyMethodPolynomialSharingPrimeField), kmip.ResultReasonMissingData},
		{"locate by link of no type", &locateRequest{Attribute: []kmip.Attribute{link(kmip.Link{LinkedObjectIdentifier: id})}}, kmip.ResultReasonInvalidField},
		{"locate by link of unknown type", &locateRequest{Attribute: []kmip.Attribute{link(kmip.Link{LinkType: 0x7777, LinkedObjectIdentifier: id})}}, kmip.ResultReasonInvalidField},
		{"add link of unknown type", &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: link(kmip.Link{LinkType: 0x7777, LinkedObjectIdentifier: "x"})}, kmip.ResultReasonInvalidField},
		{"add link to nothing", &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: link(kmip.Link{LinkType: kmip.LinkTypeParentLink})}, kmip.ResultReasonInvalidField},
		{"register with a link of unknown type", &payloads.RegisterRequestPayload{ObjectType: kmip.ObjectTypeCertificate, Object: &kmip.Certificate{CertificateType: kmip.CertificateTypeX_509, CertificateValue: cert.Raw},
			TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{link(kmip.Link{LinkType: 0x7777, LinkedObjectIdentifier: "x"})}}}, kmip.ResultReasonInvalidField},
		{"get certificate as PKCS#8", &payloads.GetRequestPayload{UniqueIdentifier: id, KeyFormatType: kmip.KeyFormatTypePKCS_8}, kmip.ResultReasonKeyFormatTypeNotSupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, e.raw(e.client), request(kmip.V1_4, tt.payload))
			wantReason(t, resp.BatchItem[0], tt.reason)
		})
	}
	// Nothing but the first certificate was stored.
	if names, err := e.keys.List(context.Background(), ""); err != nil || len(names) != 1 {
		t.Fatalf("keys after refused requests: %v %v", names, err)
	}
}

// TestSplitKey registers split key parts and gets them back; they follow
// the export rules of symmetric keys.
func TestSplitKey(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.client)
	part := []byte("0123456789abcdef")
	prime := new(big.Int).SetUint64(0xffffffffffffffc5) // 2^64 - 59
	sk := &kmip.SplitKey{
		SplitKeyParts: 5, KeyPartIdentifier: 2, SplitKeyThreshold: 3, SplitKeyMethod: kmip.SplitKeyMethodPolynomialSharingPrimeField,
		PrimeFieldSize: prime,
		KeyBlock: kmip.KeyBlock{KeyFormatType: kmip.KeyFormatTypeRaw, CryptographicAlgorithm: kmip.CryptographicAlgorithmAES, CryptographicLength: 128,
			KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &part}}}},
	}
	id := c.Register().Object(sk).MustExec().UniqueIdentifier
	got := c.Get(id).MustExec()
	gk, ok := got.Object.(*kmip.SplitKey)
	if !ok || got.ObjectType != kmip.ObjectTypeSplitKey {
		t.Fatalf("get: %T %v", got.Object, got.ObjectType)
	}
	if gk.SplitKeyParts != 5 || gk.KeyPartIdentifier != 2 || gk.SplitKeyThreshold != 3 || gk.SplitKeyMethod != kmip.SplitKeyMethodPolynomialSharingPrimeField ||
		gk.PrimeFieldSize == nil || gk.PrimeFieldSize.Cmp(prime) != 0 {
		t.Fatalf("split fields: %+v", gk)
	}
	if b := gk.KeyBlock; b.CryptographicAlgorithm != kmip.CryptographicAlgorithmAES || b.CryptographicLength != 128 ||
		b.KeyValue == nil || b.KeyValue.Plain == nil || b.KeyValue.Plain.KeyMaterial.Bytes == nil || !bytes.Equal(*b.KeyValue.Plain.KeyMaterial.Bytes, part) {
		t.Fatalf("key block: %+v", b)
	}
	if !e.audited(idOf(e.client), "export", id, false) {
		t.Fatal("get of a split key was not audited as an export")
	}
	attrs := c.GetAttributes(id, kmip.AttributeNameObjectType, kmip.AttributeNameCryptographicLength).MustExec().Attribute
	if attrValue(t, attrs, kmip.AttributeNameObjectType) != kmip.ObjectTypeSplitKey || attrValue(t, attrs, kmip.AttributeNameCryptographicLength) != int32(128) {
		t.Fatalf("attributes: %+v", attrs)
	}

	// Query names both object types.
	q := send(t, e.raw(e.client), request(kmip.V1_4, &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionObjects}}))
	wantOK(t, q.BatchItem[0])
	if types := q.BatchItem[0].ResponsePayload.(*payloads.QueryResponsePayload).ObjectType; !slices.Contains(types, kmip.ObjectTypeSplitKey) || !slices.Contains(types, kmip.ObjectTypeCertificate) {
		t.Fatalf("query objects: %v", types)
	}

	// Not extractable: Get is refused.
	sk.KeyPartIdentifier = 3
	sk.PrimeFieldSize, sk.SplitKeyMethod = nil, kmip.SplitKeyMethodPolynomialSharingGF216
	locked := c.Register().Object(sk).WithAttribute(kmip.AttributeNameExtractable, false).MustExec().UniqueIdentifier
	resp := send(t, e.raw(e.client), request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: locked}))
	wantReason(t, resp.BatchItem[0], kmip.ResultReasonPermissionDenied)
}

// OASIS vectors with a registered certificate: TC-132 (RSA, 1.0 forms at
// 1.0 and 1.1, both forms at 1.2) and TC-ECC-3 (ECDSA, X.509 forms).
var certificateVectors = []string{
	"v1.0/TC_132_10_Register_an_Asymmetric_Key_Pair_and_a_Corresponding_X509_Certificate.xml",
	"v1.1/TC_132_11_Register_an_Asymmetric_Key_Pair_and_a_Corresponding_X509_Certificate.xml",
	"v1.2/TC_132_12_Register_an_Asymmetric_Key_Pair_and_a_Corresponding_X509_Certificate.xml",
	"v1.0/TC_ECC_3_10_Register_an_ECC_Key_Pair_and_ECDSA_Certificate.xml",
	"v1.2/TC_ECC_3_12_Register_an_ECC_Key_Pair_and_ECDSA_Certificate.xml", // secp256k1
}

// TestCertificateOASISAttributes registers the certificate of each
// OASIS case and compares the certificate attributes, and the
// certificate Get returns, with what the case's responses hold.
func TestCertificateOASISAttributes(t *testing.T) {
	root := oasisRoot(t)
	derived := append([]kmip.AttributeName{kmip.AttributeNameCryptographicLength}, certificateAttrNames...)
	for _, file := range certificateVectors {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t)
			conn := e.raw(e.client)
			msgs := msgRe.FindAllString(string(data), -1)
			var (
				id      string
				checked int
			)
			for i := 0; i+1 < len(msgs); i += 2 {
				var req kmip.RequestMessage
				if err := ttlv.UnmarshalXML([]byte(uidRe.ReplaceAllString(msgs[i], "pub")), &req); err != nil {
					t.Fatalf("message %d: %v", i/2, err)
				}
				var exp kmip.ResponseMessage
				if err := ttlv.UnmarshalXML([]byte(msgs[i+1]), &exp); err != nil {
					t.Fatalf("message %d: %v", i/2, err)
				}
				bi := req.BatchItem[0]
				switch p := bi.RequestPayload.(type) {
				case *payloads.RegisterRequestPayload:
					if p.ObjectType != kmip.ObjectTypeCertificate {
						continue
					}
					resp := send(t, conn, &req)
					wantOK(t, resp.BatchItem[0])
					id = resp.BatchItem[0].ResponsePayload.(*payloads.RegisterResponsePayload).UniqueIdentifier
					// Get must return what was registered.
					g := send(t, conn, request(req.Header.ProtocolVersion, &payloads.GetRequestPayload{UniqueIdentifier: id}))
					wantOK(t, g.BatchItem[0])
					if got := g.BatchItem[0].ResponsePayload.(*payloads.GetResponsePayload).Object; !reflect.DeepEqual(got, p.Object) {
						t.Fatalf("get: %+v, want %+v", got, p.Object)
					}
				case *payloads.GetAttributesRequestPayload:
					if id == "" || len(exp.BatchItem) == 0 || exp.BatchItem[0].ResponsePayload == nil {
						continue
					}
					want := exp.BatchItem[0].ResponsePayload.(*payloads.GetAttributesResponsePayload).Attribute
					var names []kmip.AttributeName
					for _, a := range want {
						names = append(names, a.AttributeName)
					}
					if !slices.ContainsFunc(names, func(n kmip.AttributeName) bool { return slices.Contains(certificateAttrNames, n) }) {
						continue // a key's attributes
					}
					resp := send(t, conn, request(req.Header.ProtocolVersion, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: names}))
					wantOK(t, resp.BatchItem[0])
					got := resp.BatchItem[0].ResponsePayload.(*payloads.GetAttributesResponsePayload).Attribute
					for _, w := range want {
						if !slices.Contains(derived, w.AttributeName) {
							continue
						}
						checked++
						i := slices.IndexFunc(got, func(a kmip.Attribute) bool { return a.AttributeName == w.AttributeName })
						if i < 0 {
							t.Errorf("%s missing", w.AttributeName)
						} else if !reflect.DeepEqual(got[i].AttributeValue, w.AttributeValue) {
							t.Errorf("%s = %+v, want %+v", w.AttributeName, got[i].AttributeValue, w.AttributeValue)
						}
					}
				}
			}
			if id == "" || checked == 0 {
				t.Fatalf("the case registered no certificate or asked for none of its attributes (%d checked)", checked)
			}
		})
	}
}

// TestCertificateRSAAttributes: an RSA certificate reports its key's
// algorithm and length.
func TestCertificateRSAAttributes(t *testing.T) {
	e := newEnv(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0), Subject: pkix.Name{CommonName: "rsa"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial(e.client)
	id := c.Register().Certificate(kmip.CertificateTypeX_509, der).MustExec().UniqueIdentifier
	attrs := c.GetAttributes(id, kmip.AttributeNameCryptographicAlgorithm, kmip.AttributeNameCryptographicLength,
		kmip.AttributeNameDigitalSignatureAlgorithm, kmip.AttributeNameCertificateIdentifier).MustExec().Attribute
	if attrValue(t, attrs, kmip.AttributeNameCryptographicAlgorithm) != kmip.CryptographicAlgorithmRSA || attrValue(t, attrs, kmip.AttributeNameCryptographicLength) != int32(2048) ||
		attrValue(t, attrs, kmip.AttributeNameDigitalSignatureAlgorithm) != kmip.DigitalSignatureAlgorithmSHA_256WithRSAEncryption {
		t.Fatalf("attributes: %+v", attrs)
	}
	if ci, _ := attrValue(t, attrs, kmip.AttributeNameCertificateIdentifier).(kmip.CertificateIdentifier); ci.SerialNumber != "00" {
		t.Fatalf("serial number 0 reported as %q", ci.SerialNumber)
	}
}

// TestCertificateForeignKey: a certificate whose key crypto/x509 does
// not parse (secp256k1, from TC-ECC-3-12) is accepted with its key's
// algorithm and length, while the rest of it is still checked by
// crypto/x509.
func TestCertificateForeignKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(oasisRoot(t), "v1.2", "TC_ECC_3_12_Register_an_ECC_Key_Pair_and_ECDSA_Certificate.xml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<CertificateValue type="ByteString" value="([0-9a-f]+)"/>`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no certificate in the case")
	}
	der := unhex(t, string(m[1]))
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("crypto/x509 parses the case's certificate: the test needs another one")
	}
	e := newEnv(t)
	c := e.dial(e.client)
	id := c.Register().Certificate(kmip.CertificateTypeX_509, der).MustExec().UniqueIdentifier
	attrs := c.GetAttributes(id, kmip.AttributeNameCryptographicAlgorithm, kmip.AttributeNameCryptographicLength, kmip.AttributeNameCertificateLength).MustExec().Attribute
	if attrValue(t, attrs, kmip.AttributeNameCryptographicAlgorithm) != kmip.CryptographicAlgorithmECDSA || attrValue(t, attrs, kmip.AttributeNameCryptographicLength) != int32(256) ||
		attrValue(t, attrs, kmip.AttributeNameCertificateLength) != int32(len(der)) {
		t.Fatalf("attributes: %+v", attrs)
	}
	if got, ok := c.Get(id).MustExec().Object.(*kmip.Certificate); !ok || !bytes.Equal(got.CertificateValue, der) {
		t.Fatal("get does not return the registered certificate")
	}

	secp256k1 := []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a}
	validity := []byte("130625103311Z")
	for _, tt := range []struct{ name, old, new string }{
		{"unknown curve", string(secp256k1), string(secp256k1[:6]) + "\x7f"},
		{"broken validity", string(validity), "13062510331XZ"},
		{"compressed point", "\x03\x42\x00\x04", "\x03\x42\x00\x02"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(der, []byte(tt.old)) {
				t.Fatalf("certificate has no %x", tt.old)
			}
			bad := bytes.Replace(der, []byte(tt.old), []byte(tt.new), 1)
			resp := send(t, e.raw(e.client), request(kmip.V1_2, &payloads.RegisterRequestPayload{ObjectType: kmip.ObjectTypeCertificate,
				Object: &kmip.Certificate{CertificateType: kmip.CertificateTypeX_509, CertificateValue: bad}}))
			wantReason(t, resp.BatchItem[0], kmip.ResultReasonInvalidField)
		})
	}
}

// TestLocateCertificateIndex: a Locate by a certificate attribute or by
// Link reads only the index's candidates, and finds what a full scan
// finds.
func TestLocateCertificateIndex(t *testing.T) {
	store := &countingStore{Store: keystore.NewMem()}
	ks := keys.New(keys.Config{Store: store, Cache: cache.Config{Expiry: time.Nanosecond}})
	t.Cleanup(func() { ks.Close() })
	e := newEnv(t, func(c *Config) { c.Keys = ks })
	e.keys = ks
	c := e.dial(e.client)
	var (
		certs []*x509.Certificate
		uids  []string
	)
	for i := range 20 {
		cert := testCertificate(t, e, fmt.Sprintf("host-%d", i), int64(100+i))
		certs = append(certs, cert)
		uids = append(uids, c.Register().X509Certificate(cert).WithLink(kmip.LinkTypePublicKeyLink, fmt.Sprintf("pub-%d", i%5)).MustExec().UniqueIdentifier)
	}
	locateBy(t, e, byName("builds the index"))
	serial, _ := asn1.Marshal(certs[7].SerialNumber)
	for _, tt := range []struct {
		name   string
		filter kmip.Attribute
		want   []string
	}{
		{"x.509 subject", kmip.Attribute{AttributeName: kmip.AttributeNameX509CertificateSubject, AttributeValue: kmip.X_509CertificateSubject{SubjectDistinguishedName: certs[3].RawSubject}}, uids[3:4]},
		{"x.509 identifier", kmip.Attribute{AttributeName: kmip.AttributeNameX509CertificateIdentifier, AttributeValue: kmip.X_509CertificateIdentifier{IssuerDistinguishedName: certs[7].RawIssuer, CertificateSerialNumber: serial}}, uids[7:8]},
		{"1.0 subject", kmip.Attribute{AttributeName: kmip.AttributeNameCertificateSubject, AttributeValue: kmip.CertificateSubject{CertificateSubjectDistinguishedName: "CN=host-11,O=ACME"}}, uids[11:12]},
		{"1.0 identifier, lower-case serial", kmip.Attribute{AttributeName: kmip.AttributeNameCertificateIdentifier, AttributeValue: kmip.CertificateIdentifier{Issuer: "CN=test CA", SerialNumber: "6e"}}, uids[10:11]},
		{"link", kmip.Attribute{AttributeName: kmip.AttributeNameLink, AttributeValue: kmip.Link{LinkType: kmip.LinkTypePublicKeyLink, LinkedObjectIdentifier: "pub-2"}}, []string{uids[2], uids[7], uids[12], uids[17]}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := store.gets.Load()
			got := locateBy(t, e, tt.filter)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("located %v, want %v", got, want)
			}
			if n := store.gets.Load() - before; n > int64(len(want)) {
				t.Fatalf("Locate read %d keys for %d candidates", n, len(want))
			}
		})
	}
}

// FuzzCertificate: any certificate value is refused with a KMIP error or
// gives attributes that encode; nothing panics.
func FuzzCertificate(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(5), Subject: pkix.Name{CommonName: "fuzz"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(der)
	f.Add(bytes.Replace(der, []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}, []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a}, 1))
	f.Add([]byte{0x30, 0x03, 0x30, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		info, err := parseCertificate(&kmip.Certificate{CertificateType: kmip.CertificateTypeX_509, CertificateValue: der})
		if err != nil {
			return
		}
		obj := &object{typ: kmip.ObjectTypeCertificate}
		if err := setCertificateAttrs(obj, info); err != nil {
			return
		}
		if _, err := obj.meta(); err != nil {
			t.Fatal(err)
		}
		for _, a := range obj.attrs {
			// Length and signature algorithm are found by a full scan.
			indexed := a.AttributeName != kmip.AttributeNameCertificateLength && a.AttributeName != kmip.AttributeNameDigitalSignatureAlgorithm
			if _, ok := attrTerm(a); ok != indexed {
				t.Fatalf("%s: index term %v", a.AttributeName, ok)
			}
			if !obj.matches(a) {
				t.Fatalf("%s does not match itself", a.AttributeName)
			}
		}
	})
}
