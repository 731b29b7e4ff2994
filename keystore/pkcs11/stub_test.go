// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !cgo

package pkcs11

import (
	"context"
	"testing"

	"github.com/kesbridge/kes/keystore"
)

func TestStub(t *testing.T) {
	const want = "pkcs11: built without PKCS#11 support (rebuild with CGO_ENABLED=1)"
	cfg := Config{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "t", PIN: keystore.NewSecret("p"), RootKeyLabel: "k"}
	if _, err := NewSealer(context.Background(), cfg); err == nil || err.Error() != want {
		t.Errorf("NewSealer: %v", err)
	}
	if _, err := NewStore(context.Background(), cfg); err == nil || err.Error() != want {
		t.Errorf("NewStore: %v", err)
	}
}
