// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
)

const migrateUsage = `Usage:
    kes migrate --from SRC.yml --to DST.yml [options] [<pattern>]

Copies every key whose name matches the pattern (a glob, default '*') from
the keystore of the server config SRC.yml to the keystore of DST.yml. Both
keystores are opened as the server would open them: a key sealed by the
source's root key is unsealed, and sealed again for the destination.
Every copy is read back and compared before the next key.

Options:
        --from FILE          Server config file of the source keystore.
        --to FILE            Server config file of the destination keystore.
    -f, --force              Replace keys that exist at the destination.
        --merge              Skip keys that exist at the destination.
        --move               Delete each source key once its copy is verified.
    -h, --help               Print command line options.

Without --force or --merge, the migration stops at the first key that
exists at the destination.
`

func migrateCmd(args []string) error {
	var (
		from, to string
		opts     migrateOptions
	)
	fs := newFlagSet("kes migrate")
	fs.StringVar(&from, "from", "", "")
	fs.StringVar(&to, "to", "", "")
	fs.BoolVarP(&opts.Force, "force", "f", false, "")
	fs.BoolVar(&opts.Merge, "merge", false, "")
	fs.BoolVar(&opts.Move, "move", false, "")
	if err := parseFlags(fs, migrateUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 1); err != nil {
		return err
	}
	switch {
	case from == "":
		return usagef("kes migrate: no source specified: use '--from FILE'")
	case to == "":
		return usagef("kes migrate: no destination specified: use '--to FILE'")
	case opts.Force && opts.Merge:
		return usagef("kes migrate: '--force' and '--merge' cannot be used together")
	}
	pattern, err := globArg(fs)
	if err != nil {
		return err
	}
	opts.Pattern = pattern
	if a, err := os.Stat(from); err == nil {
		if b, err := os.Stat(to); err == nil && os.SameFile(a, b) {
			return errors.New("source and destination are the same config file")
		}
	}

	ctx, cancel := signalContext()
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := openKeystore(ctx, from, log)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openKeystore(ctx, to, log)
	if err != nil {
		return err
	}
	defer dst.Close()
	if opts.Move && src.String() == dst.String() {
		return fmt.Errorf("source and destination are the same keystore (%s): refusing to move keys", src)
	}

	p := newProgress("Migrating keys", func(done, _ int) string {
		return fmt.Sprintf("Migrated %d %s", done, plural(done, "key", "keys"))
	})
	opts.Start, opts.Progress = p.Start, p.Step
	res, err := migrateKeys(ctx, src, dst, opts)
	p.Finish()
	fmt.Fprintln(stdout, res)
	return err
}

// migrateOptions control migrateKeys.
type migrateOptions struct {
	Pattern string // filepath.Match glob over key names
	Force   bool   // replace keys that exist at the destination
	Merge   bool   // skip keys that exist at the destination
	Move    bool   // delete a source key once its copy is verified

	Start    func(total int) // called once with the number of matching keys; may be nil
	Progress func(done int)  // called after each key; may be nil
}

// migrateResult counts what migrateKeys did.
type migrateResult struct {
	Migrated int // keys copied (created or replaced) and verified
	Skipped  int // keys that existed at the destination (--merge)
	Deleted  int // source keys deleted after a verified copy (--move)
}

func (r migrateResult) String() string {
	s := fmt.Sprintf("Migrated %d %s", r.Migrated, plural(r.Migrated, "key", "keys"))
	if r.Skipped > 0 {
		s += fmt.Sprintf(", skipped %d existing %s", r.Skipped, plural(r.Skipped, "key", "keys"))
	}
	if r.Deleted > 0 {
		s += fmt.Sprintf(", deleted %d source %s", r.Deleted, plural(r.Deleted, "key", "keys"))
	}
	return s
}

// migrateKeys copies the keys of src that match opts.Pattern to dst.
//
// No error path loses a key: a source key is deleted (with opts.Move) only
// after its copy was read back from dst and compared equal, and an
// existing destination key is only ever replaced through Store.Replace,
// which never leaves the name empty. On error, migrateKeys stops and
// reports what it did so far; running it again with --merge resumes.
func migrateKeys(ctx context.Context, src, dst keystore.Store, opts migrateOptions) (migrateResult, error) {
	var res migrateResult
	all, err := src.List(ctx, "")
	if err != nil {
		return res, fmt.Errorf("failed to list source keys: %w", err)
	}
	var names []string
	for _, name := range all {
		if keys.IsReserved(name) {
			continue // a lease record of the source's servers, not a key
		}
		ok, err := filepath.Match(opts.Pattern, name)
		if err != nil {
			return res, fmt.Errorf("invalid pattern '%s'", opts.Pattern)
		}
		if ok {
			names = append(names, name)
		}
	}
	if opts.Start != nil {
		opts.Start(len(names))
	}
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := migrateKey(ctx, src, dst, name, opts, &res); err != nil {
			return res, err
		}
		if opts.Progress != nil {
			opts.Progress(i + 1)
		}
	}
	return res, nil
}

func migrateKey(ctx context.Context, src, dst keystore.Store, name string, opts migrateOptions, res *migrateResult) error {
	value, err := src.Get(ctx, name)
	if errors.Is(err, keystore.ErrKeyNotFound) {
		return nil // deleted since the listing: nothing to copy
	}
	if err != nil {
		return fmt.Errorf("failed to read key '%s' from source: %w", name, err)
	}
	defer clear(value)

	copied := true
	err = dst.Create(ctx, name, value)
	if errors.Is(err, keystore.ErrKeyExists) {
		switch {
		case opts.Merge:
			copied = false
		case opts.Force:
			err = replaceKey(ctx, dst, name, value)
		default:
			return fmt.Errorf("key '%s' already exists at destination: use --merge to skip or --force to replace existing keys", name)
		}
	}
	if err != nil && copied {
		return fmt.Errorf("failed to write key '%s' to destination: %w", name, err)
	}

	// Read back what the destination holds: with --merge that is the
	// existing key, which may differ from the source.
	stored, err := dst.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("failed to verify key '%s' at destination: %w", name, err)
	}
	same := bytes.Equal(stored, value)
	clear(stored)
	if copied && !same {
		return fmt.Errorf("failed to verify key '%s' at destination: the stored value differs from the source", name)
	}
	if copied {
		res.Migrated++
	} else {
		res.Skipped++
	}

	// A skipped key is deleted from the source only if the destination
	// holds the very same key; otherwise the source copy is the only one.
	if !opts.Move || !same {
		return nil
	}
	if err := src.Delete(ctx, name); err != nil && !errors.Is(err, keystore.ErrKeyNotFound) {
		return fmt.Errorf("failed to delete key '%s' from source after copying it: %w", name, err)
	}
	// If source and destination are one store under two names, the delete
	// just removed the only copy: put it back.
	if _, err := dst.Get(ctx, name); errors.Is(err, keystore.ErrKeyNotFound) {
		if err := dst.Create(ctx, name, value); err != nil {
			return fmt.Errorf("key '%s' vanished from the destination when it was deleted from the source, and restoring it failed: %w", name, err)
		}
		return fmt.Errorf("source and destination are the same keystore: key '%s' was restored; refusing to move keys", name)
	}
	res.Deleted++
	return nil
}

// replaceKey overwrites the value of an existing key, retrying if the key
// changes concurrently.
func replaceKey(ctx context.Context, store keystore.Store, name string, value []byte) error {
	for range 3 {
		old, err := store.Get(ctx, name)
		if errors.Is(err, keystore.ErrKeyNotFound) {
			err = store.Create(ctx, name, value)
			if errors.Is(err, keystore.ErrKeyExists) {
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		err = store.Replace(ctx, name, old, value)
		clear(old)
		if errors.Is(err, keystore.ErrConflict) {
			continue
		}
		return err
	}
	return keystore.ErrConflict
}
