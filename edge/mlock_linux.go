// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// mlockall locks all current and future memory of the process, so that
// no key material is ever written to swap.
func mlockall() error {
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE); err != nil {
		return fmt.Errorf("failed to lock memory (mlock): %w: run as root or: sudo setcap cap_ipc_lock=+ep $(which kes)", err)
	}
	return nil
}
