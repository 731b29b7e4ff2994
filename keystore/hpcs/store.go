// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	kp "github.com/IBM/keyprotect-go-client"

	"github.com/kesbridge/kes/keystore"
)

// aliasPrefix starts the alias (and the name) of every standard key that
// holds one of our keys. An alias must not be a UUID or a reserved word
// and needs two characters at least; the prefix takes care of all three.
const aliasPrefix = "kes-"

// maxName keeps "kes-<name>" within the 90 characters of an alias.
const maxName = 90 - len(aliasPrefix)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// listPage is the page size of List; the service allows up to 5000.
// A variable so that tests can cross page boundaries with few keys.
var listPage = 1000

// Store keeps keys as standard keys in an HPCS / Key Protect instance,
// sealed by a root key. It implements keystore.Store and is safe for
// concurrent use.
type Store struct {
	c      *conn
	sealer *Sealer
}

var _ keystore.Store = (*Store)(nil)

// NewStore connects to the instance and checks that the root key is
// usable.
func NewStore(ctx context.Context, cfg Config) (*Store, error) {
	sealer, err := NewSealer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Store{c: sealer.c, sealer: sealer}, nil
}

func aliasOf(name string) (string, error) {
	if len(name) == 0 || len(name) > maxName || !nameRE.MatchString(name) {
		return "", fmt.Errorf("hpcs: invalid key name %q: use 1 to %d characters of A-Z, a-z, 0-9, _ and -", name, maxName)
	}
	return aliasPrefix + name, nil
}

// record is one of our keys as found in the instance.
type record struct {
	id     string   // the standard key with the alias
	parts  []string // the standard keys with the parts, if any
	sealed []byte
}

// read resolves the alias and fetches the sealed value. Between the two
// alias calls of a Replace the alias resolves to nothing, so a miss is
// retried a few times before it counts.
func (s *Store) read(ctx context.Context, name string) (*record, error) {
	alias, err := aliasOf(name)
	if err != nil {
		return nil, err
	}
	wait := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		rec, err := s.readOnce(ctx, alias)
		if !errors.Is(err, keystore.ErrKeyNotFound) || attempt == 2 {
			return rec, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &keystore.UnreachableError{Store: storeName, Err: ctx.Err()}
		case <-t.C:
		}
		wait *= 4
	}
}

func (s *Store) readOnce(ctx context.Context, alias string) (*record, error) {
	key, err := s.getKey(ctx, alias)
	if err != nil {
		return nil, err
	}
	head, err := payloadOf(key)
	if err != nil {
		return nil, err
	}
	inline, parts, err := parseHead(head)
	if err != nil {
		return nil, err
	}
	rec := &record{id: key.ID, parts: parts, sealed: inline}
	if parts == nil {
		return rec, nil
	}
	var sealed []byte
	for _, id := range parts {
		part, err := s.getKey(ctx, id)
		if errors.Is(err, keystore.ErrKeyNotFound) {
			// The head exists but a part is gone: a concurrent Replace
			// or Delete removed it after we read the head.
			return nil, keystore.ErrKeyNotFound
		}
		if err != nil {
			return nil, err
		}
		b, err := payloadOf(part)
		if err != nil {
			return nil, err
		}
		sealed = append(sealed, b...)
	}
	rec.sealed = sealed
	return rec, nil
}

func (s *Store) getKey(ctx context.Context, idOrAlias string) (*kp.Key, error) {
	var key *kp.Key
	err := s.c.do(ctx, func(ctx context.Context) (err error) {
		key, err = s.c.client.GetKey(ctx, idOrAlias)
		return err
	})
	if statusOf(err) == http.StatusNotFound {
		return nil, keystore.ErrKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	if key.State == int(kp.Destroyed) || (key.Deleted != nil && *key.Deleted) {
		return nil, keystore.ErrKeyNotFound
	}
	if !key.Extractable {
		return nil, fmt.Errorf("hpcs: key %s is not a standard key", key.ID)
	}
	return key, nil
}

func payloadOf(key *kp.Key) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(key.Payload)
	if err != nil || len(b) == 0 {
		return nil, errMalformedHead
	}
	return b, nil
}

// Get returns the value stored under name. If the root key was rotated
// since the value was written, the re-wrapped value is written back
// (best effort).
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	rec, err := s.read(ctx, name)
	if err != nil {
		return nil, err
	}
	value, resealed, err := s.sealer.Unseal(ctx, name, rec.sealed)
	if err != nil {
		return nil, err
	}
	if resealed != nil {
		if err := s.swap(ctx, name, rec, resealed); err != nil && !errors.Is(err, keystore.ErrConflict) {
			s.c.log.WarnContext(ctx, "hpcs: failed to write back re-wrapped key", "key", name, "err", err)
		}
	}
	return value, nil
}

// write stores a sealed value as new standard keys: the parts first, then
// the head. alias is set on the head if not empty. It returns the head's
// ID and the parts' IDs.
func (s *Store) write(ctx context.Context, name, alias string, sealed []byte) (*record, error) {
	kpName := aliasPrefix + name
	var parts []string
	if len(sealed) > maxInline {
		if (len(sealed)+maxInline-1)/maxInline > maxParts {
			return nil, errors.New("hpcs: value is too large")
		}
		for off := 0; off < len(sealed); off += maxInline {
			chunk := sealed[off:min(off+maxInline, len(sealed))]
			id, err := s.create(ctx, kpName, "kes: part of a stored key", "", chunk)
			if err != nil {
				s.deleteKeys(ctx, parts)
				return nil, err
			}
			parts = append(parts, id)
		}
	}
	var head []byte
	if parts == nil {
		head = marshalHead(sealed, nil)
	} else {
		head = marshalHead(nil, parts)
	}
	desc := "kes: stored key"
	if alias == "" {
		desc = "kes: stored key (pending replacement)"
	}
	id, err := s.create(ctx, kpName, desc, alias, head)
	if err != nil {
		s.deleteKeys(ctx, parts)
		return nil, err
	}
	return &record{id: id, parts: parts, sealed: sealed}, nil
}

func (s *Store) create(ctx context.Context, kpName, desc, alias string, payload []byte) (string, error) {
	opts := []kp.CreateKeyOption{
		kp.WithPayload(base64.StdEncoding.EncodeToString(payload), nil, nil, false),
		kp.WithDescription(desc),
	}
	if alias != "" {
		opts = append(opts, kp.WithAliases([]string{alias}))
	}
	var key *kp.Key
	err := s.c.do(ctx, func(ctx context.Context) (err error) {
		key, err = s.c.client.CreateKeyWithOptions(ctx, kpName, true, opts...)
		return err
	})
	if err != nil {
		return "", err
	}
	if key == nil || key.ID == "" {
		return "", errors.New("hpcs: create key: the service returned no key ID")
	}
	return key.ID, nil
}

// deleteKeys removes standard keys, best effort: leftovers hold sealed
// values only, which the root key still protects.
func (s *Store) deleteKeys(ctx context.Context, ids []string) {
	for _, id := range ids {
		err := s.c.do(ctx, func(ctx context.Context) error {
			_, err := s.c.client.DeleteKey(ctx, id, kp.ReturnMinimal)
			return err
		})
		if err != nil && statusOf(err) != http.StatusGone && statusOf(err) != http.StatusNotFound {
			s.c.log.WarnContext(ctx, "hpcs: failed to delete a leftover standard key", "id", id, "err", err)
		}
	}
}

// Create stores value under name. The alias in the create request makes
// it atomic: of concurrent Creates of one name exactly one succeeds.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	alias, err := aliasOf(name)
	if err != nil {
		return err
	}
	sealed, err := s.sealer.Seal(ctx, name, value)
	if err != nil {
		return err
	}
	_, err = s.write(ctx, name, alias, sealed)
	if statusOf(err) == http.StatusConflict {
		// Do not trust the reason code alone: a conflict can also be
		// an instance policy. The name exists if the alias resolves.
		if _, gerr := s.getKey(ctx, alias); gerr == nil {
			return keystore.ErrKeyExists
		}
	}
	return err
}

// Replace swaps the value under name from old to value.
func (s *Store) Replace(ctx context.Context, name string, old, value []byte) error {
	rec, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	current, _, err := s.sealer.Unseal(ctx, name, rec.sealed)
	if err != nil {
		return err
	}
	same := bytes.Equal(current, old)
	clear(current)
	if !same {
		return keystore.ErrConflict
	}
	sealed, err := s.sealer.Seal(ctx, name, value)
	if err != nil {
		return err
	}
	return s.swap(ctx, name, rec, sealed)
}

// swap replaces the record rec of name by a new one holding sealed. It
// fails with ErrConflict if rec is no longer the current record.
//
// Order matters: the new record exists before the alias leaves the old
// one, and the old one is deleted only after the alias has moved, so
// the value is never lost. Removing the alias from rec is the
// compare-and-swap: only one of several concurrent swaps can do it.
func (s *Store) swap(ctx context.Context, name string, rec *record, sealed []byte) error {
	alias, err := aliasOf(name)
	if err != nil {
		return err
	}
	next, err := s.write(ctx, name, "", sealed)
	if err != nil {
		return err
	}
	newKeys := append([]string{next.id}, next.parts...)
	err = s.c.do(ctx, func(ctx context.Context) error {
		return s.c.client.DeleteKeyAlias(ctx, alias, rec.id)
	})
	if err != nil {
		s.deleteKeys(context.WithoutCancel(ctx), newKeys)
		if st := statusOf(err); st == http.StatusNotFound || st == http.StatusGone {
			return keystore.ErrConflict
		}
		return err
	}
	// From here on the alias must land somewhere: on the new record, or,
	// failing that, back on the old one. Neither step may be cut short
	// by the caller going away.
	ctx = context.WithoutCancel(ctx)
	err = s.c.do(ctx, func(ctx context.Context) error {
		_, err := s.c.client.CreateKeyAlias(ctx, alias, next.id)
		return err
	})
	if err != nil {
		rerr := s.c.do(ctx, func(ctx context.Context) error {
			_, err := s.c.client.CreateKeyAlias(ctx, alias, rec.id)
			return err
		})
		if rerr != nil {
			s.c.log.ErrorContext(ctx, "hpcs: key left without alias; add the alias to one of the standard keys to restore it",
				"key", name, "alias", alias, "old", rec.id, "new", next.id, "err", rerr)
			return fmt.Errorf("hpcs: replace %s: alias could not be moved or restored: %w", name, err)
		}
		s.deleteKeys(ctx, newKeys)
		return err
	}
	s.deleteKeys(ctx, append([]string{rec.id}, rec.parts...))
	return nil
}

// Delete removes the key. Removing the alias first decides concurrent
// Deletes (only one can) and hides the key at once; the standard keys
// are deleted afterwards.
func (s *Store) Delete(ctx context.Context, name string) error {
	alias, err := aliasOf(name)
	if err != nil {
		return err
	}
	rec, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	err = s.c.do(ctx, func(ctx context.Context) error {
		return s.c.client.DeleteKeyAlias(ctx, alias, rec.id)
	})
	if st := statusOf(err); st == http.StatusNotFound || st == http.StatusGone {
		return keystore.ErrKeyNotFound
	}
	if err != nil {
		return err
	}
	s.deleteKeys(context.WithoutCancel(ctx), append([]string{rec.id}, rec.parts...))
	return nil
}

// List returns the names of all keys that start with prefix. It pages
// through all active standard keys and picks those with one of our
// aliases. Keys created or deleted while List pages may or may not be
// listed.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	extractable := true
	limit := uint32(listPage)
	for offset := uint32(0); ; offset += limit {
		var page *kp.Keys
		off := offset
		err := s.c.do(ctx, func(ctx context.Context) (err error) {
			page, err = s.c.client.ListKeys(ctx, &kp.ListKeysOptions{
				Extractable: &extractable,
				Limit:       &limit,
				Offset:      &off,
				State:       []kp.KeyState{kp.Active},
			})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, k := range page.Keys {
			for _, a := range k.Aliases {
				if name, ok := strings.CutPrefix(a, aliasPrefix); ok && strings.HasPrefix(name, prefix) {
					names = append(names, name)
				}
			}
		}
		if len(page.Keys) < int(limit) {
			break
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Status checks the root key, as the Sealer does.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	return s.sealer.Status(ctx)
}

// Rewrap re-wraps every stored value that is not yet under the newest
// root key version and returns how many it rewrote. It is what `kes key
// rewrap` runs for this store. Keys deleted or replaced meanwhile are
// skipped; the first other error stops it.
func (s *Store) Rewrap(ctx context.Context) (int, error) {
	names, err := s.List(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		rec, err := s.read(ctx, name)
		if errors.Is(err, keystore.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("hpcs: rewrap %s: %w", name, err)
		}
		resealed, err := s.sealer.Reseal(ctx, name, rec.sealed)
		if err != nil {
			return n, fmt.Errorf("hpcs: rewrap %s: %w", name, err)
		}
		if bytes.Equal(resealed, rec.sealed) {
			continue
		}
		switch err := s.swap(ctx, name, rec, resealed); {
		case errors.Is(err, keystore.ErrConflict):
			// Replaced meanwhile, hence sealed under the newest version.
		case err != nil:
			return n, fmt.Errorf("hpcs: rewrap %s: %w", name, err)
		default:
			n++
		}
	}
	return n, nil
}

// Close releases idle connections. Later calls fail.
func (s *Store) Close() error { return s.sealer.Close() }

// String is "IBM HPCS: <endpoint> (root key <id>)".
func (s *Store) String() string { return s.c.String() }
