// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"encoding/binary"

	"github.com/ovh/kmip-go/ttlv"
)

// The KMIP 2.x translation works on a TTLV tree rather than on the
// library's types: the library knows only the 1.x shapes, and a tree lets
// one table-driven rewrite serve every operation, including ones whose
// handlers know nothing of 2.x.

// typeDateTimeExtended is the KMIP 2.0 Date-Time Extended type:
// microseconds since the epoch, 8 bytes.
const typeDateTimeExtended ttlv.Type = 0x0B

// maxV2Items bounds the number of items one message's tree may have, so
// that a message of many tiny items cannot make the translation allocate
// far more than the message itself (each item is at least 8 bytes, the
// bound only matters if the message limit is raised a lot).
const maxV2Items = 200_000

// tnode is one TTLV item. A structure has children and no value; any
// other item keeps its value bytes without padding.
type tnode struct {
	tag  uint32
	typ  ttlv.Type
	val  []byte
	kids []*tnode
}

// parseTree parses one TTLV item filling b. It checks the framing as
// checkTTLV does, and accepts Date-Time Extended as well.
func parseTree(b []byte) (*tnode, error) {
	count := 0
	nodes, err := parseItems(b, 0, &count)
	if err != nil {
		return nil, err
	}
	if len(nodes) != 1 {
		return nil, errMalformed
	}
	return nodes[0], nil
}

func parseItems(b []byte, depth int, count *int) ([]*tnode, error) {
	if depth > maxDepth {
		return nil, errMalformed
	}
	var out []*tnode
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, errMalformed
		}
		*count++
		if *count > maxV2Items {
			return nil, errMalformed
		}
		n := &tnode{
			tag: uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
			typ: ttlv.Type(b[3]),
		}
		l := int(binary.BigEndian.Uint32(b[4:8]))
		size := 8 + (l+7)/8*8
		if l < 0 || size > len(b) || size < 8 {
			return nil, errMalformed
		}
		v := b[8 : 8+l]
		switch n.typ {
		case ttlv.TypeStructure:
			if l%8 != 0 {
				return nil, errMalformed
			}
			kids, err := parseItems(v, depth+1, count)
			if err != nil {
				return nil, err
			}
			n.kids = kids
		case ttlv.TypeInteger, ttlv.TypeEnumeration, ttlv.TypeInterval:
			if l != 4 {
				return nil, errMalformed
			}
			n.val = v
		case ttlv.TypeLongInteger, ttlv.TypeBoolean, ttlv.TypeDateTime, typeDateTimeExtended:
			if l != 8 {
				return nil, errMalformed
			}
			n.val = v
		case ttlv.TypeBigInteger:
			if l%8 != 0 {
				return nil, errMalformed
			}
			n.val = v
		case ttlv.TypeTextString, ttlv.TypeByteString:
			n.val = v
		default:
			return nil, errMalformed
		}
		out = append(out, n)
		b = b[size:]
	}
	return out, nil
}

// size is the encoded size of n, padding included.
func (n *tnode) size() int {
	if n.typ != ttlv.TypeStructure {
		return 8 + (len(n.val)+7)/8*8
	}
	s := 8
	for _, k := range n.kids {
		s += k.size()
	}
	return s
}

// encode appends the encoding of n to b.
func (n *tnode) encode(b []byte) []byte {
	b = append(b, byte(n.tag>>16), byte(n.tag>>8), byte(n.tag), byte(n.typ))
	if n.typ == ttlv.TypeStructure {
		b = binary.BigEndian.AppendUint32(b, uint32(n.size()-8))
		for _, k := range n.kids {
			b = k.encode(b)
		}
		return b
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(n.val)))
	b = append(b, n.val...)
	for range (8 - len(n.val)%8) % 8 {
		b = append(b, 0)
	}
	return b
}

// bytes returns the encoding of n.
func (n *tnode) bytes() []byte { return n.encode(make([]byte, 0, n.size())) }

// child returns the first child with tag, or nil.
func (n *tnode) child(tag uint32) *tnode {
	for _, k := range n.kids {
		if k.tag == tag {
			return k
		}
	}
	return nil
}

// text returns a Text String's value, or "" for any other type.
func (n *tnode) text() string {
	if n == nil || n.typ != ttlv.TypeTextString {
		return ""
	}
	return string(n.val)
}

// u32 returns the value of an Integer, Enumeration or Interval.
func (n *tnode) u32() uint32 { return binary.BigEndian.Uint32(n.val) }

// i64 returns the value of a Long Integer, Date-Time or Date-Time
// Extended.
func (n *tnode) i64() int64 { return int64(binary.BigEndian.Uint64(n.val)) }

func textNode(tag uint32, s string) *tnode {
	return &tnode{tag: tag, typ: ttlv.TypeTextString, val: []byte(s)}
}

func enumNode(tag, v uint32) *tnode {
	return &tnode{tag: tag, typ: ttlv.TypeEnumeration, val: binary.BigEndian.AppendUint32(nil, v)}
}

func structNode(tag uint32, kids ...*tnode) *tnode {
	return &tnode{tag: tag, typ: ttlv.TypeStructure, kids: kids}
}
