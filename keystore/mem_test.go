// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystore_test

import (
	"testing"

	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/keystore/keystoretest"
)

func TestMemConformance(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		s := keystore.NewMem()
		t.Cleanup(func() { s.Close() })
		return s
	}, keystoretest.Options{ManyKeys: 1100})
}

func TestSealedStore(t *testing.T) {
	keystoretest.RunSealer(t, keystoretest.NewSoftSealer())
}
