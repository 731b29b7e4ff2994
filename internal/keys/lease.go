// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
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
// LinearizableReplace (KeyControl, HPCS, PKCS#11) give that guarantee
// only within one process: two nodes that Replace one name at the same
// moment may both succeed, and one change is lost; and a Replace that
// compared just before another node deleted the key and created it anew
// writes the old key into the new one. On such stores Update and Delete
// first take a lease on the key, so that at most one node at a time
// changes or deletes it. Every KMIP lifecycle change (activate, revoke,
// attribute changes, the Destroy claim and its delete) goes through them.
//
// # What the lease is built on
//
// Only on what every driver guarantees across nodes:
//
//   - Create is exactly-one-winner: of several Creates of one name that
//     does not exist, exactly one succeeds and the others get
//     keystore.ErrKeyExists.
//   - List reflects every Create that completed before the List started
//     (unless the name was deleted since).
//
// Safety never rests on deleting a name: a record, once created, is never
// rewritten, and a name is deleted only when no node can act on it any
// more (see Garbage collection). KeyControl refuses a second secret of a
// name with 409 "Secret already exists" (the emulator does this under
// one lock; that a KeyControl cluster enforces it atomically across its
// own nodes is assumed, not documented). HPCS refuses a second key with
// one alias. The PKCS#11 store with a directory (Config.Dir) links the
// blob into place, which is exact across processes. The PKCS#11 store on
// the token is NOT: its Create is a find followed by a create,
// serialised only inside the process, so two processes can both create
// one record and the lease does not help there. Such a token must have
// one writer: run one node per token.
//
// # Records
//
// The lease of a key is a sequence of epochs 0, 1, 2, ... Epoch E is the
// record
//
//	-kes-lease-<h>-<E>
//
// and, once its holder is done, the release marker
//
//	-kes-lease-<h>-<E>-done
//
// where <h> is the first 32 hex digits of SHA-256 of the key name (so
// every name has a fixed prefix and a length that every store accepts,
// whatever the key name: at most 69 characters of [0-9a-z-], within
// the 86 of HPCS and a valid file name for fs and the PKCS#11
// directory) and <E> a decimal number without leading zeros. A record
// holds a small JSON object with the key name, a random holder ID and
// the expiry time. Key names never start with '-' (policy.ValidName, as
// in minio/kes), so no key can collide with a lease, and List of the
// Service, the KES API, KMIP Locate, kes migrate and kes key rewrap
// leave these names out (IsReserved).
//
// # Acquire
//
//  1. List the key's names. Let E be the highest epoch with a record or
//     a marker. If record E exists, has no marker and has not expired,
//     the key is busy: wait with jittered backoff and start again,
//     until the caller's context ends (ErrKeyBusy).
//  2. Otherwise Create record E+1 (record 0 if there is none). If it
//     exists, another node won that epoch: start again.
//  3. List again. If an epoch higher than E+1 exists, this node lost (its
//     first listing was stale): start again. Otherwise it holds epoch
//     E+1.
//
// Release: the holder creates the marker of its epoch once its last
// write has landed. If the outcome of its last write is unknown (a
// timeout), it creates no marker and the lease ends at its expiry.
//
// # Why at most one node holds the lease
//
// Let top(t) be the highest epoch whose Create completed by time t. It
// never decreases, and name top(t) exists at t: only the holder of an
// epoch two or more above deletes a name (below), and no such epoch was
// created. A node that holds epoch n listed in step 3, after its own
// Create completed, and saw nothing higher, so top was n then. Hence
// the holders of different epochs held them one after another in epoch
// order, two nodes never hold one epoch (a second Create of name n
// succeeds only after name n was collected, when top is already n+2 or
// more, which its step 3 sees), and the holder of n is the first
// creator of n. The first creator of n+1 saw in step 1 the first
// record of n (no name n is collected before n+1 exists) expired by its
// clock, or n's marker, which only the holder of n creates after its
// last write. By induction, every holder of an epoch below n had
// stopped writing before n was created. A node that holds nothing
// never writes the key.
//
// # Expiry and clocks
//
// The holder runs its change under a context whose deadline is the
// record's expiry minus a safety margin, and Update checks that context
// once more just before it writes. Another node takes the lease over
// only after the expiry, by its own clock. So a holder whose lease
// expired can no longer be writing, provided that the clocks of the
// nodes differ by less than the margin minus the time one keystore write
// takes to land. With the defaults (a 30 s lease, 10 s margin) that is a
// few seconds of skew, which NTP keeps far below.
//
// # Garbage collection
//
// After its release, the holder of epoch n deletes the records and
// markers of epochs below n-1 (at most a few per release), so that each
// key keeps the names of its newest two epochs and, rarely, a record a
// node with a stale listing created of a collected epoch. The newest
// epochs are never deleted, not even when the key is deleted: that
// would make their names reusable and break the argument above. A
// deleted key thus leaves a few small records behind, hidden from every
// listing. They also keep the ones of a node that died holding the
// lease; the key is free again when the lease expires.
//
// A minio/kes v0.24.0 server put back on the same keystore would list
// these records as key names starting with "-kes-lease-": it cannot use
// them (the names are invalid there too), and deleting them by hand
// once this server no longer runs on the keystore is harmless.
//
// # Cost
//
// A lease costs two Lists, one Get and two Creates on top of the change
// itself, and the Deletes of collection. The KeyControl driver filters
// List by prefix on the client, so each List reads the whole box;
// lifecycle changes are rare next to encrypt and decrypt, which take no
// lease.

// LeasePrefix starts the names of the lease records Update keeps in the
// keystore when the store's Replace is not linearizable. Key names never
// start with it (they never start with '-'), and List leaves such names
// out.
const LeasePrefix = "-kes-lease-"

// ErrKeyBusy means that the key's lease was not available long enough
// for the change: another node held it until the caller's context ended,
// or this node's lease ran out before the change was written (a slow
// keystore). The change was not made; the caller may try again.
var ErrKeyBusy = errors.New("key is busy: another node is changing it")

// errLeaseEnding ends an Update or Delete whose lease is about to
// expire. It matches ErrKeyBusy, so that the front doors answer "try
// again".
var errLeaseEnding error = leaseEndingError{}

type leaseEndingError struct{}

func (leaseEndingError) Error() string {
	return "the key's lease ran out before the change was written: try again"
}

func (leaseEndingError) Is(target error) bool { return target == ErrKeyBusy }

// IsReserved reports whether name is one the Service keeps for itself
// (a lease record) and never uses as a key name. Tools that list a
// keystore directly (kes migrate, kes key rewrap) skip such names.
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

	// maxLeaseCollect bounds the Deletes of one release; what is left
	// is collected by later holders.
	maxLeaseCollect = 8

	// leaseCleanupTimeout bounds the release's writes, which run even
	// when the caller's context has ended.
	leaseCleanupTimeout = 5 * time.Second

	doneSuffix = "-done"
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

// leaseValue is what a lease record (and a marker) holds.
type leaseValue struct {
	Key     string    `json:"key"`
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// leaseBase is the common prefix of the names of key's lease.
func leaseBase(key string) string {
	h := sha256.Sum256([]byte(key))
	return LeasePrefix + hex.EncodeToString(h[:16]) + "-"
}

func recordName(base string, epoch uint64) string { return base + strconv.FormatUint(epoch, 10) }
func markerName(base string, epoch uint64) string { return recordName(base, epoch) + doneSuffix }

// leaseListing is what one List shows of a key's lease.
type leaseListing struct {
	any     bool   // some record or marker exists
	top     uint64 // the highest epoch with a record or a marker
	record  bool   // record top exists
	done    bool   // marker top exists
	epochs  map[uint64]bool
	markers map[uint64]bool
}

// list lists the lease names of base. Names under base that are not
// ours (no canonical epoch) are ignored.
func (l *leaser) list(ctx context.Context, base string) (leaseListing, error) {
	names, err := l.store.List(ctx, base)
	if err != nil {
		return leaseListing{}, fmt.Errorf("keys: failed to list leases: %w", err)
	}
	ln := leaseListing{epochs: map[uint64]bool{}, markers: map[uint64]bool{}}
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, base)
		if !ok {
			continue
		}
		rest, marker := strings.CutSuffix(rest, doneSuffix)
		epoch, err := strconv.ParseUint(rest, 10, 64)
		if err != nil || strconv.FormatUint(epoch, 10) != rest {
			continue
		}
		if marker {
			ln.markers[epoch] = true
		} else {
			ln.epochs[epoch] = true
		}
		if !ln.any || epoch > ln.top {
			ln.any, ln.top = true, epoch
		}
	}
	ln.record, ln.done = ln.epochs[ln.top], ln.markers[ln.top]
	return ln, nil
}

// lease takes the lease on name if the store needs one. It returns the
// context to do the change under and the function that releases the
// lease; the caller passes it whether its last write has settled (see
// writeSettled). For a linearizable store it returns ctx unchanged.
func (s *Service) lease(ctx context.Context, name string) (context.Context, func(settled bool), error) {
	if s.leases == nil {
		return ctx, func(bool) {}, nil
	}
	return s.leases.acquire(ctx, name)
}

// acquire takes the lease on key, waiting while another holder has it,
// until ctx ends.
func (l *leaser) acquire(ctx context.Context, key string) (context.Context, func(settled bool), error) {
	base := leaseBase(key)
	backoff := leaseMinBackoff
	for waited := false; ; waited = true {
		held, err := l.try(ctx, key, base)
		if err != nil && waited && ctx.Err() != nil {
			// The caller's time ran out while it waited for another
			// holder: that is what it needs to hear.
			return nil, nil, fmt.Errorf("keys: key '%s': %w (%w)", key, ErrKeyBusy, err)
		}
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
	release func(settled bool)
}

// try makes one attempt. It returns nil, nil when the key is busy or
// the attempt lost to another node.
func (l *leaser) try(ctx context.Context, key, base string) (*heldLease, error) {
	ln, err := l.list(ctx, base)
	if err != nil {
		return nil, err
	}
	var next uint64
	if ln.any {
		if ln.record && !ln.done {
			free, err := l.expired(ctx, recordName(base, ln.top))
			if err != nil || !free {
				return nil, err
			}
		}
		if ln.top == math.MaxUint64 {
			return nil, fmt.Errorf("keys: key '%s': lease epochs exhausted", key)
		}
		next = ln.top + 1
	}

	holder := make([]byte, 16)
	if _, err := io.ReadFull(l.rand, holder); err != nil {
		return nil, fmt.Errorf("keys: failed to generate lease holder ID: %w", err)
	}
	expires := time.Now().Add(l.ttl)
	value, err := json.Marshal(leaseValue{Key: key, Holder: hex.EncodeToString(holder), Expires: expires.UTC()})
	if err != nil {
		return nil, fmt.Errorf("keys: failed to encode lease: %w", err)
	}
	switch err := l.store.Create(ctx, recordName(base, next), value); {
	case errors.Is(err, keystore.ErrKeyExists):
		return nil, nil // another node won this epoch
	case err != nil:
		// The record may have been created (a lost answer). It is left
		// to expire: deleting it would make its name reusable.
		return nil, fmt.Errorf("keys: key '%s': failed to take lease: %w", key, err)
	}

	ln, err = l.list(ctx, base)
	if err != nil {
		return nil, err
	}
	if ln.top != next || !ln.record {
		return nil, nil // a higher epoch exists: our first listing was stale
	}

	stop := expires.Add(-l.margin)
	lctx, cancel := context.WithDeadlineCause(ctx, stop, errLeaseEnding)
	return &heldLease{ctx: lctx, release: func(settled bool) {
		cancel()
		l.release(ctx, base, next, value, settled, ln)
	}}, nil
}

// expired reports whether the record name has expired. A record that
// vanished since the List was collected, so the listing was stale: the
// caller looks again. A malformed record counts as expired.
func (l *leaser) expired(ctx context.Context, name string) (bool, error) {
	value, err := l.store.Get(ctx, name)
	if errors.Is(err, keystore.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keys: failed to read lease: %w", err)
	}
	var v leaseValue
	if len(value) > maxLeaseValue || json.Unmarshal(value, &v) != nil || v.Expires.IsZero() {
		l.log.Warn("malformed lease record: treated as expired", "name", name)
		return true, nil
	}
	return !time.Now().Before(v.Expires), nil
}

// release ends the lease of epoch: it creates the epoch's marker if the
// holder's last write has settled, and collects the names of epochs
// below epoch-1 that ln showed. It runs even when ctx has ended, bounded
// by leaseCleanupTimeout. Failures are logged; the record then expires
// by itself.
func (l *leaser) release(ctx context.Context, base string, epoch uint64, value []byte, settled bool, ln leaseListing) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseCleanupTimeout)
	defer cancel()
	if settled {
		if err := l.store.Create(ctx, markerName(base, epoch), value); err != nil && !errors.Is(err, keystore.ErrKeyExists) {
			l.log.Warn("failed to release lease: it expires by itself", "name", recordName(base, epoch), "err", err)
		}
	}
	if epoch < 2 {
		return
	}
	var names []string
	for e := range ln.epochs {
		if e < epoch-1 {
			names = append(names, recordName(base, e))
		}
	}
	for e := range ln.markers {
		if e < epoch-1 {
			names = append(names, markerName(base, e))
		}
	}
	for _, name := range names[:min(len(names), maxLeaseCollect)] {
		if err := l.store.Delete(ctx, name); err != nil && !errors.Is(err, keystore.ErrKeyNotFound) {
			l.log.Debug("failed to collect lease record", "name", name, "err", err)
			return
		}
	}
}

// writeSettled reports whether a store write that returned err can no
// longer land: it succeeded, or was refused for a reason that means it
// was not made. Any other failure (a timeout, a lost answer) may still
// be applied by the store later.
func writeSettled(err error) bool {
	return err == nil ||
		errors.Is(err, keystore.ErrConflict) ||
		errors.Is(err, keystore.ErrKeyNotFound) ||
		errors.Is(err, keystore.ErrKeyExists) ||
		errors.Is(err, keystore.ErrValueTooLarge)
}

// leaseEnded turns an error of a call made under lctx into one that
// matches ErrKeyBusy if the call failed because the lease ran out (and
// not because the caller's own ctx ended).
func (s *Service) leaseEnded(ctx, lctx context.Context, name string, err error) error {
	if err == nil || ctx.Err() != nil || !errors.Is(context.Cause(lctx), errLeaseEnding) {
		return err
	}
	if !errors.Is(err, errLeaseEnding) && !errors.Is(err, context.DeadlineExceeded) && !keystore.IsUnreachable(err) {
		return err // a failure of its own, not the lease's end
	}
	s.log.Warn("key change took longer than its lease: not made", "key", name, "err", err)
	if errors.Is(err, errLeaseEnding) {
		return fmt.Errorf("keys: key '%s': %w", name, errLeaseEnding)
	}
	return fmt.Errorf("keys: key '%s': %w (%w)", name, errLeaseEnding, err)
}
