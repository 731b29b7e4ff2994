// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kesbridge/kes/keystore"
	"github.com/miekg/pkcs11"
)

// NewStore returns a keystore.Store that seals every value under the root
// key (see NewSealer for how cfg selects token and key) and keeps the
// sealed values on the token as data objects, or, with cfg.Dir set, as
// files in that directory.
func NewStore(ctx context.Context, cfg Config) (keystore.Store, error) {
	var dir *dirBlobs
	if cfg.Dir != "" {
		var err error
		if dir, err = openDir(cfg.Dir); err != nil {
			return nil, err
		}
	}
	h, err := openHSM(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if dir != nil {
		return &dirStore{h: h, dir: dir}, nil
	}
	return &tokenStore{h: h}, nil
}

// tokenStore keeps each sealed value in a CKO_DATA object on the token.
type tokenStore struct {
	h     *hsm
	locks nameLocks

	// handles remembers the newest object of each name read or written,
	// so that Get skips C_FindObjects: SoftHSM2 searches by reading every
	// object of the token, which costs milliseconds per hundred keys. A
	// cached handle is checked (label and application) on use and dropped
	// with the sessions on recovery.
	mu      sync.Mutex
	handles map[string]cachedHandle
}

type cachedHandle struct {
	obj   pkcs11.ObjectHandle
	epoch uint64
}

func (s *tokenStore) cached(name string) (pkcs11.ObjectHandle, bool) {
	epoch := s.h.currentEpoch()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.handles[name]
	if !ok || c.epoch != epoch {
		return 0, false
	}
	return c.obj, true
}

func (s *tokenStore) remember(name string, obj pkcs11.ObjectHandle) {
	epoch := s.h.currentEpoch()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handles == nil {
		s.handles = map[string]cachedHandle{}
	}
	s.handles[name] = cachedHandle{obj: obj, epoch: epoch}
}

func (s *tokenStore) forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.handles, name)
}

// readCached reads the sealed value through the cached handle of name. ok
// is false when there is none or it no longer is an object of name.
func (s *tokenStore) readCached(sh pkcs11.SessionHandle, name string) (sealed []byte, ok bool, err error) {
	obj, ok := s.cached(name)
	if !ok {
		return nil, false, nil
	}
	attrs, err := s.h.mod.ctx.GetAttributeValue(sh, obj, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil),
	})
	if hasCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_ATTRIBUTE_TYPE_INVALID, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
		s.forget(name)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("C_GetAttributeValue: %w", err)
	}
	if string(attrs[0].Value) != name || string(attrs[1].Value) != Application {
		s.forget(name)
		return nil, false, nil
	}
	_, sealed, err = parseRecord(attrs[2].Value)
	if err != nil {
		return nil, false, fmt.Errorf("pkcs11: object of key '%s': %w", name, err)
	}
	return sealed, true, nil
}

func dataTemplate(name string) []*pkcs11.Attribute {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, Application),
	}
	if name != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, name))
	}
	return tmpl
}

func checkName(name string) error {
	if name == "" {
		return errors.New("pkcs11: empty key name")
	}
	return nil
}

// current is what the token holds for one name.
type current struct {
	seq     uint64
	sealed  []byte
	newest  pkcs11.ObjectHandle
	handles []pkcs11.ObjectHandle // every object of the name, newest included
}

// read returns the newest object of name. Objects that vanish while it
// reads belong to a concurrent Replace or Delete; then it looks again.
func (s *tokenStore) read(sh pkcs11.SessionHandle, name string) (current, error) {
	for range 3 {
		objs, err := s.h.find(sh, dataTemplate(name), 0)
		if err != nil {
			return current{}, err
		}
		if len(objs) == 0 {
			return current{}, keystore.ErrKeyNotFound
		}
		var (
			cur   current
			found bool
		)
		for _, o := range objs {
			attrs, err := s.h.mod.ctx.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
			if hasCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
				continue
			}
			if err != nil {
				return current{}, fmt.Errorf("C_GetAttributeValue: %w", err)
			}
			seq, sealed, err := parseRecord(attrs[0].Value)
			if err != nil {
				return current{}, fmt.Errorf("pkcs11: object of key '%s': %w", name, err)
			}
			cur.handles = append(cur.handles, o)
			if !found || seq > cur.seq {
				cur.seq, cur.sealed, cur.newest, found = seq, sealed, o, true
			}
		}
		if found {
			return cur, nil
		}
	}
	return current{}, keystore.ErrKeyNotFound
}

func (s *tokenStore) create(sh pkcs11.SessionHandle, name string, seq uint64, sealed []byte) error {
	tmpl := append(dataTemplate(name),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, marshalRecord(seq, sealed)),
	)
	obj, err := s.h.mod.ctx.CreateObject(sh, tmpl)
	if err != nil {
		return fmt.Errorf("C_CreateObject: %w", err)
	}
	s.remember(name, obj)
	return nil
}

func (s *tokenStore) destroy(sh pkcs11.SessionHandle, objs []pkcs11.ObjectHandle) error {
	for _, o := range objs {
		if err := s.h.mod.ctx.DestroyObject(sh, o); err != nil && !hasCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
			return fmt.Errorf("C_DestroyObject: %w", err)
		}
	}
	return nil
}

// Capabilities reports values of up to MaxValueSize bytes and no
// linearizable Replace: Replace is serialised only among the callers in
// this process, not against another process on the same token.
func (s *tokenStore) Capabilities() keystore.Capabilities {
	return keystore.Capabilities{MaxValueSize: MaxValueSize}
}

func (s *tokenStore) Create(ctx context.Context, name string, value []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("pkcs11: create %q: %w", name, err)
	}
	defer s.locks.lock(name)()
	return s.h.doWrite(ctx, func(sh pkcs11.SessionHandle) error {
		objs, err := s.h.find(sh, dataTemplate(name), 1)
		if err != nil {
			return err
		}
		if len(objs) > 0 {
			return keystore.ErrKeyExists
		}
		sealed, err := s.h.seal(sh, name, value)
		if err != nil {
			return err
		}
		return s.create(sh, name, 1, sealed)
	})
}

func (s *tokenStore) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	defer s.locks.rlock(name)()
	var value []byte
	err := s.h.do(ctx, func(sh pkcs11.SessionHandle) error {
		sealed, ok, err := s.readCached(sh, name)
		if err != nil {
			return err
		}
		if !ok {
			cur, err := s.read(sh, name)
			if err != nil {
				return err
			}
			s.remember(name, cur.newest)
			sealed = cur.sealed
		}
		value, err = s.h.unseal(sh, name, sealed)
		return err
	})
	return value, err
}

// Replace writes the new object before it destroys the old one, so the
// key exists at every instant. A failure to destroy the old object is
// logged, not returned: the new object has the higher sequence number and
// the next Replace or Delete removes the old one.
func (s *tokenStore) Replace(ctx context.Context, name string, old, value []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("pkcs11: replace %q: %w", name, err)
	}
	defer s.locks.lock(name)()
	var stale []pkcs11.ObjectHandle
	err := s.h.doWrite(ctx, func(sh pkcs11.SessionHandle) error {
		cur, err := s.read(sh, name)
		if err != nil {
			return err
		}
		plaintext, err := s.h.unseal(sh, name, cur.sealed)
		if err != nil {
			return err
		}
		same := subtle.ConstantTimeCompare(plaintext, old) == 1
		clear(plaintext)
		if !same {
			return keystore.ErrConflict
		}
		sealed, err := s.h.seal(sh, name, value)
		if err != nil {
			return err
		}
		if err := s.create(sh, name, cur.seq+1, sealed); err != nil {
			return err
		}
		stale = cur.handles
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.h.doWrite(ctx, func(sh pkcs11.SessionHandle) error { return s.destroy(sh, stale) }); err != nil {
		s.h.log.WarnContext(ctx, "pkcs11: failed to remove the replaced object of a key", "key", name, "err", err)
	}
	return nil
}

func (s *tokenStore) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	defer s.locks.lock(name)()
	return s.h.doWrite(ctx, func(sh pkcs11.SessionHandle) error {
		objs, err := s.h.find(sh, dataTemplate(name), 0)
		if err != nil {
			return err
		}
		if len(objs) == 0 {
			return keystore.ErrKeyNotFound
		}
		s.forget(name)
		return s.destroy(sh, objs)
	})
}

func (s *tokenStore) List(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	err := s.h.do(ctx, func(sh pkcs11.SessionHandle) error {
		names = names[:0]
		objs, err := s.h.find(sh, dataTemplate(""), 0)
		if err != nil {
			return err
		}
		for _, o := range objs {
			attrs, err := s.h.mod.ctx.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
			if hasCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("C_GetAttributeValue: %w", err)
			}
			if name := string(attrs[0].Value); strings.HasPrefix(name, prefix) && name != "" {
				names = append(names, name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Status looks the root key up on the token.
func (s *tokenStore) Status(ctx context.Context) (keystore.State, error) {
	return (&Sealer{h: s.h}).Status(ctx)
}

func (s *tokenStore) Close() error   { return s.h.Close() }
func (s *tokenStore) String() string { return s.h.String() }

// dirStore keeps each sealed value in a file; the token only seals.
type dirStore struct {
	h     *hsm
	dir   *dirBlobs
	locks nameLocks
}

func (s *dirStore) unseal(ctx context.Context, name string, sealed []byte) ([]byte, error) {
	var plaintext []byte
	err := s.h.do(ctx, func(sh pkcs11.SessionHandle) (err error) {
		plaintext, err = s.h.unseal(sh, name, sealed)
		return err
	})
	return plaintext, err
}

func (s *dirStore) seal(ctx context.Context, name string, plaintext []byte) ([]byte, error) {
	var sealed []byte
	err := s.h.do(ctx, func(sh pkcs11.SessionHandle) (err error) {
		sealed, err = s.h.seal(sh, name, plaintext)
		return err
	})
	return sealed, err
}

// Capabilities reports values of up to MaxValueSize bytes and no
// linearizable Replace: Replace compares and renames under a lock of this
// process only, so another process on the same directory can interleave.
func (s *dirStore) Capabilities() keystore.Capabilities {
	return keystore.Capabilities{MaxValueSize: MaxValueSize}
}

func (s *dirStore) Create(ctx context.Context, name string, value []byte) error {
	if err := checkFileName(name); err != nil {
		return err
	}
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("pkcs11: create %q: %w", name, err)
	}
	defer s.locks.lock(name)()
	if s.h.isClosed() {
		return errClosed
	}
	if exists, err := s.dir.exists(name); err != nil || exists {
		if exists {
			return keystore.ErrKeyExists
		}
		return err
	}
	sealed, err := s.seal(ctx, name, value)
	if err != nil {
		return err
	}
	return s.dir.create(name, sealed)
}

func (s *dirStore) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkFileName(name); err != nil {
		return nil, err
	}
	defer s.locks.rlock(name)()
	sealed, err := s.dir.read(name)
	if err != nil {
		return nil, err
	}
	return s.unseal(ctx, name, sealed)
}

func (s *dirStore) Replace(ctx context.Context, name string, old, value []byte) error {
	if err := checkFileName(name); err != nil {
		return err
	}
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("pkcs11: replace %q: %w", name, err)
	}
	defer s.locks.lock(name)()
	sealed, err := s.dir.read(name)
	if err != nil {
		return err
	}
	plaintext, err := s.unseal(ctx, name, sealed)
	if err != nil {
		return err
	}
	same := subtle.ConstantTimeCompare(plaintext, old) == 1
	clear(plaintext)
	if !same {
		return keystore.ErrConflict
	}
	if sealed, err = s.seal(ctx, name, value); err != nil {
		return err
	}
	return s.dir.replace(name, sealed)
}

func (s *dirStore) Delete(_ context.Context, name string) error {
	if err := checkFileName(name); err != nil {
		return err
	}
	if s.h.isClosed() {
		return errClosed
	}
	defer s.locks.lock(name)()
	return s.dir.remove(name)
}

func (s *dirStore) List(_ context.Context, prefix string) ([]string, error) {
	if s.h.isClosed() {
		return nil, errClosed
	}
	return s.dir.list(prefix)
}

// Status checks the directory and looks the root key up on the token.
func (s *dirStore) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	if err := s.dir.stat(); err != nil {
		return keystore.State{}, err
	}
	if _, err := (&Sealer{h: s.h}).Status(ctx); err != nil {
		return keystore.State{}, err
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

func (s *dirStore) Close() error { return s.h.Close() }

func (s *dirStore) String() string {
	return fmt.Sprintf("%s, directory %s", s.h.String(), s.dir.path)
}
