// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/kms-go/kes"
)

const keyExportAllowUsage = `Usage:
    kes key export-allow [options] <name>

Allows the material of a key created over the KES API to leave the server
over KMIP (KMIP Get). Keys created over the KES API never leave the server
otherwise. Only the admin, or an identity whose policy names
/v1/key/export-allow/<name> itself, may do it. Every export is audited.

Options:
        --deny               Disallow export again.
` + clientOptionsUsage

func keyExportAllowCmd(args []string) error {
	var deny bool
	for i, a := range args {
		if a == "--deny" {
			deny = true
			args = append(args[:i:i], args[i+1:]...)
			break
		}
	}
	_, fs, client, err := parseClient("kes key export-allow", keyExportAllowUsage, args, 1, 1)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	body := `{"allow":true}`
	if deny {
		body = `{"allow":false}`
	}
	_, err = rawCall(ctx, client, http.MethodPut, "/v1/key/export-allow/"+url.PathEscape(fs.Arg(0)), body)
	return err
}

// keyDescription is /v1/key/describe's answer with the fields this
// server adds.
type keyDescription struct {
	Name             string           `json:"name"`
	Algorithm        kes.KeyAlgorithm `json:"algorithm"`
	CreatedAt        time.Time        `json:"created_at"`
	CreatedBy        kes.Identity     `json:"created_by,omitempty"`
	Version          string           `json:"version,omitempty"`
	State            string           `json:"state,omitempty"`
	Origin           string           `json:"origin,omitempty"`
	Usage            []string         `json:"usage,omitempty"`
	Sensitive        bool             `json:"sensitive"`
	AlwaysSensitive  bool             `json:"always_sensitive"`
	Extractable      bool             `json:"extractable"`
	NeverExtractable bool             `json:"never_extractable"`
}

func describeKey(ctx context.Context, client *kes.Client, name string) (*keyDescription, error) {
	b, err := rawCall(ctx, client, http.MethodGet, "/v1/key/describe/"+url.PathEscape(name), "")
	if err != nil {
		return nil, err
	}
	var d keyDescription
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, errors.New("invalid describe answer")
	}
	return &d, nil
}

func printKeyDescription(w io.Writer, d *keyDescription) error {
	if err := printKeyInfo(w, &kes.KeyInfo{Name: d.Name, Algorithm: d.Algorithm, CreatedAt: d.CreatedAt, CreatedBy: d.CreatedBy}, d.Version); err != nil {
		return err
	}
	if d.Origin == "" {
		return nil // a server without usage attributes
	}
	_, err := fmt.Fprintf(w, "%-11s%s\n%-11s%s\n%-11s%s\n%-12s%v (never: %v)\n%-11s%v (always: %v)\n",
		"State", d.State, "Origin", d.Origin, "Usage", strings.Join(d.Usage, ", "),
		"Extractable", d.Extractable, d.NeverExtractable, "Sensitive", d.Sensitive, d.AlwaysSensitive)
	return err
}

// rawCall sends one request to the first endpoint that answers, for the
// APIs kms-go does not have, and returns the body of a 200 answer.
func rawCall(ctx context.Context, client *kes.Client, method, path, body string) ([]byte, error) {
	var lastErr error
	for _, ep := range client.Endpoints {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(ep, "/")+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		resp, err := client.HTTPClient.Do(req)
		if err != nil {
			lastErr = clientError(err)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		if resp.StatusCode != http.StatusOK {
			var e struct {
				Message string `json:"message"`
			}
			if json.Unmarshal(b, &e) != nil || e.Message == "" {
				e.Message = http.StatusText(resp.StatusCode)
			}
			return nil, errors.New(e.Message)
		}
		return bytes.Clone(b), nil
	}
	if lastErr == nil {
		lastErr = errors.New("no server endpoint")
	}
	return nil, lastErr
}
