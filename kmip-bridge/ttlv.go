// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"encoding/binary"
	"errors"

	"github.com/ovh/kmip-go/ttlv"
)

// maxDepth bounds the nesting of structures in a request; real messages
// use fewer than ten levels.
const maxDepth = 32

var errMalformed = errors.New("kmip: malformed TTLV")

// checkTTLV verifies the framing of a TTLV message before it reaches the
// decoder: every item has a known type, a length valid for that type and
// fits into its structure, and structures are not nested too deeply. The
// decoder then never reads out of bounds, whatever the input.
func checkTTLV(b []byte) error {
	n, err := checkItems(b, 0)
	if err != nil {
		return err
	}
	if n != 1 {
		return errMalformed
	}
	return nil
}

// checkItems checks a sequence of items filling b and returns how many
// there are.
func checkItems(b []byte, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errMalformed
	}
	count := 0
	for len(b) > 0 {
		if len(b) < 8 {
			return 0, errMalformed
		}
		typ := ttlv.Type(b[3])
		l := int(binary.BigEndian.Uint32(b[4:8]))
		size := 8 + (l+7)/8*8
		if l < 0 || size > len(b) || size < 8 {
			return 0, errMalformed
		}
		switch typ {
		case ttlv.TypeStructure:
			if l%8 != 0 {
				return 0, errMalformed
			}
			if _, err := checkItems(b[8:8+l], depth+1); err != nil {
				return 0, err
			}
		case ttlv.TypeInteger, ttlv.TypeEnumeration, ttlv.TypeInterval:
			if l != 4 {
				return 0, errMalformed
			}
		case ttlv.TypeLongInteger, ttlv.TypeBoolean, ttlv.TypeDateTime:
			if l != 8 {
				return 0, errMalformed
			}
		case ttlv.TypeBigInteger:
			if l%8 != 0 {
				return 0, errMalformed
			}
		case ttlv.TypeTextString, ttlv.TypeByteString:
		default:
			return 0, errMalformed
		}
		b = b[size:]
		count++
	}
	return count, nil
}
