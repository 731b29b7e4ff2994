// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package httpstore

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kesbridge/kes/keystore"
)

func TestBackoffCapAndJitter(t *testing.T) {
	for attempt := range 10 {
		want := min(time.Second<<attempt, 8*time.Second)
		d := Backoff(time.Second, attempt, 8*time.Second)
		if d < want || d > want+want/4 {
			t.Fatalf("attempt %d: %v, want within [%v, %v]", attempt, d, want, want+want/4)
		}
	}
}

func TestRetryStopsOnPermanentError(t *testing.T) {
	calls := 0
	unreachable := &keystore.UnreachableError{Store: "test", Err: errors.New("down")}
	nosleep := func(context.Context, int) error { return nil }
	err := Retry(t.Context(), 3, func(context.Context) error { calls++; return unreachable }, nosleep)
	if !errors.Is(err, unreachable) || calls != 4 {
		t.Fatalf("unreachable: %d calls, err %v; want 4 calls", calls, err)
	}
	calls = 0
	permanent := errors.New("bad request")
	err = Retry(t.Context(), 3, func(context.Context) error { calls++; return permanent }, nosleep)
	if !errors.Is(err, permanent) || calls != 1 {
		t.Fatalf("permanent: %d calls, err %v; want 1 call", calls, err)
	}
}

func TestNameLocks(t *testing.T) {
	var l NameLocks
	unlock, err := l.Lock(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := l.Lock(t.Context(), "b"); err != nil {
		t.Fatalf("other name blocked: %v", err)
	} else {
		u()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held name: %v, want deadline exceeded", err)
	}
	unlock()
	if u, err := l.Lock(t.Context(), "a"); err != nil {
		t.Fatalf("released name: %v", err)
	} else {
		u()
	}
	if n := len(l.m); n != 0 {
		t.Fatalf("%d entries left after every lock was released", n)
	}
}

// TestRefresher checks the schedule: a refresh when the token is due,
// retries with backoff after failures, and a reset when Changed fires.
func TestRefresher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			calls     []time.Duration
			fail      = 2
			observed  []error
			recovered int
		)
		start := time.Now()
		changed := make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(t.Context())
		r := Refresher{
			Changed: changed,
			Due:     func() (time.Duration, bool) { return time.Hour, true },
			Refresh: func() error {
				calls = append(calls, time.Since(start))
				if fail > 0 {
					fail--
					return errors.New("down")
				}
				return nil
			},
			Observe:       func(err error) { observed = append(observed, err) },
			RetryDelay:    time.Second,
			MaxRetryDelay: time.Minute,
			Failed:        func(int, time.Duration, error) {},
			Recovered:     func(n int) { recovered = n },
		}
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()

		time.Sleep(time.Hour + 5*time.Second)
		synctest.Wait()
		// Due at 1h, fails; retry after 1s (+25 %), fails; retry after 2s
		// (+25 %), succeeds.
		if len(calls) != 3 || calls[0] != time.Hour || calls[1]-calls[0] < time.Second || calls[2]-calls[1] < 2*time.Second {
			t.Fatalf("refreshes at %v", calls)
		}
		if len(observed) != 3 || observed[0] == nil || observed[2] != nil || recovered != 2 {
			t.Fatalf("observed %v, recovered after %d failures", observed, recovered)
		}
		changed <- struct{}{}
		synctest.Wait()
		if len(calls) != 3 {
			t.Fatalf("a change caused a refresh: %v", calls)
		}
		cancel()
		<-done
	})
}
