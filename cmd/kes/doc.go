// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Command kes is the KES key server and its command-line client.
//
// 'kes server' runs the server. The client commands (key, identity, policy,
// ls, status, log, metric) talk to a server over HTTPS with mTLS: the server
// address and the credentials come from the same environment variables
// minio/kes reads (KES_SERVER, KES_API_KEY, KES_CLIENT_KEY, KES_CLIENT_CERT
// and their MINIO_ variants). The offline commands (identity new/of, migrate,
// key rewrap, update) work without a server.
package main
