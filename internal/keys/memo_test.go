// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// parseVersionRefSlow is ParseVersionRef as it was first written, the
// reference its byte scan is checked against.
func parseVersionRefSlow(ref string) (name string, n uint32, ok bool) {
	i := strings.LastIndex(ref, ".v")
	if i <= 0 || strings.IndexByte(ref[:i], '.') >= 0 {
		return "", 0, false
	}
	digits := ref[i+2:]
	if digits == "" || digits[0] == '0' || len(digits) > 10 {
		return "", 0, false
	}
	u, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || u == 0 {
		return "", 0, false
	}
	return ref[:i], uint32(u), true
}

// FuzzParseVersionRef: the byte scan decides every string as the
// reference does.
func FuzzParseVersionRef(f *testing.F) {
	for _, s := range []string{
		"", "k", "k.v", "k.v0", "k.v1", "k.v01", "k.v+1", "k.v-1", ".v1", "a.b.v1", "a.v1.v2", "k.v1.", "k.v1x",
		"k.v4294967295", "k.v4294967296", "k.v99999999999", "k.v１", "k..v1", "k.vv1", "k.v 1", "-kes-lease-k.v2",
		"4d6f7a2e-3c1b-4a5e-9f0d-1b2c3d4e5f60", "4d6f7a2e-3c1b-4a5e-9f0d-1b2c3d4e5f60.v7", "k.x1", "k.V1", "v1", ".", "..v1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		name, n, ok := ParseVersionRef(ref)
		wname, wn, wok := parseVersionRefSlow(ref)
		if name != wname || n != wn || ok != wok {
			t.Fatalf("ParseVersionRef(%q) = %q, %d, %v; want %q, %d, %v", ref, name, n, ok, wname, wn, wok)
		}
		if ok && VersionRef(name, n) != ref {
			t.Fatalf("VersionRef(%q, %d) != %q", name, n, ref)
		}
	})
}

// kmipRecord is what the test's parse makes of a record.
type kmipRecord struct{ raw string }

// A cached object's KMIP record is parsed once, for the key and for the
// view of its newest version alike, and every change of the key (a new
// record, a new version, a state change, a deletion) is seen by the
// next read, parsed anew.
func TestMemoKMIP(t *testing.T) {
	ctx := t.Context()
	s, _ := newService(t, Config{})
	uid, err := s.CreateKMIP(ctx, NewObject{
		Algorithm: AlgorithmAES, Bits: 256, Mask: UsageEncrypt | UsageDecrypt,
		Meta: func(string, *crypto.KeyVersion) (Metadata, error) {
			return Metadata{KMIP: json.RawMessage(`{"v":1,"type":2}`)}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var parses atomic.Int32
	parse := func(name string, rec json.RawMessage) (*kmipRecord, error) {
		parses.Add(1)
		return &kmipRecord{raw: name + " " + string(rec)}, nil
	}
	read := func(ref string) (string, State) {
		t.Helper()
		var got string
		var state State
		err := s.With(ctx, ref, func(o *Object) error {
			r, err := MemoKMIP(o, parse)
			got, state = r.raw, o.Meta.State
			return err
		})
		if err != nil {
			t.Fatalf("With(%s): %v", ref, err)
		}
		return got, state
	}
	check := func(ref, want string, wantState State, wantParses int32) {
		t.Helper()
		got, state := read(ref)
		if got != uid+" "+want || state != wantState {
			t.Fatalf("With(%s) sees %q, %v; want %q, %v", ref, got, state, want, wantState)
		}
		if n := parses.Load(); n != wantParses {
			t.Fatalf("after With(%s): %d parses, want %d", ref, n, wantParses)
		}
	}
	v1 := VersionRef(uid, 1)
	check(v1, `{"v":1,"type":2}`, StateActive, 1)
	check(v1, `{"v":1,"type":2}`, StateActive, 1)
	check(uid, `{"v":1,"type":2}`, StateActive, 1) // the key and its newest version share it

	// A change of the record.
	if err := s.Update(ctx, uid, func(o *Object) error {
		o.Meta.KMIP = json.RawMessage(`{"v":1,"type":2,"alg":3}`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check(v1, `{"v":1,"type":2,"alg":3}`, StateActive, 2)
	check(v1, `{"v":1,"type":2,"alg":3}`, StateActive, 2)

	// A rotation: version 1 is no longer the newest, and is not shown
	// as the memo's view.
	if _, err := s.Rotate(ctx, uid, "me"); err != nil {
		t.Fatal(err)
	}
	var selected, current uint32
	if err := s.With(ctx, v1, func(o *Object) error {
		selected, current = o.Selected(), o.Current()
		return nil
	}); err != nil || selected != 1 || current != 2 {
		t.Fatalf("version 1 after a rotation: selected %d of %d, %v", selected, current, err)
	}
	if err := s.With(ctx, VersionRef(uid, 2), func(o *Object) error {
		selected = o.Selected()
		return nil
	}); err != nil || selected != 2 {
		t.Fatalf("version 2 after a read of version 1: selected %d, %v", selected, err)
	}
	before := parses.Load()
	read(VersionRef(uid, 2))
	read(VersionRef(uid, 2))
	if n := parses.Load() - before; n != 1 {
		t.Fatalf("the new version was parsed %d times, want 1", n)
	}

	// A change of state alone.
	if err := s.Update(ctx, uid, func(o *Object) error {
		o.Meta.State = StateDeactivated
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check(VersionRef(uid, 2), `{"v":1,"type":2,"alg":3}`, StateDeactivated, parses.Load()+1)

	// An object that is not the cache's is parsed on every call.
	before = parses.Load()
	if err := s.Update(ctx, uid, func(o *Object) error {
		for range 2 {
			if _, err := MemoKMIP(o, parse); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := parses.Load() - before; n != 2 {
		t.Fatalf("an object read for a change was parsed %d times, want 2", n)
	}

	// A change of an older version's state.
	if err := s.UpdateVersion(ctx, uid, 1, func(o *Object) error {
		o.Meta.State = StateDeactivated
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, st := read(v1); st != StateDeactivated {
		t.Fatalf("version 1 is %v after its deactivation", st)
	}

	// Deleted: no memo answers for it.
	if err := s.Delete(ctx, uid); err != nil {
		t.Fatal(err)
	}
	if err := s.With(ctx, v1, func(*Object) error { return nil }); err != ErrKeyNotFound {
		t.Fatalf("With after delete: %v", err)
	}
}

// The kept view of the newest version shows the stored state; when the
// dates change the effective state, a read sees the effective one, not
// the kept view.
func TestMemoViewDates(t *testing.T) {
	ctx := t.Context()
	var unix atomic.Int64
	unix.Store(time.Now().Unix())
	now := func() time.Time { return time.Unix(unix.Load(), 0) }
	s, _ := newService(t, Config{Now: now})
	start := now()
	d := Dates{Activation: start.Add(time.Hour), Deactivation: start.Add(2 * time.Hour)}
	uid, err := s.CreateKMIP(ctx, NewObject{
		Algorithm: AlgorithmAES, Bits: 256, Mask: UsageEncrypt | UsageDecrypt,
		Meta: func(string, *crypto.KeyVersion) (Metadata, error) {
			return Metadata{State: StatePreActive, KMIP: json.RawMessage(`{"v":1}`), Dates: &d}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	state := func() State {
		t.Helper()
		var st State
		if err := s.With(ctx, VersionRef(uid, 1), func(o *Object) error { st = o.Meta.State; return nil }); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for range 2 {
		if st := state(); st != StatePreActive {
			t.Fatalf("state %v before the activation date", st)
		}
	}
	unix.Add(3600)
	if st := state(); st != StateActive {
		t.Fatalf("state %v at the activation date", st)
	}
	unix.Add(3600)
	if st := state(); st != StateDeactivated {
		t.Fatalf("state %v at the deactivation date", st)
	}
}

// ExportVersion decides as Export of the reference it stands for: the
// same error, the same version, on the first export and after it, and
// for names and numbers that make no reference.
func TestExportVersion(t *testing.T) {
	ctx := t.Context()
	s, _ := newService(t, Config{ExportPatterns: []string{"backup-*"}})
	for _, n := range []string{"backup-1", "backup-2", "minio"} {
		if err := s.Create(ctx, n, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rotate(ctx, n, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		err      string
		selected uint32
		calls    int
	}
	run := func(export func(fn func(*Object) error) error) result {
		var r result
		err := export(func(o *Object) error {
			r.calls++
			r.selected = o.Selected()
			return nil
		})
		if err != nil {
			r.err = err.Error()
		}
		return r
	}
	for _, c := range []struct {
		name string
		n    uint32
	}{
		{"backup-1", 1}, {"backup-2", 2}, {"backup-1", 2}, {"backup-1", 3}, {"backup-1", 0}, {"minio", 1},
		{"", 1}, {"a.b", 1}, {"backup-1.v1", 1}, {LeasePrefix + "backup-1", 1}, {"missing", 1},
	} {
		// backup-1 and backup-2 are first exported by ExportVersion.
		got := run(func(fn func(*Object) error) error { return s.ExportVersion(ctx, c.name, c.n, fn) })
		want := run(func(fn func(*Object) error) error { return s.Export(ctx, VersionRef(c.name, c.n), fn) })
		if got != want {
			t.Errorf("ExportVersion(%q, %d) = %+v; Export(%q) = %+v", c.name, c.n, got, VersionRef(c.name, c.n), want)
		}
		if exports := strings.HasPrefix(c.name, "backup-") && !strings.Contains(c.name, ".") && c.n >= 1 && c.n <= 2; exports != (got.calls == 1 && got.err == "" && got.selected == c.n) {
			t.Errorf("ExportVersion(%q, %d) = %+v", c.name, c.n, got)
		}
	}
}
