// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package policy decides whether an identity may make a request: KES
// policies are lists of allowed and denied request paths, where a
// trailing '*' matches any suffix and any matching deny wins. The admin
// identity bypasses policies. It uses the standard library only.
package policy
