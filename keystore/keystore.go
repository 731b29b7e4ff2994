// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors every Store returns (possibly wrapped) so that callers
// can branch with errors.Is.
var (
	// ErrKeyNotFound means that no value is stored under the name.
	ErrKeyNotFound = errors.New("key does not exist")

	// ErrKeyExists means that Create found a value under the name already.
	ErrKeyExists = errors.New("key already exists")

	// ErrConflict means that Replace found a value other than the expected
	// one: somebody else changed the key in between. Callers re-read and
	// try again.
	ErrConflict = errors.New("key was changed concurrently")
)

// Store is a key-value store for encoded keys. Values are opaque to the
// store: they are what internal/crypto encodes (the minio/kes stored-value
// format), possibly sealed by a Sealer.
//
// Every method is safe for concurrent use. Methods that reach a remote
// service return an *UnreachableError when the service cannot be reached
// (network error, timeout, 5xx) and an *UnavailableError when it answers
// but refuses service for a reason an operator must fix.
type Store interface {
	// Create stores value under name. It returns ErrKeyExists if the name
	// is taken; a Create never overwrites. When two nodes race to create
	// the same name exactly one of them succeeds.
	Create(ctx context.Context, name string, value []byte) error

	// Get returns the value stored under name, or ErrKeyNotFound.
	Get(ctx context.Context, name string) ([]byte, error)

	// Replace swaps the value under name from old to value. It returns
	// ErrKeyNotFound if there is no value and ErrConflict if the current
	// value is not old. At every instant a concurrent Get sees either old
	// or value: a Replace never loses the key, not even when it fails
	// half-way.
	Replace(ctx context.Context, name string, old, value []byte) error

	// Delete removes the value stored under name, or returns
	// ErrKeyNotFound.
	Delete(ctx context.Context, name string) error

	// List returns all names that start with prefix, sorted and without
	// duplicates. An empty prefix lists everything. Stores that page
	// internally follow every page before returning.
	List(ctx context.Context, prefix string) ([]string, error)

	// Status reports whether the store is reachable and how long one
	// round trip took.
	Status(ctx context.Context) (State, error)

	// Close releases the store's resources. Calls after Close fail.
	Close() error

	// String describes the store for banners and logs, for example
	// "Filesystem: /var/lib/kes". It never contains a secret.
	String() string
}

// State is the result of a successful Store.Status call.
type State struct {
	// Latency is the time one status round trip took.
	Latency time.Duration
}

// UnreachableError reports that a store could not be reached: a network
// error, a timeout or a server error. Such errors are transient; callers
// may retry, and the key cache may keep serving cached keys (offline mode).
type UnreachableError struct {
	// Store names the store, e.g. "keycontrol".
	Store string
	// Reason, if not empty, is a short reason that is safe to show to
	// clients and that they can act on by waiting, e.g. "vault is
	// sealed". The HTTP API answers such an error 503 with the reason;
	// without one, 504.
	Reason string
	// Err is the underlying error. It must not contain secrets.
	Err error
}

func (e *UnreachableError) Error() string {
	if e.Err == nil {
		return e.Store + ": key store is not reachable"
	}
	return e.Store + ": key store is not reachable: " + e.Err.Error()
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Timeout reports whether the underlying error was a timeout.
func (e *UnreachableError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &t) && t.Timeout())
}

// UnavailableError reports that a store answered but refuses service for
// a reason an operator must fix, e.g. a disabled root key or rejected
// credentials. Reason is short, safe to show to clients ("root key
// disabled"), and never contains a secret.
type UnavailableError struct {
	Store  string
	Reason string
	Err    error
}

func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return e.Store + ": " + e.Reason
	}
	return e.Store + ": " + e.Reason + ": " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err is or wraps an *UnreachableError.
func IsUnreachable(err error) bool {
	var e *UnreachableError
	return errors.As(err, &e)
}

// IsUnavailable reports whether err is or wraps an *UnavailableError.
func IsUnavailable(err error) bool {
	var e *UnavailableError
	return errors.As(err, &e)
}

// ErrValueTooLarge means that a value passed to Create or Replace is larger
// than the store's Capabilities().MaxValueSize. Nothing was written: the
// name holds what it held before the call.
var ErrValueTooLarge = errors.New("key value is too large for the key store")

// CheckValueSize returns an error wrapping ErrValueTooLarge if value is
// larger than max bytes. Drivers call it first thing in Create and Replace,
// before they contact their backend, so that a refused value leaves no
// trace. The error names the sizes, never the value.
func CheckValueSize(value []byte, max int) error {
	if len(value) > max {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, len(value), max)
	}
	return nil
}

// DefaultMaxValueSize is the MaxValueSize of a store that declares no
// Capabilities: a stored value that every driver can hold and read back.
const DefaultMaxValueSize = 64 << 10

// Capabilities are the guarantees a Store gives beyond its interface.
// Callers that depend on one check it; the zero value is the most
// conservative answer and is what CapabilitiesOf returns for a store
// that declares nothing.
type Capabilities struct {
	// MaxValueSize is the largest value, in bytes, that Create and
	// Replace accept and Get reads back. Create and Replace refuse a
	// larger value with ErrValueTooLarge before they write anything.
	// Zero means DefaultMaxValueSize.
	MaxValueSize int

	// LinearizableReplace reports whether Replace is a true
	// compare-and-swap across every process and node that uses the same
	// backend, not only among the callers of one Store value. Without it,
	// two nodes that Replace the same name at once may both succeed and
	// one change is lost.
	LinearizableReplace bool
}

// Capable is implemented by stores that declare their Capabilities.
// Wrappers (such as the sealed store) forward the capabilities of the
// store they wrap, adjusted for what they add.
type Capable interface {
	Capabilities() Capabilities
}

// CapabilitiesOf returns the capabilities that s declares, with
// MaxValueSize filled in; a store that declares none gets the defaults.
func CapabilitiesOf(s Store) Capabilities {
	var c Capabilities
	if cs, ok := s.(Capable); ok {
		c = cs.Capabilities()
	}
	if c.MaxValueSize <= 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	return c
}
