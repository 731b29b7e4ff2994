// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import "github.com/kesbridge/kes/internal/crypto"

// lockMemory applies mlock and mlockall. Key material always lives in
// locked memory where the system allows it (internal/crypto); mlock: true
// makes that a promise: start-up fails if memory cannot be locked,
// instead of falling back to ordinary memory. It does not lock the rest
// of the heap: with 100,000 cached keys that would pin every heap page
// and goroutine stack the process ever touched (over 300 MB instead of
// about 140 MB), to protect memory that holds no keys. An operator who
// wants that anyway asks for mlockall: true.
func lockMemory(keys, all bool) error {
	if all {
		return mlockall()
	}
	if keys {
		return crypto.CheckLocking()
	}
	return nil
}
