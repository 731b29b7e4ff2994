// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package identity computes who a client is: the SHA-256 of the public
// key of the first certificate it sent in the TLS handshake, the one whose
// key it proved to hold, the same way over HTTPS and KMIP. API keys
// ("kes:v1:") are Ed25519 keys whose self-signed certificate gives the
// identity.
package identity
