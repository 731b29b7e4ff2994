// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// maxValueSize bounds what Get reads from a key file.
const maxValueSize = 1 << 20

// Store is a keystore.Store backed by a directory.
type Store struct {
	dir string

	mu     sync.Mutex // serialises writers within the process
	lock   *os.File   // advisory lock across processes
	closed bool
}

// New opens the directory dir as a keystore, creating it (mode 0700) if
// it does not exist.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fs: no directory specified")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fs: failed to create keystore directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fs: failed to open lock file: %w", err)
	}
	return &Store{dir: dir, lock: lock}, nil
}

// path returns the file of a key. Names with a path separator or a dot
// are rejected, so that no name can escape the directory or collide with
// the store's own files (which all start with a dot).
func (s *Store) path(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\.`) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("fs: invalid key name %q", name)
	}
	return filepath.Join(s.dir, name), nil
}

// write takes the in-process and the cross-process write lock.
func (s *Store) write(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return keystore.ErrClosed
	}
	if err := lockFile(s.lock); err != nil {
		return fmt.Errorf("fs: failed to lock keystore: %w", err)
	}
	defer unlockFile(s.lock)
	return fn()
}

// tempFile writes value to a new synced temporary file and returns its path.
func (s *Store) tempFile(value []byte) (string, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(s.dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write(value)
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

func (s *Store) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Create writes a new key file. Linking the synced temporary file into
// place is atomic and fails if the name exists.
func (s *Store) Create(_ context.Context, name string, value []byte) error {
	path, err := s.path(name)
	if err != nil {
		return err
	}
	return s.write(func() error {
		tmp, err := s.tempFile(value)
		if err != nil {
			return fmt.Errorf("fs: failed to create key: %w", err)
		}
		defer os.Remove(tmp)
		if err := os.Link(tmp, path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return keystore.ErrKeyExists
			}
			return fmt.Errorf("fs: failed to create key: %w", err)
		}
		return s.syncDir()
	})
}

// Get reads a key file.
func (s *Store) Get(_ context.Context, name string) ([]byte, error) {
	path, err := s.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, keystore.ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("fs: failed to read key: %w", err)
	}
	defer f.Close()
	value, err := io.ReadAll(io.LimitReader(f, maxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("fs: failed to read key: %w", err)
	}
	if len(value) > maxValueSize {
		clear(value)
		return nil, fmt.Errorf("fs: key '%s' is larger than %d bytes", name, maxValueSize)
	}
	return value, nil
}

// Replace renames a synced new file over the old one if the old one still
// holds old.
func (s *Store) Replace(ctx context.Context, name string, old, value []byte) error {
	path, err := s.path(name)
	if err != nil {
		return err
	}
	return s.write(func() error {
		current, err := s.Get(ctx, name)
		if err != nil {
			return err
		}
		same := bytes.Equal(current, old)
		clear(current)
		if !same {
			return keystore.ErrConflict
		}
		tmp, err := s.tempFile(value)
		if err != nil {
			return fmt.Errorf("fs: failed to replace key: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("fs: failed to replace key: %w", err)
		}
		return s.syncDir()
	})
}

// Delete removes a key file.
func (s *Store) Delete(_ context.Context, name string) error {
	path, err := s.path(name)
	if err != nil {
		return err
	}
	return s.write(func() error {
		if err := os.Remove(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return keystore.ErrKeyNotFound
			}
			return fmt.Errorf("fs: failed to delete key: %w", err)
		}
		return s.syncDir()
	})
}

// List returns the names of the key files that start with prefix.
func (s *Store) List(_ context.Context, prefix string) ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("fs: failed to list keys: %w", err)
	}
	names := []string{}
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || !strings.HasPrefix(name, prefix) {
			continue
		}
		names = append(names, name)
	}
	return names, nil
}

// Status checks that the directory is there.
func (s *Store) Status(context.Context) (keystore.State, error) {
	start := time.Now()
	if _, err := os.Stat(s.dir); err != nil {
		return keystore.State{}, &keystore.UnreachableError{Store: "fs", Err: err}
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Close releases the lock file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.lock.Close()
}

func (s *Store) String() string { return "Filesystem: " + s.dir }
