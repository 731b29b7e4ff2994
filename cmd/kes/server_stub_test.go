// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !kesedge

package main

import "github.com/rogpeppe/go-internal/testscript"

const haveServer = false

func cmdKESServer(ts *testscript.TestScript, neg bool, args []string) {
	ts.Fatalf("the server is not part of this build")
}
