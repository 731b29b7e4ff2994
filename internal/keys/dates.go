// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
)

// Lifecycle dates
//
// A KMIP key may carry the four dates KMIP lets a client set: Activation,
// Deactivation, Process Start and Protect Stop (Metadata.Dates). They act
// without a timer: every read derives the effective state from the stored
// state and the dates against the Service's clock (Config.Now), so every
// node sharing a keystore agrees on the state at every moment, and the
// KES API sees the state KMIP reports. The next Update of the key stores
// the derived state (the transition is persisted lazily); nothing depends
// on that write.
//
//   - Pre-Active becomes Active once the Activation Date is reached.
//   - Pre-Active or Active becomes Deactivated once the Deactivation Date
//     is reached.
//   - Before the Process Start Date, decrypt and MAC verify are refused;
//     from the Protect Stop Date on, encrypt, generate and MAC generate
//     are refused (ErrNotActive, with the reason).
//
// Dates are honoured only on keys a KMIP client made (OriginKMIP): a key
// made over the KES API is Active for as long as it exists, whatever a
// KMIP record says (see CheckKMIPStateChange).

// Dates are the client-set lifecycle dates of a key (or of one version).
// A zero time is a date that is not set. Times are kept to the second.
type Dates struct {
	Activation   time.Time `json:"activation,omitzero"`
	Deactivation time.Time `json:"deactivation,omitzero"`
	ProcessStart time.Time `json:"processStart,omitzero"`
	ProtectStop  time.Time `json:"protectStop,omitzero"`
}

// IsZero reports whether no date is set.
func (d Dates) IsZero() bool {
	return d.Activation.IsZero() && d.Deactivation.IsZero() && d.ProcessStart.IsZero() && d.ProtectStop.IsZero()
}

// ErrInvalidDate: a lifecycle date outside the years 1970 to 9999, or a
// Deactivation Date before the Activation Date.
var ErrInvalidDate = errors.New("invalid lifecycle date")

// Check returns an error wrapping ErrInvalidDate if a date lies outside
// the years 1970 to 9999 (such dates cannot be stored), or if the
// Deactivation Date comes before the Activation Date.
func (d Dates) Check() error {
	for _, t := range []time.Time{d.Activation, d.Deactivation, d.ProcessStart, d.ProtectStop} {
		if t.IsZero() {
			continue
		}
		if y := t.UTC().Year(); y < 1970 || y > 9999 {
			return fmt.Errorf("%w: dates must lie in the years 1970 to 9999", ErrInvalidDate)
		}
	}
	if !d.Activation.IsZero() && !d.Deactivation.IsZero() && d.Deactivation.Before(d.Activation) {
		return fmt.Errorf("%w: the deactivation date is before the activation date", ErrInvalidDate)
	}
	return nil
}

// effective is the state a key stored in state s with dates d is in at
// time now.
func (d *Dates) effective(s State, now time.Time) State {
	if d == nil {
		return s
	}
	if s == StatePreActive && !d.Activation.IsZero() && !now.Before(d.Activation) {
		s = StateActive
	}
	if (s == StatePreActive || s == StateActive) && !d.Deactivation.IsZero() && !now.Before(d.Deactivation) {
		s = StateDeactivated
	}
	return s
}

// Errors of the usage period. They wrap ErrNotActive, so both front
// doors answer them as they answer a key that is not active.
var (
	errProtectStopped   = fmt.Errorf("%w: its protect stop date has passed", ErrNotActive)
	errProcessNotBegun  = fmt.Errorf("%w: its process start date has not come yet", ErrNotActive)
	errDatesOnKESKey    = fmt.Errorf("%w: lifecycle dates", ErrKESManaged)
	errDatesUnencodable = errors.New("keys: lifecycle dates cannot be stored")
)

// now is the Service's clock.
func (s *Service) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// Now returns the time of the Service's clock (Config.Now), the clock the
// lifecycle dates are compared with. Front doors use it for the dates they
// record, so that both agree.
func (s *Service) Now() time.Time { return s.now() }

// clockNow is the clock of the Service that read o.
func (o *Object) clockNow() time.Time {
	if c := o.root().clock; c != nil {
		return c()
	}
	return time.Now()
}

// datesOf returns the dates that apply to version v of the key: the key's
// own for the newest version, the version's stored ones for an older one.
// A key made over the KES API has none (UsageOf decides, as checkDates
// does when the dates are stored).
func (o *Object) datesOf(v *crypto.KeyVersion) *Dates {
	r := o.root()
	var d *Dates
	switch {
	case v == r.Version:
		d = r.Meta.Dates
	case len(v.Meta) > 0 && bytes.Contains(v.Meta, []byte(`"dates"`)):
		var own struct {
			Dates *Dates `json:"dates"`
		}
		if json.Unmarshal(v.Meta, &own) == nil {
			d = own.Dates
		}
	}
	if d == nil || UsageOf(r).Origin != OriginKMIP {
		return nil
	}
	return d
}

// withDates returns o, or a shallow copy of it whose Meta.State is the
// effective state of its dates at now(). o is not modified: it may be the
// cache's. The clock is read only for a key that has dates: most have
// none, and a clock read is a measurable share of a request.
func withDates(o *Object, now func() time.Time) *Object {
	d := o.datesOf(o.Version)
	if d == nil {
		return o
	}
	if s := d.effective(o.Meta.State, now()); s != o.Meta.State {
		cp := *o
		cp.Meta.State = s
		return &cp
	}
	return o
}

// protectWindow reports why version v may not protect (encrypt, generate,
// MAC generate) now, if its Protect Stop Date has passed.
func (o *Object) protectWindow(v *crypto.KeyVersion) error {
	if d := o.datesOf(v); d != nil && !d.ProtectStop.IsZero() && !o.clockNow().Before(d.ProtectStop) {
		return errProtectStopped
	}
	return nil
}

// processWindow reports why version v may not process (decrypt, MAC
// verify) now, if its Process Start Date has not come.
func (o *Object) processWindow(v *crypto.KeyVersion) error {
	if d := o.datesOf(v); d != nil && !d.ProcessStart.IsZero() && o.clockNow().Before(d.ProcessStart) {
		return errProcessNotBegun
	}
	return nil
}

// canDecrypt reports whether version v may decrypt now: its state allows
// it and its Process Start Date, if any, has come.
func (o *Object) canDecrypt(v *crypto.KeyVersion) bool {
	return o.stateOf(v).CanDecrypt() && o.processWindow(v) == nil
}

// checkDates refuses a change that gives dates to a key made over the
// KES API, and dates that cannot be stored.
func checkDates(before, after Metadata, o *Object) error {
	if after.Dates == nil {
		return nil
	}
	if after.Dates.IsZero() {
		return nil
	}
	if UsageOf(o).Origin != OriginKMIP && (before.Dates == nil || *before.Dates != *after.Dates) {
		return errDatesOnKESKey
	}
	if err := after.Dates.Check(); err != nil {
		return fmt.Errorf("%w: %w", errDatesUnencodable, err)
	}
	return nil
}

// SystemRandom reports whether new keys come from the operating system's
// generator through crypto/rand (Config.Rand unset), so that a front
// door can describe the generator truthfully.
func (s *Service) SystemRandom() bool { return s.rand == rand.Reader }
