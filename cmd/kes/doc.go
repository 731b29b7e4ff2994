// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Command kes is the KES key server and its command-line client.
//
// 'kes server' runs the server. The client commands (key, identity info
// and ls, policy, ls, status, log, metric) talk to a server over HTTPS
// with mutual TLS: the server address and the credentials come from the
// environment variables minio/kes reads, in the same order (MINIO_KES_*,
// then KES_*, then MinIO's MINIO_KMS_KES_*). The offline commands work
// without a server: 'identity' and 'identity new' create API keys and
// certificates, 'migrate' copies keys between the keystores of two config
// files, 'key rewrap' re-wraps a sealed keystore under its newest root key
// version, 'update' installs a minisign-verified binary, 'kmip' manages the
// KMIP bridge's certificates and 'dev' starts keystore emulators.
//
// Errors print "kes: error: <message>" on stderr and exit with 1; command
// line mistakes and help exit with 2.
package main
