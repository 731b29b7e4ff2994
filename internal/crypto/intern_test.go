// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"testing"
	"unsafe"
)

// Two keys made by one identity hold one copy of its name: a cache of
// 100,000 keys made by one client holds one, not 100,000. The stored key
// is the one of TestStoredKeyVector (reference §5.7, written by
// minio/kes).
func TestCreatedByShared(t *testing.T) {
	const stored = "CiQKIMQrD3aHBH2z7EPmvKqcP8MKwQTDeUQkn+TfEyotvhMTEAESJAogMhSywaBOkm+8jk7gaYADYYZmgSERzq/UPTxkOlXQ9wYQARoMCOKakdgGEJ7Br/ECIkA3OTA1YjkzOGIxNzA3ODM3MmNiNjE4OTMzOTEwMzY1ODBjMjkzMzQ5OTU2NDk2MGYxMjU3NTNiMjI3ZGFlNGY0"
	a, err := ParseKeyVersion([]byte(stored))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Destroy()
	b, err := ParseKeyVersion([]byte(stored))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Destroy()
	if a.CreatedBy != b.CreatedBy || a.CreatedBy == "" {
		t.Fatalf("created_by %q and %q", a.CreatedBy, b.CreatedBy)
	}
	if unsafe.StringData(a.CreatedBy) != unsafe.StringData(b.CreatedBy) {
		t.Fatal("two keys of one creator hold two copies of its identity")
	}
}
