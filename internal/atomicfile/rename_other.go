// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !linux

package atomicfile

import "errors"

// noRenameNoReplace: there is no such rename here, Create links instead.
func noRenameNoReplace(_, _ string) error { return errors.ErrUnsupported }

// renameNoReplace is a variable so that tests can take the link path.
var renameNoReplace = noRenameNoReplace
