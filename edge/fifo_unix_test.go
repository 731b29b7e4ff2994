// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build unix

package edge

import "syscall"

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }
