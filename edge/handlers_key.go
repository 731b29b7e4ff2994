// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
)

// maxBulkItems is the most ciphertexts one bulk decrypt may carry.
const maxBulkItems = 1000

// keyName returns the resource as a key name, or answers 400.
func (c *call) keyName() (string, bool) {
	if !policy.ValidName(c.resource) {
		writeError(c.w, http.StatusBadRequest, fmt.Sprintf("key name '%s' is empty, too long or contains invalid characters", c.resource))
		return "", false
	}
	return c.resource, true
}

// listPrefix returns the list pattern as a prefix: "" and "*" list all,
// and a trailing '*' is dropped ("my*" lists the names starting with "my").
func (c *call) listPrefix() (string, bool) {
	if !policy.ValidPattern(c.resource) {
		writeError(c.w, http.StatusBadRequest, fmt.Sprintf("listing pattern '%s' is empty, too long or is invalid", c.resource))
		return "", false
	}
	return strings.TrimSuffix(c.resource, "*"), true
}

// decode reads the JSON request body into v. An empty body is an error
// unless optional. The rest of the body is read too (within the route's
// body limit and deadline): the JSON decoder stops at the end of the
// value, and a chunked body whose end was never seen would otherwise
// count as unread and cost the client its keep-alive connection.
func (c *call) decode(v any, optional bool) error {
	err := json.NewDecoder(c.r.Body).Decode(v)
	if err == nil {
		_, _ = io.Copy(io.Discard, c.r.Body)
	}
	if optional && errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func (c *call) createKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	if err := c.st.keys.Create(c.r.Context(), name, string(c.identity)); err != nil {
		c.fail(err, opCreate)
		return
	}
	c.auditMsg = fmt.Sprintf("secret key '%s' created", name)
	writeOK(c.w)
}

func (c *call) importKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	var req struct {
		Key    []byte `json:"key"`
		Cipher string `json:"cipher"`
	}
	if err := c.decode(&req, false); err != nil {
		writeError(c.w, http.StatusBadRequest, "invalid import key request body")
		return
	}
	defer clear(req.Key)
	typ := crypto.AES256 // the kes CLI sends the zero value
	if req.Cipher == "" {
		req.Cipher = typ.String()
	} else {
		t, err := crypto.ParseKeyType(req.Cipher)
		if err != nil {
			writeError(c.w, http.StatusNotAcceptable, fmt.Sprintf("algorithm '%s' is not supported", req.Cipher))
			return
		}
		typ = t
	}
	if len(req.Key) != crypto.KeySize {
		writeError(c.w, http.StatusNotAcceptable, fmt.Sprintf("invalid key size for '%s'", req.Cipher))
		return
	}
	if err := c.st.keys.Import(c.r.Context(), name, typ, req.Key, string(c.identity)); err != nil {
		if errors.Is(err, keys.ErrInvalidKey) {
			writeError(c.w, http.StatusNotAcceptable, fmt.Sprintf("invalid key size for '%s'", req.Cipher))
			return
		}
		c.fail(err, opCreate)
		return
	}
	c.auditMsg = fmt.Sprintf("secret key '%s' created", name)
	writeOK(c.w)
}

func (c *call) describeKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	info, err := c.st.keys.Describe(c.r.Context(), name)
	if err != nil {
		c.fail(err, opRead)
		return
	}
	var resp struct {
		Name      string    `json:"name"`
		Algorithm string    `json:"algorithm,omitempty"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by,omitempty"`
		// Version is the current version; kes-go and kms-go ignore it.
		Version string `json:"version"`
		usageJSON
	}
	resp.usageJSON = usageOf(info)
	resp.Name, resp.CreatedAt, resp.CreatedBy = info.Name, info.CreatedAt, info.CreatedBy
	resp.Version = strconv.FormatUint(uint64(info.Version), 10)
	if info.Algorithm != 0 {
		resp.Algorithm = info.Algorithm.String()
	}
	writeJSON(c.w, resp)
}

func (c *call) listKeys() {
	prefix, ok := c.listPrefix()
	if !ok {
		return
	}
	names, err := c.st.keys.List(c.r.Context(), prefix)
	if err != nil {
		c.fail(err, opList)
		return
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(c.w, struct {
		Names      []string `json:"names"`
		ContinueAt string   `json:"continue_at,omitempty"`
	}{Names: names})
}

func (c *call) deleteKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	if err := c.st.keys.Delete(c.r.Context(), name); err != nil {
		c.fail(err, opDelete)
		return
	}
	c.auditMsg = fmt.Sprintf("secret key '%s' deleted", name)
	writeOK(c.w)
}

func (c *call) generateKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	var req struct {
		Context []byte `json:"context"`
		Version string `json:"version"`
	}
	// The body is optional: minio/kes reads it only if there is one.
	if c.r.ContentLength != 0 {
		var f reqFields
		fast, err := c.decodeFast(&req, true, func(b []byte) int {
			f = reqFields{}
			return parseFastObject(b, 0, &generateShape, &f)
		})
		if err != nil {
			writeError(c.w, http.StatusBadRequest, "invalid request body")
			return
		}
		if fast {
			req.Context, req.Version = f.vals[0], string(f.vals[1])
		}
	}
	if name, ok = c.versioned(name, req.Version); !ok {
		return
	}
	plaintext, ciphertext, err := c.st.keys.Generate(c.r.Context(), name, req.Context)
	if err != nil {
		c.fail(versionError(err), opRead)
		return
	}
	defer clear(plaintext)
	version := ciphertextVersion(ciphertext)
	b := make([]byte, 0, 20+len(version)+bytesFieldSize("plaintext", plaintext)+bytesFieldSize("ciphertext", ciphertext))
	b = append(b, '{')
	b = appendBytesField(b, "plaintext", plaintext)
	b = append(b, ',')
	b = appendBytesField(b, "ciphertext", ciphertext)
	// The version is decimal digits: nothing to escape.
	b = append(b, `,"version":"`...)
	b = append(b, version...)
	writeBody(c.w, append(b, "\"}\n"...))
}

func (c *call) encryptKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	var req struct {
		Plaintext []byte `json:"plaintext"`
		Context   []byte `json:"context"`
		Version   string `json:"version"`
	}
	if err := c.decode(&req, false); err != nil {
		writeError(c.w, http.StatusBadRequest, "invalid request body")
		return
	}
	defer clear(req.Plaintext)
	if name, ok = c.versioned(name, req.Version); !ok {
		return
	}
	ciphertext, err := c.st.keys.Encrypt(c.r.Context(), name, req.Plaintext, req.Context)
	if err != nil {
		c.fail(versionError(err), opRead)
		return
	}
	writeJSON(c.w, struct {
		Ciphertext []byte `json:"ciphertext"`
		Version    string `json:"version,omitempty"`
	}{ciphertext, ciphertextVersion(ciphertext)})
}

func (c *call) decryptKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	var req struct {
		Ciphertext []byte `json:"ciphertext"`
		Context    []byte `json:"context"`
		Version    string `json:"version"`
	}
	var f reqFields
	fast, err := c.decodeFast(&req, false, func(b []byte) int {
		f = reqFields{}
		return parseFastObject(b, 0, &decryptShape, &f)
	})
	if err != nil {
		writeError(c.w, http.StatusBadRequest, "invalid request body")
		return
	}
	if fast {
		req.Ciphertext, req.Context, req.Version = f.vals[0], f.vals[1], string(f.vals[2])
	}
	if name, ok = c.versioned(name, req.Version); !ok {
		return
	}
	plaintext, err := c.st.keys.Decrypt(c.r.Context(), name, req.Ciphertext, req.Context)
	if err != nil {
		c.fail(versionError(err), opRead)
		return
	}
	defer clear(plaintext)
	b := make([]byte, 0, 3+bytesFieldSize("plaintext", plaintext))
	b = append(b, '{')
	b = appendBytesField(b, "plaintext", plaintext)
	writeBody(c.w, append(b, "}\n"...))
}

// bulkDecrypt is the kes-go v0.2 bulk API: a JSON array of
// {ciphertext, context} in, an array of {plaintext} out, in order.
func (c *call) bulkDecrypt() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	var req []struct {
		Ciphertext []byte `json:"ciphertext"`
		Context    []byte `json:"context"`
	}
	var fs []reqFields
	fast, err := c.decodeFast(&req, false, func(b []byte) int {
		return parseFastArray(b, &bulkShape, maxBulkItems, &fs)
	})
	if err != nil {
		writeError(c.w, http.StatusBadRequest, "invalid request body")
		return
	}
	if fast {
		req = make([]struct {
			Ciphertext []byte `json:"ciphertext"`
			Context    []byte `json:"context"`
		}, len(fs))
		for i, f := range fs {
			req[i].Ciphertext, req[i].Context = f.vals[0], f.vals[1]
		}
	}
	if len(req) > maxBulkItems {
		writeError(c.w, http.StatusBadRequest, fmt.Sprintf("too many ciphertexts: at most %d per request", maxBulkItems))
		return
	}
	resp := make([][]byte, 0, len(req))
	defer func() {
		for _, p := range resp {
			clear(p)
		}
	}()
	size := 3
	for _, r := range req {
		p, err := c.st.keys.Decrypt(c.r.Context(), name, r.Ciphertext, r.Context)
		if err != nil {
			c.fail(err, opRead)
			return
		}
		resp = append(resp, p)
		size += 3 + bytesFieldSize("plaintext", p)
	}
	// [{"plaintext":...},...]
	b := make([]byte, 0, size)
	b = append(b, '[')
	for i, p := range resp {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendBytesField(b, "plaintext", p)
		b = append(b, '}')
	}
	writeBody(c.w, append(b, "]\n"...))
}

func (c *call) hmacKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	var req struct {
		Message []byte `json:"message"`
		Version string `json:"version"`
	}
	if err := c.decode(&req, false); err != nil {
		writeError(c.w, http.StatusBadRequest, "invalid request body")
		return
	}
	if name, ok = c.versioned(name, req.Version); !ok {
		return
	}
	sum, err := c.st.keys.HMAC(c.r.Context(), name, req.Message)
	if err != nil {
		c.fail(versionError(err), opRead)
		return
	}
	writeJSON(c.w, struct {
		HMAC []byte `json:"hmac"`
	}{sum})
}
