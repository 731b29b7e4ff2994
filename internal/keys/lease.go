// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// Per-key leases
//
// Update is a read-modify-write that relies on keystore.Store.Replace
// being a compare-and-swap. Stores whose Capabilities do not declare
// LinearizableReplace (KeyControl, PKCS#11) give that guarantee only
// within one process: two nodes that Replace one name at the same moment
// may both succeed, and one change is lost. On such stores Update first
// takes a lease on the key, so that at most one node at a time changes
// it. Every KMIP lifecycle change (activate, revoke, attribute changes and
// the Destroy claim) goes through Update and so through the lease.
//
// # What the lease is built on
//
// Only on what every driver guarantees across nodes: of several Creates
// of one name exactly one succeeds and the others get
// keystore.ErrKeyExists, and List sees a name created before it started.
// KeyControl refuses a second secret of a name with 409 "Secret already
// exists" (the emulator does this under one lock; that a KeyControl
// cluster enforces it atomically across its own nodes is assumed, not
// documented). The PKCS#11 store with a directory (Config.Dir) links the
// blob into place, which is exact across processes. The PKCS#11 store
// on the token is NOT: its Create is a find followed by a create,
// serialised only inside the process, so two processes can both create
// a lease and the lease does not help there. Such a token must have one
// writer: run one node per token.
//
// # Records
//
// A lease is a stored value under a reserved name
//
//	-kes-lease-<h>-<epoch>
//
// where <h> is the first 32 hex digits of SHA-256 of the key name (so
// the name has a fixed length that every store accepts, whatever the
// key name) and <epoch> a decimal number. The value is a small JSON
// object with the key name, a random holder ID and the expiry time. Key
// names never start with '-' (policy.ValidName, as in minio/kes), so no
// key can collide with a lease, and List of the Service, the KES API and
// KMIP Locate leave these names out. A minio/kes v0.24.0 server put back
// on the same keystore would list a lease that is held at that moment
// (or left behind by a node that died holding it) as a key name starting
// with "-kes-lease-"; it cannot use it (the name is invalid there too),
// and deleting it by hand once it has expired is harmless.
//
// # Acquire
//
//  1. List the key's lease records and read them. A record whose expiry
//     has not passed is live: the key is busy, wait with backoff and
//     start again, until the caller's context ends (ErrKeyBusy).
//  2. Otherwise Create the next epoch: 0 if there is no record, E+1 if
//     the highest record E has expired. Nodes that saw the same records
//     create the same name, and exactly one of them wins; the others go
//     back to 1.
//  3. List and read again. If any other live record exists, delete ours
//     and go back to 1. This closes the window of a node that listed
//     long ago: of two nodes that both created a record, the one that
//     listed second sees the other's record, because each listed after
//     its own Create. A node whose step 3 saw no other live record holds
//     the lease; it deletes the expired records of the key.
//
// Release deletes the holder's own record. A holder that dies leaves its
// record behind; the key is free again when it expires.
//
// # Expiry and clocks
//
// The holder runs its read-modify-write under a context whose deadline
// is the record's expiry minus a safety margin, and Update checks that
// context once more before it writes. Another node takes the lease over
// only after the expiry, by its own clock. So a holder whose lease
// expired can no longer be writing, provided that the clocks of the
// nodes differ by less than the margin minus the time one keystore write
// takes to land. With the defaults (a 30 s lease, 10 s margin) that is a
// few seconds of skew, which NTP keeps far below.
//
// # Cost
//
// A lease costs two Lists, a few Gets, a Create and a Delete on top of
// the change itself. The KeyControl driver filters List by prefix on
// the client, so each List reads the whole box; lifecycle changes are
// rare next to encrypt and decrypt, which take no lease.

// LeasePrefix starts the names of the lease records Update keeps in the
// keystore when the store's Replace is not linearizable. Key names never
// start with it (they never start with '-'), and List leaves such names
// out.
const LeasePrefix = "-kes-lease-"

// ErrKeyBusy means that another node holds the key's lease and did not
// release it before the caller's context ended. The change was not made;
// the caller may try again.
var ErrKeyBusy = errors.New("key is busy: another node is changing it")

// errLeaseEnding ends an Update whose lease is about to expire.
var errLeaseEnding = errors.New("keys: the key's lease is about to expire")

// IsReserved reports whether name is one the Service keeps for itself
// (a lease record) and never uses as a key name.
func IsReserved(name string) bool { return strings.HasPrefix(name, LeasePrefix) }

// withoutReserved drops reserved names from names, in place.
func withoutReserved(names []string, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if !IsReserved(n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Lease defaults.
const (
	defaultLeaseTTL    = 30 * time.Second
	defaultLeaseMargin = 10 * time.Second

	leaseMinBackoff = 10 * time.Millisecond
	leaseMaxBackoff = time.Second

	// maxLeaseValue bounds a lease record that is read back. Ours are
	// about 200 bytes.
	maxLeaseValue = 1 << 10

	// maxLeaseRecords bounds how many records of one key are read. There
	// are at most a few; more means something else writes them.
	maxLeaseRecords = 64
)

// leaser takes per-key leases on a store. It is nil for stores with a
// linearizable Replace, which need none.
type leaser struct {
	store  keystore.Store
	ttl    time.Duration // lifetime of a record
	margin time.Duration // the holder stops this long before the expiry
	log    *slog.Logger
	rand   io.Reader
}

// newLeaser returns a leaser for store, or nil if the store's Replace is
// linearizable.
func newLeaser(store keystore.Store, log *slog.Logger, rnd io.Reader) *leaser {
	if keystore.CapabilitiesOf(store).LinearizableReplace {
		return nil
	}
	return &leaser{store: store, ttl: defaultLeaseTTL, margin: defaultLeaseMargin, log: log, rand: rnd}
}

// leaseValue is what a lease record holds.
type leaseValue struct {
	Key     string    `json:"key"`
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// leaseRecord is one record of a key as read from the store.
type leaseRecord struct {
	name    string
	epoch   uint64
	value   []byte
	expires time.Time // zero for a malformed record, which counts as expired
}

// leaseBase is the common prefix of the records of key.
func leaseBase(key string) string {
	h := sha256.Sum256([]byte(key))
	return LeasePrefix + hex.EncodeToString(h[:16]) + "-"
}

// lease takes the lease on name if the store needs one. It returns the
// context to do the change under and the function that releases the
// lease. For a linearizable store it returns ctx unchanged.

// lease takes the lease on name if the store needs one. It returns the
// context to do the change under and the function that releases the
// lease. For a linearizable store it returns ctx unchanged.
func (s *Service) lease(ctx context.Context, name string) (context.Context, func(), error) {
	if s.leases == nil {
		return ctx, func() {}, nil
	}
	return s.leases.acquire(ctx, name)
}

// acquire takes the lease on key, waiting while another holder has it,
// until ctx ends.
func (l *leaser) acquire(ctx context.Context, key string) (context.Context, func(), error) {
	base := leaseBase(key)
	backoff := leaseMinBackoff
	for {
		held, err := l.try(ctx, key, base)
		if err != nil {
			return nil, nil, err
		}
		if held != nil {
			return held.ctx, held.release, nil
		}
		// Full jitter keeps nodes that collided from colliding again.
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("keys: key '%s': %w (%w)", key, ErrKeyBusy, context.Cause(ctx))
		case <-t.C:
		}
		backoff = min(2*backoff, leaseMaxBackoff)
	}
}

type heldLease struct {
	ctx     context.Context
	release func()
}

// try makes one attempt. It returns nil, nil when the key is busy.
func (l *leaser) try(ctx context.Context, key, base string) (*heldLease, error) {
	records, err := l.read(ctx, base)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var next uint64
	for _, r := range records {
		if now.Before(r.expires) {
			return nil, nil
		}
		next = max(next, r.epoch+1)
	}

	holder := make([]byte, 16)
	if _, err := io.ReadFull(l.rand, holder); err != nil {
		return nil, fmt.Errorf("keys: failed to generate lease holder ID: %w", err)
	}
	start := time.Now()
	expires := start.Add(l.ttl)
	value, err := json.Marshal(leaseValue{Key: key, Holder: hex.EncodeToString(holder), Expires: expires.UTC()})
	if err != nil {
		return nil, fmt.Errorf("keys: failed to encode lease: %w", err)
	}
	name := base + strconv.FormatUint(next, 10)
	switch err := l.store.Create(ctx, name, value); {
	case errors.Is(err, keystore.ErrKeyExists):
		return nil, nil // another node won this epoch
	case err != nil:
		// The record may have been created (a lost answer): remove it
		// if it is ours, so that the key is not blocked until expiry.
		l.remove(ctx, name, value)
		return nil, fmt.Errorf("keys: key '%s': failed to take lease: %w", key, err)
	}

	records, err = l.read(ctx, base)
	if err != nil {
		l.remove(ctx, name, value)
		return nil, err
	}
	now = time.Now()
	for _, r := range records {
		if r.name != name && now.Before(r.expires) {
			l.remove(ctx, name, value)
			return nil, nil
		}
	}
	for _, r := range records {
		if r.name != name {
			l.remove(ctx, r.name, r.value)
		}
	}

	stop := expires.Add(-l.margin)
	lctx, cancel := context.WithDeadlineCause(ctx, stop, errLeaseEnding)
	return &heldLease{ctx: lctx, release: func() {
		cancel()
		// Past stop another node may, by its clock, see the record as
		// expired, delete it and create one under the same name: leave
		// it to expire rather than risk deleting that one.
		if time.Now().Before(stop) {
			l.remove(ctx, name, value)
		}
	}}, nil
}

// read lists and reads the records under base. Records that vanish
// between the List and the Get (released) are left out.
func (l *leaser) read(ctx context.Context, base string) ([]leaseRecord, error) {
	names, err := l.store.List(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("keys: failed to list leases: %w", err)
	}
	var records []leaseRecord
	for _, name := range names {
		epoch, err := strconv.ParseUint(strings.TrimPrefix(name, base), 10, 64)
		if err != nil || !strings.HasPrefix(name, base) {
			continue // not a record of this key
		}
		if len(records) == maxLeaseRecords {
			return nil, fmt.Errorf("keys: more than %d lease records under '%s'", maxLeaseRecords, base)
		}
		value, err := l.store.Get(ctx, name)
		if errors.Is(err, keystore.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("keys: failed to read lease: %w", err)
		}
		r := leaseRecord{name: name, epoch: epoch, value: value}
		var v leaseValue
		if len(value) <= maxLeaseValue && json.Unmarshal(value, &v) == nil {
			r.expires = v.Expires
		} else {
			l.log.Warn("malformed lease record: treated as expired", "name", name)
		}
		records = append(records, r)
	}
	return records, nil
}

// remove deletes the record name if it still holds value. It runs even
// when ctx has ended: a record left behind blocks the key until it
// expires. Failures are logged; the record then expires by itself.
func (l *leaser) remove(ctx context.Context, name string, value []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	cur, err := l.store.Get(ctx, name)
	if errors.Is(err, keystore.ErrKeyNotFound) {
		return
	}
	if err == nil && !bytes.Equal(cur, value) {
		return // a new record under a recycled name: not ours
	}
	if err == nil {
		err = l.store.Delete(ctx, name)
	}
	if err != nil && !errors.Is(err, keystore.ErrKeyNotFound) {
		l.log.Warn("failed to remove lease record: it expires by itself", "name", name, "err", err)
	}
}
