// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// Errors of version operations.
var (
	// ErrVersionNotFound: the key has no version of that number (it was
	// never made, or it was destroyed).
	ErrVersionNotFound = errors.New("key version does not exist")

	// ErrVersionIsCurrent: the newest version cannot be retired or
	// destroyed; rotate the key first.
	ErrVersionIsCurrent = errors.New("key version is the current version: rotate the key first")

	// ErrVersionRetired: a retired version only decrypts.
	ErrVersionRetired = errors.New("key version is retired: it can only decrypt")

	// ErrVersionNotRetired: only a retired version can be destroyed.
	ErrVersionNotRetired = errors.New("key version is not retired: retire it before destroying it")
)

// MaxVersions is the most versions (the current one included) a key may
// have. Rotate refuses to make more; destroy old versions first. Each
// version adds about 200 bytes to the stored key.
const MaxVersions = 1000

// VersionState is the state of one version of a key.
type VersionState string

const (
	// VersionActive versions encrypt, generate, HMAC and decrypt. The
	// newest version is always active.
	VersionActive VersionState = ""
	// VersionRetired versions only decrypt.
	VersionRetired VersionState = "Retired"
)

// String returns "Active" or "Retired".
func (s VersionState) String() string {
	if s == VersionActive {
		return "Active"
	}
	return string(s)
}

// VersionInfo describes one version of a key, without its material.
type VersionInfo struct {
	Number    uint32
	ID        string // empty for version 1 of a key that was never rotated
	CreatedAt time.Time
	CreatedBy string
	State     VersionState
	Current   bool
}

// Version ids are 16 bytes written as 32 lower-case hex digits (the size
// of the key id of ciphertext format 2): a 4-byte magic, the version
// number (4 bytes, big endian) and 8 random bytes. The number lets
// Decrypt find the version in O(1) and tell a stale cache (a number above
// the newest one it holds) from an unknown id; the magic keeps the key ids
// of MessagePack ciphertexts that old KES versions wrote (whose ids mean
// nothing here) from being taken for ours, and the random part from
// mixing up the versions of a key that was deleted and created again
// under the same name.
var versionIDMagic = [4]byte{'k', 'v', 0, 1}

func newVersionID(n uint32, rnd io.Reader) (string, error) {
	var b [16]byte
	copy(b[:4], versionIDMagic[:])
	binary.BigEndian.PutUint32(b[4:8], n)
	if _, err := io.ReadFull(rnd, b[8:]); err != nil {
		return "", fmt.Errorf("keys: failed to generate version id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// versionOfID returns the version number an id of ours carries.
func versionOfID(id string) (uint32, bool) {
	if len(id) != 32 {
		return 0, false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(id)); err != nil || [4]byte(b[:4]) != versionIDMagic {
		return 0, false
	}
	n := binary.BigEndian.Uint32(b[4:8])
	return n, n > 0
}

// CiphertextVersion returns the version of the key a ciphertext that
// this service made names: the number in the key id of a format-2
// ciphertext, and 1 for every other one (format 1 and 3 ciphertexts
// are made only by keys that were never rotated).
func CiphertextVersion(ciphertext []byte) uint32 {
	if id, ok := crypto.CiphertextID(ciphertext); ok {
		if n, ok := versionOfID(id); ok {
			return n
		}
	}
	return 1
}

// VersionRef returns the name under which With, Generate, Encrypt,
// Decrypt and HMAC use version n of key name rather than the key as a
// whole: "<name>.v<n>". Key names never contain '.' (policy.ValidName),
// so no key can have such a name.
func VersionRef(name string, n uint32) string {
	return name + ".v" + strconv.FormatUint(uint64(n), 10)
}

// ParseVersionRef splits a reference made by VersionRef. ok is false for
// every other string, including numbers with a sign or a leading zero.
func ParseVersionRef(ref string) (name string, n uint32, ok bool) {
	// A reference has exactly one '.': the last one is the only one.
	// Every KMIP operation and versioned KES call parses its name, most
	// of which have no '.' at all: one byte scan decides them.
	i := strings.LastIndexByte(ref, '.')
	if i <= 0 || len(ref) < i+3 || ref[i+1] != 'v' || strings.IndexByte(ref[:i], '.') >= 0 {
		return "", 0, false
	}
	digits := ref[i+2:]
	if digits[0] == '0' || len(digits) > 10 {
		return "", 0, false
	}
	var u uint64
	for j := 0; j < len(digits); j++ {
		c := digits[j]
		if c < '0' || c > '9' {
			return "", 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if u > math.MaxUint32 {
		return "", 0, false
	}
	return ref[:i], uint32(u), true
}

// ParseVersion reads the version a request names: "", a decimal number
// ("3") or the same with a 'v' ("v3"). Zero means none (the current
// version).
func ParseVersion(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	d := strings.TrimPrefix(s, "v")
	u, err := strconv.ParseUint(d, 10, 32)
	if err != nil || u == 0 || d[0] == '0' || d[0] == '+' {
		return 0, fmt.Errorf("invalid key version '%s'", s)
	}
	return uint32(u), nil
}

// versions returns every version of o, oldest first.
func (o *Object) versions() []*crypto.KeyVersion {
	r := o.root()
	return append(r.Version.Older[:len(r.Version.Older):len(r.Version.Older)], r.Version)
}

// root returns the whole key of a version view, o itself otherwise.
func (o *Object) root() *Object {
	if o.whole != nil {
		return o.whole
	}
	return o
}

// Current returns the number of the key's newest version.
func (o *Object) Current() uint32 { return o.root().Version.VersionNumber() }

// Selected returns the version number a view made by With for a
// VersionRef shows, and 0 for the key as a whole (whose Version is the
// newest).
func (o *Object) Selected() uint32 {
	if o.whole == nil {
		return 0
	}
	return o.Version.VersionNumber()
}

// At returns version n of the key, or nil.
func (o *Object) At(n uint32) *crypto.KeyVersion {
	r := o.root().Version
	if n == r.VersionNumber() {
		return r
	}
	// Versions are in ascending order and few are destroyed, so the
	// index is usually n-1; fall back to a binary search.
	older := r.Older
	if i := int(n) - 1; i >= 0 && i < len(older) && older[i].Number == n {
		return older[i]
	}
	lo, hi := 0, len(older)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case older[m].Number == n:
			return older[m]
		case older[m].Number < n:
			lo = m + 1
		default:
			hi = m
		}
	}
	return nil
}

// Versions lists the versions of the key, oldest first.
func (o *Object) Versions() []VersionInfo {
	cur := o.Current()
	var out []VersionInfo
	for _, v := range o.versions() {
		out = append(out, VersionInfo{
			Number:    v.VersionNumber(),
			ID:        v.ID,
			CreatedAt: v.CreatedAt,
			CreatedBy: v.CreatedBy,
			State:     versionStateOf(o.stateOf(v)),
			Current:   v.VersionNumber() == cur,
		})
	}
	return out
}

// view returns o showing version v. The view of the newest version of a
// cached object is made once and kept in its memo: it shows the key's
// own Name and Meta, which the cached object never changes, and no time.
func (o *Object) view(v *crypto.KeyVersion) *Object {
	r := o.root()
	if m := r.memo; m != nil && v == r.Version {
		if w := m.view.Load(); w != nil {
			return w
		}
		w := &Object{Name: r.Name, Version: v, Meta: o.versionMeta(v), loaded: r.loaded, whole: r, memo: m}
		m.view.Store(w) // a concurrent first reader stores an equal view
		return w
	}
	return &Object{Name: r.Name, Version: v, Meta: o.versionMeta(v), loaded: r.loaded, whole: r}
}

// rotated reports whether the key has ever been rotated: from then on its
// ciphertexts carry the version id (format 2).
func (o *Object) rotated() bool {
	r := o.root().Version
	return r.ID != "" || len(r.Older) > 0 || r.Number > 1
}

// seal encrypts plaintext with the version o shows: in format 1 for a key
// that was never rotated (so that nothing changes for it), in format 2
// with the version id otherwise.
func (o *Object) seal(key *crypto.SecretKey, plaintext, assoc []byte) ([]byte, error) {
	if VersionState(o.Version.State) == VersionRetired {
		return nil, ErrVersionRetired
	}
	if !o.rotated() {
		return key.Encrypt(plaintext, assoc)
	}
	return key.EncryptWithID(plaintext, assoc, o.Version.ID)
}

// errStale asks decrypt to reload a key whose cached copy may predate a
// rotation on another node.
var errStale = errors.New("keys: cached key may be stale")

// minReloadAge bounds how often a ciphertext that names a version the
// cache does not hold makes the key be read again: at most once per
// minReloadAge per key, however many such requests arrive.
const minReloadAge = 100 * time.Millisecond

// decrypt finds the version of the ciphertext and opens it:
//   - a version view (VersionRef) uses that version only;
//   - a format-2 ciphertext whose key id is one of ours names its version:
//     one lookup, one attempt. A number above the newest version the
//     cached key holds means the key was rotated on another node since it
//     was cached: the key is read again (once) and looked up again;
//   - every other ciphertext (format 1 or 3, written before any rotation
//     or by minio/kes; format 2 from old KES versions) is tried with
//     version 1, then with the newest version: at most two attempts.
func (s *Service) decrypt(ctx context.Context, name string, ciphertext, assoc []byte) ([]byte, error) {
	var plaintext []byte
	for attempt := 0; ; attempt++ {
		var stale *Object
		err := s.With(ctx, name, func(o *Object) error {
			if err := checkUse(o, UsageDecrypt, "decrypt"); err != nil {
				return err
			}
			var err error
			plaintext, stale, err = o.open(ciphertext, assoc, attempt == 0)
			return err
		})
		if errors.Is(err, errStale) {
			s.refresh(stale.Name, stale)
			continue
		}
		return plaintext, err
	}
}

// open decrypts with the right version of o. It returns errStale (and
// the object to refresh) if mayReload and the ciphertext names a version
// newer than o's newest.
func (o *Object) open(ciphertext, assoc []byte, mayReload bool) ([]byte, *Object, error) {
	if o.whole != nil {
		p, err := o.openWith(o.Version, ciphertext, assoc)
		return p, nil, err
	}
	if id, ok := crypto.CiphertextID(ciphertext); ok {
		if n, ok := versionOfID(id); ok {
			if v := o.At(n); v != nil && v.ID == id {
				p, err := o.openWith(v, ciphertext, assoc)
				return p, nil, err
			}
			if n > o.Current() && mayReload {
				return nil, o, errStale
			}
		}
	}
	// A version whose state does not decrypt is skipped; if no version
	// was tried, the answer is its state (ErrNotActive).
	first, tried := o.At(1), false
	if first != nil && o.canDecrypt(first) {
		tried = true
		if p, err := o.openWith(first, ciphertext, assoc); !errors.Is(err, crypto.ErrDecrypt) {
			return p, nil, err
		}
	}
	if first == o.Version || !o.canDecrypt(o.Version) {
		if !tried {
			return nil, nil, ErrNotActive
		}
		return nil, nil, crypto.ErrDecrypt
	}
	p, err := o.openWith(o.Version, ciphertext, assoc)
	return p, nil, err
}

// openWith decrypts with version v of o, if v's state allows it.
func (o *Object) openWith(v *crypto.KeyVersion, ciphertext, assoc []byte) ([]byte, error) {
	if v.Key == nil {
		return nil, ErrNotEncryptionKey
	}
	if !o.stateOf(v).CanDecrypt() {
		return nil, ErrNotActive
	}
	if err := o.processWindow(v); err != nil {
		return nil, err
	}
	return v.Key.Decrypt(ciphertext, assoc)
}

// refresh evicts stale from the cache so that the next With reads the
// key again. Concurrent refreshes of one key share one eviction, and a
// key loaded less than minReloadAge ago is evicted only once that age
// is reached: requests naming unknown versions cannot turn every decrypt
// into a keystore read, and one that follows a rotation on another node
// still finds the new version.
func (s *Service) refresh(name string, stale *Object) {
	s.reloads.Do(name, func() (any, error) {
		if wait := minReloadAge - time.Since(stale.loaded); wait > 0 {
			time.Sleep(wait)
		}
		// stale may be the copy withDates made of the cached object: both
		// hold the one version that read made.
		s.cache.DeleteIf(name, func(o *Object) bool { return o.Version == stale.Version })
		return nil, nil
	})
}

// Versions lists the versions of the key, oldest first.
func (s *Service) Versions(ctx context.Context, name string) ([]VersionInfo, error) {
	var out []VersionInfo
	err := s.With(ctx, name, func(o *Object) error {
		out = o.Versions()
		return nil
	})
	return out, err
}
