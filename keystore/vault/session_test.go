// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	emulator "github.com/kesbridge/kes/internal/emulator/vault"
	"github.com/kesbridge/kes/keystore"
)

// memListener is an in-memory listener: Dial hands one end of a pipe to
// Accept. Inside a synctest bubble it lets client and emulator run on
// the fake clock.
type memListener struct {
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error { l.once.Do(func() { close(l.closed) }); return nil }

func (l *memListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8200} }

func (l *memListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	a, b := net.Pipe()
	select {
	case l.conns <- a:
		return b, nil
	case <-l.closed:
		return nil, errors.New("connection refused")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// bubbleStore starts an emulator and a store on in-memory connections.
// Call it inside synctest.Test.
func bubbleStore(t *testing.T, ecfg emulator.Config, tune func(*Config)) (*emulator.Server, *Store) {
	t.Helper()
	em, err := emulator.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := newMemListener()
	if err := em.Serve(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	cfg := configFor(em, V2)
	cfg.dial = ln.dial
	cfg.RetryDelay = time.Second
	cfg.MaxRetryDelay = 30 * time.Second
	if tune != nil {
		tune(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return em, s
}

// TestRenewAt80Percent checks on the fake clock that the token is
// renewed at 80 % of its TTL (not earlier), again at 80 % of the renewed
// lease, and that the store logs in again when renewal can no longer
// extend the token past half its lease (the maximum TTL).
func TestRenewAt80Percent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ecfg := kvConfig("", 2)
		ecfg.TokenTTL, ecfg.TokenMaxTTL = time.Hour, 2*time.Hour+30*time.Minute
		em, s := bubbleStore(t, ecfg, nil)
		ctx := context.Background()
		if err := s.Create(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if em.Count("login") != 1 || em.Count("renew") != 0 {
			t.Fatalf("after start: %d logins, %d renewals", em.Count("login"), em.Count("renew"))
		}
		time.Sleep(47*time.Minute + 59*time.Second)
		synctest.Wait()
		if n := em.Count("renew"); n != 0 {
			t.Fatalf("renewed %d times before 80 %% of the TTL", n)
		}
		time.Sleep(2 * time.Second) // 48 min: 80 % of 1 h
		synctest.Wait()
		if n := em.Count("renew"); n != 1 {
			t.Fatalf("%d renewals at 80 %% of the TTL, want 1", n)
		}
		time.Sleep(48 * time.Minute) // 96 min: second renewal
		synctest.Wait()
		if n := em.Count("renew"); n != 2 {
			t.Fatalf("%d renewals at 80 %% of the second lease, want 2", n)
		}
		// At 144 min only 6 min are left below the 150 min maximum:
		// renewal returns a short lease and the store logs in again.
		time.Sleep(48 * time.Minute)
		synctest.Wait()
		if n := em.Count("login"); n != 2 {
			t.Fatalf("%d logins after the token neared its max TTL, want 2", n)
		}
		// Every request of the whole time worked.
		for range 4 {
			if _, err := s.Get(ctx, "k"); err != nil {
				t.Fatalf("Get: %v", err)
			}
			time.Sleep(50 * time.Minute)
		}
	})
}

// TestDownThirtySeconds takes Vault away for 30 s (fake clock) with a
// token TTL of 10 s, so the token expires during the outage: requests
// fail as unreachable meanwhile, the refresher keeps trying with a
// backoff capped at MaxRetryDelay, and once Vault is back the store
// recovers by itself within that cap.
func TestDownThirtySeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ecfg := kvConfig("", 2)
		ecfg.TokenTTL, ecfg.TokenMaxTTL = 10*time.Second, time.Hour
		em, s := bubbleStore(t, ecfg, func(c *Config) {
			c.Timeout = 2 * time.Second
			c.MaxRetryDelay = 4 * time.Second
		})
		ctx := context.Background()
		if err := s.Create(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		em.SetDown(true)
		_, err := s.Get(ctx, "k")
		if !keystore.IsUnreachable(err) {
			t.Fatalf("Get while Vault is down: %v, want unreachable", err)
		}
		time.Sleep(30 * time.Second)
		em.SetDown(false)
		logins := em.Count("login")
		time.Sleep(6 * time.Second) // the capped backoff (4 s + 25 %) and a round trip
		synctest.Wait()
		if em.Count("login") <= logins {
			t.Fatal("no new login within the backoff cap after Vault came back")
		}
		if v, err := s.Get(ctx, "k"); err != nil || string(v) != "v" {
			t.Fatalf("Get after the outage = %q, %v", v, err)
		}
	})
}
