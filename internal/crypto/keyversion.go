// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unique"

	"google.golang.org/protobuf/encoding/protowire"
)

// Protobuf field numbers of the stored value (proto3 package miniohq.kms,
// message KeyVersion). Fields 1-4 are the ones minio/kes writes. Fields 15
// and 16 are this project's: proto3 decoders skip unknown fields, so
// minio/kes still reads a value that carries them.
const (
	fieldKey       = 1
	fieldHMACKey   = 2
	fieldCreatedAt = 3
	fieldCreatedBy = 4
	fieldMeta      = 15
	fieldMaterial  = 16

	hashSHA256 = 1
)

// maxValueSize bounds a stored value before it is decoded.
const maxValueSize = 1 << 20

// KeyVersion is one stored key: what a keystore holds under a key name.
// Its encoded form is the minio/kes stored-value format.
type KeyVersion struct {
	// Key is the encryption key. It is nil for objects that carry other
	// material (see Material).
	Key *SecretKey
	// HMACKey is nil for keys stored in the legacy JSON format.
	HMACKey   *HMACKey
	CreatedAt time.Time
	CreatedBy string

	// Meta is opaque metadata owned by internal/keys (lifecycle state,
	// KMIP attributes). Keys created over the KES API have none, so
	// their encoding is byte for byte what minio/kes writes.
	Meta []byte

	// Material holds the raw bytes of objects that are not a 256-bit KES
	// key: AES-128/192 keys, secret data or opaque objects registered
	// over KMIP.
	Material *SecretBytes

	// Version fields (see versions.go): the version's number, id and
	// state, and, on the newest version only, the older versions.
	Number uint32
	ID     string
	State  string
	Older  []*KeyVersion
}

// Destroy wipes all key material of v.
func (v *KeyVersion) Destroy() {
	if v == nil {
		return
	}
	v.Key.Destroy()
	v.HMACKey.Destroy()
	v.Material.Destroy()
	for _, o := range v.Older {
		o.Destroy()
	}
}

// MarshalText encodes v as standard padded base64 of its protobuf form,
// the value minio/kes stores.
func (v *KeyVersion) MarshalText() ([]byte, error) {
	// raw and sk/hk are sized so that no append reallocates: a
	// reallocation would leave an unwiped copy of the key behind.
	raw := make([]byte, 0, v.sizeHint())
	defer func() { clear(raw) }()
	raw, err := v.appendProto(raw, false)
	if err != nil {
		return nil, err
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(out, raw)
	return out, nil
}

// sizeHint bounds the protobuf size of v.
func (v *KeyVersion) sizeHint() int {
	size := 192 + len(v.CreatedBy) + len(v.Meta) + len(v.ID) + len(v.State)
	if v.Material != nil {
		size += v.Material.Len()
	}
	for _, o := range v.Older {
		size += 8 + o.sizeHint()
	}
	return size
}

// appendProto appends the protobuf form of v to raw, which must have
// room for sizeHint more bytes. An older version (field 17, which
// minio/kes never reads) may be a legacy key without an HMAC key.
func (v *KeyVersion) appendProto(raw []byte, older bool) ([]byte, error) {

	if v.Key != nil {
		err := v.Key.Use(func(key []byte) error {
			sk := make([]byte, 0, 48)
			sk = protowire.AppendTag(sk, 1, protowire.BytesType)
			sk = protowire.AppendBytes(sk, key)
			sk = protowire.AppendTag(sk, 2, protowire.VarintType)
			sk = protowire.AppendVarint(sk, uint64(v.Key.Type()))
			raw = protowire.AppendTag(raw, fieldKey, protowire.BytesType)
			raw = protowire.AppendBytes(raw, sk)
			clear(sk)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if v.HMACKey == nil && !older {
			return nil, errors.New("crypto: cannot encode a key without an HMAC key")
		}
	}
	if v.HMACKey != nil {
		err := v.HMACKey.use(func(key []byte) {
			hk := make([]byte, 0, 48)
			hk = protowire.AppendTag(hk, 1, protowire.BytesType)
			hk = protowire.AppendBytes(hk, key)
			hk = protowire.AppendTag(hk, 2, protowire.VarintType)
			hk = protowire.AppendVarint(hk, hashSHA256)
			raw = protowire.AppendTag(raw, fieldHMACKey, protowire.BytesType)
			raw = protowire.AppendBytes(raw, hk)
			clear(hk)
		})
		if err != nil {
			return nil, err
		}
	}

	var ts []byte
	if sec := v.CreatedAt.Unix(); sec != 0 {
		ts = protowire.AppendTag(ts, 1, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(sec))
	}
	if nsec := v.CreatedAt.Nanosecond(); nsec != 0 {
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(nsec))
	}
	raw = protowire.AppendTag(raw, fieldCreatedAt, protowire.BytesType)
	raw = protowire.AppendBytes(raw, ts)

	if v.CreatedBy != "" {
		raw = protowire.AppendTag(raw, fieldCreatedBy, protowire.BytesType)
		raw = protowire.AppendString(raw, v.CreatedBy)
	}
	if len(v.Meta) > 0 {
		raw = protowire.AppendTag(raw, fieldMeta, protowire.BytesType)
		raw = protowire.AppendBytes(raw, v.Meta)
	}
	if v.Material != nil {
		err := v.Material.Use(func(b []byte) error {
			raw = protowire.AppendTag(raw, fieldMaterial, protowire.BytesType)
			raw = protowire.AppendBytes(raw, b)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return v.appendVersionFields(raw)
}

// ParseKeyVersion decodes a stored value in either format minio/kes wrote:
// base64 of the protobuf KeyVersion, or the legacy JSON object.
func ParseKeyVersion(b []byte) (*KeyVersion, error) {
	if len(b) > maxValueSize {
		return nil, errors.New("crypto: stored key is too large")
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		return parseLegacyKey(t)
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	defer clear(raw)
	n, err := base64.StdEncoding.Decode(raw, b)
	if err != nil {
		return nil, errors.New("crypto: malformed stored key: invalid base64")
	}
	v, err := parseProtoKey(raw[:n], 0)
	if err != nil {
		return nil, fmt.Errorf("crypto: malformed stored key: %w", err)
	}
	return v, nil
}

func parseProtoKey(raw []byte, depth int) (_ *KeyVersion, err error) {
	// v is not the named result: every error return sets that to nil,
	// and the keys parsed so far must still be wiped.
	v := new(KeyVersion)
	defer func() {
		if err != nil {
			v.Destroy()
		}
	}()
	var seenKey, seenHMAC bool
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		raw = raw[n:]
		if n, ok, err := v.parseVersionField(num, typ, raw, depth); ok {
			if err != nil {
				return nil, err
			}
			raw = raw[n:]
			continue
		}
		if typ != protowire.BytesType || num < fieldKey || (num > fieldCreatedBy && num != fieldMeta && num != fieldMaterial) {
			n = protowire.ConsumeFieldValue(num, typ, raw)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			raw = raw[n:]
			continue
		}
		field, n := protowire.ConsumeBytes(raw)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		raw = raw[n:]
		switch num {
		case fieldKey:
			if seenKey {
				v.Key.Destroy()
			}
			seenKey = true
			key, t, err := parseKeyMessage(field)
			if err != nil {
				return nil, err
			}
			kt := KeyType(t)
			if kt != AES256 && kt != ChaCha20 {
				return nil, fmt.Errorf("unknown key type %d", t)
			}
			if v.Key, err = NewSecretKey(kt, key); err != nil {
				return nil, errors.New("invalid secret key size")
			}
		case fieldHMACKey:
			if seenHMAC {
				v.HMACKey.Destroy()
			}
			seenHMAC = true
			key, h, err := parseKeyMessage(field)
			if err != nil {
				return nil, err
			}
			if h != hashSHA256 {
				return nil, fmt.Errorf("unknown HMAC hash %d", h)
			}
			if v.HMACKey, err = NewHMACKey(key); err != nil {
				return nil, errors.New("invalid HMAC key size")
			}
		case fieldCreatedAt:
			if v.CreatedAt, err = parseTimestamp(field); err != nil {
				return nil, err
			}
		case fieldCreatedBy:
			// Most keys are made by one or a few identities: the cache
			// holds one copy of each instead of one per key.
			v.CreatedBy = unique.Make(string(field)).Value()
		case fieldMeta:
			v.Meta = bytes.Clone(field)
		case fieldMaterial:
			v.Material.Destroy()
			v.Material = NewSecretBytes(field)
		}
	}
	if v.Key == nil && v.Material == nil {
		return nil, errors.New("no key material")
	}
	if err := v.checkVersions(); err != nil {
		return nil, err
	}
	return v, nil
}

// parseKeyMessage reads a SecretKey or HMACKey message: field 1 bytes,
// field 2 varint.
func parseKeyMessage(b []byte) (key []byte, kind uint64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, 0, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			key, n = protowire.ConsumeBytes(b)
		case num == 2 && typ == protowire.VarintType:
			kind, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, 0, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return key, kind, nil
}

func parseTimestamp(b []byte) (time.Time, error) {
	var sec, nsec uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return time.Time{}, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			sec, n = protowire.ConsumeVarint(b)
		case num == 2 && typ == protowire.VarintType:
			nsec, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return time.Time{}, protowire.ParseError(n)
		}
		b = b[n:]
	}
	if int64(nsec) < 0 || nsec >= 1e9 {
		return time.Time{}, errors.New("invalid timestamp")
	}
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}

// parseLegacyKey reads the JSON stored value of older KES versions.
func parseLegacyKey(b []byte) (*KeyVersion, error) {
	var v struct {
		Bytes     []byte    `json:"bytes"`
		Algorithm string    `json:"algorithm"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, errors.New("crypto: malformed stored key: invalid JSON")
	}
	defer clear(v.Bytes)
	t := AES256
	if v.Algorithm != "" {
		var err error
		if t, err = ParseKeyType(v.Algorithm); err != nil {
			return nil, fmt.Errorf("crypto: malformed stored key: %w", err)
		}
	}
	key, err := NewSecretKey(t, v.Bytes)
	if err != nil {
		return nil, errors.New("crypto: malformed stored key: invalid key size")
	}
	return &KeyVersion{Key: key, CreatedAt: v.CreatedAt, CreatedBy: v.CreatedBy}, nil
}

// SecretBytes is variable-length secret material. Up to 64 bytes (every
// AES key size) it lives in locked memory; larger secrets (KMIP secret
// data, opaque objects) live in ordinary memory that is wiped on Destroy.
type SecretBytes struct {
	mu   sync.RWMutex
	mem  *slot
	n    int
	dead bool
}

// NewSecretBytes copies b. The caller should wipe its copy.
func NewSecretBytes(b []byte) *SecretBytes {
	s := &SecretBytes{n: len(b)}
	if len(b) <= slotSize {
		s.mem = allocSlot()
	} else {
		s.mem = newHeapSlot(len(b))
		unlockedSlots.Add(1)
	}
	copy(s.mem.bytes(), b)
	return s
}

// Len returns the number of bytes.
func (s *SecretBytes) Len() int { return s.n }

// Use calls fn with the bytes while holding them alive. fn must not retain
// the slice.
func (s *SecretBytes) Use(fn func([]byte) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.dead {
		return ErrKeyDestroyed
	}
	return fn(s.mem.bytes()[:s.n])
}

// Destroy wipes the bytes.
func (s *SecretBytes) Destroy() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mem.release()
	s.dead = true
}
