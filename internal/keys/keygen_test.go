// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// TestKeygenWaitersCapped: with every generation slot taken, at most
// keygenSlots.maxWaiting Create Key Pair calls wait; the next is refused at
// once with ErrKeygenBusy instead of queueing until its deadline, and
// the waiters proceed once the slots are free.
func TestKeygenWaitersCapped(t *testing.T) {
	s, _ := newService(t, Config{})
	spec := NewKeyPair{Algorithm: AlgorithmEC, Bits: 256, PrivateMask: UsageSign, PublicMask: UsageVerify, CreatedAt: time.Now(),
		Meta: func(string, string, *crypto.KeyVersion, *crypto.KeyVersion) (Metadata, Metadata, error) {
			return Metadata{KMIP: json.RawMessage(`{"v":1}`)}, Metadata{KMIP: json.RawMessage(`{"v":1}`)}, nil
		}}
	for range cap(keygenSlots.ch) {
		keygenSlots.ch <- struct{}{}
	}
	released := false
	release := func() {
		if !released {
			released = true
			for range cap(keygenSlots.ch) {
				<-keygenSlots.ch
			}
		}
	}
	defer release()

	var wg sync.WaitGroup
	errs := make([]error, keygenSlots.maxWaiting)
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = s.CreateKeyPair(context.Background(), spec) })
	}
	for keygenSlots.waiting.Load() < keygenSlots.maxWaiting {
		runtime.Gosched() // until every waiter has queued
	}
	if _, _, err := s.CreateKeyPair(context.Background(), spec); !errors.Is(err, ErrKeygenBusy) {
		t.Fatalf("create key pair with the queue full: %v, want ErrKeygenBusy", err)
	}
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
	}
	if n := keygenSlots.waiting.Load(); n != 0 {
		t.Fatalf("%d waiters left counted", n)
	}
}
