// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !cgo

package pkcs11

import (
	"context"
	"errors"

	"github.com/kesbridge/kes/keystore"
)

var errNoCgo = errors.New("pkcs11: built without PKCS#11 support (rebuild with CGO_ENABLED=1)")

// Sealer would seal with a PKCS#11 root key; this build has no PKCS#11
// support, so every method fails.
type Sealer struct{}

var _ keystore.Sealer = (*Sealer)(nil)

// NewSealer always fails: PKCS#11 needs cgo.
func NewSealer(context.Context, Config) (*Sealer, error) { return nil, errNoCgo }

// NewStore always fails: PKCS#11 needs cgo.
func NewStore(context.Context, Config) (keystore.Store, error) { return nil, errNoCgo }

// Seal fails: this build has no PKCS#11 support.
func (*Sealer) Seal(context.Context, string, []byte) ([]byte, error) { return nil, errNoCgo }

// Unseal fails: this build has no PKCS#11 support.
func (*Sealer) Unseal(context.Context, string, []byte) ([]byte, []byte, error) {
	return nil, nil, errNoCgo
}

// Reseal fails: this build has no PKCS#11 support.
func (*Sealer) Reseal(context.Context, string, []byte) ([]byte, error) { return nil, errNoCgo }

// Status fails: this build has no PKCS#11 support.
func (*Sealer) Status(context.Context) (keystore.State, error) { return keystore.State{}, errNoCgo }

// Close does nothing.
func (*Sealer) Close() error { return nil }

// String says that PKCS#11 is not available.
func (*Sealer) String() string { return "PKCS#11: not available (built without cgo)" }
