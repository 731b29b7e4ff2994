// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kesbridge/kes/keystore"
)

// maxBlobFile bounds what Get reads from a blob file: a sealed value of
// the largest stored key (well below 1 MiB) plus format overhead.
const maxBlobFile = 1 << 20

// dirBlobs keeps one sealed value per file. Writes go to a temporary file
// that is synced and then linked (create) or renamed (replace) into place,
// so a reader sees the old or the new file, never a partial one.
type dirBlobs struct {
	path string
}

func openDir(path string) (*dirBlobs, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("pkcs11: cannot create store directory: %w", err)
	}
	d := &dirBlobs{path: path}
	if err := d.stat(); err != nil {
		return nil, err
	}
	return d, nil
}

// checkFileName rejects names that are not a single file name, and names
// starting with a dot, which are reserved for temporary files.
func checkFileName(name string) error {
	if name == "" || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("pkcs11: invalid key name %q for a directory store", name)
	}
	return nil
}

func (d *dirBlobs) stat() error {
	fi, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("pkcs11: store directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pkcs11: store directory %s is not a directory", d.path)
	}
	return nil
}

func (d *dirBlobs) exists(name string) (bool, error) {
	_, err := os.Lstat(filepath.Join(d.path, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return true, nil
}

func (d *dirBlobs) read(name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(d.path, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, keystore.ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: store directory: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBlobFile+1))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: store directory: %w", err)
	}
	if len(b) > maxBlobFile {
		return nil, fmt.Errorf("pkcs11: blob of key %q is larger than %d bytes", name, maxBlobFile)
	}
	return b, nil
}

// writeTemp writes b to a new, synced temporary file and returns its path.
func (d *dirBlobs) writeTemp(b []byte) (string, error) {
	var r [8]byte
	rand.Read(r[:])
	tmp := filepath.Join(d.path, ".tmp-"+hex.EncodeToString(r[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("pkcs11: store directory: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return tmp, nil
}

// create links the blob into place; the link fails if the name exists,
// also when another process created it.
func (d *dirBlobs) create(name string, b []byte) error {
	tmp, err := d.writeTemp(b)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, filepath.Join(d.path, name)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return keystore.ErrKeyExists
		}
		return fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return d.sync()
}

func (d *dirBlobs) replace(name string, b []byte) error {
	tmp, err := d.writeTemp(b)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(d.path, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return d.sync()
}

func (d *dirBlobs) remove(name string) error {
	err := os.Remove(filepath.Join(d.path, name))
	if errors.Is(err, fs.ErrNotExist) {
		return keystore.ErrKeyNotFound
	}
	if err != nil {
		return fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return d.sync()
}

func (d *dirBlobs) list(prefix string) ([]string, error) {
	entries, err := os.ReadDir(d.path) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("pkcs11: store directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && !strings.HasPrefix(n, ".") && strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, nil
}

// sync makes a link, rename or removal durable.
func (d *dirBlobs) sync() error {
	f, err := os.Open(d.path)
	if err != nil {
		return fmt.Errorf("pkcs11: store directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return nil
}
