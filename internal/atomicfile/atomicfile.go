// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrTooLarge is returned by Read for a file above its size limit.
var ErrTooLarge = errors.New("file exceeds the size limit")

// Create writes b to the new file name in dir. It fails with an error
// matching fs.ErrExist if name exists, also when another process has just
// created it.
func Create(dir, name string, b []byte) error {
	tmp, err := writeTemp(dir, b)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// Replace writes b to the file name in dir, creating it if it does not
// exist.
func Replace(dir, name string, b []byte) error {
	tmp, err := writeTemp(dir, b)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// Remove removes the file name from dir. It fails with an error matching
// fs.ErrNotExist if there is no such file.
func Remove(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// Read returns the content of the file name in dir, or ErrTooLarge if it
// is larger than limit bytes. It fails with an error matching
// fs.ErrNotExist if there is no such file.
func Read(dir, name string, limit int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		clear(b)
		return nil, err
	}
	if int64(len(b)) > limit {
		clear(b)
		return nil, ErrTooLarge
	}
	return b, nil
}

// List returns the names of the regular files in dir that start with
// prefix and not with a dot, sorted. It never returns a nil slice
// without an error.
func List(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && !strings.HasPrefix(n, ".") && strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, nil
}

// writeTemp writes b to a new, synced temporary file in dir and returns
// its path.
func writeTemp(dir string, b []byte) (string, error) {
	var r [8]byte
	rand.Read(r[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(r[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
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
		return "", err
	}
	return tmp, nil
}

// syncDir makes a link, rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
