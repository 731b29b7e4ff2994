// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"sync"
)

// A fast path for the bodies of generate, decrypt and bulk decrypt,
// which every MinIO request carries. encoding/json spends more on them
// than the cipher does. The fast path reads only the common shape:
// an object whose keys are the handler's field names exactly as sent by
// kes-go and kms-go, each at most once, with string values made of
// base64 (and, for "version", plain ASCII) characters, no escapes, and
// JSON whitespace between the tokens. Whatever it does not recognise,
// it hands to encoding/json with the same bytes, so that what is
// accepted, what is rejected and with which error stays encoding/json's:
// the fast path never rejects anything itself. FuzzFastDecode checks
// that wherever the fast path decides, encoding/json decides the same.

// reqFields is one request object of the fast path: its fields in the
// order of fields, each set (or left nil) by parseFastObject.
type reqFields struct {
	vals [3][]byte
	set  [3]bool
}

// fastShape says which fields an object may have and which of them are
// base64 ([]byte) rather than strings.
type fastShape struct {
	names  []string
	binary []bool
}

var (
	generateShape = fastShape{names: []string{"context", "version"}, binary: []bool{true, false}}
	decryptShape  = fastShape{names: []string{"ciphertext", "context", "version"}, binary: []bool{true, true, false}}
	bulkShape     = fastShape{names: []string{"ciphertext", "context"}, binary: []bool{true, true}}
)

// Results of the fast parsers besides an index: the input is not of the
// fast shape, or it may be but is not complete yet.
const (
	notFast    = -1
	incomplete = -2
)

// maxFastReads is how many reads of a body the fast path looks at before
// it leaves the body to encoding/json. Each look parses the body from its
// start, so the bound keeps a body sent a byte at a time linear.
const maxFastReads = 4

// decodeFast decodes the request body with parse, and reports whether it
// did; otherwise encoding/json decoded it into v. parse (which reports the
// index after the value, notFast or incomplete). The body is read as it
// arrives, as encoding/json would read it: as soon as what has arrived
// is not of the fast shape, encoding/json decodes it and the rest of the
// body, so that a malformed body is answered when encoding/json would
// have answered it, not when the body ends. After the value, the rest of
// the body is read and dropped, as decode does.
func (c *call) decodeFast(v any, optional bool, parse func([]byte) int) (fast bool, err error) {
	bp := bodyBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBody {
			bodyBufs.Put(bp)
		}
	}()
	b := (*bp)[:0]
	var rerr error
	for range maxFastReads {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
			*bp = b
		}
		n, err := c.r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		switch st := parse(b); {
		case st >= 0:
			_, _ = io.Copy(io.Discard, c.r.Body)
			return true, nil
		case st == incomplete && err == nil:
			continue
		}
		rerr = err
		break
	}
	var r io.Reader = io.MultiReader(bytes.NewReader(b), c.r.Body)
	if rerr != nil {
		// The body's error, as encoding/json would have read it.
		r = io.MultiReader(bytes.NewReader(b), errReader{rerr})
	}
	err = json.NewDecoder(r).Decode(v)
	if err == nil {
		_, _ = io.Copy(io.Discard, c.r.Body)
	}
	if optional && errors.Is(err, io.EOF) {
		return false, nil
	}
	return false, err
}

// bodyBufs holds the buffers that request bodies of the fast path are
// read into: ciphertexts and contexts, never plaintext.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledBody is the largest buffer kept for reuse.
const maxPooledBody = 64 << 10

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// isSpace is JSON's whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// parseFastObject parses the object at b[i:] into f. It returns the
// index after the object, notFast or incomplete.
func parseFastObject(b []byte, i int, shape *fastShape, f *reqFields) int {
	if i = skipSpace(b, i); i >= len(b) {
		return incomplete
	}
	if b[i] != '{' {
		return notFast
	}
	if i = skipSpace(b, i+1); i >= len(b) {
		return incomplete
	}
	if b[i] == '}' {
		return i + 1
	}
	for {
		key, j := fastString(b, i, false)
		if j < 0 {
			return j
		}
		field := -1
		for k, n := range shape.names {
			if string(key) == n {
				field = k
				break
			}
		}
		// Other keys, other spellings (encoding/json matches names
		// without regard to case) and repeated keys: encoding/json's.
		if field < 0 || f.set[field] {
			return notFast
		}
		if i = skipSpace(b, j); i >= len(b) {
			return incomplete
		}
		if b[i] != ':' {
			return notFast
		}
		val, j := fastString(b, skipSpace(b, i+1), shape.binary[field])
		if j < 0 {
			return j
		}
		if shape.binary[field] {
			// As encoding/json decodes a []byte; "" is an empty, non-nil
			// slice.
			d := make([]byte, base64.StdEncoding.DecodedLen(len(val)))
			n, err := base64.StdEncoding.Decode(d, val)
			if err != nil {
				return notFast
			}
			val = d[:n]
		} else {
			val = bytes.Clone(val)
		}
		f.vals[field], f.set[field] = val, true
		if i = skipSpace(b, j); i >= len(b) {
			return incomplete
		}
		switch b[i] {
		case '}':
			return i + 1
		case ',':
			if i = skipSpace(b, i+1); i >= len(b) {
				return incomplete
			}
		default:
			return notFast
		}
	}
}

// fastString returns the contents of the string at b[i:] and the index
// after it; or notFast if it is no string of the fast path (base64
// characters only if binary, otherwise printable ASCII without '"' and
// '\'), or incomplete.
func fastString(b []byte, i int, binary bool) ([]byte, int) {
	if i >= len(b) {
		return nil, incomplete
	}
	if b[i] != '"' {
		return nil, notFast
	}
	start := i + 1
	for j := start; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			return b[start:j], j + 1
		case binary && !isBase64(c):
			return nil, notFast
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, notFast
		}
	}
	return nil, incomplete
}

func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}

// parseFastArray parses an array of at most max objects at b[0:] into fs
// (reset first). It returns the index after the array, notFast or
// incomplete.
func parseFastArray(b []byte, shape *fastShape, max int, fs *[]reqFields) int {
	*fs = (*fs)[:0]
	i := skipSpace(b, 0)
	if i >= len(b) {
		return incomplete
	}
	if b[i] != '[' {
		return notFast
	}
	if i = skipSpace(b, i+1); i >= len(b) {
		return incomplete
	}
	if b[i] == ']' {
		return i + 1
	}
	for {
		if len(*fs) >= max {
			// Too many for the fast path: encoding/json reads them, and
			// the handler answers as it always has.
			return notFast
		}
		*fs = append(*fs, reqFields{})
		if i = parseFastObject(b, i, shape, &(*fs)[len(*fs)-1]); i < 0 {
			return i
		}
		if i = skipSpace(b, i); i >= len(b) {
			return incomplete
		}
		switch b[i] {
		case ']':
			return i + 1
		case ',':
			i++
		default:
			return notFast
		}
	}
}
