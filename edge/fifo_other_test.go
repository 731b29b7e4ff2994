// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !unix

package edge

import "errors"

func mkfifo(string) error { return errors.New("no FIFOs on this system") }
