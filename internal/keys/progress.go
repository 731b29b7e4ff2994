// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

// Progress receives the results of long-running key work, for the
// server's metrics (kes_key_rotations_total, kes_key_rewraps_total and
// kes_key_rewrap_pending). Code that rotates or re-wraps keys reports
// each key through Service.Progress; the server passes its recorder in
// Config.Progress. Implementations must be safe for concurrent use and
// must not block.
type Progress interface {
	// Rotated reports one key rotation: err is nil if a new version was
	// made, else why not.
	Rotated(err error)

	// Rewrapped reports one stored key that a re-wrap (a new root key
	// version, a migration) re-encrypted, or failed to.
	Rewrapped(err error)

	// RewrapPending sets how many keys a running re-wrap still has to
	// do; 0 when none runs.
	RewrapPending(n int)
}

// nopProgress is the Progress of a Service configured without one.
type nopProgress struct{}

func (nopProgress) Rotated(error)     {}
func (nopProgress) Rewrapped(error)   {}
func (nopProgress) RewrapPending(int) {}

// Progress returns the Progress of the Service's Config, or one that
// discards everything: callers never check for nil.
func (s *Service) Progress() Progress {
	if s.progress == nil {
		return nopProgress{}
	}
	return s.progress
}
