// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/minio/selfupdate"
)

// releasePublicKey is the minisign public key that signs this project's
// release binaries. It is empty while there is no release key: then
// every update must name the key with --minisign-key.
const releasePublicKey = ""

// Size limits of update downloads. A kes binary is a few tens of MB; a
// minisign signature is a few hundred bytes.
const (
	maxBinarySize    = 512 << 20
	maxSignatureSize = 64 << 10
	downloadTimeout  = 10 * time.Minute
)

const updateUsage = `Usage:
    kes update [options] [<version>]

Downloads a kes binary, verifies its minisign signature and, only if the
signature is valid, replaces the running binary (or writes it to -o FILE).

The source is either a release base URL, from which <url>[/<version>]/
kes-<os>-<arch> and its .minisig signature are fetched, or a local file
whose signature is <file>.minisig.

Options:
        --from URL|FILE      Where to get the binary from (required).
        --minisign-key KEY   Minisign public key (the RW... string, or a
                             file holding it) that must have signed the binary.
    -o, --output FILE        Write the verified binary to FILE instead of
                             replacing the running binary.
        --os OS              Operating system of the binary (default: this one).
        --arch ARCH          CPU architecture of the binary (default: this one).
    -k, --insecure           Skip TLS certificate verification of the download.
    -h, --help               Print command line options.

Examples:
    $ kes update --from https://releases.example.com/kes --minisign-key RW... v1.2.0
    $ kes update --from ./kes-linux-amd64 --minisign-key minisign.pub -o /usr/local/bin/kes
`

func updateCmd(args []string) error {
	var (
		from, key, output string
		goos, goarch      string
		insecure          bool
	)
	fs := newFlagSet("kes update")
	fs.StringVar(&from, "from", "", "")
	fs.StringVar(&key, "minisign-key", "", "")
	fs.StringVarP(&output, "output", "o", "", "")
	fs.StringVar(&goos, "os", runtime.GOOS, "")
	fs.StringVar(&goarch, "arch", runtime.GOARCH, "")
	fs.BoolVarP(&insecure, "insecure", "k", false, "")
	if err := parseFlags(fs, updateUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 1); err != nil {
		return err
	}
	if from == "" {
		return usagef("kes update: no update source: use '--from URL' or '--from FILE'")
	}
	if output == "" && (goos != runtime.GOOS || goarch != runtime.GOARCH) {
		return usagef("kes update: a %s/%s binary cannot replace this %s/%s one: use '-o FILE'", goos, goarch, runtime.GOOS, runtime.GOARCH)
	}
	publicKey, err := parseMinisignKey(key)
	if err != nil {
		return err
	}

	ctx, cancel := signalContext()
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, downloadTimeout)
	defer cancelTimeout()

	src := updateSource{from: from, version: fs.Arg(0), os: goos, arch: goarch, insecure: insecure}
	bin, sig, name, err := src.fetch(ctx)
	if err != nil {
		return err
	}
	if err := verifyUpdate(publicKey, bin, sig); err != nil {
		return fmt.Errorf("refusing to install %s: %v", name, err)
	}
	if output != "" {
		if err := writeFile(output, bin, 0o755, true); err != nil {
			return fmt.Errorf("failed to write '%s': %v", output, err)
		}
		fmt.Fprintf(stdout, "Verified %s and wrote it to %s\n", name, output)
		return nil
	}
	if err := installBinary(bin, ""); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Verified %s and replaced the running kes binary\n", name)
	return nil
}

// parseMinisignKey parses a minisign public key given as its text or as
// a file that holds it. An empty s means the release key.
func parseMinisignKey(s string) (minisign.PublicKey, error) {
	var key minisign.PublicKey
	if s == "" {
		s = releasePublicKey
	}
	if s == "" {
		return key, errors.New("no minisign public key: this build has no release key, so name the key that signed the binary with '--minisign-key KEY'")
	}
	if !strings.HasPrefix(s, "RW") {
		var err error
		if key, err = minisign.PublicKeyFromFile(s); err != nil {
			return key, fmt.Errorf("invalid minisign public key file '%s': %v", s, err)
		}
		return key, nil
	}
	if err := key.UnmarshalText([]byte(s)); err != nil {
		return key, fmt.Errorf("invalid minisign public key: %v", err)
	}
	return key, nil
}

// updateSource names where a binary and its signature come from.
type updateSource struct {
	from     string // base URL or local file
	version  string // release version, for URLs; may be empty
	os, arch string
	insecure bool
}

func (s updateSource) isURL() bool {
	return strings.HasPrefix(s.from, "https://") || strings.HasPrefix(s.from, "http://")
}

// fetch returns the binary, its minisign signature and a name for
// messages. The caller must verify the signature.
func (s updateSource) fetch(ctx context.Context) (bin, sig []byte, name string, err error) {
	if s.isURL() {
		u, err := url.Parse(s.from)
		if err != nil {
			return nil, nil, "", fmt.Errorf("invalid update URL: %v", err)
		}
		u.User = nil
		parts := []string{}
		if s.version != "" {
			parts = append(parts, s.version)
		}
		parts = append(parts, "kes-"+s.os+"-"+s.arch)
		binURL := u.JoinPath(parts...)
		name = binURL.String()

		client := &http.Client{Timeout: downloadTimeout}
		if s.insecure {
			client.Transport = &http.Transport{
				Proxy:           http.ProxyFromEnvironment,
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			}
		}
		if bin, err = download(ctx, client, binURL.String(), maxBinarySize); err != nil {
			return nil, nil, "", err
		}
		if sig, err = download(ctx, client, binURL.String()+".minisig", maxSignatureSize); err != nil {
			return nil, nil, "", err
		}
	} else {
		if s.version != "" {
			return nil, nil, "", usagef("kes update: a version cannot be given with a local file")
		}
		name = s.from
		if bin, err = readFile(s.from, maxBinarySize); err != nil {
			return nil, nil, "", fmt.Errorf("failed to read update: %v", err)
		}
		if sig, err = readFile(s.from+".minisig", maxSignatureSize); err != nil {
			return nil, nil, "", fmt.Errorf("failed to read signature: %v", err)
		}
	}
	return bin, sig, name, nil
}

// verifyUpdate checks that sig is a valid minisign signature of bin by key.
func verifyUpdate(key minisign.PublicKey, bin, sig []byte) error {
	var signature minisign.Signature
	if err := signature.UnmarshalText(sig); err != nil {
		return fmt.Errorf("malformed minisign signature: %v", err)
	}
	if signature.KeyID != key.ID() {
		return fmt.Errorf("signature was made by key %X, not by the trusted key %X", signature.KeyID, key.ID())
	}
	if !minisign.Verify(key, bin, sig) {
		return errors.New("signature verification failed: the binary is corrupt or was tampered with")
	}
	return nil
}

// installBinary replaces the executable at target (the running binary if
// target is empty) with the already verified bin. The checksum makes
// selfupdate re-check that what it installs is what was verified.
func installBinary(bin []byte, target string) error {
	sum := sha256.Sum256(bin)
	opts := selfupdate.Options{TargetPath: target, Checksum: sum[:], Hash: crypto.SHA256}
	if err := opts.CheckPermissions(); err != nil {
		return fmt.Errorf("cannot replace the kes binary: %v", err)
	}
	if err := selfupdate.Apply(bytes.NewReader(bin), opts); err != nil {
		if rerr := selfupdate.RollbackError(err); rerr != nil {
			return fmt.Errorf("failed to update the kes binary, and rolling back failed too: the binary may be missing: %v", rerr)
		}
		return fmt.Errorf("failed to update the kes binary: %v", err)
	}
	return nil
}

// download GETs url and returns at most limit bytes of a 200 response.
func download(ctx context.Context, client *http.Client, rawURL string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("invalid download URL: %v", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("failed to download %s: %v", req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to download %s: %s", req.URL.Redacted(), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("failed to download %s: %v", req.URL.Redacted(), err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("failed to download %s: larger than %d bytes", req.URL.Redacted(), limit)
	}
	return body, nil
}
