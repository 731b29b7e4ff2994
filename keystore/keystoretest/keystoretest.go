// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package keystoretest is the conformance suite for keystore.Store
// implementations. Every driver runs it:
//
//	func TestConformance(t *testing.T) {
//		keystoretest.Run(t, func(t *testing.T) keystore.Store { return newStore(t) }, keystoretest.Options{})
//	}
//
// The suite reads the store's keystore.Capabilities: it stores a value of
// exactly MaxValueSize and expects one byte more to be refused with
// keystore.ErrValueTooLarge, and, for a store that declares
// LinearizableReplace, races Replace on two instances of the same
// backend (Options.Second).
package keystoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// Options tunes the suite for slow or limited stores.
type Options struct {
	// ManyKeys is how many keys the List test creates to cross page
	// boundaries. Zero means 50; drivers that page internally should set
	// it above their page size (KeyControl: more than 1000).
	ManyKeys int

	// Concurrency is how many goroutines race in the concurrency tests.
	// Zero means 8.
	Concurrency int

	// Timeout bounds each subtest. Zero means 2 minutes.
	Timeout time.Duration

	// Second, if set, opens a second, independent Store on the backend
	// of first: what another process or node would open with the same
	// configuration (a second fs.New on the same directory, a second
	// client of the same service). It must not share locks or caches
	// with first, and must arrange for its closing (t.Cleanup). Without
	// it the checks across instances are skipped.
	Second func(t *testing.T, first keystore.Store) keystore.Store

	// RaceRounds is how many rounds the cross-instance Replace race
	// runs. Zero means 50.
	RaceRounds int
}

// Run runs every conformance check. newStore must return a new, empty store
// each time it is called, and arrange for it to be closed (t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) keystore.Store, opts Options) {
	t.Helper()
	if opts.ManyKeys <= 0 {
		opts.ManyKeys = 50
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.RaceRounds <= 0 {
		opts.RaceRounds = 50
	}
	tests := []struct {
		name string
		fn   func(context.Context, *testing.T, keystore.Store, Options)
	}{
		{"CreateGet", testCreateGet},
		{"CreateExisting", testCreateExisting},
		{"GetMissing", testGetMissing},
		{"Delete", testDelete},
		{"Replace", testReplace},
		{"List", testList},
		{"ListMany", testListMany},
		{"Names", testNames},
		{"Values", testValues},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentReplace", testConcurrentReplace},
		{"Status", testStatus},
		{"MaxValueSize", testMaxValueSize},
		{"ValueTooLarge", testValueTooLarge},
		{"SecondInstance", testSecondInstance},
		{"LinearizableReplace", testLinearizableReplace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
			defer cancel()
			tt.fn(ctx, t, newStore(t), opts)
		})
	}
}

func mustCreate(ctx context.Context, t *testing.T, s keystore.Store, name string, value []byte) {
	t.Helper()
	if err := s.Create(ctx, name, value); err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
}

func mustGet(ctx context.Context, t *testing.T, s keystore.Store, name string) []byte {
	t.Helper()
	v, err := s.Get(ctx, name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return v
}

func testCreateGet(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	value := []byte("c29tZSBlbmNvZGVkIGtleQ==")
	in := bytes.Clone(value)
	mustCreate(ctx, t, s, "my-key", in)
	clear(in) // the store must have kept its own copy
	if got := mustGet(ctx, t, s, "my-key"); !bytes.Equal(got, value) {
		t.Fatalf("Get = %q, want %q", got, value)
	}
	got := mustGet(ctx, t, s, "my-key")
	clear(got) // and must hand out copies
	if got := mustGet(ctx, t, s, "my-key"); !bytes.Equal(got, value) {
		t.Fatalf("Get after modifying a returned value = %q, want %q", got, value)
	}
}

func testCreateExisting(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	mustCreate(ctx, t, s, "my-key", []byte("first"))
	if err := s.Create(ctx, "my-key", []byte("second")); !errors.Is(err, keystore.ErrKeyExists) {
		t.Fatalf("second Create: got %v, want ErrKeyExists", err)
	}
	if got := mustGet(ctx, t, s, "my-key"); string(got) != "first" {
		t.Fatalf("Create overwrote an existing key: Get = %q, want %q", got, "first")
	}
}

func testGetMissing(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get of a missing key: got %v, want ErrKeyNotFound", err)
	}
	mustCreate(ctx, t, s, "missing-not", []byte("v"))
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get of a missing key that is a prefix of another: got %v, want ErrKeyNotFound", err)
	}
}

func testDelete(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	if err := s.Delete(ctx, "missing"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Delete of a missing key: got %v, want ErrKeyNotFound", err)
	}
	mustCreate(ctx, t, s, "my-key", []byte("v1"))
	mustCreate(ctx, t, s, "other", []byte("keep"))
	if err := s.Delete(ctx, "my-key"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "my-key"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get after Delete: got %v, want ErrKeyNotFound", err)
	}
	if err := s.Delete(ctx, "my-key"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("second Delete: got %v, want ErrKeyNotFound", err)
	}
	mustCreate(ctx, t, s, "my-key", []byte("v2"))
	if got := mustGet(ctx, t, s, "my-key"); string(got) != "v2" {
		t.Fatalf("Get after re-create = %q, want %q", got, "v2")
	}
	if got := mustGet(ctx, t, s, "other"); string(got) != "keep" {
		t.Fatalf("Delete touched another key: Get = %q", got)
	}
}

func testReplace(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	if err := s.Replace(ctx, "missing", []byte("a"), []byte("b")); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Replace of a missing key: got %v, want ErrKeyNotFound", err)
	}
	mustCreate(ctx, t, s, "my-key", []byte("v1"))
	if err := s.Replace(ctx, "my-key", []byte("not-v1"), []byte("v2")); !errors.Is(err, keystore.ErrConflict) {
		t.Fatalf("Replace with a stale old value: got %v, want ErrConflict", err)
	}
	if got := mustGet(ctx, t, s, "my-key"); string(got) != "v1" {
		t.Fatalf("failed Replace changed the value: %q", got)
	}
	if err := s.Replace(ctx, "my-key", []byte("v1"), []byte("v2")); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if got := mustGet(ctx, t, s, "my-key"); string(got) != "v2" {
		t.Fatalf("Get after Replace = %q, want v2", got)
	}
	if err := s.Replace(ctx, "my-key", []byte("v2"), []byte("v3")); err != nil {
		t.Fatalf("second Replace: %v", err)
	}
	if got := mustGet(ctx, t, s, "my-key"); string(got) != "v3" {
		t.Fatalf("Get after second Replace = %q, want v3", got)
	}
	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(names, []string{"my-key"}) {
		t.Fatalf("List after Replace = %q, want [my-key]", names)
	}
}

func testList(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List of an empty store: %v", err)
	}
	if len(names) != 0 {
		t.Fatalf("List of an empty store = %q, want none", names)
	}
	for _, n := range []string{"my-b", "my-a", "other", "my", "MY-c", "m"} {
		mustCreate(ctx, t, s, n, []byte(n))
	}
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"MY-c", "m", "my", "my-a", "my-b", "other"}},
		{"my", []string{"my", "my-a", "my-b"}},
		{"my-", []string{"my-a", "my-b"}},
		{"MY", []string{"MY-c"}},
		{"o", []string{"other"}},
		{"x", nil},
		{"my-a-longer", nil},
	} {
		names, err := s.List(ctx, tt.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tt.prefix, err)
		}
		if !slices.Equal(names, tt.want) && !(len(names) == 0 && len(tt.want) == 0) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, names, tt.want)
		}
	}
}

func testListMany(ctx context.Context, t *testing.T, s keystore.Store, opts Options) {
	want := make([]string, 0, opts.ManyKeys)
	for i := range opts.ManyKeys {
		name := fmt.Sprintf("key-%05d", i)
		want = append(want, name)
	}
	// Create out of order so that a store returning insertion order fails.
	for i := len(want) - 1; i >= 0; i-- {
		mustCreate(ctx, t, s, want[i], []byte{byte(i)})
	}
	mustCreate(ctx, t, s, "zzz", []byte("not listed with prefix key-"))
	got, err := s.List(ctx, "key-")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List of %d keys returned %d names; first difference at %d", len(want), len(got), firstDiff(got, want))
	}
	got, err = s.List(ctx, "key-0001")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if n := min(opts.ManyKeys, 20) - min(opts.ManyKeys, 10); len(got) < n {
		t.Fatalf("List(key-0001) returned %d names, want at least %d", len(got), n)
	}
	for _, name := range got {
		if !strings.HasPrefix(name, "key-0001") {
			t.Fatalf("List(key-0001) returned %q", name)
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func testNames(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	names := []string{"a", "A", "0", "my_key-1", "Key-With-UPPER", strings.Repeat("k", 80), "a_", "x-y-z"}
	for _, n := range names {
		mustCreate(ctx, t, s, n, []byte("value of "+n))
	}
	for _, n := range names {
		if got := mustGet(ctx, t, s, n); string(got) != "value of "+n {
			t.Errorf("Get(%q) = %q", n, got)
		}
	}
	listed, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Fatalf("List = %q, want %q", listed, want)
	}
}

func testValues(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	large := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	large = large[:min(len(large), keystore.CapabilitiesOf(s).MaxValueSize)]
	for name, v := range map[string][]byte{"binary": all, "large": large, "one": {0}} {
		mustCreate(ctx, t, s, name, v)
		if got := mustGet(ctx, t, s, name); !bytes.Equal(got, v) {
			t.Errorf("Get(%q) returned %d bytes that differ from the %d stored", name, len(got), len(v))
		}
	}
}

// race runs op from opts.Concurrency goroutines at once and returns the
// indexes of those that succeeded. Every failure must be lost.
func race(t *testing.T, opts Options, lost error, op func(i int) error) []int {
	t.Helper()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
		others  []error
	)
	for i := range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := op(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, i)
			case !errors.Is(err, lost):
				others = append(others, err)
			}
		}()
	}
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("concurrent calls failed with errors other than %v: %v", lost, others)
	}
	return winners
}

func testConcurrentCreate(ctx context.Context, t *testing.T, s keystore.Store, opts Options) {
	winners := race(t, opts, keystore.ErrKeyExists, func(i int) error {
		return s.Create(ctx, "raced", []byte(fmt.Sprintf("node-%d", i)))
	})
	if len(winners) != 1 {
		t.Fatalf("%d concurrent Creates succeeded, want exactly 1", len(winners))
	}
	if got, want := string(mustGet(ctx, t, s, "raced")), fmt.Sprintf("node-%d", winners[0]); got != want {
		t.Fatalf("stored value %q is not the winner's %q: a Create overwrote", got, want)
	}
}

func testConcurrentReplace(ctx context.Context, t *testing.T, s keystore.Store, opts Options) {
	mustCreate(ctx, t, s, "raced", []byte("v0"))
	winners := race(t, opts, keystore.ErrConflict, func(i int) error {
		return s.Replace(ctx, "raced", []byte("v0"), []byte(fmt.Sprintf("v1-%d", i)))
	})
	if len(winners) != 1 {
		t.Fatalf("%d concurrent Replaces from the same old value succeeded, want exactly 1", len(winners))
	}
	if got, want := string(mustGet(ctx, t, s, "raced")), fmt.Sprintf("v1-%d", winners[0]); got != want {
		t.Fatalf("stored value %q is not the winner's %q", got, want)
	}
}

func testStatus(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Latency < 0 {
		t.Fatalf("Status latency %v is negative", st.Latency)
	}
	if s.String() == "" {
		t.Fatal("String() is empty")
	}
}

// pattern returns n bytes that differ from position to position, so that
// a store that truncates or shifts a value is caught.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ byte(i>>8) ^ seed
	}
	return b
}

// testMaxValueSize stores one value of exactly the declared MaxValueSize
// and reads it back. It is the only full-size write of the suite: for a
// slow store it is the one expensive subtest.
func testMaxValueSize(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	limit := keystore.CapabilitiesOf(s).MaxValueSize
	v := pattern(limit, 1)
	mustCreate(ctx, t, s, "max", v)
	if got := mustGet(ctx, t, s, "max"); !bytes.Equal(got, v) {
		t.Fatalf("Get of a value of MaxValueSize (%d bytes) returned %d bytes that differ", limit, len(got))
	}
	// Replacing with another full-size value works too.
	w := pattern(limit, 2)
	if err := s.Replace(ctx, "max", v, w); err != nil {
		t.Fatalf("Replace with a value of MaxValueSize (%d bytes): %v", limit, err)
	}
	if got := mustGet(ctx, t, s, "max"); !bytes.Equal(got, w) {
		t.Fatalf("Get after Replace with a value of MaxValueSize returned %d bytes that differ", len(got))
	}
}

// testValueTooLarge checks that one byte above MaxValueSize is refused
// with ErrValueTooLarge and leaves no trace.
func testValueTooLarge(ctx context.Context, t *testing.T, s keystore.Store, _ Options) {
	limit := keystore.CapabilitiesOf(s).MaxValueSize
	over := pattern(limit+1, 3)
	if err := s.Create(ctx, "over", over); !errors.Is(err, keystore.ErrValueTooLarge) {
		t.Fatalf("Create of %d bytes (MaxValueSize %d): got %v, want ErrValueTooLarge", len(over), limit, err)
	}
	if _, err := s.Get(ctx, "over"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("Get after a refused Create: got %v, want ErrKeyNotFound", err)
	}
	mustCreate(ctx, t, s, "small", []byte("v1"))
	if err := s.Replace(ctx, "small", []byte("v1"), over); !errors.Is(err, keystore.ErrValueTooLarge) {
		t.Fatalf("Replace with %d bytes (MaxValueSize %d): got %v, want ErrValueTooLarge", len(over), limit, err)
	}
	if got := mustGet(ctx, t, s, "small"); string(got) != "v1" {
		t.Fatalf("a refused Replace changed the value: Get = %d bytes", len(got))
	}
	// The key still works: a Replace within the limit succeeds.
	if err := s.Replace(ctx, "small", []byte("v1"), []byte("v2")); err != nil {
		t.Fatalf("Replace after a refused Replace: %v", err)
	}
	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(names, []string{"small"}) {
		t.Fatalf("List after refused writes = %q, want [small]", names)
	}
}

// second returns a second instance on the backend of s, or skips.
func second(t *testing.T, s keystore.Store, opts Options) keystore.Store {
	t.Helper()
	if opts.Second == nil {
		t.Skipf("%s: no second instance wired (Options.Second)", s)
	}
	return opts.Second(t, s)
}

// testSecondInstance checks that two instances on one backend see each
// other's writes and that Create has exactly one winner across them, as
// Store.Create promises for nodes.
func testSecondInstance(ctx context.Context, t *testing.T, s keystore.Store, opts Options) {
	s2 := second(t, s, opts)
	mustCreate(ctx, t, s, "k", []byte("v1"))
	if got := mustGet(ctx, t, s2, "k"); string(got) != "v1" {
		t.Fatalf("second instance: Get = %q, want v1", got)
	}
	if err := s2.Create(ctx, "k", []byte("other")); !errors.Is(err, keystore.ErrKeyExists) {
		t.Fatalf("second instance: Create of an existing name: got %v, want ErrKeyExists", err)
	}
	if err := s2.Replace(ctx, "k", []byte("v1"), []byte("v2")); err != nil {
		t.Fatalf("second instance: Replace: %v", err)
	}
	if err := s.Replace(ctx, "k", []byte("v1"), []byte("v3")); !errors.Is(err, keystore.ErrConflict) {
		t.Fatalf("first instance: Replace from a value the second replaced: got %v, want ErrConflict", err)
	}
	if got := mustGet(ctx, t, s, "k"); string(got) != "v2" {
		t.Fatalf("first instance: Get = %q, want v2", got)
	}
	for round := range 5 {
		name := fmt.Sprintf("raced-%d", round)
		errs := raceTwo(func() error { return s.Create(ctx, name, []byte("a")) },
			func() error { return s2.Create(ctx, name, []byte("b")) })
		want := oneWinner(t, errs, keystore.ErrKeyExists, "Create")
		if got := string(mustGet(ctx, t, s2, name)); got != []string{"a", "b"}[want] {
			t.Fatalf("round %d: stored %q, but the winner wrote %q", round, got, []string{"a", "b"}[want])
		}
	}
	if err := s2.Delete(ctx, "k"); err != nil {
		t.Fatalf("second instance: Delete: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("first instance: Get after the second deleted: got %v, want ErrKeyNotFound", err)
	}
}

// testLinearizableReplace races Replace on two instances, from the same
// old value, for opts.RaceRounds rounds. A store that declares
// LinearizableReplace must let exactly one win each round, the other
// getting ErrConflict, and keep the winner's value.
func testLinearizableReplace(ctx context.Context, t *testing.T, s keystore.Store, opts Options) {
	if !keystore.CapabilitiesOf(s).LinearizableReplace {
		t.Skipf("%s does not declare LinearizableReplace", s)
	}
	s2 := second(t, s, opts)
	cur := []byte("round-0")
	mustCreate(ctx, t, s, "raced", cur)
	for round := range opts.RaceRounds {
		a, b := []byte(fmt.Sprintf("a-%d", round+1)), []byte(fmt.Sprintf("b-%d", round+1))
		errs := raceTwo(func() error { return s.Replace(ctx, "raced", cur, a) },
			func() error { return s2.Replace(ctx, "raced", cur, b) })
		winner := [][]byte{a, b}[oneWinner(t, errs, keystore.ErrConflict, fmt.Sprintf("round %d: Replace", round))]
		for i, st := range []keystore.Store{s, s2} {
			if got := mustGet(ctx, t, st, "raced"); !bytes.Equal(got, winner) {
				t.Fatalf("round %d: instance %d reads %q, but the winner wrote %q", round, i+1, got, winner)
			}
		}
		cur = winner
	}
}

// raceTwo starts a and b as close to the same instant as it can and
// returns their errors.
func raceTwo(a, b func() error) [2]error {
	var (
		errs  [2]error
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i, fn := range []func() error{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one of errs is nil and the other is lost,
// and returns the index of the winner.
func oneWinner(t *testing.T, errs [2]error, lost error, what string) int {
	t.Helper()
	switch {
	case errs[0] == nil && errs[1] == nil:
		t.Fatalf("%s: both instances succeeded: one change is lost", what)
	case errs[0] == nil && errors.Is(errs[1], lost):
		return 0
	case errs[1] == nil && errors.Is(errs[0], lost):
		return 1
	}
	t.Fatalf("%s: want one success and one %v, got %v and %v", what, lost, errs[0], errs[1])
	return -1
}
