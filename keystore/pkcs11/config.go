// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package pkcs11

import (
	"errors"
	"log/slog"

	"github.com/kesbridge/kes/keystore"
)

// Application is the CKA_APPLICATION of every data object the store
// creates. Objects with another application on the same token are left
// alone and never listed.
const Application = "kesbridge/kes keystore v1"

// ErrNotAuthentic is returned (wrapped) by Unseal and Get when a sealed
// value was modified, belongs to another key name or was sealed under
// another root key.
var ErrNotAuthentic = errors.New("pkcs11: sealed value is not authentic")

// Config selects a token, the root key on it, and where sealed values go.
// The zero value is not usable: Module, TokenLabel, PIN and RootKeyLabel
// are required.
type Config struct {
	// Module is the path of the vendor's PKCS#11 library, for example
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string

	// TokenLabel selects the token by its label. Slot numbers are not
	// used: they change when tokens are added or re-initialised.
	TokenLabel string

	// PIN is the user PIN. It is never logged or put into errors; its
	// type keeps it out of printed configs too.
	PIN keystore.Secret

	// RootKeyLabel is the CKA_LABEL of the AES-256 root key.
	RootKeyLabel string

	// PreviousRootKeyLabels are the CKA_LABELs of root keys that sealed
	// values before RootKeyLabel did, newest first: rotating the root key
	// means creating a new one on the token, making it RootKeyLabel and
	// listing the old one here. A value that the root key does not open is
	// tried with each of them; Unseal then returns it resealed under the
	// root key, and Reseal re-encrypts it (kes key rewrap), after which
	// the old key can be removed from the list and the token. A label
	// that is not on the token is skipped. Nil (the default) means the
	// root key has always been RootKeyLabel.
	PreviousRootKeyLabels []string

	// CreateRootKey generates a non-extractable AES-256 root key with
	// RootKeyLabel when the token has none. False (the default) makes a
	// missing root key an error.
	CreateRootKey bool

	// Dir, when not empty, is a directory that holds the sealed values as
	// one file per key instead of data objects on the token. Only NewStore
	// uses it; it is created (0700) if missing.
	Dir string

	// PoolSize is the maximum number of sessions open at once. Zero means
	// 4.
	PoolSize int

	// Logger receives recoveries and cleanup failures; nil discards them.
	Logger *slog.Logger
}
