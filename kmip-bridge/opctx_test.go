// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// The operation context behaves as context.WithTimeout's: it ends at the
// read timeout, for Done, Err and contexts derived from it; it ends when
// released; it keeps the parent's values and an earlier parent deadline.
func TestOpContext(t *testing.T) {
	s := &Server{readTO: 30 * time.Second}
	t.Run("Deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := &message{}
			parent := context.WithValue(context.WithValue(context.Background(), messageKey{}, m), sessionKey{}, &session{remote: "r"})
			ctx, cancel := s.opContext(parent)
			defer cancel()
			if d, ok := ctx.Deadline(); !ok || !d.Equal(time.Now().Add(30*time.Second)) {
				t.Fatalf("deadline %v, %v; want now+30s", d, ok)
			}
			if messageOf(ctx) != m || sessionOf(ctx).remote != "r" {
				t.Fatal("the parent's values are lost")
			}
			derived, cancelDerived := context.WithCancel(ctx)
			defer cancelDerived()
			if ctx.Err() != nil || derived.Err() != nil {
				t.Fatal("ended before its deadline")
			}
			time.Sleep(30*time.Second - time.Nanosecond)
			synctest.Wait()
			if ctx.Err() != nil {
				t.Fatal("ended before its deadline")
			}
			time.Sleep(time.Nanosecond)
			<-ctx.Done()
			<-derived.Done()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(derived), context.DeadlineExceeded) {
				t.Fatalf("err %v, derived cause %v; want the deadline", ctx.Err(), context.Cause(derived))
			}
		})
	})
	t.Run("Released", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Released before anything waited, and after.
			ctx, cancel := s.opContext(context.Background())
			cancel()
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Fatalf("err %v after release; want canceled", ctx.Err())
			}
			ctx, cancel = s.opContext(context.Background())
			done := ctx.Done()
			cancel()
			<-done
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Fatalf("err %v after release; want canceled", ctx.Err())
			}
		})
	})
	t.Run("EarlierParent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			parent, cancelParent := context.WithTimeout(context.Background(), time.Second)
			defer cancelParent()
			ctx, cancel := s.opContext(parent)
			defer cancel()
			if d, _ := ctx.Deadline(); !d.Equal(time.Now().Add(time.Second)) {
				t.Fatalf("deadline %v; want the parent's", d)
			}
			time.Sleep(time.Second)
			<-ctx.Done()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatalf("err %v; want the parent's deadline", ctx.Err())
			}
		})
	})
}
