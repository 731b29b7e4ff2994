// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//lint:file-ignore SA1019 the 1.0 certificate attributes (Certificate Identifier, Subject, Issuer) are deprecated since KMIP 1.1, but every 1.x version still defines them and the OASIS 1.1 and 1.2 cases expect them; PGP certificates are refused by name

package kmipbridge

import (
	"time"

	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// MaxCertificateSize is the largest certificate, in bytes of DER, that
// Register accepts. Real certificates are a few KiB even with long
// chains of alternative names; the attributes derived from one are
// stored with it and count towards the keystore's value limit too.
const MaxCertificateSize = 16 << 10

// certificateAttrNames are the attributes derived from a certificate's
// DER at Register: read-only for clients, since they must describe the
// stored certificate.
var certificateAttrNames = []kmip.AttributeName{
	kmip.AttributeNameCertificateType, kmip.AttributeNameCertificateLength,
	kmip.AttributeNameX509CertificateIdentifier, kmip.AttributeNameX509CertificateSubject,
	kmip.AttributeNameX509CertificateIssuer, kmip.AttributeNameCertificateIdentifier,
	kmip.AttributeNameCertificateSubject, kmip.AttributeNameCertificateIssuer,
	kmip.AttributeNameDigitalSignatureAlgorithm,
}

// parseCertificate checks a registered certificate and parses it.
func parseCertificate(c *kmip.Certificate) (*certInfo, error) {
	switch c.CertificateType {
	case kmip.CertificateTypeX_509:
	case kmip.CertificateTypePGP:
		return nil, kerr(kmip.ResultReasonFeatureNotSupported, "PGP certificates are not supported, only X.509")
	default:
		return nil, kerr(kmip.ResultReasonInvalidField, "invalid certificate type")
	}
	if len(c.CertificateValue) == 0 {
		return nil, kerr(kmip.ResultReasonInvalidField, "certificate has no value")
	}
	if len(c.CertificateValue) > MaxCertificateSize {
		return nil, kerr(kmip.ResultReasonInvalidField, fmt.Sprintf("certificate exceeds the limit of %d bytes", MaxCertificateSize))
	}
	info := &certInfo{der: c.CertificateValue}
	cert, err := x509.ParseCertificate(c.CertificateValue)
	if err == nil {
		info.cert = cert
		info.alg, info.length = publicKeyAlgorithm(cert.PublicKey)
		return info, nil
	}
	if info.cert, info.alg, info.length = parseForeignKey(c.CertificateValue); info.cert == nil {
		return nil, kerr(kmip.ResultReasonInvalidField, "certificate value is not a DER-encoded X.509 certificate")
	}
	return info, nil
}

// certInfo is what the bridge derives a certificate's attributes from.
type certInfo struct {
	der []byte
	// cert has the names, serial number and signature algorithm. Its
	// public key is not the certificate's if Go does not parse that
	// key (parseForeignKey).
	cert   *x509.Certificate
	alg    kmip.CryptographicAlgorithm
	length int32
}

// OIDs of the public keys crypto/x509 does not parse but KMIP clients
// register certificates for (the OASIS case TC-ECC-3-12 uses
// secp256k1), with their KMIP algorithm and length.
var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	foreignCurves  = []struct {
		oid  asn1.ObjectIdentifier
		bits int32
	}{
		{asn1.ObjectIdentifier{1, 3, 132, 0, 10}, 256},               // secp256k1
		{asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 1}, 192},      // prime192v1
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}, 256},  // brainpoolP256r1
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 11}, 384}, // brainpoolP384r1
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 13}, 512}, // brainpoolP512r1
	}
)

// parseForeignKey parses a certificate whose public key crypto/x509
// refuses (an elliptic curve it does not implement): it replaces the
// Subject Public Key Info with a P-256 key and lets crypto/x509 check
// everything else. Only a key on one of foreignCurves is accepted; the
// algorithm and length are those of the certificate's own key. It
// returns a nil certificate for anything else.
func parseForeignKey(der []byte) (*x509.Certificate, kmip.CryptographicAlgorithm, int32) {
	outer, ok := derSequence(der)
	if !ok || len(outer) != 3 {
		return nil, 0, 0
	}
	tbs, ok := derSequence(outer[0].FullBytes)
	if !ok {
		return nil, 0, 0
	}
	i := 5 // serial, signature, issuer, validity, subject
	if len(tbs) > 0 && tbs[0].Class == asn1.ClassContextSpecific && tbs[0].Tag == 0 {
		i++ // version
	}
	if len(tbs) <= i {
		return nil, 0, 0
	}
	var spki struct {
		Algorithm struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.ObjectIdentifier
		}
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(tbs[i].FullBytes, &spki); err != nil || len(rest) > 0 || !spki.Algorithm.Algorithm.Equal(oidECPublicKey) {
		return nil, 0, 0
	}
	var bits int32
	for _, c := range foreignCurves {
		if c.oid.Equal(spki.Algorithm.Parameters) {
			bits = c.bits
		}
	}
	// An uncompressed point on the curve: 04 || X || Y.
	if n := int(bits+7) / 8; bits == 0 || len(spki.PublicKey.Bytes) != 1+2*n || spki.PublicKey.Bytes[0] != 4 {
		return nil, 0, 0
	}
	tbs[i].FullBytes = standInSPKI
	cert, err := x509.ParseCertificate(derJoin([]asn1.RawValue{{FullBytes: derJoin(tbs)}, outer[1], outer[2]}))
	if err != nil {
		return nil, 0, 0
	}
	return cert, kmip.CryptographicAlgorithmECDSA, bits
}

// standInSPKI is a P-256 public key (the curve's base point) that
// parseForeignKey puts in place of a key crypto/x509 does not parse.
var standInSPKI = func() []byte {
	p := elliptic.P256().Params()
	point := make([]byte, 65)
	point[0] = 4
	p.Gx.FillBytes(point[1:33])
	p.Gy.FillBytes(point[33:])
	pub, err := ecdh.P256().NewPublicKey(point)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return der
}()

// derSequence returns the elements of a DER SEQUENCE that is all of b.
func derSequence(b []byte) ([]asn1.RawValue, bool) {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(b, &seq); err != nil || len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, false
	}
	var out []asn1.RawValue
	for body := seq.Bytes; len(body) > 0; {
		var v asn1.RawValue
		var err error
		if body, err = asn1.Unmarshal(body, &v); err != nil {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// derJoin encodes a SEQUENCE of the elements.
func derJoin(elems []asn1.RawValue) []byte {
	var body []byte
	for _, e := range elems {
		body = append(body, e.FullBytes...)
	}
	b, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	return b
}

// setCertificateAttrs sets the attributes KMIP derives from an X.509
// certificate (KMIP 1.4 §3.8–3.16 and the 1.0 forms of §3.9–3.11 that
// 1.1 deprecated), in the encodings of the OASIS test cases (TC-132,
// TC-134, TC-ECC-3): the X.509 forms carry the DER of the names and of
// the serial number's INTEGER, the 1.0 forms the RFC 2253 text of the
// names and the serial number in upper-case hex. Alternative names are
// not reported.
func setCertificateAttrs(obj *object, info *certInfo) error {
	cert := info.cert
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return kerr(kmip.ResultReasonInvalidField, "certificate has an invalid serial number")
	}
	serialHex := fmt.Sprintf("%X", cert.SerialNumber.Bytes())
	if serialHex == "" {
		serialHex = "00"
	}
	obj.set(kmip.AttributeNameCertificateType, kmip.CertificateTypeX_509)
	obj.set(kmip.AttributeNameCertificateLength, int32(len(info.der)))
	obj.set(kmip.AttributeNameX509CertificateIdentifier, kmip.X_509CertificateIdentifier{IssuerDistinguishedName: cert.RawIssuer, CertificateSerialNumber: serial})
	obj.set(kmip.AttributeNameX509CertificateSubject, kmip.X_509CertificateSubject{SubjectDistinguishedName: cert.RawSubject})
	obj.set(kmip.AttributeNameX509CertificateIssuer, kmip.X_509CertificateIssuer{IssuerDistinguishedName: cert.RawIssuer})
	obj.set(kmip.AttributeNameCertificateIdentifier, kmip.CertificateIdentifier{Issuer: cert.Issuer.String(), SerialNumber: serialHex})
	obj.set(kmip.AttributeNameCertificateSubject, kmip.CertificateSubject{CertificateSubjectDistinguishedName: cert.Subject.String()})
	obj.set(kmip.AttributeNameCertificateIssuer, kmip.CertificateIssuer{CertificateIssuerDistinguishedName: cert.Issuer.String()})
	if alg := signatureAlgorithm(cert.SignatureAlgorithm); alg != 0 {
		obj.set(kmip.AttributeNameDigitalSignatureAlgorithm, alg)
	}
	obj.alg, obj.length = info.alg, info.length
	return nil
}

// signatureAlgorithm maps an X.509 signature algorithm to KMIP's Digital
// Signature Algorithm, 0 for one KMIP 1.x has no value for (Ed25519).
func signatureAlgorithm(a x509.SignatureAlgorithm) kmip.DigitalSignatureAlgorithm {
	switch a {
	case x509.MD2WithRSA:
		return kmip.DigitalSignatureAlgorithmMD2WithRSAEncryption
	case x509.MD5WithRSA:
		return kmip.DigitalSignatureAlgorithmMD5WithRSAEncryption
	case x509.SHA1WithRSA:
		return kmip.DigitalSignatureAlgorithmSHA_1WithRSAEncryption
	case x509.SHA256WithRSA:
		return kmip.DigitalSignatureAlgorithmSHA_256WithRSAEncryption
	case x509.SHA384WithRSA:
		return kmip.DigitalSignatureAlgorithmSHA_384WithRSAEncryption
	case x509.SHA512WithRSA:
		return kmip.DigitalSignatureAlgorithmSHA_512WithRSAEncryption
	case x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
		return kmip.DigitalSignatureAlgorithmRSASSA_PSS
	case x509.DSAWithSHA1:
		return kmip.DigitalSignatureAlgorithmDSAWithSHA_1
	case x509.DSAWithSHA256:
		return kmip.DigitalSignatureAlgorithmDSAWithSHA256
	case x509.ECDSAWithSHA1:
		return kmip.DigitalSignatureAlgorithmECDSAWithSHA_1
	case x509.ECDSAWithSHA256:
		return kmip.DigitalSignatureAlgorithmECDSAWithSHA256
	case x509.ECDSAWithSHA384:
		return kmip.DigitalSignatureAlgorithmECDSAWithSHA384
	case x509.ECDSAWithSHA512:
		return kmip.DigitalSignatureAlgorithmECDSAWithSHA512
	}
	return 0
}

// publicKeyAlgorithm returns the Cryptographic Algorithm and Length of a
// certificate's public key (KMIP 1.4 §3.4–3.5: for a certificate, those
// of its public key); zero for a key type KMIP 1.x has no algorithm for
// (Ed25519) or Go does not parse.
func publicKeyAlgorithm(pub any) (kmip.CryptographicAlgorithm, int32) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return kmip.CryptographicAlgorithmRSA, int32(k.N.BitLen())
	case *ecdsa.PublicKey:
		return kmip.CryptographicAlgorithmECDSA, int32(k.Curve.Params().BitSize)
	}
	return 0, 0
}

// registerCertificate stores an X.509 certificate. Its DER is the
// object's material; certificates are public, so the object is always
// exportable (keys.NewObject.Public) whatever the template says.
func (s *Server) registerCertificate(ctx context.Context, req *payloads.RegisterRequestPayload, c *kmip.Certificate) (*payloads.RegisterResponsePayload, error) {
	obj := &object{typ: kmip.ObjectTypeCertificate}
	_, _, mask, activation, err := applyTemplate(obj, req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	cert, err := parseCertificate(c)
	if err != nil {
		return nil, err
	}
	if err := setCertificateAttrs(obj, cert); err != nil {
		return nil, err
	}
	var m kmip.CryptographicUsageMask
	if mask != nil {
		m = *mask
	}
	return s.storeRegistered(ctx, obj, keys.NewObject{Material: cert.der, Mask: keys.UsageMask(m), Public: true},
		func(v *crypto.KeyVersion, now time.Time) error {
			finish(obj, v, now, activation, kmip.KeyFormatTypeX_509)
			return nil
		})
}

// certificateObject is the Get answer for a certificate: its DER, in the
// X.509 format (the only one it has).
func certificateObject(format kmip.KeyFormatType, der []byte) (kmip.Object, error) {
	if format != 0 && format != kmip.KeyFormatTypeX_509 {
		return nil, kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "certificates are returned in X.509 format only")
	}
	return &kmip.Certificate{CertificateType: kmip.CertificateTypeX_509, CertificateValue: der}, nil
}

// matchCertificateAttr compares a stored certificate attribute with a
// Locate filter; handled is false for other attributes. Names compare
// by their DER (X.509 forms) or text (1.0 forms); alternative names in
// a filter never match, as none are reported; the 1.0 serial number is
// hex, compared without regard to case.
func matchCertificateAttr(stored, filter any) (match, handled bool) {
	switch f := filter.(type) {
	case kmip.X_509CertificateIdentifier:
		a, ok := stored.(kmip.X_509CertificateIdentifier)
		return ok && bytes.Equal(a.IssuerDistinguishedName, f.IssuerDistinguishedName) && bytes.Equal(a.CertificateSerialNumber, f.CertificateSerialNumber), true
	case kmip.X_509CertificateSubject:
		a, ok := stored.(kmip.X_509CertificateSubject)
		return ok && len(f.SubjectAlternativeName) == 0 && bytes.Equal(a.SubjectDistinguishedName, f.SubjectDistinguishedName), true
	case kmip.X_509CertificateIssuer:
		a, ok := stored.(kmip.X_509CertificateIssuer)
		return ok && len(f.IssuerAlternativeName) == 0 && bytes.Equal(a.IssuerDistinguishedName, f.IssuerDistinguishedName), true
	case kmip.CertificateIdentifier:
		a, ok := stored.(kmip.CertificateIdentifier)
		return ok && a.Issuer == f.Issuer && strings.EqualFold(a.SerialNumber, f.SerialNumber), true
	case kmip.CertificateSubject:
		a, ok := stored.(kmip.CertificateSubject)
		return ok && len(f.CertificateSubjectAlternativeName) == 0 && a.CertificateSubjectDistinguishedName == f.CertificateSubjectDistinguishedName, true
	case kmip.CertificateIssuer:
		a, ok := stored.(kmip.CertificateIssuer)
		return ok && len(f.CertificateIssuerAlternativeName) == 0 && a.CertificateIssuerDistinguishedName == f.CertificateIssuerDistinguishedName, true
	}
	return false, false
}

// certTerm returns the index term of a certificate attribute value.
// Alternative names are no part of it: matchCertificateAttr compares
// names only.
func certTerm(v any) (string, bool) {
	switch c := v.(type) {
	case kmip.CertificateType:
		return termCert + "t\x00" + strconv.FormatUint(uint64(c), 16), true
	case kmip.X_509CertificateIdentifier:
		return termCert + "xid\x00" + hex.EncodeToString(c.IssuerDistinguishedName) + "\x00" + hex.EncodeToString(c.CertificateSerialNumber), true
	case kmip.X_509CertificateSubject:
		return termCert + "xs\x00" + hex.EncodeToString(c.SubjectDistinguishedName), true
	case kmip.X_509CertificateIssuer:
		return termCert + "xi\x00" + hex.EncodeToString(c.IssuerDistinguishedName), true
	case kmip.CertificateIdentifier:
		return termCert + "id\x00" + c.Issuer + "\x00" + strings.ToUpper(c.SerialNumber), true
	case kmip.CertificateSubject:
		return termCert + "s\x00" + c.CertificateSubjectDistinguishedName, true
	case kmip.CertificateIssuer:
		return termCert + "i\x00" + c.CertificateIssuerDistinguishedName, true
	}
	return "", false
}
