// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build unix

package crypto

import "golang.org/x/sys/unix"

// canLock reports whether n more bytes can be locked right now, by locking
// (and releasing) a probe mapping of that size.
func canLock(n int) bool {
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return false
	}
	defer unix.Munmap(mem)
	if err := unix.Mlock(mem); err != nil {
		return false
	}
	unix.Munlock(mem)
	return true
}
