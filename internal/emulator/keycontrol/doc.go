// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package keycontrol is a strict emulator of the Entrust KeyControl Vault
// for Secrets (PASM Vault) REST API, for tests, demos and fault injection.
//
// It serves the vault actions the keycontrol keystore driver uses (Login,
// Renew, GetBox, CreateSecret, CheckoutSecret, PutSecretValue,
// DeleteSecret, ListSecretIds) over real TLS with a certificate generated
// in memory, and answers with the statuses and error texts that the
// public sources document. Where no public source states the behaviour of
// the real product, the code says so in a comment starting with
// "Assumed:"; tests must not treat those answers as facts about
// KeyControl.
//
// Fault switches (SetLatency, FailNext, ResetNext, DropResponseNext,
// RevokeTokens, SetDown) can be flipped at any time from any goroutine, so
// tests can simulate slow, flaky, rebooting or unreachable servers while a
// client is running.
//
// The emulator keeps everything in memory and is not a key store for
// production use.
package keycontrol
