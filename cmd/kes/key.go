// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/minio/kms-go/kes"
)

const keyUsage = `Usage:
    kes key <command>

Commands:
    create                   Create a new key.
    import                   Import a key.
    info                     Print information about a key.
    export-allow             Allow a key's material to leave over KMIP.
    ls                       List keys (deprecated: use 'kes ls').
    rm                       Delete a key.

    rotate                   Make a new version of a key.
    versions                 List the versions of a key.
    retire                   Make a version of a key decrypt-only.
    destroy                  Destroy a retired version of a key.

    encrypt                  Encrypt a message.
    decrypt                  Decrypt a ciphertext.
    dek                      Generate a new data encryption key.

    rewrap                   Re-wrap all stored keys under the newest root key
                             version of a sealed keystore (offline).

Options:
    -h, --help               Print command line options.
`

func keyCmd(args []string) error {
	return dispatch(map[string]func([]string) error{
		"create":  keyCreateCmd,
		"import":  keyImportCmd,
		"info":    keyInfoCmd,
		"ls":      keyLsCmd,
		"rm":      keyRmCmd,
		"encrypt": keyEncryptCmd,
		"decrypt": keyDecryptCmd,
		"dek":     keyDEKCmd,
		"rewrap":  keyRewrapCmd,

		"rotate":       keyRotateCmd,
		"export-allow": keyExportAllowCmd,
		"versions":     keyVersionsCmd,
		"retire":       keyRetireCmd,
		"destroy":      keyDestroyCmd,
	}, "kes key", keyUsage, args)
}

const clientOptionsUsage = `    -k, --insecure           Skip server certificate verification.
        --json               Print output in JSON format.
        --color WHEN         Colorize output: auto (default), never or always.
    -h, --help               Print command line options.
`

const keyCreateUsage = `Usage:
    kes key create [options] <name>...

Options:
` + clientOptionsUsage

func keyCreateCmd(args []string) error {
	_, fs, client, err := parseClient("kes key create", keyCreateUsage, args, 1, -1)
	if err != nil {
		return err
	}
	return forEachName(fs.Args(), client.CreateKey)
}

const keyImportUsage = `Usage:
    kes key import [options] <name> <key>

The key is 32 bytes, base64-encoded. It is imported as an AES256 key.

Options:
` + clientOptionsUsage

func keyImportCmd(args []string) error {
	cf, fs, err := parseClientFlags("kes key import", keyImportUsage, args, 2, 2)
	if err != nil {
		return err
	}
	key, err := base64.StdEncoding.DecodeString(fs.Arg(1))
	if err != nil {
		return errors.New("invalid key: not base64")
	}
	defer clear(key)
	client, err := cf.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	if err := client.ImportKey(ctx, fs.Arg(0), &kes.ImportKeyRequest{Key: key, Cipher: kes.AES256}); err != nil {
		return nameError(fs.Arg(0), clientError(err))
	}
	return nil
}

const keyInfoUsage = `Usage:
    kes key info [options] <name>

Options:
` + clientOptionsUsage

func keyInfoCmd(args []string) error {
	cf, fs, client, err := parseClient("kes key info", keyInfoUsage, args, 1, 1)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	info, err := describeKey(ctx, client, fs.Arg(0))
	if err != nil {
		return nameError(fs.Arg(0), err)
	}
	if cf.json {
		return writeJSON(stdout, info)
	}
	return printKeyDescription(stdout, info)
}

// printKeyInfo prints a key's description; version, the current version,
// is left out if the server did not report one.
func printKeyInfo(w io.Writer, info *kes.KeyInfo, version string) error {
	if _, err := fmt.Fprintf(w, "%-11s%s\n%-11s%s\n", "Name", info.Name, "Algorithm", info.Algorithm); err != nil {
		return err
	}
	if version != "" {
		if _, err := fmt.Fprintf(w, "%-11s%s\n", "Version", version); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%-11s%s\n%-11s%s\n",
		"Date", info.CreatedAt.Local().Format(time.DateTime),
		"Owner", info.CreatedBy)
	return err
}

const keyLsUsage = `Usage:
    kes key ls [options] [<pattern>]

Deprecated: use 'kes ls'. The pattern is a prefix, optionally ending in '*';
the default '*' lists all keys.

Options:
` + clientOptionsUsage

func keyLsCmd(args []string) error {
	return legacyLsCmd("kes key ls", keyLsUsage, "Key", args, (*kes.Client).ListKeys)
}

const keyRmUsage = `Usage:
    kes key rm [options] <name>...

Options:
` + clientOptionsUsage

func keyRmCmd(args []string) error {
	_, fs, client, err := parseClient("kes key rm", keyRmUsage, args, 1, -1)
	if err != nil {
		return err
	}
	return forEachName(fs.Args(), client.DeleteKey)
}

const keyEncryptUsage = `Usage:
    kes key encrypt [options] <name> <message>

Encrypts the message (a plain string) with the key. The ciphertext is
printed base64-encoded.

Options:
` + clientOptionsUsage

func keyEncryptCmd(args []string) error {
	cf, fs, client, err := parseClient("kes key encrypt", keyEncryptUsage, args, 2, 2)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	ciphertext, err := client.Encrypt(ctx, fs.Arg(0), []byte(fs.Arg(1)), nil)
	if err != nil {
		return clientError(err)
	}
	return printFields(stdout, isTerminal(stdout) && !cf.json, []field{{"ciphertext", ciphertext}})
}

const keyDecryptUsage = `Usage:
    kes key decrypt [options] <name> <ciphertext> [<context>]

The ciphertext and the optional context are base64-encoded. The plaintext
is printed base64-encoded.

Options:
` + clientOptionsUsage

func keyDecryptCmd(args []string) error {
	cf, fs, err := parseClientFlags("kes key decrypt", keyDecryptUsage, args, 2, 3)
	if err != nil {
		return err
	}
	ciphertext, err := base64.StdEncoding.DecodeString(fs.Arg(1))
	if err != nil {
		return errors.New("invalid ciphertext: not base64")
	}
	var context []byte
	if fs.NArg() == 3 {
		if context, err = base64.StdEncoding.DecodeString(fs.Arg(2)); err != nil {
			return errors.New("invalid context: not base64")
		}
	}
	client, err := cf.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	plaintext, err := client.Decrypt(ctx, fs.Arg(0), ciphertext, context)
	if err != nil {
		return clientError(err)
	}
	defer clear(plaintext)
	return printFields(stdout, isTerminal(stdout) && !cf.json, []field{{"plaintext", plaintext}})
}

const keyDEKUsage = `Usage:
    kes key dek [options] <name> [<context>]

Generates a new 256-bit data encryption key and prints its plaintext and
its ciphertext (encrypted with the key), base64-encoded. The optional
context is base64-encoded and must be given again to decrypt.

Options:
` + clientOptionsUsage

func keyDEKCmd(args []string) error {
	cf, fs, err := parseClientFlags("kes key dek", keyDEKUsage, args, 1, 2)
	if err != nil {
		return err
	}
	var context []byte
	if fs.NArg() == 2 {
		if context, err = base64.StdEncoding.DecodeString(fs.Arg(1)); err != nil {
			return errors.New("invalid context: not base64")
		}
	}
	client, err := cf.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	dek, err := client.GenerateKey(ctx, fs.Arg(0), context)
	if err != nil {
		return clientError(err)
	}
	defer clear(dek.Plaintext)
	return printFields(stdout, isTerminal(stdout) && !cf.json, []field{
		{"plaintext", dek.Plaintext},
		{"ciphertext", dek.Ciphertext},
	})
}

// field is one named binary output value.
type field struct {
	name  string
	value []byte
}

// printFields prints base64 values: "name: value" lines for a terminal, or
// one JSON object without a trailing newline for a pipe, the shape
// minio/kes scripts parse.
func printFields(w io.Writer, text bool, fields []field) error {
	if text {
		for _, f := range fields {
			if _, err := fmt.Fprintf(w, "%s: %s\n", f.name, base64.StdEncoding.EncodeToString(f.value)); err != nil {
				return err
			}
		}
		return nil
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(f.name)
		fmt.Fprintf(&b, "%s:\"%s\"", name, base64.StdEncoding.EncodeToString(f.value))
	}
	b.WriteByte('}')
	_, err := io.WriteString(w, b.String())
	return err
}

// listNames lists all names that match pattern, a prefix optionally
// ending in '*'. It follows every page and filters on the client too, so
// that servers that treat the pattern differently give the same result.
func listNames[T ~string](ctx context.Context, next func(context.Context, string, int) ([]T, string, error), pattern string) ([]string, error) {
	prefix := strings.TrimSuffix(pattern, "*")
	iter := kes.ListIter[T]{NextFunc: next}
	var names []string
	for name, err := iter.SeekTo(ctx, prefix); err != io.EOF; name, err = iter.Next(ctx) {
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(string(name), prefix) {
			names = append(names, string(name))
		}
	}
	return names, nil
}

// printNames prints a list: a JSON array, or a header and one name per
// line.
func printNames(w io.Writer, header string, names []string, asJSON bool) error {
	if asJSON {
		if names == nil {
			names = []string{}
		}
		return writeJSON(w, names)
	}
	if len(names) == 0 {
		return nil
	}
	var b strings.Builder
	if useColor(w) {
		b.WriteString("\x1b[4m" + header + "\x1b[0m\n")
	} else {
		b.WriteString(header + "\n")
	}
	for _, n := range names {
		b.WriteString(n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

const keyRewrapUsage = `Usage:
    kes key rewrap --config FILE [<pattern>]

Re-wraps every stored key whose name matches the pattern (a glob, default
'*') under the newest version of the keystore's root key. It opens the
keystore of the server config FILE directly; no server is involved. Only
sealed keystores (a PKCS#11 or HPCS root key) have anything to re-wrap.

Options:
        --config FILE        Server config file that names the keystore.
    -h, --help               Print command line options.
`

func keyRewrapCmd(args []string) error {
	var configFile string
	fs := newFlagSet("kes key rewrap")
	fs.StringVar(&configFile, "config", "", "Server config file.")
	if err := parseFlags(fs, keyRewrapUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 1); err != nil {
		return err
	}
	if configFile == "" {
		return usagef("kes key rewrap: no config file specified: use --config FILE")
	}
	pattern, err := globArg(fs)
	if err != nil {
		return err
	}

	ctx, cancel := signalContext()
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := openKeystore(ctx, configFile, log)
	if err != nil {
		return err
	}
	defer store.Close()

	p := newProgress("Re-wrapping keys", func(done, total int) string {
		return fmt.Sprintf("Checked %d of %d keys", done, total)
	})
	n, err := rewrapKeys(ctx, store, pattern, p.Start, p.Step)
	p.Finish()
	if n > 0 || err == nil {
		fmt.Fprintf(stdout, "Re-wrapped %d %s\n", n, plural(n, "key", "keys"))
	}
	return err
}

// rewrapper is implemented by keystores that keep their own wrapping and
// re-wrap all keys in one call (HPCS). It returns how many keys changed.
type rewrapper interface {
	Rewrap(ctx context.Context) (int, error)
}

// rewrapKeys re-wraps the keys of store that match pattern under the
// newest root key version and returns how many stored values changed.
// For a sealed store, which re-wraps key by key, start is called with the
// number of matching keys and step after each; a keystore that re-wraps
// all keys in one call reports no progress.
func rewrapKeys(ctx context.Context, store keystore.Store, pattern string, start func(total int), step func(done int)) (int, error) {
	switch s := store.(type) {
	case *keystore.SealedStore:
		all, err := s.List(ctx, "")
		if err != nil {
			return 0, fmt.Errorf("failed to list keys: %w", err)
		}
		var names []string
		for _, name := range all {
			if keys.IsReserved(name) {
				continue // a lease record: never rewritten (see internal/keys)
			}
			if ok, _ := filepath.Match(pattern, name); ok {
				names = append(names, name)
			}
		}
		start(len(names))
		var n int
		for i, name := range names {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			changed, err := s.Reseal(ctx, name)
			if errors.Is(err, keystore.ErrKeyNotFound) {
				continue // deleted since the listing: nothing to re-wrap
			}
			if err != nil {
				return n, fmt.Errorf("failed to re-wrap key '%s': %w", name, err)
			}
			if changed {
				n++
			}
			step(i + 1)
		}
		return n, nil
	case rewrapper:
		if pattern != "*" {
			return 0, fmt.Errorf("keystore '%s' re-wraps all keys at once: a pattern is not supported", store)
		}
		n, err := s.Rewrap(ctx)
		if err != nil {
			return n, fmt.Errorf("failed to re-wrap keys: %w", err)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("keystore '%s' is not sealed: nothing to rewrap", store)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
