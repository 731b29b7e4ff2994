// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package gcpace paces the garbage collector of the server process.
//
// A key server keeps a small live heap (a few megabytes without many
// keys) and allocates a few kilobytes per request, all of it garbage once
// the answer is written. With the runtime's default GOGC of 100 the heap
// may grow only by its live size between collections, so a small heap is
// collected hundreds of times a second under load, and the collector's
// fixed costs become a large share of each request's CPU. Run gives the
// heap at least MinHeadroom of room before the next collection instead:
// a heap of 8 MB is collected at 40 MB, not 16 MB. A heap of MinHeadroom
// or more keeps GOGC 100, so a large heap (100,000 cached keys) grows
// exactly as before, and the peak heap added is at most MinHeadroom.
//
// An operator who sets GOGC or GOMEMLIMIT in the environment decides
// alone: Run then changes nothing.
package gcpace
