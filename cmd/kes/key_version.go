// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/minio/kms-go/kes"
)

// The key version commands call this server's own routes, which the kes
// client library does not know; call sends them with its HTTP client.

// maxVersionsResponse bounds an answer of the version routes: a listing
// of the most versions a key may have is about 200 KB.
const maxVersionsResponse = 1 << 20

// call sends one request to the first endpoint that answers and decodes a
// JSON answer into out (nil: none expected).
func call(ctx context.Context, client *kes.Client, method, path string, out any) error {
	var lastErr error
	for _, ep := range client.Endpoints {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(ep, "/")+path, nil)
		if err != nil {
			return err
		}
		resp, err := client.HTTPClient.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxVersionsResponse+1))
		if err != nil {
			return err
		}
		if len(body) > maxVersionsResponse {
			return errors.New("server response is too large")
		}
		if resp.StatusCode != http.StatusOK {
			var e struct {
				Message string `json:"message"`
			}
			if json.Unmarshal(body, &e) == nil && e.Message != "" {
				return kes.NewError(resp.StatusCode, e.Message)
			}
			return kes.NewError(resp.StatusCode, http.StatusText(resp.StatusCode))
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(body, out); err != nil {
			return errors.New("malformed server response")
		}
		return nil
	}
	if lastErr == nil {
		lastErr = errors.New("no server endpoint")
	}
	return lastErr
}

const keyRotateUsage = `Usage:
    kes key rotate [options] <name>...

Makes a new version of each key. Generate, encrypt and HMAC use the new
version from then on; ciphertexts of every older version keep decrypting.
Prints the new version.

Options:
` + clientOptionsUsage

func keyRotateCmd(args []string) error {
	cf, fs, client, err := parseClient("kes key rotate", keyRotateUsage, args, 1, -1)
	if err != nil {
		return err
	}
	for _, name := range fs.Args() {
		var resp struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		}
		ctx, cancel := requestContext()
		err := call(ctx, client, http.MethodPut, "/v1/key/rotate/"+url.PathEscape(name), &resp)
		cancel()
		if err != nil {
			return clientError(err)
		}
		if cf.json {
			if err := writeJSON(stdout, resp); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%s: version %s\n", resp.Name, resp.Version)
	}
	return nil
}

const keyVersionsUsage = `Usage:
    kes key versions [options] <name>

Lists the versions of a key with their creation time, creator and state.

Options:
` + clientOptionsUsage

func keyVersionsCmd(args []string) error {
	cf, fs, client, err := parseClient("kes key versions", keyVersionsUsage, args, 1, 1)
	if err != nil {
		return err
	}
	var resp struct {
		Name     string `json:"name"`
		Versions []struct {
			Version   string    `json:"version"`
			ID        string    `json:"id,omitempty"`
			CreatedAt time.Time `json:"created_at"`
			CreatedBy string    `json:"created_by,omitempty"`
			State     string    `json:"state"`
			Current   bool      `json:"current,omitempty"`
		} `json:"versions"`
	}
	ctx, cancel := requestContext()
	defer cancel()
	if err := call(ctx, client, http.MethodGet, "/v1/key/versions/"+url.PathEscape(fs.Arg(0)), &resp); err != nil {
		return clientError(err)
	}
	if cf.json {
		return writeJSON(stdout, resp)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Version\tCreated\tState\tOwner")
	for _, v := range resp.Versions {
		state := v.State
		if v.Current {
			state += " (current)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Version, v.CreatedAt.Local().Format(time.DateTime), state, v.CreatedBy)
	}
	return tw.Flush()
}

const keyRetireUsage = `Usage:
    kes key retire [options] <name> <version>

Makes a version of a key decrypt-only. The current version cannot be
retired: rotate the key first.

Options:
` + clientOptionsUsage

func keyRetireCmd(args []string) error {
	return versionCmd("kes key retire", keyRetireUsage, http.MethodPut, "/v1/key/version/retire/", args)
}

const keyDestroyUsage = `Usage:
    kes key destroy [options] <name> <version>

Destroys a retired version of a key: its material is wiped, and every
ciphertext made with it fails to decrypt from then on. The key and its
other versions are unchanged. This cannot be undone.

Options:
` + clientOptionsUsage

func keyDestroyCmd(args []string) error {
	return versionCmd("kes key destroy", keyDestroyUsage, http.MethodDelete, "/v1/key/version/destroy/", args)
}

func versionCmd(name, usage, method, route string, args []string) error {
	_, fs, client, err := parseClient(name, usage, args, 2, 2)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	path := route + url.PathEscape(fs.Arg(0)) + "/" + url.PathEscape(fs.Arg(1))
	if err := call(ctx, client, method, path, nil); err != nil {
		return clientError(err)
	}
	return nil
}
