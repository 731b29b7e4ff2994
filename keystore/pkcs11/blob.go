// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package pkcs11

import (
	"encoding/binary"
	"errors"
)

const (
	blobVersion = 0x01
	ivSize      = 12
	tagSize     = 16
	blobMinSize = 1 + ivSize + tagSize
	recordSeq   = 8 // sequence number in front of the sealed value on the token
)

var (
	errMalformed   = errors.New("pkcs11: sealed value is malformed")
	errBlobVersion = errors.New("pkcs11: sealed value has an unsupported version")
)

// parseBlob splits a sealed value into its IV and ciphertext‖tag. The
// returned slices alias b.
func parseBlob(b []byte) (iv, ciphertext []byte, err error) {
	if len(b) == 0 {
		return nil, nil, errMalformed
	}
	if b[0] != blobVersion {
		return nil, nil, errBlobVersion
	}
	if len(b) < blobMinSize {
		return nil, nil, errMalformed
	}
	return b[1 : 1+ivSize], b[1+ivSize:], nil
}

// marshalBlob is the inverse of parseBlob.
func marshalBlob(iv, ciphertext []byte) []byte {
	b := make([]byte, 0, 1+len(iv)+len(ciphertext))
	b = append(b, blobVersion)
	b = append(b, iv...)
	return append(b, ciphertext...)
}

// parseRecord splits a token object value into its sequence number and
// sealed value.
func parseRecord(b []byte) (seq uint64, sealed []byte, err error) {
	if len(b) < recordSeq {
		return 0, nil, errors.New("pkcs11: stored object is malformed")
	}
	return binary.BigEndian.Uint64(b), b[recordSeq:], nil
}

func marshalRecord(seq uint64, sealed []byte) []byte {
	b := make([]byte, recordSeq, recordSeq+len(sealed))
	binary.BigEndian.PutUint64(b, seq)
	return append(b, sealed...)
}
