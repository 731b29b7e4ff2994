// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// Key versions in the stored value
//
// A rotated key is a series of versions. The top-level fields 1-4 of the
// stored value always hold the NEWEST version, so that minio/kes, which
// knows only those fields, reads the newest version. The older versions
// follow in field 17, one length-delimited KeyVersion message each (fields
// 1-4 and 16 as at the top level, plus 18-20), in ascending order of
// their number. Fields 18 (version number, varint), 19 (version id,
// string) and 20 (version state, string) describe a version; at the top
// level they describe the newest one.
//
// A key that was never rotated is version 1 with no id: none of the
// fields 17-20 is written, and its stored value stays byte for byte what
// minio/kes writes.
const (
	fieldOlder         = 17
	fieldVersionNumber = 18
	fieldVersionID     = 19
	fieldVersionState  = 20
)

// Limits on the version fields of a stored value, checked while it is
// decoded. MaxStoredVersions is the decoder's bound; internal/keys keeps
// keys far below it.
const (
	MaxStoredVersions = 4096
	maxVersionIDSize  = 64
	maxStateSize      = 32
)

// VersionNumber returns v's version number: Number, or 1 for a value
// without one (a key that was never rotated, or one written by minio/kes).
func (v *KeyVersion) VersionNumber() uint32 {
	if v.Number == 0 {
		return 1
	}
	return v.Number
}

// appendVersionFields appends fields 17-20 to raw. Each older version is
// encoded into a buffer of its own, wiped after it is copied.
func (v *KeyVersion) appendVersionFields(raw []byte) ([]byte, error) {
	for _, o := range v.Older {
		if len(o.Older) > 0 {
			return nil, errors.New("crypto: an older key version cannot hold versions")
		}
		buf := make([]byte, 0, o.sizeHint())
		buf, err := o.appendProto(buf, true)
		if err != nil {
			clear(buf)
			return nil, err
		}
		raw = protowire.AppendTag(raw, fieldOlder, protowire.BytesType)
		raw = protowire.AppendBytes(raw, buf)
		clear(buf)
	}
	if v.Number > 1 || len(v.Older) > 0 || v.ID != "" {
		raw = protowire.AppendTag(raw, fieldVersionNumber, protowire.VarintType)
		raw = protowire.AppendVarint(raw, uint64(v.VersionNumber()))
	}
	if v.ID != "" {
		raw = protowire.AppendTag(raw, fieldVersionID, protowire.BytesType)
		raw = protowire.AppendString(raw, v.ID)
	}
	if v.State != "" {
		raw = protowire.AppendTag(raw, fieldVersionState, protowire.BytesType)
		raw = protowire.AppendString(raw, v.State)
	}
	return raw, nil
}

// parseVersionField decodes field num of type typ at the start of raw if
// it is one of the version fields. It returns how many bytes it consumed
// and whether the field was one of them.
func (v *KeyVersion) parseVersionField(num protowire.Number, typ protowire.Type, raw []byte, depth int) (int, bool, error) {
	switch {
	case num == fieldVersionNumber && typ == protowire.VarintType:
		n64, n := protowire.ConsumeVarint(raw)
		if n < 0 {
			return 0, true, protowire.ParseError(n)
		}
		if n64 == 0 || n64 > 1<<32-1 {
			return 0, true, errors.New("invalid version number")
		}
		v.Number = uint32(n64)
		return n, true, nil
	case (num == fieldOlder || num == fieldVersionID || num == fieldVersionState) && typ == protowire.BytesType:
		field, n := protowire.ConsumeBytes(raw)
		if n < 0 {
			return 0, true, protowire.ParseError(n)
		}
		switch num {
		case fieldVersionID:
			if len(field) > maxVersionIDSize {
				return 0, true, errors.New("version id is too long")
			}
			v.ID = string(field)
		case fieldVersionState:
			if len(field) > maxStateSize {
				return 0, true, errors.New("version state is too long")
			}
			v.State = string(field)
		case fieldOlder:
			if depth > 0 {
				return 0, true, errors.New("nested key versions")
			}
			if len(v.Older) == MaxStoredVersions {
				return 0, true, fmt.Errorf("more than %d key versions", MaxStoredVersions)
			}
			o, err := parseProtoKey(field, depth+1)
			if err != nil {
				return 0, true, fmt.Errorf("key version %d: %w", len(v.Older)+1, err)
			}
			v.Older = append(v.Older, o)
		}
		return n, true, nil
	}
	return 0, false, nil
}

// checkVersions checks that the older versions are in ascending order and
// older than v.
func (v *KeyVersion) checkVersions() error {
	if len(v.Older) == 0 {
		return nil
	}
	prev := uint32(0)
	for _, o := range v.Older {
		if o.Number == 0 || o.Number <= prev {
			return errors.New("key versions out of order")
		}
		prev = o.Number
	}
	if v.VersionNumber() <= prev {
		return errors.New("key versions out of order")
	}
	return nil
}

// EncryptWithID seals plaintext like Encrypt but returns the ciphertext in
// the MessagePack format (reference kes-api.md §5.3, format 2), whose key
// id element carries id. minio/kes reads that format and ignores the id,
// so it decrypts such a ciphertext with the key it sees.
func (k *SecretKey) EncryptWithID(plaintext, associatedData []byte, id string) ([]byte, error) {
	if len(id) > maxVersionIDSize {
		return nil, errors.New("crypto: key id is too long")
	}
	var random [randSize]byte
	if _, err := io.ReadFull(rand.Reader, random[:]); err != nil {
		return nil, fmt.Errorf("crypto: failed to read randomness: %w", err)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.dead {
		return nil, ErrKeyDestroyed
	}
	aead, err := k.aead(random[:16])
	if err != nil {
		return nil, err
	}
	alg := k.typ.String() // "AES256" or "ChaCha20": both minio/kes and this package accept them
	sealedLen := len(plaintext) + aead.Overhead()
	out := make([]byte, 0, 1+2+len(alg)+2+len(id)+2*2+randSize+5+sealedLen)
	out = append(out, 0x95) // fixarray of 5
	out = appendMsgpackStr(out, alg)
	out = appendMsgpackStr(out, id)
	out = appendMsgpackBin(out, random[:16])
	out = appendMsgpackBin(out, random[16:])
	out = appendMsgpackBinHeader(out, sealedLen)
	return aead.Seal(out, random[16:], plaintext, associatedData), nil
}

// CiphertextID returns the key id of a ciphertext in the MessagePack
// format. ok is false for every other ciphertext, including one that
// starts like MessagePack but does not parse as it (which is read as the
// binary format).
func CiphertextID(ciphertext []byte) (id string, ok bool) {
	if len(ciphertext) == 0 || ciphertext[0] != 0x95 {
		return "", false
	}
	if _, _, _, ok := parseMsgpack(ciphertext); !ok {
		return "", false
	}
	r := msgpackReader{b: ciphertext[1:]}
	r.str()
	id, _ = r.str()
	return id, true
}

func appendMsgpackStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 1<<8:
		b = append(b, 0xd9, byte(n))
	default:
		b = append(b, 0xda, byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendMsgpackBin(b, p []byte) []byte {
	return append(appendMsgpackBinHeader(b, len(p)), p...)
}

func appendMsgpackBinHeader(b []byte, n int) []byte {
	switch {
	case n < 1<<8:
		return append(b, 0xc4, byte(n))
	case n < 1<<16:
		return append(b, 0xc5, byte(n>>8), byte(n))
	default:
		return append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}
