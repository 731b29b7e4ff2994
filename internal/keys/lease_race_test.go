// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// nodeStore is one node's connection to a keystore shared by several
// nodes, as a network driver whose Replace is not linearizable sees it:
// a call whose context has ended fails, and every call may stall: stall
// is called once the call is sent, with its name ("get", "create",
// "delete", "list" or "replace") and the key or prefix (a request that
// is slow to land lands late, whatever the context), and after it with
// "after get" and so on (the node pauses once it has the answer); and
// Replace is a read, a compare and a blind write, as KeyControl's is, so
// that two nodes whose Replaces overlap both succeed and one change is
// lost unless the lease keeps them apart.
type nodeStore struct {
	keystore.Store // shared by all nodes
	stall          func(op, name string)
	// inFlight is how long the write of a Replace takes to land after
	// the compare; nil means at once.
	inFlight func() time.Duration
	// active counts the nodes that are changing the key, across nodes:
	// Replace counts itself from its start until its write landed.
	active *activity
}

func (s *nodeStore) Capabilities() keystore.Capabilities { return keystore.Capabilities{} }

func (s *nodeStore) call(ctx context.Context, op, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.stall != nil {
		s.stall(op, name)
	}
	return nil
}

func (s *nodeStore) after(op, name string) {
	if s.stall != nil {
		s.stall("after "+op, name)
	}
}

func (s *nodeStore) Get(ctx context.Context, name string) ([]byte, error) {
	if err := s.call(ctx, "get", name); err != nil {
		return nil, err
	}
	defer s.after("get", name)
	return s.Store.Get(ctx, name)
}

func (s *nodeStore) Create(ctx context.Context, name string, value []byte) error {
	if err := s.call(ctx, "create", name); err != nil {
		return err
	}
	defer s.after("create", name)
	return s.Store.Create(ctx, name, value)
}

func (s *nodeStore) Delete(ctx context.Context, name string) error {
	if err := s.call(ctx, "delete", name); err != nil {
		return err
	}
	defer s.after("delete", name)
	return s.Store.Delete(ctx, name)
}

func (s *nodeStore) List(ctx context.Context, prefix string) ([]string, error) {
	if err := s.call(ctx, "list", prefix); err != nil {
		return nil, err
	}
	defer s.after("list", prefix)
	return s.Store.List(ctx, prefix)
}

func (s *nodeStore) Replace(ctx context.Context, name string, old, value []byte) error {
	if s.active != nil {
		s.active.enter()
		defer s.active.leave()
	}
	if err := s.call(ctx, "replace", name); err != nil {
		return err
	}
	cur, err := s.Store.Get(ctx, name)
	if err != nil {
		return err
	}
	if string(cur) != string(old) {
		return keystore.ErrConflict
	}
	if s.inFlight != nil {
		time.Sleep(s.inFlight())
	}
	for { // the blind write
		cur, err := s.Store.Get(ctx, name)
		if err != nil {
			return err
		}
		if err := s.Store.Replace(ctx, name, cur, value); !errors.Is(err, keystore.ErrConflict) {
			return err
		}
	}
}

func (s *nodeStore) Close() error { return nil }

// activity counts the nodes inside the critical section and remembers
// the most there ever were at once.
type activity struct {
	n, most atomic.Int32
}

func (a *activity) enter() {
	n := a.n.Add(1)
	for {
		m := a.most.Load()
		if n <= m || a.most.CompareAndSwap(m, n) {
			return
		}
	}
}

func (a *activity) leave() { a.n.Add(-1) }

// appendChange is an Update that adds entry to a JSON list kept in the
// key's KMIP metadata, counted as active while it runs (hold long).
func appendChange(a *activity, entry string, hold time.Duration) func(o *Object) error {
	return func(o *Object) error {
		a.enter()
		defer a.leave()
		time.Sleep(hold)
		var list []string
		if len(o.Meta.KMIP) > 0 {
			if err := json.Unmarshal(o.Meta.KMIP, &list); err != nil {
				return err
			}
		}
		var err error
		o.Meta.KMIP, err = json.Marshal(append(list, entry))
		return err
	}
}

func entries(t *testing.T, store keystore.Store, name string) []string {
	t.Helper()
	value, err := store.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	o, err := decode(name, value)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Version.Destroy()
	var list []string
	if len(o.Meta.KMIP) > 0 {
		if err := json.Unmarshal(o.Meta.KMIP, &list); err != nil {
			t.Fatal(err)
		}
	}
	return list
}

// counter counts a node's calls per operation on lease records.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

// next returns how many calls of op this one is, from 1.
func (c *counter) next(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[op]++
	return c.n[op]
}

// The interleaving a review of the first lease scheme found, in which
// that scheme let two nodes hold the lease at once (lease 30 s, the
// holder stops 10 s early):
//
//	t=0  D lists, sees nothing, stalls
//	t=1  X creates epoch 0, stalls before its check
//	t=32 C sees epoch 0 expired, creates epoch 1 and holds; its clean-up
//	     reads epoch 0 (X's) and stalls before deleting it
//	t=36 X's check sees C's live record: it deletes its own and backs off
//	t=41 D creates epoch 0 again, stalls before its check
//	t=45 C's delayed Delete removes D's epoch 0; C releases
//	t=50 D's check sees no other record: it holds, with no record
//	t=51 F sees nothing, creates epoch 0 and holds too
//
// Each node stalls at the same points of its calls now: at no instant do
// two of them change the key, and no change is lost.
func TestLeaseReviewerInterleaving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		shared := keystore.NewMem()
		act := &activity{}
		t0 := time.Now()
		until := func(sec int) { time.Sleep(time.Until(t0.Add(time.Duration(sec) * time.Second))) }

		// stallAt returns a stall function that waits until the given
		// time before the n-th call of op on a lease record.
		type point struct {
			op  string
			n   int
			sec int
		}
		stallAt := func(points ...point) func(op, name string) {
			var c counter
			return func(op, name string) {
				if !IsReserved(name) {
					return
				}
				n := c.next(op)
				for _, p := range points {
					if p.op == op && p.n == n {
						until(p.sec)
					}
				}
			}
		}
		node := func(stall func(op, name string)) *Service {
			s := New(Config{Store: &nodeStore{Store: shared, stall: stall, active: act}})
			t.Cleanup(func() { s.Close() })
			return s
		}
		setup := node(nil)
		if err := setup.Create(ctx, "k", "me"); err != nil {
			t.Fatal(err)
		}
		d := node(stallAt(point{"after list", 1, 41}, point{"list", 2, 50}))
		x := node(stallAt(point{"list", 2, 36}))
		c := node(stallAt(point{"delete", 1, 45}))
		f := node(nil)

		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			done []string
		)
		run := func(s *Service, who string, start int, hold time.Duration) {
			wg.Go(func() {
				until(start)
				err := s.Update(ctx, "k", appendChange(act, who, hold))
				if err != nil {
					t.Errorf("node %s: %v", who, err)
					return
				}
				mu.Lock()
				done = append(done, who)
				mu.Unlock()
			})
		}
		run(d, "d", 0, 5*time.Second)
		run(x, "x", 1, time.Second)
		run(c, "c", 32, time.Second)
		run(f, "f", 51, 5*time.Second)
		wg.Wait()

		if most := act.most.Load(); most > 1 {
			t.Errorf("%d nodes changed the key at once", most)
		}
		got := entries(t, shared, "k")
		slices.Sort(got)
		slices.Sort(done)
		if !slices.Equal(got, done) {
			t.Errorf("the key holds the changes %v; the nodes made %v", got, done)
		}
	})
}

// Several nodes change one key many times while their keystore calls
// stall at random, some for longer than the lease: at no instant do two
// nodes change the key, and every change that succeeded is kept. (A
// change holds the key for up to 8 s, within the 10 s margin.)
func TestLeaseMutualExclusion(t *testing.T) {
	const (
		seeds  = 32
		nodes  = 5
		rounds = 8
	)
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				shared := keystore.NewMem()
				act := &activity{}
				setup := New(Config{Store: &nodeStore{Store: shared}})
				t.Cleanup(func() { setup.Close() })
				if err := setup.Create(context.Background(), "k", "me"); err != nil {
					t.Fatal(err)
				}

				var (
					wg         sync.WaitGroup
					mu         sync.Mutex
					done, busy []string
				)
				for n := range nodes {
					var rmu sync.Mutex
					rnd := rand.New(rand.NewPCG(seed, uint64(n)))
					dur := func(max time.Duration) time.Duration {
						rmu.Lock()
						defer rmu.Unlock()
						return time.Duration(rnd.Int64N(int64(max))) + 1
					}
					chance := func(p float64) bool {
						rmu.Lock()
						defer rmu.Unlock()
						return rnd.Float64() < p
					}
					// Calls on the key, and a change's own work, stay
					// within the margin, as the scheme assumes of one
					// write. Calls on lease records stall for up to 45 s,
					// longer than the lease, where that makes a node act
					// on stale news: an answer it sits on (after a List,
					// less often after a Get) or a write that lands late
					// (a Delete, less often a Create). Other stalls of
					// lease calls are short: long ones only eat the
					// holder's own time.
					long := func(op string) bool {
						switch op {
						case "after list", "delete":
							return true
						case "after get", "create":
							return chance(0.2)
						}
						return false
					}
					stall := func(op, name string) {
						switch {
						case !chance(0.3):
						case !IsReserved(name):
							time.Sleep(dur(2 * time.Second))
						case !long(op):
							time.Sleep(dur(50 * time.Millisecond))
						case chance(0.4):
							time.Sleep(dur(5 * time.Second))
						default:
							time.Sleep(20*time.Second + dur(25*time.Second))
						}
					}
					s := New(Config{Store: &nodeStore{
						Store:    shared,
						stall:    stall,
						active:   act,
						inFlight: func() time.Duration { return dur(3 * time.Second) },
					}})
					t.Cleanup(func() { s.Close() })
					wg.Go(func() {
						for r := range rounds {
							time.Sleep(dur(10 * time.Second)) // between changes
							who := fmt.Sprintf("%d-%d", n, r)
							ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
							err := s.Update(ctx, "k", appendChange(act, who, dur(8*time.Second)))
							cancel()
							mu.Lock()
							switch {
							case err == nil:
								done = append(done, who)
							case errors.Is(err, ErrKeyBusy), errors.Is(err, context.DeadlineExceeded):
								// Not acknowledged: the node waited
								// past its own deadline (the caller's
								// 10 min may run out inside a stalled
								// keystore call rather than while it
								// waits for the lease).
								busy = append(busy, who)
							default:
								t.Errorf("node %d: %v", n, err)
							}
							mu.Unlock()
						}
					})
				}
				wg.Wait()

				if most := act.most.Load(); most > 1 {
					t.Errorf("%d nodes changed the key at once", most)
				}
				got := entries(t, shared, "k")
				for _, who := range done {
					if !slices.Contains(got, who) {
						t.Errorf("the change %s succeeded but is lost", who)
					}
				}
				if len(done) < nodes*rounds/2 {
					t.Errorf("only %d of %d changes succeeded (%d busy)", len(done), nodes*rounds, len(busy))
				}
				names, err := shared.List(context.Background(), LeasePrefix)
				if err != nil {
					t.Fatal(err)
				}
				if len(names) > 16 {
					t.Errorf("%d lease names left for one key: %v", len(names), names)
				}
			})
		})
	}
}
