// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
)

var errMalformed = errors.New("crypto: malformed ciphertext")

// parseCiphertext splits a ciphertext in any KES format into the sealed
// bytes (ciphertext ‖ tag), the 16-byte KDF input and the 12-byte nonce.
//
// A leading 0x95 (MessagePack fixarray of 5) or '{' (JSON) selects the
// older formats; if such a ciphertext does not parse, it is read as the
// binary format, since a binary ciphertext may start with any byte. The
// algorithm an older ciphertext names is ignored: the key's type decides.
func parseCiphertext(b []byte) (sealed, iv, nonce []byte, err error) {
	if len(b) > 0 {
		switch b[0] {
		case 0x95:
			if sealed, iv, nonce, ok := parseMsgpack(b); ok {
				return sealed, iv, nonce, nil
			}
		case '{':
			sealed, iv, nonce, ok, err := parseJSON(b)
			if err != nil {
				return nil, nil, nil, err
			}
			if ok {
				return sealed, iv, nonce, nil
			}
		}
	}
	if len(b) < Overhead {
		return nil, nil, nil, errMalformed
	}
	n := len(b) - randSize
	return b[:n], b[n : n+16], b[n+16:], nil
}

// parseJSON reads the legacy JSON ciphertext. ok is false if b is not a
// JSON object of that shape; err is set if it is, but names an unknown
// AEAD or has a wrong iv or nonce size.
func parseJSON(b []byte) (sealed, iv, nonce []byte, ok bool, err error) {
	var v struct {
		AEAD  string `json:"aead"`
		ID    string `json:"id"`
		IV    []byte `json:"iv"`
		Nonce []byte `json:"nonce"`
		Bytes []byte `json:"bytes"`
	}
	if json.Unmarshal(b, &v) != nil {
		return nil, nil, nil, false, nil
	}
	switch v.AEAD {
	case "AES-256-GCM-HMAC-SHA-256", "ChaCha20Poly1305":
	default:
		return nil, nil, nil, false, errMalformed
	}
	if len(v.IV) != 16 || len(v.Nonce) != 12 {
		return nil, nil, nil, false, errMalformed
	}
	return v.Bytes, v.IV, v.Nonce, true, nil
}

// parseMsgpack reads the MessagePack ciphertext: a 5-array of algorithm
// (str), key id (str), iv (bin 16), nonce (bin 12) and sealed bytes (bin),
// with nothing after it.
func parseMsgpack(b []byte) (sealed, iv, nonce []byte, ok bool) {
	r := msgpackReader{b: b[1:]}
	alg, ok1 := r.str()
	_, ok2 := r.str()
	iv, ok3 := r.bin()
	nonce, ok4 := r.bin()
	sealed, ok5 := r.bin()
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || len(r.b) != 0 {
		return nil, nil, nil, false
	}
	switch alg {
	case "AES256-GCM_SHA256", "XCHACHA20-POLY1305", "AES256", "ChaCha20":
	default:
		return nil, nil, nil, false
	}
	if len(iv) != 16 || len(nonce) != 12 {
		return nil, nil, nil, false
	}
	return sealed, iv, nonce, true
}

// msgpackReader decodes the few MessagePack types the ciphertext uses.
type msgpackReader struct{ b []byte }

func (r *msgpackReader) take(n uint64) ([]byte, bool) {
	if uint64(len(r.b)) < n {
		return nil, false
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, true
}

// length reads a big-endian length of size bytes.
func (r *msgpackReader) length(size int) (uint64, bool) {
	p, ok := r.take(uint64(size))
	if !ok {
		return 0, false
	}
	switch size {
	case 1:
		return uint64(p[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), true
	default:
		return uint64(binary.BigEndian.Uint32(p)), true
	}
}

func (r *msgpackReader) str() (string, bool) {
	h, ok := r.take(1)
	if !ok {
		return "", false
	}
	var n uint64
	switch t := h[0]; {
	case t >= 0xa0 && t <= 0xbf: // fixstr
		n = uint64(t & 0x1f)
	case t == 0xd9:
		n, ok = r.length(1)
	case t == 0xda:
		n, ok = r.length(2)
	case t == 0xdb:
		n, ok = r.length(4)
	default:
		return "", false
	}
	if !ok {
		return "", false
	}
	p, ok := r.take(n)
	return string(p), ok
}

func (r *msgpackReader) bin() ([]byte, bool) {
	h, ok := r.take(1)
	if !ok {
		return nil, false
	}
	var n uint64
	switch h[0] {
	case 0xc4:
		n, ok = r.length(1)
	case 0xc5:
		n, ok = r.length(2)
	case 0xc6:
		n, ok = r.length(4)
	default:
		return nil, false
	}
	if !ok {
		return nil, false
	}
	return r.take(n)
}
