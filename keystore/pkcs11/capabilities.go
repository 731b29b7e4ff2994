// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package pkcs11

// maxRecord bounds what the Store keeps per key: a token object's
// CKA_VALUE (sequence number and sealed value) or a blob file.
//
// PKCS#11 itself gives CKA_VALUE no limit (its length is a CK_ULONG), but
// tokens have limits of their own, and small storage; and every value is
// sealed by one single-part C_Encrypt inside the token, whose input size
// HSMs limit too. 64 KiB (keystore.DefaultMaxValueSize) is the size that
// every driver holds; a stored KES key is a few hundred bytes.
const maxRecord = 64 << 10

// MaxValueSize is the largest value the Store writes: maxRecord less the
// 8-byte sequence number of a token object and the sealing overhead
// (version byte, 12-byte IV, 16-byte tag), 65,499 bytes. The directory
// store keeps the same limit, which the token's C_Encrypt sets.
const MaxValueSize = maxRecord - recordSeq - blobMinSize

// MaxSealOverhead reports the bytes Seal adds to a plaintext: the
// version byte, the IV and the GCM tag.
func (*Sealer) MaxSealOverhead() int { return blobMinSize }
