// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
)

// Key versions over the HTTP API. These routes are this server's own;
// minio/kes has none of them.
//
//	PUT    /v1/key/rotate/<name>                  make a new version
//	GET    /v1/key/versions/<name>                list the versions
//	PUT    /v1/key/version/retire/<name>/<n>      make version n decrypt-only
//	DELETE /v1/key/version/destroy/<name>/<n>     destroy (retired) version n
//
// Version numbers are sent as decimal strings, like the optional
// "version" field that kes HEAD and kms-go HEAD put in generate, encrypt,
// decrypt and HMAC requests.

// Answers for version errors.
var (
	errVersionNotFound  = newError(http.StatusNotFound, "key version does not exist")
	errVersionIsCurrent = newError(http.StatusConflict, "key version is the current version: rotate the key first")
	errVersionRetired   = newError(http.StatusConflict, "key version is retired: it can only decrypt")
	errVersionNotRetire = newError(http.StatusConflict, "key version is not retired: retire it before destroying it")
)

// versionError maps the version errors of internal/keys to their answer,
// and leaves every other error to wireError.
func versionError(err error) error {
	switch {
	case errors.Is(err, keys.ErrVersionNotFound):
		return errVersionNotFound
	case errors.Is(err, keys.ErrVersionIsCurrent):
		return errVersionIsCurrent
	case errors.Is(err, keys.ErrVersionRetired):
		return errVersionRetired
	case errors.Is(err, keys.ErrVersionNotRetired):
		return errVersionNotRetire
	}
	return err
}

// versioned returns the name under which the key service uses the
// version a request names ("" for the current one), or answers 400.
func (c *call) versioned(name, version string) (string, bool) {
	n, err := keys.ParseVersion(version)
	if err != nil {
		writeError(c.w, http.StatusBadRequest, err.Error())
		return "", false
	}
	if n == 0 {
		return name, true
	}
	return keys.VersionRef(name, n), true
}

// ciphertextVersion is the "version" of a generate or encrypt answer.
func ciphertextVersion(ct []byte) string {
	return strconv.FormatUint(uint64(keys.CiphertextVersion(ct)), 10)
}

// nameAndVersion splits the resource "<name>/<n>" of the version routes,
// or answers 400.
func (c *call) nameAndVersion() (string, uint32, bool) {
	name, v, ok := strings.Cut(c.resource, "/")
	if !ok || !policy.ValidName(name) {
		writeError(c.w, http.StatusBadRequest, fmt.Sprintf("key name '%s' is empty, too long or contains invalid characters", name))
		return "", 0, false
	}
	n, err := keys.ParseVersion(v)
	if err != nil || n == 0 {
		writeError(c.w, http.StatusBadRequest, fmt.Sprintf("invalid key version '%s'", v))
		return "", 0, false
	}
	return name, n, true
}

func (c *call) rotateKey() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	n, err := c.st.keys.Rotate(c.r.Context(), name, string(c.identity))
	if err != nil {
		c.fail(versionError(err), opCreate)
		return
	}
	c.auditMsg = fmt.Sprintf("secret key '%s' rotated to version %d", name, n)
	writeJSON(c.w, struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}{name, strconv.FormatUint(uint64(n), 10)})
}

// versionJSON is one entry of the versions listing.
type versionJSON struct {
	Version   string    `json:"version"`
	ID        string    `json:"id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	State     string    `json:"state"`
	Current   bool      `json:"current,omitempty"`
}

func (c *call) listVersions() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	vs, err := c.st.keys.Versions(c.r.Context(), name)
	if err != nil {
		c.fail(err, opRead)
		return
	}
	resp := struct {
		Name     string        `json:"name"`
		Versions []versionJSON `json:"versions"`
	}{Name: name, Versions: make([]versionJSON, 0, len(vs))}
	for _, v := range vs {
		resp.Versions = append(resp.Versions, versionJSON{
			Version:   strconv.FormatUint(uint64(v.Number), 10),
			ID:        v.ID,
			CreatedAt: v.CreatedAt,
			CreatedBy: v.CreatedBy,
			State:     v.State.String(),
			Current:   v.Current,
		})
	}
	writeJSON(c.w, resp)
}

func (c *call) retireVersion() {
	name, n, ok := c.nameAndVersion()
	if !ok {
		return
	}
	if err := c.st.keys.RetireVersion(c.r.Context(), name, n); err != nil {
		c.fail(versionError(err), opCreate)
		return
	}
	c.auditMsg = fmt.Sprintf("secret key '%s' version %d retired", name, n)
	writeOK(c.w)
}

func (c *call) destroyVersion() {
	name, n, ok := c.nameAndVersion()
	if !ok {
		return
	}
	if err := c.st.keys.DestroyVersion(c.r.Context(), name, n); err != nil {
		c.fail(versionError(err), opDelete)
		return
	}
	c.auditMsg = fmt.Sprintf("secret key '%s' version %d destroyed", name, n)
	writeOK(c.w)
}
