// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package emutls makes the throw-away TLS certificates the emulators
// serve with: a CA and a server certificate it issued, so that clients
// trust the emulator through a CA file the way they trust a real
// backend, not by pinning the leaf.
package emutls
