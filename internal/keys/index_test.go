// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
)

// termsOf reads the terms a test stored in the KMIP record.
func termsOf(o *keys.Object) []string {
	var rec struct{ Terms []string }
	json.Unmarshal(o.Meta.KMIP, &rec)
	return rec.Terms
}

func termsMeta(terms ...string) keys.Metadata {
	b, _ := json.Marshal(map[string][]string{"terms": terms})
	return keys.Metadata{KMIP: b}
}

func createWithTerms(t testing.TB, s *keys.Service, terms ...string) string {
	t.Helper()
	uid, err := s.CreateKMIP(context.Background(), keys.NewObject{
		Algorithm: keys.AlgorithmAES, Bits: 256,
		Meta: func(string, *crypto.KeyVersion) (keys.Metadata, error) { return termsMeta(terms...), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

func setTerms(t testing.TB, s *keys.Service, name string, terms ...string) {
	t.Helper()
	err := s.Update(context.Background(), name, func(o *keys.Object) error {
		o.Meta.KMIP = termsMeta(terms...).KMIP
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func lookup(t testing.TB, idx *keys.Index, terms ...string) []string {
	t.Helper()
	names, err := idx.Lookup(context.Background(), terms...)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// This node's writes show in the next lookup, without a rescan.
func TestIndexOwnWrites(t *testing.T) {
	ctx := context.Background()
	s := keys.New(keys.Config{Store: keystore.NewMem()})
	defer s.Close()
	a := createWithTerms(t, s, "name=a", "group=g")
	idx := s.Index(keys.IndexConfig{Terms: termsOf})
	if got := lookup(t, idx, "name=a"); !slices.Equal(got, []string{a}) {
		t.Fatalf("first lookup: %v, want [%s]", got, a)
	}
	b := createWithTerms(t, s, "name=b", "group=g")
	want := []string{a, b}
	slices.Sort(want)
	if got := lookup(t, idx, "group=g"); !slices.Equal(got, want) {
		t.Fatalf("after create: %v, want %v", got, want)
	}
	if got := lookup(t, idx, "group=g", "name=b"); !slices.Equal(got, []string{b}) {
		t.Fatalf("two terms: %v, want [%s]", got, b)
	}
	setTerms(t, s, a, "name=renamed")
	if got := lookup(t, idx, "name=a"); len(got) != 0 {
		t.Fatalf("old term still finds the changed key: %v", got)
	}
	if got := lookup(t, idx, "name=renamed"); !slices.Equal(got, []string{a}) {
		t.Fatalf("new term: %v, want [%s]", got, a)
	}
	if err := s.Update(ctx, b, func(o *keys.Object) error { o.Meta.State = keys.StateDeactivated; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, idx, "group=g"); len(got) != 0 {
		t.Fatalf("deleted key still found: %v", got)
	}
	if got := lookup(t, idx, "no such term"); len(got) != 0 {
		t.Fatalf("unknown term: %v", got)
	}
}

// Two nodes on one keystore: what the other node creates, deletes or
// changes shows after the list period (new and deleted keys) or the
// rescan period (changed keys), and not before: the periods are the
// documented staleness bound.
func TestIndexOtherNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := keystore.NewMem()
		a := keys.New(keys.Config{Store: store})
		b := keys.New(keys.Config{Store: nopClose{store}})
		defer b.Close()
		defer a.Close()
		const list, rescan = 30 * time.Second, 5 * time.Minute
		idx := a.Index(keys.IndexConfig{Terms: termsOf, ListPeriod: list, RescanPeriod: rescan})
		old := createWithTerms(t, b, "name=old")
		if got := lookup(t, idx, "name=old"); !slices.Equal(got, []string{old}) {
			t.Fatalf("first lookup: %v", got)
		}

		made := createWithTerms(t, b, "name=new")
		if got := lookup(t, idx, "name=new"); len(got) != 0 {
			t.Fatalf("found another node's new key before the list period: %v (the test would not show the period)", got)
		}
		time.Sleep(list + time.Second)
		synctest.Wait()
		if got := lookup(t, idx, "name=new"); !slices.Equal(got, []string{made}) {
			t.Fatalf("another node's new key after the list period: %v, want [%s]", got, made)
		}

		setTerms(t, b, old, "name=changed")
		time.Sleep(list + time.Second)
		synctest.Wait()
		if got := lookup(t, idx, "name=changed"); len(got) != 0 {
			t.Fatalf("a changed key is re-read by a mere list: %v (the test would not show the rescan)", got)
		}
		time.Sleep(rescan)
		synctest.Wait()
		if got := lookup(t, idx, "name=changed"); !slices.Equal(got, []string{old}) {
			t.Fatalf("another node's change after the rescan period: %v, want [%s]", got, old)
		}
		if got := lookup(t, idx, "name=old"); len(got) != 0 {
			t.Fatalf("old term after the rescan: %v", got)
		}

		if err := b.Update(context.Background(), made, func(o *keys.Object) error { o.Meta.State = keys.StateDeactivated; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(context.Background(), made); err != nil {
			t.Fatal(err)
		}
		time.Sleep(list + time.Second)
		synctest.Wait()
		if got := lookup(t, idx, "name=new"); len(got) != 0 {
			t.Fatalf("another node's deleted key after the list period: %v", got)
		}
	})
}

// nopClose shares one store between two services.
type nopClose struct{ keystore.Store }

func (nopClose) Close() error { return nil }

// A lookup with very many terms, or a huge one, costs the index no
// memory and finds nothing that lacks one of them.
func TestIndexManyAndHugeTerms(t *testing.T) {
	s := keys.New(keys.Config{Store: keystore.NewMem()})
	defer s.Close()
	a := createWithTerms(t, s, "name=a")
	idx := s.Index(keys.IndexConfig{Terms: termsOf})
	terms := []string{"name=a"}
	for i := range 10_000 {
		terms = append(terms, fmt.Sprintf("t%d", i))
	}
	if got := lookup(t, idx, terms...); len(got) != 0 {
		t.Fatalf("many terms: %v", got)
	}
	if got := lookup(t, idx, "name=a", "name=a"); !slices.Equal(got, []string{a}) {
		t.Fatalf("repeated term: %v", got)
	}
	if got := lookup(t, idx, strings.Repeat("x", 1<<20)); len(got) != 0 {
		t.Fatalf("huge term: %v", got)
	}
	if _, err := idx.Lookup(context.Background()); err == nil {
		t.Fatal("a lookup without terms succeeded")
	}
}

// BenchmarkIndexMemory reports the index's memory per key at 100,000
// keys with two terms each.
func BenchmarkIndexMemory(b *testing.B) {
	const n = 100_000
	store := keystore.NewMem()
	w := keys.New(keys.Config{Store: nopClose{store}})
	for i := range n {
		createWithTerms(b, w, fmt.Sprintf("name=%d", i), fmt.Sprintf("group=%d", i/10))
	}
	w.Close()
	b.ResetTimer()
	for range b.N {
		s := keys.New(keys.Config{Store: nopClose{store}})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		idx := s.Index(keys.IndexConfig{Terms: termsOf})
		if got := lookup(b, idx, "group=7"); len(got) != 10 {
			b.Fatalf("lookup: %v", got)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "index-B/key")
		runtime.KeepAlive(idx)
		s.Close()
	}
}
