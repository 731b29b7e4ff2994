// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"math/rand/v2"
	"time"
)

// Rotation is a rotation schedule: every key whose name matches Pattern
// gets a new version once its newest version is Period old.
type Rotation struct {
	// Pattern is a key name, or a prefix followed by '*' (as in
	// policies): "minio-*" matches every name starting with "minio-".
	Pattern string
	// Period is how old the newest version may get. It must be positive.
	Period time.Duration
}

// matches reports whether name matches the pattern.
func (r Rotation) matches(name string) bool { return MatchName(r.Pattern, name) }

// Schedule runs rotation schedules. Every node of a cluster runs the same
// schedule; the condition "the newest version is at least Period old" is
// checked again inside the compare-and-swap of each rotation
// (RotateIfOlder), so of several nodes that find a key due at the same
// time exactly one makes the new version and the others find it not due.
//
// Each node checks every Interval, jittered by ±20 % so that nodes do
// not all hit the keystore at once, and looks at most MaxKeysPerTick keys
// per check, continuing after the last one it looked at on the next
// check: a keystore of many keys costs a bounded amount of work per
// check, and a key becomes due at most about one full pass late.
type Schedule struct {
	Rotations []Rotation

	// By is recorded as the creator of scheduled versions.
	By string

	// Interval is the time between checks. Zero means a tenth of the
	// shortest Period, between one minute and one hour.
	Interval time.Duration

	// MaxKeysPerTick bounds the keys examined per check. Zero means 1000.
	MaxKeysPerTick int
}

// scheduler is the running state of a Schedule.
type scheduler struct {
	Schedule
	cursor string // the last name examined, "" at the start of a pass
}

func (sc *Schedule) interval() time.Duration {
	if sc.Interval > 0 {
		return sc.Interval
	}
	shortest := time.Duration(0)
	for _, r := range sc.Rotations {
		if shortest == 0 || r.Period < shortest {
			shortest = r.Period
		}
	}
	return min(max(shortest/10, time.Minute), time.Hour)
}

// StartSchedule runs sc until the Service is closed. It does nothing for a
// schedule without rotations.
func (s *Service) StartSchedule(sc Schedule) {
	if len(sc.Rotations) == 0 {
		return
	}
	if sc.MaxKeysPerTick <= 0 {
		sc.MaxKeysPerTick = 1000
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		run := &scheduler{Schedule: sc}
		every := sc.interval()
		for {
			jitter := time.Duration(rand.Int64N(int64(every)/5*2+1)) - every/5
			t := time.NewTimer(every + jitter)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), every)
			go func() {
				select {
				case <-s.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			s.rotateDue(ctx, run)
			cancel()
		}
	}()
}

// rotateDue examines up to MaxKeysPerTick keys after the cursor and
// rotates those that are due.
func (s *Service) rotateDue(ctx context.Context, sc *scheduler) {
	names, err := s.List(ctx, "")
	if err != nil {
		s.log.Warn("scheduled rotation: failed to list keys", "err", err)
		return
	}
	examined := 0
	for _, name := range names {
		if name <= sc.cursor {
			continue
		}
		if examined == sc.MaxKeysPerTick {
			return
		}
		examined++
		sc.cursor = name
		period, ok := sc.period(name)
		if !ok {
			continue
		}
		// A cheap look through the cache first; RotateIfOlder checks
		// again against the keystore.
		info, err := s.Describe(ctx, name)
		if err != nil {
			s.log.Warn("scheduled rotation: failed to read key", "key", name, "err", err)
			continue
		}
		if time.Since(info.CreatedAt) < period {
			continue
		}
		n, rotated, err := s.RotateIfOlder(ctx, name, sc.By, period)
		switch {
		case err != nil:
			s.log.Warn("scheduled rotation failed", "key", name, "err", err)
		case rotated:
			s.log.Info("key rotated on schedule", "key", name, "version", n)
		}
		if ctx.Err() != nil {
			return
		}
	}
	sc.cursor = "" // a full pass: start again from the beginning
}

// period returns the shortest period of the rotations matching name.
func (sc *Schedule) period(name string) (time.Duration, bool) {
	var p time.Duration
	for _, r := range sc.Rotations {
		if r.Period > 0 && r.matches(name) && (p == 0 || r.Period < p) {
			p = r.Period
		}
	}
	return p, p > 0
}
