// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
)

// envelopeVersion is the "version" field of the documented ciphertext
// envelope.
const envelopeVersion = "4.0.0"

// maxCiphertext bounds the base64 ciphertext the emulator accepts. The
// plaintext limit is maxWrapPlaintext, so anything much longer cannot
// have come from wrap.
const maxCiphertext = 16 << 10

// envelope is the documented ciphertext layout:
// base64(JSON{"ciphertext","iv","version","handle"}). Assumed: handle
// names the root key version (the reference reads it that way), and the
// ciphertext field is AES-GCM output with the tag appended.
type envelope struct {
	Ciphertext string `json:"ciphertext"`
	IV         string `json:"iv"`
	Version    string `json:"version"`
	Handle     string `json:"handle"`
}

var strictB64 = base64.StdEncoding.Strict()

// parseCiphertext decodes a wrap ciphertext strictly: canonical base64,
// exactly the four fields, no trailing data. A flipped bit anywhere in
// the string therefore either fails here or fails authentication.
func parseCiphertext(s string) (handle string, iv, sealed []byte, err error) {
	if len(s) == 0 || len(s) > maxCiphertext {
		return "", nil, nil, errors.New("ciphertext has an invalid length")
	}
	raw, err := strictB64.DecodeString(s)
	if err != nil {
		return "", nil, nil, errors.New("ciphertext is not base64")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var env envelope
	if err := dec.Decode(&env); err != nil {
		return "", nil, nil, errors.New("ciphertext envelope is malformed")
	}
	if dec.More() {
		return "", nil, nil, errors.New("ciphertext envelope has trailing data")
	}
	// Re-encoding must give back the input: this rejects case variants
	// of field names, duplicates and whitespace, which encoding/json
	// would otherwise accept.
	canon, _ := json.Marshal(env)
	if !bytes.Equal(canon, raw) {
		return "", nil, nil, errors.New("ciphertext envelope is not canonical")
	}
	if env.Version != envelopeVersion {
		return "", nil, nil, errors.New("ciphertext envelope has an unknown version")
	}
	if iv, err = strictB64.DecodeString(env.IV); err != nil || len(iv) != 12 {
		return "", nil, nil, errors.New("ciphertext envelope has an invalid iv")
	}
	if sealed, err = strictB64.DecodeString(env.Ciphertext); err != nil || len(sealed) < 16 {
		return "", nil, nil, errors.New("ciphertext envelope has an invalid ciphertext")
	}
	return env.Handle, iv, sealed, nil
}

// additionalData binds the key, the version and the caller's AAD list.
// Each element is length-prefixed so that ["ab","c"] and ["a","bc"]
// differ.
func additionalData(keyID, versionID string, aad []string) []byte {
	var b []byte
	for _, s := range append([]string{keyID, versionID}, aad...) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func newGCM(material []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(material)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal wraps plaintext under one root key version.
func seal(keyID string, v *keyVersion, plaintext []byte, aad []string) (string, error) {
	aead, err := newGCM(v.material)
	if err != nil {
		return "", err
	}
	iv := make([]byte, aead.NonceSize())
	rand.Read(iv)
	ct := aead.Seal(nil, iv, plaintext, additionalData(keyID, v.id, aad))
	raw, err := json.Marshal(envelope{
		Ciphertext: base64.StdEncoding.EncodeToString(ct),
		IV:         base64.StdEncoding.EncodeToString(iv),
		Version:    envelopeVersion,
		Handle:     v.id,
	})
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// open unwraps a ciphertext with the version it names.
func open(keyID string, versions []*keyVersion, ciphertext string, aad []string) ([]byte, *keyVersion, error) {
	handle, iv, sealed, err := parseCiphertext(ciphertext)
	if err != nil {
		return nil, nil, err
	}
	var v *keyVersion
	for _, kv := range versions {
		if kv.id == handle {
			v = kv
			break
		}
	}
	if v == nil {
		return nil, nil, errors.New("ciphertext was not made by this key")
	}
	aead, err := newGCM(v.material)
	if err != nil {
		return nil, nil, err
	}
	pt, err := aead.Open(nil, iv, sealed, additionalData(keyID, v.id, aad))
	if err != nil {
		return nil, nil, errors.New("ciphertext is not authentic")
	}
	return pt, v, nil
}
