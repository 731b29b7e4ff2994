// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package edge is the key server: it reads and validates the server
// config file, builds the TLS setup, serves the KES v1 HTTP API over
// mutual TLS, authenticates and authorises every request, streams audit
// and error logs, exposes Prometheus metrics, reloads everything on
// SIGHUP and starts the KMIP bridge beside the HTTP API.
//
// Every client of minio/kes (MinIO, the kes CLI, kes-go and kms-go/kes)
// works against it unchanged. Where minio/kes has known bugs (log streams
// that deliver nothing, self-describe for non-admins, trailing '*' list
// patterns, the cache default, units on the wire) this package does what
// the clients expect instead.
package edge
