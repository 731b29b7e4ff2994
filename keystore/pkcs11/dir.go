// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kesbridge/kes/internal/atomicfile"
	"github.com/kesbridge/kes/keystore"
)

// maxBlobFile bounds what Get reads from a blob file: a sealed value of
// the largest stored key (well below 1 MiB) plus format overhead.
const maxBlobFile = 1 << 20

// dirBlobs keeps one sealed value per file, written atomically (see
// package atomicfile).
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
	b, err := atomicfile.Read(d.path, name, maxBlobFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, keystore.ErrKeyNotFound
	}
	if errors.Is(err, atomicfile.ErrTooLarge) {
		return nil, fmt.Errorf("pkcs11: blob of key %q is larger than %d bytes", name, maxBlobFile)
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return b, nil
}

// create fails with keystore.ErrKeyExists if the name exists, also when
// another process created it.
func (d *dirBlobs) create(name string, b []byte) error {
	err := atomicfile.Create(d.path, name, b)
	if errors.Is(err, fs.ErrExist) {
		return keystore.ErrKeyExists
	}
	if err != nil {
		return fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return nil
}

func (d *dirBlobs) replace(name string, b []byte) error {
	if err := atomicfile.Replace(d.path, name, b); err != nil {
		return fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return nil
}

func (d *dirBlobs) remove(name string) error {
	err := atomicfile.Remove(d.path, name)
	if errors.Is(err, fs.ErrNotExist) {
		return keystore.ErrKeyNotFound
	}
	if err != nil {
		return fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return nil
}

func (d *dirBlobs) list(prefix string) ([]string, error) {
	names, err := atomicfile.List(d.path, prefix)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: store directory: %w", err)
	}
	return names, nil
}
