// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
// unless optional.
func (c *call) decode(v any, optional bool) error {
	err := json.NewDecoder(c.r.Body).Decode(v)
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
		usageJSON
	}
	resp.usageJSON = usageOf(info)
	resp.Name, resp.CreatedAt, resp.CreatedBy = info.Name, info.CreatedAt, info.CreatedBy
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
	}
	// The body is optional: minio/kes reads it only if there is one.
	if c.r.ContentLength != 0 {
		if err := c.decode(&req, true); err != nil {
			writeError(c.w, http.StatusBadRequest, "invalid request body")
			return
		}
	}
	plaintext, ciphertext, err := c.st.keys.Generate(c.r.Context(), name, req.Context)
	if err != nil {
		c.fail(err, opRead)
		return
	}
	defer clear(plaintext)
	writeJSON(c.w, struct {
		Plaintext  []byte `json:"plaintext"`
		Ciphertext []byte `json:"ciphertext"`
	}{plaintext, ciphertext})
}

func (c *call) encryptKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	var req struct {
		Plaintext []byte `json:"plaintext"`
		Context   []byte `json:"context"`
	}
	if err := c.decode(&req, false); err != nil {
		writeError(c.w, http.StatusBadRequest, "invalid request body")
		return
	}
	defer clear(req.Plaintext)
	ciphertext, err := c.st.keys.Encrypt(c.r.Context(), name, req.Plaintext, req.Context)
	if err != nil {
		c.fail(err, opRead)
		return
	}
	writeJSON(c.w, struct {
		Ciphertext []byte `json:"ciphertext"`
	}{ciphertext})
}

func (c *call) decryptKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	var req struct {
		Ciphertext []byte `json:"ciphertext"`
		Context    []byte `json:"context"`
	}
	if err := c.decode(&req, false); err != nil {
		writeError(c.w, http.StatusBadRequest, "invalid request body")
		return
	}
	plaintext, err := c.st.keys.Decrypt(c.r.Context(), name, req.Ciphertext, req.Context)
	if err != nil {
		c.fail(err, opRead)
		return
	}
	defer clear(plaintext)
	writeJSON(c.w, struct {
		Plaintext []byte `json:"plaintext"`
	}{plaintext})
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
	if err := c.decode(&req, false); err != nil {
		writeError(c.w, http.StatusBadRequest, "invalid request body")
		return
	}
	if len(req) > maxBulkItems {
		writeError(c.w, http.StatusBadRequest, fmt.Sprintf("too many ciphertexts: at most %d per request", maxBulkItems))
		return
	}
	type plain struct {
		Plaintext []byte `json:"plaintext"`
	}
	resp := make([]plain, 0, len(req))
	defer func() {
		for _, p := range resp {
			clear(p.Plaintext)
		}
	}()
	for _, r := range req {
		p, err := c.st.keys.Decrypt(c.r.Context(), name, r.Ciphertext, r.Context)
		if err != nil {
			c.fail(err, opRead)
			return
		}
		resp = append(resp, plain{p})
	}
	writeJSON(c.w, resp)
}

func (c *call) hmacKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	var req struct {
		Message []byte `json:"message"`
	}
	if err := c.decode(&req, false); err != nil {
		writeError(c.w, http.StatusBadRequest, "invalid request body")
		return
	}
	sum, err := c.st.keys.HMAC(c.r.Context(), name, req.Message)
	if err != nil {
		c.fail(err, opRead)
		return
	}
	writeJSON(c.w, struct {
		HMAC []byte `json:"hmac"`
	}{sum})
}
