// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"encoding/json"
	"net/http"
)

const (
	moreInfo       = "https://cloud.ibm.com/apidocs/key-protect"
	typeError      = "application/vnd.ibm.kms.error+json"
	typeKey        = "application/vnd.ibm.kms.key+json"
	typeKeyVersion = "application/vnd.ibm.kms.key.version+json"
	// Assumed: the collection type of alias responses; the docs show the
	// key collection type in their example, so the emulator uses that.
	typeAlias = typeKey
)

// apiError is one Key Protect error: the HTTP status, the errorMsg text
// and, except for 401, one reason.
type apiError struct {
	status  int
	msg     string
	code    string
	reason  string
	target  string // field name, optional
	noReply bool   // 401: no reasons
}

type errorReason struct {
	Code     string       `json:"code"`
	Message  string       `json:"message"`
	Status   int          `json:"status"`
	MoreInfo string       `json:"moreInfo"`
	Target   *errorTarget `json:"target,omitempty"`
}

type errorTarget struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

type errorResource struct {
	ErrorMsg string        `json:"errorMsg"`
	Reasons  []errorReason `json:"reasons,omitempty"`
}

type collectionMeta struct {
	CollectionType  string `json:"collectionType"`
	CollectionTotal int    `json:"collectionTotal"`
}

type errorEnvelope struct {
	Metadata  collectionMeta  `json:"metadata"`
	Resources []errorResource `json:"resources"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	res := errorResource{ErrorMsg: e.msg}
	if !e.noReply && e.code != "" {
		r := errorReason{Code: e.code, Message: e.reason, Status: e.status, MoreInfo: moreInfo}
		if e.target != "" {
			r.Target = &errorTarget{Type: "field", Name: e.target}
		}
		res.Reasons = []errorReason{r}
		if res.ErrorMsg != "" {
			res.ErrorMsg += ": Please see `reasons` for more details (" + e.code + ")"
		}
	}
	writeJSON(w, e.status, errorEnvelope{
		Metadata:  collectionMeta{CollectionType: typeError, CollectionTotal: 1},
		Resources: []errorResource{res},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// The error catalogue. Messages follow the reference's error-message
// notes; where only the reason code is documented the errorMsg prefix is
// the HTTP status text, which is the pattern of every documented example.
func errUnauthorized() *apiError {
	return &apiError{status: http.StatusUnauthorized, msg: "Unauthorized: The user does not have access to the specified resource", noReply: true}
}

func errBearer() *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Bad Request: Extracting the subject from the bearer token failed",
		code: "BEARER_SUB_EXTRACTION_ERR", reason: "Extracting the subject from the bearer token failed: Make sure the bearer token passed is the correct one (and correct format) and is allowed to perform requested actions"}
}

func errNotFound(what string) *apiError {
	return &apiError{status: http.StatusNotFound, msg: "Not Found: " + what + " could not be retrieved",
		code: "KEY_NOT_FOUND_ERR", reason: "key does not exist"}
}

func errBadBody(detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Bad Request: Invalid body data was passed",
		code: "BAD_BODY_ERR", reason: "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: " + detail}
}

func errNoBody() *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Bad Request: Missing body in request",
		code: "NO_BODY_ERR", reason: "Missing body in request"}
}

func errCollectionTotal() *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Bad Request: Key could not be created",
		code: "COLLECTION_TOTAL_MISMATCH_ERR", reason: "Collection total does not match number of resources"}
}

func errInvalidField(field, detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Bad Request: Invalid field error",
		code: "INVALID_FIELD_ERR", reason: "The field `" + field + "` must be: " + detail, target: field}
}

func errRootRequired(action string) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Bad Request: Action could not be performed on key",
		code: "KEY_ROOT_REQ_ERR", reason: "Requested action can only be completed with a root key: '" + action + "' is not allowed on a standard key"}
}

func errPayloadRequired() *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Bad Request: Action could not be performed on key",
		code: "KEY_PAYLOAD_REQ_ERR", reason: "This root key was created with user-supplied key material: key material is required to rotate it"}
}

func errInvalidState(msg, reason string) *apiError {
	return &apiError{status: http.StatusConflict, msg: "Conflict: " + msg,
		code: "KEY_ACTION_INVALID_STATE_ERR", reason: reason}
}

func errRotation() *apiError {
	return &apiError{status: http.StatusConflict, msg: "Conflict: Action could not be performed on key",
		code: "KEY_ROTATION_NOT_PERMITTED", reason: "This root key has been rotated within the last hour: Only one 'rotate' action per hour is permitted"}
}

func errProtected() *apiError {
	return &apiError{status: http.StatusConflict, msg: "Conflict: Key could not be deleted",
		code: "PROTECTED_RESOURCE_ERR", reason: "Key is protecting one or more cloud resources"}
}

func errTooEarly() *apiError {
	return &apiError{status: http.StatusConflict, msg: "Conflict: Action could not be performed on key",
		code: "REQ_TOO_EARLY_ERR", reason: "The key was updated recently: wait and try again"}
}

func errDeleted(msg string) *apiError {
	return &apiError{status: http.StatusGone, msg: "Gone: " + msg,
		code: "KEY_DELETED_ERR", reason: "Key has already been deleted: Please delete references to this key"}
}

func errCiphertext() *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, msg: "Unprocessable Entity: Invalid ciphertext",
		code: "UNPROCESSABLE_CIPHERTEXT_ERR", reason: "The provided ciphertext is invalid or corrupted"}
}

// Assumed: the alias errors are not in the reference's catalogue; the
// codes below follow the naming pattern of the documented ones.
func errAliasTaken() *apiError {
	return &apiError{status: http.StatusConflict, msg: "Conflict: Alias could not be created",
		code: "KEY_ALIAS_NOT_UNIQUE_ERR", reason: "One or more aliases are already associated with a key in the instance"}
}

func errAliasQuota() *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Bad Request: Alias could not be created",
		code: "KEY_ALIAS_QUOTA_ERR", reason: "The key or the instance has reached its maximum number of aliases"}
}

func errAliasNotFound() *apiError {
	return &apiError{status: http.StatusNotFound, msg: "Not Found: Alias could not be deleted",
		code: "KEY_ALIAS_NOT_FOUND_ERR", reason: "The alias is not associated with the key"}
}

func errUnavailable() *apiError {
	// Assumed: the body of a 5xx; the Go client only looks at the status.
	return &apiError{status: http.StatusServiceUnavailable, msg: "Service Unavailable: Please try again later",
		code: "SERVICE_UNAVAILABLE_ERR", reason: "The service is temporarily unavailable"}
}
