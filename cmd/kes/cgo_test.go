// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package main

// haveCgo reports whether this test binary, and so its PKCS#11 driver,
// was built with cgo.
const haveCgo = true
