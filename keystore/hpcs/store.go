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
	"sync"
	"time"

	kp "github.com/IBM/keyprotect-go-client"

	"github.com/kesbridge/kes/keystore"
)

// The two aliases of a key: records with an even generation carry
// "kes-<name>", records with an odd one "kes_<name>". The prefixes also
// make every alias long enough, never a UUID and never a reserved word.
// They differ in their fourth character, so no name's alias can be
// another name's.
const (
	prefixEven = "kes-"
	prefixOdd  = "kes_"
)

// maxName keeps an alias within its 90 characters.
const maxName = 90 - len(prefixEven)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// listPage is the page size of List; the service allows up to 5000.
// A variable so that tests can cross page boundaries with few keys.
var listPage = 1000

// errVanished reports that a record disappeared while it was read.
var errVanished = errors.New("hpcs: stored key changed while it was read")

// Store keeps keys as standard keys in an HPCS / Key Protect instance,
// sealed by a root key. It implements keystore.Store and is safe for
// concurrent use.
type Store struct {
	c      *conn
	sealer *Sealer
}

var _ keystore.Store = (*Store)(nil)

// NewStore connects to the instance and checks that the root key is
// usable. The store is a *Store; its Rewrap method is found by type
// assertion:
//
//	if r, ok := store.(interface {
//		Rewrap(context.Context) (int, error)
//	}); ok {
//		n, err := r.Rewrap(ctx)
//	}
func NewStore(ctx context.Context, cfg Config) (keystore.Store, error) {
	sealer, err := NewSealer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Store{c: sealer.c, sealer: sealer}, nil
}

// aliasesOf returns the even and the odd alias of name.
func aliasesOf(name string) ([2]string, error) {
	if len(name) == 0 || len(name) > maxName || !nameRE.MatchString(name) {
		return [2]string{}, fmt.Errorf("hpcs: invalid key name %q: use 1 to %d characters of A-Z, a-z, 0-9, _ and -", name, maxName)
	}
	return [2]string{prefixEven + name, prefixOdd + name}, nil
}

// record is one write of one of our keys as found in the instance.
type record struct {
	id     string // the standard key that carries the alias
	alias  string
	gen    uint64
	parts  []string // the standard keys with the parts, if any
	sealed []byte   // nil until the parts are read
}

// fetchHead reads the record under alias, or nil if there is none.
func (s *Store) fetchHead(ctx context.Context, alias string) (*record, error) {
	key, err := s.getKey(ctx, alias)
	if errors.Is(err, keystore.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := payloadOf(key)
	if err != nil {
		return nil, err
	}
	h, err := parseHead(b)
	if err != nil {
		return nil, err
	}
	if (h.gen%2 == 0) != strings.HasPrefix(alias, prefixEven) {
		return nil, fmt.Errorf("hpcs: stored key %s has generation %d under alias %s", key.ID, h.gen, alias)
	}
	return &record{id: key.ID, alias: alias, gen: h.gen, parts: h.parts, sealed: h.inline}, nil
}

// fetchParts completes a record's sealed value from its parts.
func (s *Store) fetchParts(ctx context.Context, r *record) error {
	if r.parts == nil {
		return nil
	}
	var sealed []byte
	for _, id := range r.parts {
		part, err := s.getKey(ctx, id)
		if errors.Is(err, keystore.ErrKeyNotFound) {
			// A newer write replaced the record after we read its head.
			return errVanished
		}
		if err != nil {
			return err
		}
		b, err := payloadOf(part)
		if err != nil {
			return err
		}
		sealed = append(sealed, b...)
	}
	r.sealed = sealed
	return nil
}

// lookup reads both aliases at once. cur is the record with the higher
// generation, stale the other one (a leftover of an unfinished write),
// each nil if absent.
func (s *Store) lookup(ctx context.Context, aliases [2]string) (cur, stale *record, err error) {
	var (
		wg   sync.WaitGroup
		recs [2]*record
		errs [2]error
	)
	for i := range aliases {
		wg.Go(func() { recs[i], errs[i] = s.fetchHead(ctx, aliases[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs[0], errs[1]); err != nil {
		if errs[0] != nil {
			return nil, nil, errs[0]
		}
		return nil, nil, errs[1]
	}
	cur, stale = recs[0], recs[1]
	if cur == nil || (stale != nil && stale.gen > cur.gen) {
		cur, stale = stale, cur
	}
	return cur, stale, nil
}

// read finds the current record of name with its sealed value. A write
// in progress can hide the key for an instant (between creating the new
// record and deleting the old, a reader may look at each alias at the
// wrong moment), so a miss is retried a few times before it counts.
func (s *Store) read(ctx context.Context, name string) (cur, stale *record, err error) {
	aliases, err := aliasesOf(name)
	if err != nil {
		return nil, nil, err
	}
	wait := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		cur, stale, err = s.lookup(ctx, aliases)
		if err == nil && cur != nil {
			err = s.fetchParts(ctx, cur)
			if err == nil {
				return cur, stale, nil
			}
		}
		if err != nil && !errors.Is(err, errVanished) {
			return nil, nil, err
		}
		if attempt == 2 {
			return nil, nil, keystore.ErrKeyNotFound
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, &keystore.UnreachableError{Store: storeName, Err: ctx.Err()}
		case <-t.C:
		}
		wait *= 4
	}
}

func (s *Store) getKey(ctx context.Context, idOrAlias string) (*kp.Key, error) {
	var key *kp.Key
	err := s.c.do(ctx, func(ctx context.Context) (err error) {
		key, err = s.c.ringClient.GetKey(ctx, idOrAlias)
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
	cur, stale, err := s.read(ctx, name)
	if err != nil {
		return nil, err
	}
	value, resealed, err := s.sealer.Unseal(ctx, name, cur.sealed)
	if err != nil {
		return nil, err
	}
	if resealed != nil {
		if err := s.advance(ctx, name, cur, stale, resealed); err != nil && !errors.Is(err, keystore.ErrConflict) {
			s.c.log.WarnContext(ctx, "hpcs: failed to write back re-wrapped key", "key", name, "err", err)
		}
	}
	return value, nil
}

// write stores a sealed value as a new record: the parts first, then the
// head with the alias. The create request carries the alias, so the
// record appears atomically, and only if the alias was free.
func (s *Store) write(ctx context.Context, name, alias string, gen uint64, sealed []byte) (*record, error) {
	kpName := prefixEven + name
	h := head{gen: gen}
	if len(sealed) > maxInline {
		if (len(sealed)+maxInline-1)/maxInline > maxParts {
			return nil, fmt.Errorf("hpcs: sealed value of %d bytes: %w", len(sealed), keystore.ErrValueTooLarge)
		}
		for off := 0; off < len(sealed); off += maxInline {
			chunk := sealed[off:min(off+maxInline, len(sealed))]
			id, err := s.create(ctx, kpName, "kes: part of a stored key", "", chunk)
			if err != nil {
				s.deleteKeys(ctx, h.parts)
				return nil, err
			}
			h.parts = append(h.parts, id)
		}
	} else {
		h.inline = sealed
	}
	id, err := s.create(ctx, kpName, "kes: stored key", alias, h.marshal())
	if statusOf(err) == http.StatusConflict {
		// The client library repeats a create whose answer was lost (a
		// connection error, a 5xx); if the first attempt landed, the
		// alias is ours. The head tells: its inline value is sealed
		// with a fresh nonce and its parts are our new keys.
		if holder, herr := s.fetchHead(ctx, alias); herr == nil && holder != nil && holder.gen == gen &&
			bytes.Equal(holder.sealed, h.inline) && slices.Equal(holder.parts, h.parts) {
			holder.sealed = sealed
			return holder, nil
		}
	}
	if err != nil {
		s.deleteKeys(ctx, h.parts)
		return nil, err
	}
	return &record{id: id, alias: alias, gen: gen, parts: h.parts, sealed: sealed}, nil
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
		key, err = s.c.ringClient.CreateKeyWithOptions(ctx, kpName, true, opts...)
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

// removeAlias takes a record out of view. It reports false if the alias
// was no longer on the record: someone else removed it first.
func (s *Store) removeAlias(ctx context.Context, r *record) (bool, error) {
	err := s.c.do(ctx, func(ctx context.Context) error {
		return s.c.ringClient.DeleteKeyAlias(ctx, r.alias, r.id)
	})
	switch statusOf(err) {
	case http.StatusNotFound, http.StatusGone:
		return false, nil
	}
	return err == nil, err
}

// deleteRecord removes a record that a newer one supersedes, best
// effort: a leftover is a lower generation, which readers ignore and the
// next write removes.
func (s *Store) deleteRecord(ctx context.Context, r *record) {
	ctx = context.WithoutCancel(ctx)
	if _, err := s.removeAlias(ctx, r); err != nil {
		s.c.log.WarnContext(ctx, "hpcs: failed to remove the alias of a superseded key", "alias", r.alias, "id", r.id, "err", err)
		return
	}
	s.deleteKeys(ctx, append([]string{r.id}, r.parts...))
}

// deleteKeys deletes standard keys, best effort: leftovers hold sealed
// values only, which the root key still protects.
func (s *Store) deleteKeys(ctx context.Context, ids []string) {
	ctx = context.WithoutCancel(ctx)
	for _, id := range ids {
		err := s.c.do(ctx, func(ctx context.Context) error {
			_, err := s.c.ringClient.DeleteKey(ctx, id, kp.ReturnMinimal)
			return err
		})
		if err != nil && statusOf(err) != http.StatusGone && statusOf(err) != http.StatusNotFound {
			s.c.log.WarnContext(ctx, "hpcs: failed to delete a leftover standard key", "id", id, "err", err)
		}
	}
}

// errAliasPending is returned when the service has not yet released an
// alias that was removed shortly before; IBM documents that this can
// take up to five minutes.
func errAliasPending(name, alias string, err error) error {
	return fmt.Errorf("hpcs: %s: alias %s is still being released by the service after a recent change; try again in a few minutes: %w", name, alias, err)
}

// Create stores value under name as generation 0 under the even alias.
// Of concurrent Creates only one can get the alias. If the name exists
// with an odd generation (the even alias is free then), the check that
// follows the create finds the odd record and withdraws ours.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	aliases, err := aliasesOf(name)
	if err != nil {
		return err
	}
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("hpcs: create %s: %w", name, err)
	}
	sealed, err := s.sealer.Seal(ctx, name, value)
	if err != nil {
		return err
	}
	rec, err := s.write(ctx, name, aliases[0], 0, sealed)
	if statusOf(err) == http.StatusConflict {
		cur, _, lerr := s.lookup(ctx, aliases)
		switch {
		case lerr != nil:
			return lerr
		case cur != nil:
			return keystore.ErrKeyExists
		default:
			return errAliasPending(name, aliases[0], err)
		}
	}
	if err != nil {
		return err
	}
	odd, err := s.fetchHead(ctx, aliases[1])
	if err != nil {
		return err
	}
	if odd != nil {
		s.deleteRecord(ctx, rec)
		return keystore.ErrKeyExists
	}
	return nil
}

// Replace swaps the value under name from old to value.
func (s *Store) Replace(ctx context.Context, name string, old, value []byte) error {
	if err := keystore.CheckValueSize(value, MaxValueSize); err != nil {
		return fmt.Errorf("hpcs: replace %s: %w", name, err)
	}
	cur, stale, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	current, _, err := s.sealer.Unseal(ctx, name, cur.sealed)
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
	return s.advance(ctx, name, cur, stale, sealed)
}

// advance writes sealed as the successor of cur: generation cur.gen+1
// under the other alias. Creating the successor is the commit: the alias
// is unique, so of concurrent writers from cur only one succeeds. Readers
// take the higher generation, so cur stays current until the successor
// exists, and is deleted only afterwards: no instant without a value.
func (s *Store) advance(ctx context.Context, name string, cur, stale *record, sealed []byte) error {
	aliases, err := aliasesOf(name)
	if err != nil {
		return err
	}
	nextAlias := aliases[(cur.gen+1)%2]
	if stale != nil {
		// A lower generation left behind; its alias is the one we need.
		s.deleteRecord(ctx, stale)
	}
	var next *record
	for attempt := 0; ; attempt++ {
		next, err = s.write(ctx, name, nextAlias, cur.gen+1, sealed)
		if err == nil {
			break
		}
		if statusOf(err) != http.StatusConflict {
			return err
		}
		holder, herr := s.fetchHead(ctx, nextAlias)
		switch {
		case herr != nil:
			return herr
		case holder == nil:
			return errAliasPending(name, nextAlias, err)
		case holder.gen > cur.gen:
			return keystore.ErrConflict // another writer committed first
		case attempt == 0:
			s.deleteRecord(ctx, holder) // an older leftover
		default:
			return keystore.ErrConflict
		}
	}

	// Check that cur was still current when we committed: if a newer
	// generation than ours holds cur's alias, we raced with two writes
	// in a row and lost; withdraw ours.
	prev, err := s.fetchHead(ctx, cur.alias)
	switch {
	case err != nil:
		// Ours is committed; cur stays as a leftover that the next
		// write removes.
		s.c.log.WarnContext(ctx, "hpcs: could not remove the previous version of a key", "key", name, "err", err)
		return nil
	case prev != nil && prev.id == cur.id:
		s.deleteRecord(ctx, cur)
	case prev != nil && prev.gen > next.gen:
		s.deleteRecord(ctx, next)
		return keystore.ErrConflict
	}
	return nil
}

// Delete removes the key. Removing the current record's alias decides
// between concurrent Deletes (only one can). Delete then looks again and
// removes what a concurrent Replace may have committed meanwhile.
func (s *Store) Delete(ctx context.Context, name string) error {
	aliases, err := aliasesOf(name)
	if err != nil {
		return err
	}
	cur, stale, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	won := false
	for range 4 {
		for _, r := range []*record{cur, stale} {
			if r == nil {
				continue
			}
			ok, err := s.removeAlias(ctx, r)
			if err != nil {
				return err
			}
			if ok {
				won = true
				s.deleteKeys(ctx, append([]string{r.id}, r.parts...))
			}
		}
		if cur, stale, err = s.lookup(ctx, aliases); err != nil {
			return err
		}
		if cur == nil {
			break
		}
	}
	if !won {
		return keystore.ErrKeyNotFound
	}
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
			page, err = s.c.ringClient.ListKeys(ctx, &kp.ListKeysOptions{
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
				name, ok := strings.CutPrefix(a, prefixEven)
				if !ok {
					name, ok = strings.CutPrefix(a, prefixOdd)
				}
				if ok && strings.HasPrefix(name, prefix) {
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
		cur, stale, err := s.read(ctx, name)
		if errors.Is(err, keystore.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("hpcs: rewrap %s: %w", name, err)
		}
		resealed, err := s.sealer.Reseal(ctx, name, cur.sealed)
		if err != nil {
			return n, fmt.Errorf("hpcs: rewrap %s: %w", name, err)
		}
		if bytes.Equal(resealed, cur.sealed) {
			continue
		}
		switch err := s.advance(ctx, name, cur, stale, resealed); {
		case errors.Is(err, keystore.ErrConflict):
			// Written meanwhile, hence under the newest version.
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
