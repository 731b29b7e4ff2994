// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import "bytes"

// parseRecordHeader decodes b into rec when b has exactly the shape that
// object.meta writes with encoding/json:
//
//	{"v":N,"type":N[,"alg":N][,"len":N][,"secretType":N][,"opaqueType":N][,"format":N][,"attrs":"BASE64"]}
//
// where each N is a decimal without sign, leading zeros or exponent that
// fits its field, and BASE64 uses only the standard alphabet. It reports
// false for anything else, and the caller then decodes b with
// encoding/json; on every input where it reports true, encoding/json
// accepts b and decodes the same values (FuzzParseRecordHeader). A Get
// needs only these few numbers, and encoding/json's scanner spent most of
// its time walking the attributes string, several times longer than the
// rest of the record.
func parseRecordHeader(b []byte, rec *recordHeader) bool {
	p := recordParser{b: b}
	if !p.lit(`{"v":`) {
		return false
	}
	if _, ok := p.num(1<<31 - 1); !ok {
		return false
	}
	if !p.lit(`,"type":`) {
		return false
	}
	var out recordHeader
	typ, ok := p.num(1<<32 - 1)
	if !ok {
		return false
	}
	out.Type = uint32(typ)
	// The optional fields, in the order of the struct (encoding/json
	// writes them so); each appears at most once.
	for i, name := range [...]string{`,"alg":`, `,"len":`, `,"secretType":`, `,"opaqueType":`, `,"format":`} {
		if !p.lit(name) {
			continue
		}
		limit := uint64(1<<32 - 1)
		if i == 1 {
			limit = 1<<31 - 1 // Length is an int32
		}
		v, ok := p.num(limit)
		if !ok {
			return false
		}
		switch i {
		case 0:
			out.Algorithm = uint32(v)
		case 1:
			out.Length = int32(v)
		case 2:
			out.SecretType = uint32(v)
		case 3:
			out.OpaqueType = uint32(v)
		case 4:
			out.Format = uint32(v)
		}
	}
	if p.lit(`,"attrs":"`) {
		start := p.i - 1
		end := bytes.IndexByte(b[p.i:], '"')
		if end < 0 {
			return false
		}
		for _, c := range b[p.i : p.i+end] {
			if !isBase64Std(c) {
				return false
			}
		}
		p.i += end + 1
		out.Attributes = b[start:p.i]
	}
	if !p.lit("}") || p.i != len(b) {
		return false
	}
	*rec = out
	return true
}

// recordParser is the read position in a record.
type recordParser struct {
	b []byte
	i int
}

// lit consumes s if the input continues with it.
func (p *recordParser) lit(s string) bool {
	if !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		return false
	}
	p.i += len(s)
	return true
}

// num consumes a decimal of at most max: digits without a leading zero
// (but "0"), not followed by a fraction or exponent.
func (p *recordParser) num(max uint64) (uint64, bool) {
	start := p.i
	var v uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		if p.i-start >= 10 { // more digits than any field holds
			return 0, false
		}
		v = v*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	n := p.i - start
	if n == 0 || n > 1 && p.b[start] == '0' || v > max {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	return v, true
}

// isBase64Std reports whether c is in the standard base64 alphabet or is
// its padding.
func isBase64Std(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
}
