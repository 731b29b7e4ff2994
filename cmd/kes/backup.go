// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kesbridge/kes/internal/backup"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
)

const backupUsage = `Usage:
    kes backup --config FILE -o BACKUP (-r RECIPIENT | -R FILE | -p | --passphrase-file FILE) [options]

Writes every key of the keystore of the server config FILE, and FILE
itself, into the file BACKUP, encrypted with age (age-encryption.org):
to one or more age recipients (public keys, like 'age -r' and 'age -R'),
or to a passphrase. Each key is stored as the keystore holds it, with all
its versions, its state and its KMIP attributes. Restore it with
'kes restore'.

Of a keystore sealed by a root key (seal: pkcs11 or seal: hpcs) the backup
holds the sealed values: it is of use only together with that root key,
and restores only into a keystore sealed by it. With --unseal it holds the
unsealed key material instead, protected by the backup's encryption
alone, and restores into any keystore. Of a keystore that is not sealed
the backup always holds the key material: keep it as safe as the keys.

Options:
        --config FILE          Server config file of the keystore.
    -o, --output FILE          Backup file to write (mode 0600).
    -r, --recipient RECIPIENT  Encrypt to an age public key (age1...). Repeatable.
    -R, --recipients-file FILE Encrypt to the recipients listed in FILE. Repeatable.
    -p, --passphrase           Encrypt to a passphrase read from the terminal
                               (or from one line of stdin if it is not one).
        --passphrase-file FILE Encrypt to the passphrase on the first line of FILE.
        --unseal               Write unsealed key material of a sealed keystore.
    -f, --force                Overwrite BACKUP if it exists.
    -h, --help                 Print command line options.
`

// passphraseFlags are the ways to give a passphrase, shared by backup
// and restore.
type passphraseFlags struct {
	prompt bool
	file   string
}

func (p *passphraseFlags) set() bool { return p.prompt || p.file != "" }

// read returns the passphrase. confirm asks twice on a terminal.
func (p *passphraseFlags) read(confirm bool) (string, error) {
	var b []byte
	switch {
	case p.file != "":
		data, err := readFile(p.file, 4<<10)
		if err != nil {
			return "", fmt.Errorf("failed to read passphrase file: %w", err)
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		b = bytes.TrimSuffix(line, []byte("\r"))
		clear(data[len(b):])
	default:
		var err error
		if b, err = readPassword("Passphrase: "); err != nil {
			return "", err
		}
		if f, ok := stdin.(*os.File); confirm && ok && isTerminal(f) {
			again, err := readPassword("Confirm passphrase: ")
			if err != nil {
				return "", err
			}
			same := bytes.Equal(b, again)
			clear(again)
			if !same {
				clear(b)
				return "", errors.New("passphrases do not match")
			}
		}
	}
	if len(b) == 0 {
		return "", errors.New("empty passphrase")
	}
	s := string(b)
	clear(b)
	return s, nil
}

func backupCmd(args []string) error {
	var (
		configFile, output string
		recips, recipFiles []string
		pass               passphraseFlags
		unseal, force      bool
	)
	fs := newFlagSet("kes backup")
	fs.StringVar(&configFile, "config", "", "")
	fs.StringVarP(&output, "output", "o", "", "")
	fs.StringArrayVarP(&recips, "recipient", "r", nil, "")
	fs.StringArrayVarP(&recipFiles, "recipients-file", "R", nil, "")
	fs.BoolVarP(&pass.prompt, "passphrase", "p", false, "")
	fs.StringVar(&pass.file, "passphrase-file", "", "")
	fs.BoolVar(&unseal, "unseal", false, "")
	fs.BoolVarP(&force, "force", "f", false, "")
	if err := parseFlags(fs, backupUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	switch {
	case configFile == "":
		return usagef("kes backup: no config file specified: use '--config FILE'")
	case output == "":
		return usagef("kes backup: no backup file specified: use '-o FILE'")
	case pass.set() && (len(recips) > 0 || len(recipFiles) > 0):
		return usagef("kes backup: a passphrase cannot be combined with recipients")
	case pass.prompt && pass.file != "":
		return usagef("kes backup: '--passphrase' and '--passphrase-file' cannot be used together")
	case !pass.set() && len(recips) == 0 && len(recipFiles) == 0:
		return usagef("kes backup: nothing to encrypt to: use '-r RECIPIENT', '-R FILE', '-p' or '--passphrase-file FILE'")
	}
	if !force {
		if _, err := os.Lstat(output); err == nil {
			return fmt.Errorf("backup file '%s' exists: use --force to overwrite it", output)
		}
	}

	var recipients []age.Recipient
	for _, r := range recips {
		rs, err := age.ParseRecipients(strings.NewReader(r))
		if err != nil || len(rs) != 1 {
			return fmt.Errorf("invalid recipient '%s'", r)
		}
		recipients = append(recipients, rs...)
	}
	for _, name := range recipFiles {
		b, err := readFile(name, 1<<20)
		if err != nil {
			return fmt.Errorf("failed to read recipients file: %w", err)
		}
		rs, err := age.ParseRecipients(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("failed to read recipients file '%s': %w", name, err)
		}
		recipients = append(recipients, rs...)
	}
	if pass.set() {
		p, err := pass.read(true)
		if err != nil {
			return err
		}
		r, err := age.NewScryptRecipient(p)
		if err != nil {
			return err
		}
		recipients = []age.Recipient{r}
	}

	config, err := readFile(configFile, backup.MaxConfigSize)
	if err != nil {
		return fmt.Errorf("failed to read config file: %w", err)
	}
	ctx, cancel := signalContext()
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := openKeystore(ctx, configFile, log)
	if err != nil {
		return err
	}
	defer store.Close()

	h := backup.Header{Created: time.Now().UTC().Truncate(time.Second), Keystore: store.String(), Config: config}
	src := store
	if s, ok := store.(*keystore.SealedStore); ok && !unseal {
		src, h.Sealed, h.Sealer = s.Unwrap(), true, s.Sealer().String()
	}

	// Written to a temporary file next to the backup and renamed at the
	// end: an interrupted backup leaves no file that looks like one.
	dir := filepath.Dir(output)
	tmp, err := os.CreateTemp(dir, ".kes-backup-*")
	if err != nil {
		return fmt.Errorf("failed to create backup file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("failed to create backup file: %w", err)
	}

	p := newProgress("Backing up keys", func(done, _ int) string {
		return fmt.Sprintf("Backed up %d %s", done, plural(done, "key", "keys"))
	})
	n, err := writeBackup(ctx, tmp, recipients, src, h, p.Start, p.Step)
	p.Finish()
	if err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("failed to write backup file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write backup file: %w", err)
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return fmt.Errorf("failed to write backup file: %w", err)
	}
	what := ""
	if h.Sealed {
		what = " (sealed by " + h.Sealer + ")"
	}
	fmt.Fprintf(stdout, "Backed up %d %s%s to %s\n", n, plural(n, "key", "keys"), what, output)
	return nil
}

// writeBackup writes every key of store but the lease records, with
// header h, into an age file for recipients on w. It returns the number
// of keys written.
func writeBackup(ctx context.Context, w io.Writer, recipients []age.Recipient, store keystore.Store, h backup.Header, start func(int), step func(int)) (int, error) {
	all, err := store.List(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("failed to list keys: %w", err)
	}
	names := slices.DeleteFunc(all, keys.IsReserved) // lease records of the servers, not keys
	slices.Sort(names)

	aw, err := age.Encrypt(w, recipients...)
	if err != nil {
		return 0, fmt.Errorf("failed to encrypt backup: %w", err)
	}
	bw := backup.NewWriter(aw)
	if err := bw.Header(h); err != nil {
		return 0, err
	}
	start(len(names))
	var n int
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		value, err := store.Get(ctx, name)
		if errors.Is(err, keystore.ErrKeyNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return n, fmt.Errorf("failed to read key '%s': %w", name, err)
		}
		err = bw.Entry(name, value)
		clear(value)
		if err != nil {
			return n, fmt.Errorf("failed to write key '%s' to the backup: %w", name, err)
		}
		n++
		step(i + 1)
	}
	if err := bw.Close(); err != nil {
		return n, fmt.Errorf("failed to write backup: %w", err)
	}
	if err := aw.Close(); err != nil {
		return n, fmt.Errorf("failed to write backup: %w", err)
	}
	return n, nil
}
