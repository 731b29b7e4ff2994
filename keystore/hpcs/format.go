// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Sealed value layout (our own; the service's ciphertext inside is
// opaque):
//
//	0x01 || ciphertext                         direct: the value wrapped by the root key
//	0x02 || len:uint16 || ciphertext || nonce(12) || AES-256-GCM(value)
//	                                          envelope: a service-generated data
//	                                          key wrapped by the root key; the GCM
//	                                          associated data is 0x02 || name
//
// ciphertext is the wrap action's ciphertext, base64-decoded. It is
// stored decoded and re-encoded canonically on unwrap, so a flipped bit
// always reaches the service as a different ciphertext.
const (
	formatDirect   = 0x01
	formatEnvelope = 0x02

	// maxDirect is the largest value wrapped directly.
	maxDirect = 4096
	// maxWrapped bounds a wrap ciphertext we accept back from the
	// service: the plaintext is at most maxDirect bytes.
	maxWrapped = 16 << 10
	gcmNonce   = 12
	gcmTag     = 16
)

var errMalformed = errors.New("hpcs: unseal failed: malformed sealed value")

var strictB64 = base64.StdEncoding.Strict()

// sealedValue is a parsed sealed value.
type sealedValue struct {
	format  byte
	wrapped []byte // the wrap ciphertext, decoded
	nonce   []byte // envelope only
	data    []byte // envelope only: GCM ciphertext and tag
}

func parseSealed(b []byte) (sealedValue, error) {
	if len(b) < 2 {
		return sealedValue{}, errMalformed
	}
	switch b[0] {
	case formatDirect:
		if len(b)-1 > maxWrapped {
			return sealedValue{}, errMalformed
		}
		return sealedValue{format: formatDirect, wrapped: b[1:]}, nil
	case formatEnvelope:
		if len(b) < 3 {
			return sealedValue{}, errMalformed
		}
		n := int(binary.BigEndian.Uint16(b[1:3]))
		rest := b[3:]
		if n == 0 || n > maxWrapped || len(rest) < n+gcmNonce+gcmTag {
			return sealedValue{}, errMalformed
		}
		return sealedValue{
			format:  formatEnvelope,
			wrapped: rest[:n],
			nonce:   rest[n : n+gcmNonce],
			data:    rest[n+gcmNonce:],
		}, nil
	default:
		return sealedValue{}, errMalformed
	}
}

func (v sealedValue) marshal() []byte {
	switch v.format {
	case formatDirect:
		return append([]byte{formatDirect}, v.wrapped...)
	default:
		b := make([]byte, 0, 3+len(v.wrapped)+len(v.nonce)+len(v.data))
		b = append(b, formatEnvelope)
		b = binary.BigEndian.AppendUint16(b, uint16(len(v.wrapped)))
		b = append(b, v.wrapped...)
		b = append(b, v.nonce...)
		return append(b, v.data...)
	}
}

// decodeWrapped turns the service's ciphertext string into the bytes we
// store. Only canonical base64 is accepted, so that re-encoding gives
// back exactly what the service returned.
func decodeWrapped(ct string) ([]byte, error) {
	b, err := strictB64.DecodeString(ct)
	if err != nil || len(b) == 0 || len(b) > maxWrapped {
		return nil, errors.New("hpcs: the service returned a malformed ciphertext")
	}
	return b, nil
}

// Stored payload of the standard key that carries an alias (the head):
//
//	0x00 || gen:uint64 || sealed value                      inline
//	0x01 || gen:uint64 || n:uint8 || n × (len:uint8 || key ID)   parts, in order
//
// gen counts the writes of one key: Create writes 0, each Replace the
// current gen plus one. A value whose sealed form is larger than
// maxInline is split into parts of at most maxInline bytes, each the
// payload of its own standard key.
const (
	headInline = 0x00
	headParts  = 0x01

	// maxInline keeps every payload under the service's 7,500 byte
	// standard key limit, even if that limit applies to the base64 form.
	maxInline = 5000
	maxParts  = 64
)

var errMalformedHead = errors.New("hpcs: malformed stored key")

// head is a parsed head payload: either inline or parts is set.
type head struct {
	gen    uint64
	inline []byte
	parts  []string
}

func parseHead(b []byte) (head, error) {
	if len(b) < 9 {
		return head{}, errMalformedHead
	}
	h := head{gen: binary.BigEndian.Uint64(b[1:9])}
	rest := b[9:]
	switch b[0] {
	case headInline:
		if len(rest) == 0 {
			return head{}, errMalformedHead
		}
		h.inline = rest
		return h, nil
	case headParts:
		if len(rest) < 1 || rest[0] == 0 || int(rest[0]) > maxParts {
			return head{}, errMalformedHead
		}
		n := int(rest[0])
		rest = rest[1:]
		for range n {
			if len(rest) < 1 {
				return head{}, errMalformedHead
			}
			l := int(rest[0])
			if l == 0 || len(rest) < 1+l {
				return head{}, errMalformedHead
			}
			h.parts = append(h.parts, string(rest[1:1+l]))
			rest = rest[1+l:]
		}
		if len(rest) != 0 {
			return head{}, errMalformedHead
		}
		return h, nil
	default:
		return head{}, errMalformedHead
	}
}

func (h head) marshal() []byte {
	if h.parts == nil {
		b := binary.BigEndian.AppendUint64([]byte{headInline}, h.gen)
		return append(b, h.inline...)
	}
	b := binary.BigEndian.AppendUint64([]byte{headParts}, h.gen)
	b = append(b, byte(len(h.parts)))
	for _, p := range h.parts {
		b = append(b, byte(len(p)))
		b = append(b, p...)
	}
	return b
}
