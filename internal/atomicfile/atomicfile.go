// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrTooLarge is returned by Read for a file above its size limit.
var ErrTooLarge = errors.New("file exceeds the size limit")

// tempPrefix starts the name of every temporary file, followed by
// tempRandLen random bytes in lower-case hex. A caller's names must never
// start with a dot, so none of them can look like a temporary file.
const (
	tempPrefix  = ".tmp-"
	tempRandLen = 8
)

// IsTemp reports whether name has the form of a temporary file written
// by this package: ".tmp-" and 16 lower-case hex digits.
func IsTemp(name string) bool {
	hexPart, ok := strings.CutPrefix(name, tempPrefix)
	if !ok || len(hexPart) != 2*tempRandLen {
		return false
	}
	for _, c := range []byte(hexPart) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Create writes b to the new file name in dir. It fails with an error
// matching fs.ErrExist if name exists, also when another process has just
// created it.
//
// Where the platform can rename without replacing (Linux), the synced
// temporary file is renamed into place, so the data never has two names.
// Elsewhere it is linked into place and the temporary name removed
// afterwards; a crash between the two leaves a temporary file that is a
// second name of the new file, which RemoveTemps, Replace and Remove
// take away.
func Create(dir, name string, b []byte) error {
	tmp, err := writeTemp(dir, b)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	err = renameNoReplace(tmp, path)
	if errors.Is(err, errors.ErrUnsupported) {
		err = os.Link(tmp, path)
		os.Remove(tmp)
	} else if err != nil {
		os.Remove(tmp)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// Replace writes b to the file name in dir, creating it if it does not
// exist. The old content has no name left in dir afterwards: temporary
// files that are further names of the old file are removed first.
func Replace(dir, name string, b []byte) error {
	path := filepath.Join(dir, name)
	if err := removeTempLinks(dir, path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, err := writeTemp(dir, b)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// Remove removes the file name from dir, and every temporary file in dir
// that is a further name of the same file, so that no name in dir is
// left that leads to its content. It fails with an error matching
// fs.ErrNotExist if there is no such file.
func Remove(dir, name string) error {
	path := filepath.Join(dir, name)
	if err := removeTempLinks(dir, path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDir(dir)
}

// RemoveTemps removes every temporary file in dir (regular files whose
// name IsTemp), left behind by writers that crashed. The caller must
// make sure that no other writer is at work in dir, or it may remove a
// file that writer is about to rename into place.
func RemoveTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		if !IsTemp(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed = true
	}
	if !removed {
		return nil
	}
	return syncDir(dir)
}

// removeTempLinks removes the temporary files in dir that are further
// names of the file at path. Only a crash between link and unlink in
// Create makes them; unlike RemoveTemps this is safe next to other
// writers, since a temporary file that is still being written is not yet
// linked anywhere, and one that is already linked was about to be
// removed by its writer anyway.
func removeTempLinks(dir, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || !mayHaveLinks(fi) {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !IsTemp(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		tmp := filepath.Join(dir, e.Name())
		tfi, err := os.Lstat(tmp)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !os.SameFile(fi, tfi) {
			continue
		}
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
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
	var r [tempRandLen]byte
	rand.Read(r[:])
	tmp := filepath.Join(dir, tempPrefix+hex.EncodeToString(r[:]))
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
