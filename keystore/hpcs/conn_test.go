// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package hpcs

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kesbridge/kes/keystore"
)

// endless answers every request with an endless body of zeros.
type endless struct{}

func (endless) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(zeros{})}, nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestResponseLimit checks that an oversized answer stops at the limit
// and is reported as a protocol error, not as an unreachable service.
func TestResponseLimit(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://kms.example/api/v2/keys", nil)
	resp, err := limitTransport{endless{}}.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if !errors.Is(err, errTooLarge) {
		t.Fatalf("reading an endless body: %v, want errTooLarge", err)
	}
	if n > maxResponse+32<<10 {
		t.Fatalf("read %d bytes of an endless body, limit %d", n, maxResponse)
	}
	err = (&conn{}).classify(context.Background(), err)
	if keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "size limit") {
		t.Fatalf("classify(too large) = %v, want a size limit error that is not unreachable", err)
	}
}
