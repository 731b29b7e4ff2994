// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotConnected is wrapped by the *UnavailableError that a
// BackgroundStore returns while it has not connected to its keystore yet.
var ErrNotConnected = errors.New("key store is not connected yet")

// BackgroundConfig configures OpenInBackground.
type BackgroundConfig struct {
	// Name describes the keystore until it is connected, for String,
	// errors and logs (e.g. "keycontrol"). It never contains a secret.
	Name string

	// Open connects to the keystore. It is called with a context that
	// Close cancels, once per attempt, until it succeeds.
	Open func(ctx context.Context) (Store, error)

	// LastErr is the error of an attempt made before OpenInBackground
	// (the one that decided to connect in the background). Until the
	// first background attempt ends it is the reason Status gives. Nil
	// means that none was made.
	LastErr error

	// MinDelay is the wait before the first attempt and after the first
	// failure; each failure doubles it, up to MaxDelay. Zero means 1 s
	// and 30 s.
	MinDelay, MaxDelay time.Duration

	// Logger receives a line per failed attempt and one on success. Nil
	// discards them.
	Logger *slog.Logger
}

// BackgroundStore is a Store that connects to its keystore in the
// background. Until the connection is made, every call fails with an
// *UnavailableError that wraps ErrNotConnected and says why the last
// attempt failed ("not connected yet: key store is not reachable");
// afterwards every call goes to the connected store. It exists so that
// drivers whose constructors need their service (KeyControl logs in,
// HPCS reads its root key) can start without it, in one place instead of
// in each driver.
type BackgroundStore struct {
	cfg    BackgroundConfig
	store  atomic.Pointer[Store]
	reason atomic.Pointer[string]
	ready  chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// OpenInBackground returns a BackgroundStore and starts connecting.
// Close stops the attempts and closes the store once it is connected.
func OpenInBackground(cfg BackgroundConfig) *BackgroundStore {
	if cfg.MinDelay <= 0 {
		cfg.MinDelay = time.Second
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 30 * time.Second
	}
	cfg.MaxDelay = max(cfg.MaxDelay, cfg.MinDelay)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &BackgroundStore{cfg: cfg, ready: make(chan struct{}), done: make(chan struct{})}
	b.setReason(cfg.LastErr)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	go b.connect()
	return b
}

// reasonOf is the client-safe part of a failed attempt's error.
func reasonOf(err error) string {
	var u *UnavailableError
	switch {
	case err == nil:
		return "connecting"
	case IsUnreachable(err):
		return "key store is not reachable"
	case errors.As(err, &u):
		return u.Reason
	default:
		return "failed to connect"
	}
}

func (b *BackgroundStore) setReason(err error) {
	r := reasonOf(err)
	b.reason.Store(&r)
}

func (b *BackgroundStore) connect() {
	defer close(b.done)
	delay := b.cfg.MinDelay
	for attempt := 1; ; attempt++ {
		// Jitter keeps the nodes of a cluster that all lost the same
		// keystore from retrying in lock step.
		wait := delay/2 + rand.N(delay/2+1)
		t := time.NewTimer(wait)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s, err := b.cfg.Open(b.ctx)
		if err == nil {
			if b.ctx.Err() != nil {
				// Closed while connecting: nobody will close it.
				s.Close()
				return
			}
			b.store.Store(&s)
			close(b.ready)
			b.cfg.Logger.Info("connected to keystore", "keystore", s.String(), "attempts", attempt)
			return
		}
		if b.ctx.Err() != nil {
			return
		}
		b.setReason(err)
		b.cfg.Logger.Warn("keystore is not available yet, retrying", "keystore", b.cfg.Name, "attempt", attempt, "err", err)
		delay = min(2*delay, b.cfg.MaxDelay)
	}
}

// Connected returns the connected store, or nil.
func (b *BackgroundStore) Connected() Store {
	if p := b.store.Load(); p != nil {
		return *p
	}
	return nil
}

// Wait blocks until the store is connected (nil), Close was called
// (ErrClosed) or ctx is done (its error).
func (b *BackgroundStore) Wait(ctx context.Context) error {
	select {
	case <-b.ready:
		return nil
	default:
	}
	select {
	case <-b.ready:
		return nil
	case <-b.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// get returns the connected store or the error every call fails with.
func (b *BackgroundStore) get() (Store, error) {
	if s := b.Connected(); s != nil {
		return s, nil
	}
	if b.ctx.Err() != nil {
		return nil, ErrClosed
	}
	r := *b.reason.Load()
	return nil, &UnavailableError{Store: b.cfg.Name, Reason: "not connected yet: " + r, Err: ErrNotConnected}
}

// Capabilities are those of the connected store; before, the most
// conservative ones.
func (b *BackgroundStore) Capabilities() Capabilities {
	if s := b.Connected(); s != nil {
		return CapabilitiesOf(s)
	}
	return CapabilitiesOf(nil)
}

func (b *BackgroundStore) Create(ctx context.Context, name string, value []byte) error {
	s, err := b.get()
	if err != nil {
		return err
	}
	return s.Create(ctx, name, value)
}

func (b *BackgroundStore) Get(ctx context.Context, name string) ([]byte, error) {
	s, err := b.get()
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, name)
}

func (b *BackgroundStore) Replace(ctx context.Context, name string, old, value []byte) error {
	s, err := b.get()
	if err != nil {
		return err
	}
	return s.Replace(ctx, name, old, value)
}

func (b *BackgroundStore) Delete(ctx context.Context, name string) error {
	s, err := b.get()
	if err != nil {
		return err
	}
	return s.Delete(ctx, name)
}

func (b *BackgroundStore) List(ctx context.Context, prefix string) ([]string, error) {
	s, err := b.get()
	if err != nil {
		return nil, err
	}
	return s.List(ctx, prefix)
}

func (b *BackgroundStore) Status(ctx context.Context) (State, error) {
	s, err := b.get()
	if err != nil {
		return State{}, err
	}
	return s.Status(ctx)
}

// Close stops connecting and closes the connected store, if any.
func (b *BackgroundStore) Close() error {
	var err error
	b.once.Do(func() {
		b.cancel()
		<-b.done
		if s := b.Connected(); s != nil {
			err = s.Close()
		}
	})
	return err
}

// String is the connected store's description, or Name with
// "(not connected)".
func (b *BackgroundStore) String() string {
	if s := b.Connected(); s != nil {
		return s.String()
	}
	return fmt.Sprintf("%s (not connected)", b.cfg.Name)
}
