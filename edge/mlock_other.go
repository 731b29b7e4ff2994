// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !linux

package edge

import (
	"errors"
	"runtime"
)

func mlockall() error {
	return errors.New("memory locking (mlock) is not supported on " + runtime.GOOS)
}
