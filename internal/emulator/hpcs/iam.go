// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"mime"
	"net/http"
	"strings"
	"time"
)

const apikeyGrant = "urn:ibm:params:oauth:grant-type:apikey"

type iamError struct {
	ErrorCode    string     `json:"errorCode"`
	ErrorMessage string     `json:"errorMessage"`
	Context      iamContext `json:"context"`
}

type iamContext struct {
	RequestID   string `json:"requestId"`
	RequestType string `json:"requestType"`
	URL         string `json:"url"`
}

type iamToken struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Expiration   int64  `json:"expiration"`
	Scope        string `json:"scope"`
	ImsUserID    int64  `json:"ims_user_id"`
}

func writeIAMError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	writeJSON(w, status, iamError{
		ErrorCode:    code,
		ErrorMessage: msg,
		Context:      iamContext{RequestID: newUUID(), RequestType: "incoming.OIDC_Token", URL: "https://" + r.Host},
	})
}

// handleToken is the IAM API-key grant (/identity/token and /oidc/token).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		// Assumed: the code and text IAM uses for a non-form body.
		writeIAMError(w, r, http.StatusBadRequest, "BXNIM0109E", "Property missing or empty. Property: grant_type")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeIAMError(w, r, http.StatusBadRequest, "BXNIM0109E", "Property missing or empty. Property: grant_type")
		return
	}
	switch grant := r.PostForm.Get("grant_type"); {
	case grant == "":
		writeIAMError(w, r, http.StatusBadRequest, "BXNIM0109E", "Property missing or empty. Property: grant_type")
		return
	case grant != apikeyGrant:
		// Assumed: the code for an unsupported grant type.
		writeIAMError(w, r, http.StatusBadRequest, "BXNIM0103E", "Unsupported grant type: "+grant)
		return
	}
	key := r.PostForm.Get("apikey")
	if strings.TrimSpace(key) == "" {
		writeIAMError(w, r, http.StatusBadRequest, "BXNIM0109E", "Property missing or empty. Property: apikey")
		return
	}
	s.mu.Lock()
	ok := s.apiKeys[key]
	var tok iamToken
	if ok {
		now := s.now()
		access := "eyJ" + randomHex(48)
		s.tokens[access] = now.Add(s.tokenTTL)
		tok = iamToken{
			AccessToken:  access,
			RefreshToken: randomHex(32),
			TokenType:    "Bearer",
			ExpiresIn:    max(1, int64(s.tokenTTL/time.Second)),
			Expiration:   now.Add(s.tokenTTL).Unix(),
			Scope:        "ibm openid",
			ImsUserID:    1234567,
		}
	}
	s.mu.Unlock()
	if !ok {
		writeIAMError(w, r, http.StatusBadRequest, "BXNIM0415E", "Provided API key could not be found.")
		return
	}
	writeJSON(w, http.StatusOK, tok)
}
