// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package httpstore holds what the HTTP key store drivers (Vault,
// KeyControl) share: retry pacing, the retry decision, certificate error
// detection and per-key write locks. Each driver keeps its own error
// classification; this package only acts on the keystore error types a
// driver has already produced.
package httpstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// Backoff returns base·2^attempt, capped at limit, plus up to 25 % random
// jitter so that nodes do not retry in lockstep.
func Backoff(base time.Duration, attempt int, limit time.Duration) time.Duration {
	d := base
	for i := 0; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d + time.Duration(rand.Int64N(int64(d)/4+1))
}

// Wait waits d or until ctx is done. When ctx is done it returns the
// caller's cancellation prefixed with store, or, when ctx ran out of time,
// a *keystore.UnreachableError of store: the server did not answer in time.
func Wait(ctx context.Context, store string, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("%s: %w", store, context.Cause(ctx))
		}
		return &keystore.UnreachableError{Store: store, Err: context.Cause(ctx)}
	}
}

// Retryable reports whether a classified error may be repeated: the server
// could not be reached or had an error, and the attempt did not simply run
// out of time (a slow server would only be slow again).
func Retryable(err error) bool {
	var ue *keystore.UnreachableError
	return errors.As(err, &ue) && !ue.Timeout()
}

// Retry runs fn and repeats it while it fails with a Retryable error, at
// most retries times, calling sleep(ctx, attempt) between attempts. It
// returns the last error of fn, or the error of sleep.
func Retry(ctx context.Context, retries int, fn func(context.Context) error, sleep func(context.Context, int) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil || !Retryable(err) || attempt >= retries {
			return err
		}
		if err := sleep(ctx, attempt); err != nil {
			return err
		}
	}
}

// IsCertError reports whether err is a failed verification of the
// server's certificate, which an operator must fix.
func IsCertError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		ierr x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &ierr)
}

// NameLocks is a set of locks, one a name, each held by one caller at a
// time. A name's entry lives only while some caller holds or waits for
// it, so the set does not grow with the names ever locked. The zero value
// is ready to use.
type NameLocks struct {
	mu sync.Mutex
	m  map[string]*nameLock
}

type nameLock struct {
	ch   chan struct{}
	refs int
}

// Lock takes the lock on name and returns the function that releases it,
// or fails with the cause of ctx when ctx is done first.
func (l *NameLocks) Lock(ctx context.Context, name string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*nameLock{}
	}
	nl := l.m[name]
	if nl == nil {
		nl = &nameLock{ch: make(chan struct{}, 1)}
		l.m[name] = nl
	}
	nl.refs++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		if nl.refs--; nl.refs == 0 {
			delete(l.m, name)
		}
		l.mu.Unlock()
	}
	select {
	case nl.ch <- struct{}{}:
		return func() { <-nl.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, context.Cause(ctx)
	}
}

// Refresher is the loop that keeps a driver's access token fresh: it
// waits until the token is due, calls Refresh, and after a failure
// retries with Backoff from RetryDelay, capped at MaxRetryDelay, forever.
// A receive from Changed (a request logged in again) schedules from the
// new token and forgets past failures.
type Refresher struct {
	Changed <-chan struct{}
	// Due returns how long until the current token is to be renewed;
	// ok false: never (a token without TTL), wait for a change only.
	Due                       func() (d time.Duration, ok bool)
	Refresh                   func() error
	Observe                   keystore.TokenObserver
	RetryDelay, MaxRetryDelay time.Duration
	// Failed is called after a failed refresh, with the number of
	// failures in a row and a backoff delay to report.
	Failed func(attempt int, retryIn time.Duration, err error)
	// Recovered is called after a refresh succeeds that follows
	// failures.
	Recovered func(failures int)
}

// Run runs the loop until ctx is done. A refresh that ends because ctx is
// done is not an outcome: it is neither observed nor reported.
func (r *Refresher) Run(ctx context.Context) {
	failures := 0
	for {
		var (
			t     *time.Timer
			timer <-chan time.Time
		)
		if failures > 0 {
			t = time.NewTimer(Backoff(r.RetryDelay, failures-1, r.MaxRetryDelay))
		} else if d, ok := r.Due(); ok {
			t = time.NewTimer(max(d, 0))
		}
		if t != nil {
			timer = t.C
		}
		var changed bool
		select {
		case <-ctx.Done():
		case <-r.Changed:
			changed = true
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if changed {
			failures = 0
			continue
		}
		err := r.Refresh()
		if ctx.Err() != nil {
			return
		}
		r.Observe.Observe(err)
		if err != nil {
			failures++
			r.Failed(failures, Backoff(r.RetryDelay, failures-1, r.MaxRetryDelay), err)
			continue
		}
		if failures > 0 {
			r.Recovered(failures)
		}
		failures = 0
	}
}
