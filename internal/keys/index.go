// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"errors"
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// TermsFunc returns the terms under which an object is found: strings a
// lookup names exactly (for example an attribute's name and value). It
// is called without any lock held, must not keep o, and may return terms
// in any order and with repeats.
type TermsFunc func(o *Object) []string

// IndexConfig configures a Service's Index.
type IndexConfig struct {
	// Terms extracts the terms of an object. Required.
	Terms TermsFunc

	// ListPeriod is how often the index lists the key names to catch
	// keys created or deleted on other nodes: one keystore List. Zero
	// means DefaultIndexListPeriod.
	ListPeriod time.Duration

	// RescanPeriod is how often the index reads every key again to
	// catch changes another node made to existing keys: one List and
	// one keystore read per key. Zero means DefaultIndexRescanPeriod.
	RescanPeriod time.Duration
}

// Defaults of IndexConfig.
const (
	DefaultIndexListPeriod   = 30 * time.Second
	DefaultIndexRescanPeriod = 10 * time.Minute
)

// Index maps terms to the names of the keys that have them, so that a
// search does not read every key. It is built lazily by one full scan
// (on the first Lookup), follows this node's own writes at once (Create,
// Update and Delete mark the key, which the next Lookup reads again), and
// follows other nodes' changes in the background: new and deleted keys
// within ListPeriod, changed keys within RescanPeriod.
//
// An Index gives candidates, not answers: a stale entry may name a key
// that no longer has the term (the caller must read the candidates and
// check them) or miss one that got it on another node within the periods
// above. Terms are kept as 64-bit seeded hashes, so a long attribute
// value costs the index no more than a short one, and a collision only
// adds a candidate.
type Index struct {
	svc  *Service
	cfg  IndexConfig
	seed maphash.Seed

	build sync.Mutex // held while the first scan runs

	mu      sync.Mutex
	built   bool
	byTerm  map[uint64][]string
	byName  map[string][]uint64
	dirty   map[string]struct{}
	touched map[string]struct{} // names written while a scan runs; nil outside scans
}

// Index returns the Service's index, created with cfg on the first call;
// later calls return the same index whatever their cfg.
func (s *Service) Index(cfg IndexConfig) *Index {
	if idx := s.index.Load(); idx != nil {
		return idx
	}
	if cfg.ListPeriod <= 0 {
		cfg.ListPeriod = DefaultIndexListPeriod
	}
	if cfg.RescanPeriod <= 0 {
		cfg.RescanPeriod = DefaultIndexRescanPeriod
	}
	idx := &Index{svc: s, cfg: cfg, seed: maphash.MakeSeed(), dirty: map[string]struct{}{}}
	if !s.index.CompareAndSwap(nil, idx) {
		return s.index.Load()
	}
	return idx
}

// changed tells the index, if any, that this node wrote the key.
func (s *Service) changed(name string) {
	if idx := s.index.Load(); idx != nil {
		idx.mu.Lock()
		idx.dirty[name] = struct{}{}
		if idx.touched != nil {
			idx.touched[name] = struct{}{}
		}
		idx.mu.Unlock()
	}
}

func (idx *Index) hash(term string) uint64 { return maphash.String(idx.seed, term) }

// Lookup returns the sorted names of the keys that have every one of
// terms (at least one is required), as far as the index knows. The first
// call scans every key; it fails if the keystore does, as do later calls
// that must read keys this node changed.
func (idx *Index) Lookup(ctx context.Context, terms ...string) ([]string, error) {
	if len(terms) == 0 {
		return nil, errors.New("keys: index lookup without terms")
	}
	if err := idx.ensureBuilt(ctx); err != nil {
		return nil, err
	}
	if err := idx.refreshDirty(ctx); err != nil {
		return nil, err
	}
	hs := make([]uint64, len(terms))
	for i, t := range terms {
		hs[i] = idx.hash(t)
	}
	slices.Sort(hs)
	hs = slices.Compact(hs)

	idx.mu.Lock()
	defer idx.mu.Unlock()
	// Start from the rarest term; the others filter it.
	best := 0
	for i, h := range hs {
		if len(idx.byTerm[h]) < len(idx.byTerm[hs[best]]) {
			best = i
		}
	}
	var out []string
	for _, name := range idx.byTerm[hs[best]] {
		have := idx.byName[name]
		ok := true
		for _, h := range hs {
			if !slices.Contains(have, h) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (idx *Index) ensureBuilt(ctx context.Context) error {
	idx.mu.Lock()
	built := idx.built
	idx.mu.Unlock()
	if built {
		return nil
	}
	idx.build.Lock()
	defer idx.build.Unlock()
	idx.mu.Lock()
	built = idx.built
	idx.mu.Unlock()
	if built {
		return nil
	}
	if err := idx.rescan(ctx); err != nil {
		return err
	}
	select {
	case <-idx.svc.stop:
		// Closed: no background work may start.
	default:
		idx.svc.bg.Add(1)
		go idx.loop()
	}
	return nil
}

// loop follows other nodes' changes until the Service closes.
func (idx *Index) loop() {
	defer idx.svc.bg.Done()
	t := time.NewTicker(idx.cfg.ListPeriod)
	defer t.Stop()
	lastScan := time.Now()
	for {
		select {
		case <-idx.svc.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-idx.svc.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		var err error
		if time.Since(lastScan) >= idx.cfg.RescanPeriod {
			if err = idx.rescan(ctx); err == nil {
				lastScan = time.Now()
			}
		} else {
			err = idx.relist(ctx)
		}
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			idx.svc.log.Warn("keys: index refresh failed", "err", err)
		}
	}
}

// read returns the terms of one key, hashed; ok is false if it is gone.
func (idx *Index) read(ctx context.Context, name string) (hs []uint64, ok bool, err error) {
	o, err := idx.svc.load(ctx, name)
	if errors.Is(err, ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer o.Version.Destroy()
	if o.Meta.State == StateDestroyed {
		return nil, false, nil
	}
	for _, t := range idx.cfg.Terms(o) {
		hs = append(hs, idx.hash(t))
	}
	slices.Sort(hs)
	return slices.Compact(hs), true, nil
}

// startScan records this node's writes from now on, so that a scan
// does not overwrite what they changed with what it read before.
func (idx *Index) startScan() {
	idx.mu.Lock()
	idx.touched = map[string]struct{}{}
	idx.mu.Unlock()
}

// rescan reads every key and replaces the index, except for the keys
// this node wrote meanwhile, which stay dirty.
func (idx *Index) rescan(ctx context.Context) error {
	idx.startScan()
	defer idx.endScan()
	names, err := idx.svc.List(ctx, "")
	if err != nil {
		return err
	}
	byName := make(map[string][]uint64, len(names))
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		hs, ok, err := idx.read(ctx, name)
		if err != nil {
			return err
		}
		if ok {
			byName[name] = hs
		}
	}
	idx.mu.Lock()
	defer idx.mu.Unlock()
	for name := range idx.touched {
		delete(byName, name)
		if hs, ok := idx.byName[name]; ok {
			byName[name] = hs
		}
	}
	idx.byName = byName
	idx.byTerm = make(map[uint64][]string, len(byName))
	for name, hs := range byName {
		for _, h := range hs {
			idx.byTerm[h] = append(idx.byTerm[h], name)
		}
	}
	idx.built = true
	return nil
}

func (idx *Index) endScan() {
	idx.mu.Lock()
	idx.touched = nil
	idx.mu.Unlock()
}

// relist adds the keys that appeared and drops those that disappeared
// since the index last saw them, reading only the new ones.
func (idx *Index) relist(ctx context.Context) error {
	idx.startScan()
	defer idx.endScan()
	names, err := idx.svc.List(ctx, "")
	if err != nil {
		return err
	}
	listed := make(map[string]struct{}, len(names))
	var added []string
	idx.mu.Lock()
	for _, name := range names {
		listed[name] = struct{}{}
		if _, ok := idx.byName[name]; !ok {
			added = append(added, name)
		}
	}
	var gone []string
	for name := range idx.byName {
		if _, ok := listed[name]; !ok {
			gone = append(gone, name)
		}
	}
	idx.mu.Unlock()
	type entry struct {
		name string
		hs   []uint64
		ok   bool
	}
	var read []entry
	for _, name := range added {
		hs, ok, err := idx.read(ctx, name)
		if err != nil {
			return err
		}
		read = append(read, entry{name, hs, ok})
	}
	idx.mu.Lock()
	defer idx.mu.Unlock()
	for _, name := range gone {
		if _, ok := idx.touched[name]; !ok {
			idx.set(name, nil, false)
		}
	}
	for _, e := range read {
		if _, ok := idx.touched[e.name]; !ok {
			idx.set(e.name, e.hs, e.ok)
		}
	}
	return nil
}

// refreshDirty reads again the keys this node wrote since the last
// lookup.
func (idx *Index) refreshDirty(ctx context.Context) error {
	idx.mu.Lock()
	if len(idx.dirty) == 0 {
		idx.mu.Unlock()
		return nil
	}
	names := make([]string, 0, len(idx.dirty))
	for name := range idx.dirty {
		names = append(names, name)
	}
	clear(idx.dirty)
	idx.mu.Unlock()
	for i, name := range names {
		hs, ok, err := idx.read(ctx, name)
		if err != nil {
			// Read them again next time.
			idx.mu.Lock()
			for _, n := range names[i:] {
				idx.dirty[n] = struct{}{}
			}
			idx.mu.Unlock()
			return err
		}
		idx.mu.Lock()
		if _, again := idx.dirty[name]; !again {
			idx.set(name, hs, ok)
		}
		idx.mu.Unlock()
	}
	return nil
}

// set replaces the entry of name (ok false: removes it). The caller
// holds idx.mu.
func (idx *Index) set(name string, hs []uint64, ok bool) {
	for _, h := range idx.byName[name] {
		names := idx.byTerm[h]
		if i := slices.Index(names, name); i >= 0 {
			names[i] = names[len(names)-1]
			names = names[:len(names)-1]
		}
		if len(names) == 0 {
			delete(idx.byTerm, h)
		} else {
			idx.byTerm[h] = names
		}
	}
	delete(idx.byName, name)
	if !ok {
		return
	}
	idx.byName[name] = hs
	for _, h := range hs {
		idx.byTerm[h] = append(idx.byTerm[h], name)
	}
}
