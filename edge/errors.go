// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
)

// apiError is an answer whose status and text are decided already.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func newError(code int, msg string) error { return &apiError{code: code, msg: msg} }

// Answers that several handlers give.
var (
	errPolicyNotFound  = newError(http.StatusNotFound, "policy does not exist")
	errIdentityMissing = newError(http.StatusNotFound, "identity does not exist")
)

// op is what a handler was doing, for the text of keystore failures
// (minio/kes answers "failed to read key", "failed to create key", ...).
type op string

const (
	opRead   op = "failed to read key"
	opCreate op = "failed to create key"
	opDelete op = "failed to delete key"
	opList   op = "failed to list keys"
)

// wireError maps an error to its status code and message on the wire.
// It is the one place where the HTTP API decides what a failure looks
// like; no error text from inside the process reaches a client unless it
// is listed here.
func wireError(err error, o op) (int, string) {
	var (
		api         *apiError
		unreachable *keystore.UnreachableError
		unavailable *keystore.UnavailableError
		maxBytes    *http.MaxBytesError
		tooLarge    *keys.LimitError
		usage       *keys.UsageError
	)
	switch {
	case errors.As(err, &api):
		return api.code, api.msg
	case errors.Is(err, keys.ErrKeyNotFound):
		return http.StatusNotFound, "key does not exist"
	case errors.Is(err, keys.ErrKeyExists):
		return http.StatusBadRequest, "key already exists"
	case errors.Is(err, crypto.ErrDecrypt):
		return http.StatusBadRequest, crypto.ErrDecrypt.Error()
	case errors.Is(err, policy.ErrNotAllowed):
		return http.StatusForbidden, policy.ErrNotAllowed.Error()
	case errors.Is(err, keys.ErrHMACNotSupported):
		return http.StatusConflict, "key does not support HMAC"
	case errors.Is(err, keys.ErrNotActive):
		return http.StatusConflict, "key is not active"
	case errors.Is(err, keys.ErrActiveKMIPKey):
		return http.StatusConflict, keys.ErrActiveKMIPKey.Error()
	case errors.Is(err, keys.ErrNotRotatable):
		return http.StatusConflict, keys.ErrNotRotatable.Error()
	case errors.Is(err, keys.ErrNotEncryptionKey):
		return http.StatusConflict, "key is not a 256-bit encryption key"
	case errors.As(err, &usage):
		// A KMIP client made the key for other uses (its usage mask).
		return http.StatusForbidden, usage.Error()
	case errors.Is(err, identity.ErrNoTLS),
		errors.Is(err, identity.ErrNoCertificate):
		return http.StatusBadRequest, err.Error()
	case errors.As(err, &maxBytes):
		return http.StatusBadRequest, "invalid request body"
	case errors.As(err, &tooLarge):
		// The client asked for more than a key may hold; the key is
		// unchanged. The message names the limit, never a value.
		return http.StatusBadRequest, "key is too large: " + tooLarge.Error()
	case errors.Is(err, keystore.ErrValueTooLarge):
		return http.StatusBadRequest, "key is too large for the key store"
	case errors.Is(err, keys.ErrKeyBusy):
		// Another node holds the key's lease (or ours ran out): the
		// change was not made and may simply be sent again.
		return http.StatusServiceUnavailable, "key is busy: another node is changing it, try again"
	case errors.Is(err, keystore.ErrNotConnected) && errors.As(err, &unavailable):
		// Not yet connected since start: the server will be, with no
		// operator action, so clients should retry.
		return http.StatusServiceUnavailable, "key store is unavailable: " + unavailable.Reason
	case errors.As(err, &unavailable):
		return http.StatusBadGateway, unavailable.Reason
	case errors.As(err, &unreachable) && unreachable.Reason != "":
		return http.StatusServiceUnavailable, unreachable.Reason
	case errors.As(err, &unreachable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, string(o)
	default:
		return http.StatusBadGateway, string(o)
	}
}

// writeError sends {"message":"..."} exactly as minio/kes does: the
// message is JSON-encoded with a trailing newline before the closing
// brace, and the length is explicit.
func writeError(w http.ResponseWriter, code int, msg string) {
	var b bytes.Buffer
	b.WriteString(`{"message":`)
	json.NewEncoder(&b).Encode(msg) // a string always encodes
	b.WriteString("}")
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// writeJSON sends a 200 with v encoded by json.Encoder. The encoded
// body is wiped once written: it may hold plaintext keys.
func writeJSON(w http.ResponseWriter, v any) {
	var b bytes.Buffer
	defer func() { clear(b.Bytes()) }()
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, "failed to encode response")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
}

// writeOK sends a 200 with an empty body.
func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// The answers of generate, decrypt and bulk decrypt are built by hand:
// they are the hot path of the server, and encoding/json's reflection
// costs more than the rest of the handler. The bytes are exactly what
// json.Encoder writes for the same structs: base64 with padding, null
// for a nil slice, a newline at the end.

// appendBytesField appends "name":value, value as encoding/json encodes
// a []byte.
func appendBytesField(b []byte, name string, v []byte) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// bytesFieldSize bounds what appendBytesField appends.
func bytesFieldSize(name string, v []byte) int {
	if v == nil {
		return len(name) + 7 // "name":null
	}
	return len(name) + 5 + base64.StdEncoding.EncodedLen(len(v))
}

// jsonType is the Content-Type header value of writeBody's answers, one
// slice for all of them: what Header.Set would allocate per answer. It is
// never written to; its capacity is its length, so an Add appends to a
// copy.
var jsonType = []string{"application/json"}[:1:1]

// lengths holds the Content-Length values of writeBody's answers below
// 1 KiB, each made once: the answers of generate, decrypt and bulk
// decrypt come in a few lengths, and a value made per answer is two
// allocations. Like jsonType, a value is never written to.
var lengths [1024]atomic.Pointer[[]string]

// contentLength returns the Content-Length header value for n bytes.
func contentLength(n int) []string {
	if n < 0 || n >= len(lengths) {
		return []string{strconv.Itoa(n)}
	}
	if v := lengths[n].Load(); v != nil {
		return *v
	}
	v := []string{strconv.Itoa(n)}[:1:1]
	lengths[n].Store(&v)
	return v
}

// writeBody sends a 200 with the JSON body b and wipes b: it may hold
// plaintext keys.
func writeBody(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = contentLength(len(b))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	clear(b)
}
