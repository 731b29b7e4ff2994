// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"filippo.io/age"

	"github.com/kesbridge/kes/internal/backup"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
)

const restoreUsage = `Usage:
    kes restore --config FILE (-i IDENTITY | -p | --passphrase-file FILE) [options] BACKUP

Loads the keys of BACKUP, a file written by 'kes backup', into the
keystore of the server config FILE, which may be of another kind than the
one backed up. BACKUP is read and checked in full before the first key is
written: a wrong passphrase or identity, or a damaged or truncated file,
writes nothing.

A backup of sealed values restores only into a keystore sealed by the
same root key; every value is unsealed with it before anything is written.
A backup of unsealed values restores into any keystore, and a sealed one
seals them for its root key.

A key that exists in the keystore with the same value is left alone. One
that exists with another value is skipped and named on stderr, and the
command fails, unless --force replaces it.

Options:
        --config FILE          Server config file of the keystore to restore into.
    -i, --identity FILE        Decrypt with the age identities in FILE. Repeatable.
    -p, --passphrase           Decrypt with a passphrase read from the terminal
                               (or from one line of stdin if it is not one).
        --passphrase-file FILE Decrypt with the passphrase on the first line of FILE.
    -f, --force                Replace existing keys whose value differs.
        --config-out FILE      Also write the backup's server config file to FILE
                               (mode 0600; FILE must not exist).
    -h, --help                 Print command line options.
`

func restoreCmd(args []string) error {
	var (
		configFile, configOut string
		identityFiles         []string
		pass                  passphraseFlags
		force                 bool
	)
	fs := newFlagSet("kes restore")
	fs.StringVar(&configFile, "config", "", "")
	fs.StringArrayVarP(&identityFiles, "identity", "i", nil, "")
	fs.BoolVarP(&pass.prompt, "passphrase", "p", false, "")
	fs.StringVar(&pass.file, "passphrase-file", "", "")
	fs.BoolVarP(&force, "force", "f", false, "")
	fs.StringVar(&configOut, "config-out", "", "")
	if err := parseFlags(fs, restoreUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 1, 1); err != nil {
		return err
	}
	switch {
	case configFile == "":
		return usagef("kes restore: no config file specified: use '--config FILE'")
	case pass.prompt && pass.file != "":
		return usagef("kes restore: '--passphrase' and '--passphrase-file' cannot be used together")
	case !pass.set() && len(identityFiles) == 0:
		return usagef("kes restore: nothing to decrypt with: use '-i FILE', '-p' or '--passphrase-file FILE'")
	}
	if configOut != "" {
		if _, err := os.Lstat(configOut); err == nil {
			return fmt.Errorf("config file '%s' exists: choose another --config-out", configOut)
		}
	}

	var identities []age.Identity
	for _, name := range identityFiles {
		b, err := readFile(name, 1<<20)
		if err != nil {
			return fmt.Errorf("failed to read identity file: %w", err)
		}
		ids, err := age.ParseIdentities(bytes.NewReader(b))
		clear(b)
		if err != nil {
			return fmt.Errorf("failed to read identity file '%s': malformed identity", name)
		}
		identities = append(identities, ids...)
	}
	if pass.set() {
		p, err := pass.read(false)
		if err != nil {
			return err
		}
		id, err := age.NewScryptIdentity(p)
		if err != nil {
			return err
		}
		identities = append(identities, id)
	}

	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("failed to open backup: %w", err)
	}
	defer f.Close()
	b, err := openBackup(f, identities)
	if err != nil {
		return fmt.Errorf("failed to read backup '%s': %w", fs.Arg(0), err)
	}
	defer b.Close()

	ctx, cancel := signalContext()
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := openKeystore(ctx, configFile, log)
	if err != nil {
		return err
	}
	defer store.Close()

	plan, err := b.check(ctx, store)
	if err != nil {
		return fmt.Errorf("failed to read backup '%s': %w", fs.Arg(0), err)
	}
	if configOut != "" {
		if len(plan.header.Config) == 0 {
			return errors.New("the backup holds no config file: nothing written")
		}
		out, err := os.OpenFile(configOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("failed to write config file: %w", err)
		}
		_, err = out.Write(plan.header.Config)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("failed to write config file: %w", err)
		}
	}

	p := newProgress("Restoring keys", func(done, _ int) string {
		return fmt.Sprintf("Restored %d %s", done, plural(done, "key", "keys"))
	})
	p.Start(len(plan.entries))
	res, err := b.restore(ctx, plan, force, p.Step)
	p.Finish()
	for _, name := range res.skipped {
		fmt.Fprintf(stderr, "Skipped key '%s': it exists with another value\n", name)
	}
	fmt.Fprintln(stdout, res)
	if err == nil && len(res.skipped) > 0 {
		err = fmt.Errorf("%d existing %s from the backup: use --force to replace %s", len(res.skipped), plural(len(res.skipped), "key differs", "keys differ"), plural(len(res.skipped), "it", "them"))
	}
	return err
}

// backupFile is an open backup whose file key is known, so that it can
// be read twice (check, then restore) with one passphrase or identity.
type backupFile struct {
	f       *os.File
	fileKey []byte
}

// openBackup decrypts the header of the age file f with identities.
func openBackup(f *os.File, identities []age.Identity) (*backupFile, error) {
	hdr, err := age.ExtractHeader(f)
	if err != nil {
		return nil, errors.New("not an age-encrypted file, or damaged")
	}
	key, err := age.DecryptHeader(hdr, identities...)
	var noMatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &noMatch):
		return nil, errors.New("wrong passphrase or identity: none of them decrypts it")
	case err != nil:
		return nil, fmt.Errorf("failed to decrypt: %w", err)
	}
	return &backupFile{f: f, fileKey: key}, nil
}

func (b *backupFile) Close() { clear(b.fileKey) }

// open returns a reader of the payload from the start.
func (b *backupFile) open() (*backup.Reader, error) {
	if _, err := b.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	r, err := age.Decrypt(b.f, age.NewInjectedFileKeyIdentity(b.fileKey))
	if err != nil {
		return nil, fmt.Errorf("failed to decrypt: %w", err)
	}
	return backup.NewReader(r)
}

// restorePlan is what a check of the whole backup found.
type restorePlan struct {
	header  backup.Header
	dst     keystore.Store  // where the entries go: a sealed store's underlying one for sealed values
	sealer  keystore.Sealer // the target's sealer, for sealed values
	entries []planEntry
}

// planEntry identifies an entry by name and digest, so that the second
// read of the file writes exactly what the check read.
type planEntry struct {
	name string
	sum  [sha256.Size]byte
}

func entrySum(e backup.Entry) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(e.Name))
	h.Write([]byte{0})
	h.Write(e.Value)
	var s [sha256.Size]byte
	h.Sum(s[:0])
	return s
}

// check reads the whole backup: every entry is well-formed, the file is
// complete, no name repeats or is reserved, and sealed values unseal
// with the target's root key.
func (b *backupFile) check(ctx context.Context, store keystore.Store) (*restorePlan, error) {
	r, err := b.open()
	if err != nil {
		return nil, err
	}
	plan := &restorePlan{header: r.Header(), dst: store}
	if plan.header.Sealed {
		s, ok := store.(*keystore.SealedStore)
		if !ok {
			return nil, fmt.Errorf("it holds values sealed by %s, and keystore %s is not sealed: restore it into a keystore sealed by the same root key", plan.header.Sealer, store)
		}
		plan.dst, plan.sealer = s.Unwrap(), s.Sealer()
	}
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := r.Next()
		if err == io.EOF {
			return plan, nil
		}
		if err != nil {
			return nil, err
		}
		switch {
		case keys.IsReserved(e.Name):
			clear(e.Value)
			return nil, fmt.Errorf("key '%s' has a reserved name", e.Name)
		case seen[e.Name]:
			clear(e.Value)
			return nil, fmt.Errorf("key '%s' appears twice", e.Name)
		}
		seen[e.Name] = true
		if plan.sealer != nil {
			plain, _, err := plan.sealer.Unseal(ctx, e.Name, e.Value)
			clear(plain)
			if err != nil {
				clear(e.Value)
				return nil, fmt.Errorf("key '%s' does not unseal with the root key of %s: %w", e.Name, store, err)
			}
		}
		plan.entries = append(plan.entries, planEntry{name: e.Name, sum: entrySum(e)})
		clear(e.Value)
	}
}

// restoreResult counts what restore did.
type restoreResult struct {
	restored  int      // created or replaced
	unchanged int      // existed with the same key
	skipped   []string // existed with another value, and no --force
}

func (r restoreResult) String() string {
	s := fmt.Sprintf("Restored %d %s", r.restored, plural(r.restored, "key", "keys"))
	if r.unchanged > 0 {
		s += fmt.Sprintf(", %d unchanged", r.unchanged)
	}
	if n := len(r.skipped); n > 0 {
		s += fmt.Sprintf(", skipped %d existing %s", n, plural(n, "key", "keys"))
	}
	return s
}

// restore writes the entries of plan, reading the file a second time.
func (b *backupFile) restore(ctx context.Context, plan *restorePlan, force bool, step func(int)) (restoreResult, error) {
	var res restoreResult
	r, err := b.open()
	if err != nil {
		return res, err
	}
	for i, want := range plan.entries {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		e, err := r.Next()
		if err != nil || e.Name != want.name || entrySum(e) != want.sum {
			clear(e.Value)
			return res, fmt.Errorf("backup file changed while it was restored (at key %d)", i+1)
		}
		err = restoreKey(ctx, plan, e, force, &res)
		clear(e.Value)
		if err != nil {
			return res, err
		}
		step(i + 1)
	}
	return res, nil
}

func restoreKey(ctx context.Context, plan *restorePlan, e backup.Entry, force bool, res *restoreResult) error {
	err := plan.dst.Create(ctx, e.Name, e.Value)
	if err == nil {
		res.restored++
		return nil
	}
	if !errors.Is(err, keystore.ErrKeyExists) {
		return fmt.Errorf("failed to write key '%s': %w", e.Name, err)
	}
	same, err := sameKey(ctx, plan, e)
	switch {
	case err != nil:
		return fmt.Errorf("failed to read existing key '%s': %w", e.Name, err)
	case same:
		res.unchanged++
	case force:
		if err := replaceKey(ctx, plan.dst, e.Name, e.Value); err != nil {
			return fmt.Errorf("failed to replace key '%s': %w", e.Name, err)
		}
		res.restored++
	default:
		res.skipped = append(res.skipped, e.Name)
	}
	return nil
}

// sameKey reports whether the target holds e's key already. Sealed
// values are compared unsealed: sealing is randomised.
func sameKey(ctx context.Context, plan *restorePlan, e backup.Entry) (bool, error) {
	cur, err := plan.dst.Get(ctx, e.Name)
	if err != nil {
		return false, err
	}
	defer clear(cur)
	if plan.sealer == nil {
		return bytes.Equal(cur, e.Value), nil
	}
	a, _, err := plan.sealer.Unseal(ctx, e.Name, cur)
	if err != nil {
		return false, nil // unreadable with this root key: not the same key
	}
	defer clear(a)
	b, _, err := plan.sealer.Unseal(ctx, e.Name, e.Value)
	if err != nil {
		return false, err
	}
	defer clear(b)
	return bytes.Equal(a, b), nil
}
