// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package backup reads and writes the backup file of 'kes backup' and
// 'kes restore'.
//
// A backup file is an age file (https://age-encryption.org/v1), encrypted
// to a passphrase or to age recipients. Its payload, format version 1, is
// UTF-8 text of newline-terminated lines:
//
//	kes-backup v1
//	{"created":"2025-01-02T03:04:05Z","keystore":"Filesystem: /var/kes","sealed":false,"config":"<base64>"}
//	{"name":"my-key","value":"<base64>"}
//	...
//	{"end":true,"keys":2}
//
// The first line names the format and its version. The second is the
// Header. Every further line but the last is one Entry: a key's name and
// its stored value exactly as the keystore holds it (all versions, state,
// usage and KMIP attributes are inside that value). If Header.Sealed is
// true, the values are sealed by the source's root key (HPCS or PKCS#11)
// and only a keystore sealed by the same root key can use them. The last
// line closes the file and counts the entries: a payload without it, or
// with another count, is truncated or damaged.
//
// A Reader enforces MaxLine on every line, MaxValueSize on every value,
// MaxConfigSize on the config and MaxEntries on the number of entries, so
// that a file made by someone else (anyone with an age recipient can make
// one) cannot exhaust memory.
package backup
