// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kesbridge/kes/keystore"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore/keycontrol"
)

// separateNodes returns two key services on the emulator's box that
// behave like two processes: the driver serialises Replace per endpoint
// inside one process, so the second node reaches the emulator under
// another name for the same address (localhost, which its certificate
// covers) and shares nothing with the first but the box.
func separateNodes(t *testing.T, emu *emulator.Server) (a, b *keys.Service) {
	t.Helper()
	u, err := url.Parse(emu.URL())
	if err != nil {
		t.Fatal(err)
	}
	other := "https://localhost:" + u.Port()
	node := func(endpoint string) *keys.Service {
		store, err := keycontrol.New(context.Background(), keycontrol.Config{
			Endpoint:      endpoint,
			VaultID:       emu.VaultID(),
			BoxID:         emulator.DefaultBox,
			Username:      emulator.DefaultUsername,
			Password:      keystore.NewSecret(emu.Password(emulator.DefaultUsername)),
			RootCAs:       emu.CertPool(),
			Timeout:       10 * time.Second,
			RetryDelay:    10 * time.Millisecond,
			MaxRetryDelay: 200 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		svc := keys.New(keys.Config{Store: store, Cache: cache.Config{Expiry: time.Hour}, HealthInterval: time.Hour})
		t.Cleanup(func() { svc.Close() })
		return svc
	}
	return node(emu.URL()), node(other)
}

// appendEntry is an Update that adds entry to a JSON list kept in the
// key's KMIP metadata.
func appendEntry(entry string) func(o *keys.Object) error {
	return func(o *keys.Object) error {
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

// fewLeaseNames fails if a key keeps more lease names in the box than
// its newest two epochs (records and markers) and a couple of strays:
// older ones are collected.
func fewLeaseNames(t *testing.T, emu *emulator.Server) {
	t.Helper()
	perKey := map[string]int{}
	for _, name := range emu.SecretNames(emulator.DefaultBox) {
		if keys.IsReserved(name) {
			perKey[name[:len(keys.LeasePrefix)+32]]++
		}
	}
	for key, n := range perKey {
		if n > 6 {
			t.Errorf("%d lease names of one key (%s) left in the box", n, key)
		}
	}
}

// Two nodes on one KeyControl box change one key's attributes at the
// same time, many times: every change survives. Without leases the
// driver's Replace lets two nodes both succeed and one change is lost.
func TestNodesLoseNoUpdate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emu := startKeyControlEmulator(t, emulator.Config{})
	a, b := separateNodes(t, emu)
	if err := a.Create(ctx, "shared", "node-a"); err != nil {
		t.Fatal(err)
	}

	const workers, each = 6, 4
	var (
		wg   sync.WaitGroup
		want []string
	)
	for n, node := range map[string]*keys.Service{"a": a, "b": b} {
		for w := range workers {
			for i := range each {
				want = append(want, fmt.Sprintf("%s-%d-%d", n, w, i))
			}
			wg.Go(func() {
				for i := range each {
					if err := node.Update(ctx, "shared", appendEntry(fmt.Sprintf("%s-%d-%d", n, w, i))); err != nil {
						t.Errorf("node %s: update: %v", n, err)
					}
				}
			})
		}
	}
	wg.Wait()

	var got []string
	if err := b.Update(ctx, "shared", func(o *keys.Object) error { return json.Unmarshal(o.Meta.KMIP, &got) }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		var lost []string
		for _, w := range want {
			if !slices.Contains(got, w) {
				lost = append(lost, w)
			}
		}
		t.Fatalf("%d of %d updates lost: %v", len(lost), len(want), lost)
	}
	fewLeaseNames(t, emu)
}

var errActive = errors.New("key is active")

// claim is what a KMIP Destroy does on its node before deleting the key
// (kmip-bridge destroy): refuse an Active key, mark any other Destroyed.
func claim(o *keys.Object) error {
	if o.Meta.State == keys.StateActive {
		return errActive
	}
	o.Meta.State = keys.StateDestroyed
	return nil
}

// Two nodes race a Destroy against an Activate of the same Pre-Active
// key: exactly one of them wins, and the keystore shows the winner's
// result. Both succeeding means an activation was reported for a key
// that is gone.
func TestNodesRaceDestroyActivate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emu := startKeyControlEmulator(t, emulator.Config{})
	a, b := separateNodes(t, emu)

	const rounds = 32
	for i := range rounds {
		name := fmt.Sprintf("vm-key-%d", i)
		if err := a.Create(ctx, name, "node-a"); err != nil {
			t.Fatal(err)
		}
		if err := a.Update(ctx, name, func(o *keys.Object) error { o.Meta.State = keys.StatePreActive; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg                    sync.WaitGroup
		destroyErr, activeErr [rounds]error
	)
	for i := range rounds {
		if i%8 == 0 {
			wg.Wait() // eight races at a time keep the emulator responsive under -race
		}
		name := fmt.Sprintf("vm-key-%d", i)
		wg.Go(func() {
			destroyErr[i] = a.Update(ctx, name, claim)
			if destroyErr[i] == nil {
				if err := a.Delete(ctx, name); err != nil {
					t.Errorf("%s: delete after the claim: %v", name, err)
				}
			}
		})
		wg.Go(func() {
			activeErr[i] = b.Update(ctx, name, func(o *keys.Object) error {
				if o.Meta.State == keys.StatePreActive {
					o.Meta.State = keys.StateActive
				}
				return nil
			})
		})
	}
	wg.Wait()

	check := keyControlService(t, emu, cache.Config{})
	for i := range rounds {
		name := fmt.Sprintf("vm-key-%d", i)
		dErr, aErr := destroyErr[i], activeErr[i]
		info, err := check.Describe(ctx, name)
		switch {
		case dErr == nil && aErr == nil:
			t.Errorf("%s: both the destroy and the activation succeeded (the key now: %v)", name, err)
		case dErr == nil && errors.Is(aErr, keys.ErrKeyNotFound):
			if !errors.Is(err, keys.ErrKeyNotFound) {
				t.Errorf("%s: destroyed, but the keystore still has it: %+v %v", name, info, err)
			}
		case errors.Is(dErr, errActive) && aErr == nil:
			if err != nil || !info.State.Active() {
				t.Errorf("%s: activated, but the keystore has %+v %v", name, info, err)
			}
		default:
			t.Errorf("%s: destroy %v, activate %v", name, dErr, aErr)
		}
	}
	fewLeaseNames(t, emu)
}

// The lease records never reach a listing, and the names are refused as
// key names.
func TestLeaseRecordsAreHidden(t *testing.T) {
	ctx := context.Background()
	emu, svc := startKeyControl(t, emulator.Config{}, cache.Config{})
	if err := svc.Create(ctx, "visible", "me"); err != nil {
		t.Fatal(err)
	}
	// A lease whose holder died, as another node leaves it.
	lease := keys.LeasePrefix + "0123456789abcdef0123456789abcdef-0"
	if err := svc.Store().Create(ctx, lease, []byte(`{"key":"visible","holder":"00","expires":"2100-01-01T00:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "-", keys.LeasePrefix} {
		names, err := svc.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(names, keys.IsReserved) {
			t.Fatalf("List(%q) = %v: shows a lease record", prefix, names)
		}
	}
	if err := svc.Create(ctx, keys.LeasePrefix+"x-1", "me"); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("Create of a reserved name: %v", err)
	}
	if _, err := svc.Describe(ctx, lease); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("Describe of a lease record: %v", err)
	}
	if err := svc.Delete(ctx, lease); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("Delete of a lease record: %v", err)
	}
	if !slices.Contains(emu.SecretNames(emulator.DefaultBox), lease) {
		t.Fatal("Delete removed a lease record")
	}
}

// A node's Update has compared the stored key and is about to write it
// (its PutSecretValue is held up) when another node deletes the key and
// creates a new one under the name. The delete waits for the first
// node's lease, so the old key's write never lands in the new key.
func TestNodesDeleteWaitsForLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emu := startKeyControlEmulator(t, emulator.Config{})
	a, b := separateNodes(t, emu)
	if err := a.Create(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}

	atPut, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	emu.SetHook(func(action string) {
		if action == "PutSecretValue" {
			once.Do(func() {
				close(atPut)
				select {
				case <-proceed:
				case <-ctx.Done():
				}
			})
		}
	})
	errA := make(chan error, 1)
	go func() { errA <- a.Update(ctx, "k", appendEntry("a")) }()
	<-atPut

	// The delete and re-create on the other node, while a's write is
	// held up between its compare and its write.
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	errDel := b.Delete(dctx, "k")
	dcancel()
	if errDel == nil {
		if err := b.Create(ctx, "k", "new"); err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(errDel, keys.ErrKeyBusy) {
		t.Fatalf("delete while another node changes the key: %v", errDel)
	}
	close(proceed)
	if err := <-errA; err != nil {
		t.Fatalf("the update: %v", err)
	}
	if errDel != nil { // now that the lease is free
		if err := b.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := b.Create(ctx, "k", "new"); err != nil {
			t.Fatal(err)
		}
	}

	check := keyControlService(t, emu, cache.Config{})
	info, err := check.Describe(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if info.CreatedBy != "new" {
		t.Fatalf("the new key's newest version is the old key (created by %q): the old key's write landed in the new key", info.CreatedBy)
	}
}
