// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kesbridge/kes/internal/atomicfile"
	"github.com/kesbridge/kes/keystore"
)

// maxValueSize bounds what Get reads from a key file.
const maxValueSize = 1 << 20

// Store is a keystore.Store backed by a directory.
type Store struct {
	dir string

	mu     sync.Mutex // serialises writers within the process
	dirf   *os.File   // the directory itself, flocked across processes
	closed bool
}

// New opens the directory dir as a keystore, creating it (mode 0700) if
// it does not exist. Under the directory lock it removes what crashed
// writers left behind (temporary files) and the lock file of earlier
// versions; it never removes a file whose name could be a key.
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
	dirf, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: failed to open keystore directory: %w", err)
	}
	s := &Store{dir: dir, dirf: dirf}
	if err := s.recover(); err != nil {
		dirf.Close()
		return nil, err
	}
	return s, nil
}

// recover cleans the directory up after crashed writers. It must hold the
// directory lock: a temporary file without it may be another process's
// write in progress.
func (s *Store) recover() error {
	if err := lockDir(s.dirf); err != nil {
		return fmt.Errorf("fs: failed to lock keystore directory: %w", err)
	}
	defer unlockDir(s.dirf)
	removeLegacy, err := lockLegacy(s.dir)
	if err != nil {
		return fmt.Errorf("fs: failed to lock the old lock file: %w", err)
	}
	if err := atomicfile.RemoveTemps(s.dir); err != nil {
		if removeLegacy != nil {
			removeLegacy()
		}
		return fmt.Errorf("fs: failed to remove temporary files: %w", err)
	}
	if removeLegacy != nil {
		if err := removeLegacy(); err != nil {
			return fmt.Errorf("fs: failed to remove the old lock file: %w", err)
		}
	}
	return nil
}

// checkName rejects names with a path separator or a dot, so that no
// name can escape the directory or collide with the store's own files
// (temporary files, which start with a dot). Every KES key name passes:
// those are [0-9A-Za-z_-] only.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\.`) || strings.ContainsRune(name, 0) {
		return fmt.Errorf("fs: invalid key name %q", name)
	}
	return nil
}

// write takes the in-process and the cross-process write lock.
func (s *Store) write(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return keystore.ErrClosed
	}
	if err := lockDir(s.dirf); err != nil {
		return fmt.Errorf("fs: failed to lock keystore directory: %w", err)
	}
	defer unlockDir(s.dirf)
	return fn()
}

// Create writes a new key file. Moving the synced temporary file into
// place is atomic and fails if the name exists.
func (s *Store) Create(_ context.Context, name string, value []byte) error {
	if err := checkWrite(name, value); err != nil {
		return err
	}
	return s.write(func() error {
		if err := atomicfile.Create(s.dir, name, value); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return keystore.ErrKeyExists
			}
			return fmt.Errorf("fs: failed to create key: %w", err)
		}
		return nil
	})
}

// Get reads a key file.
func (s *Store) Get(_ context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	value, err := atomicfile.Read(s.dir, name, maxValueSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, keystore.ErrKeyNotFound
	}
	if errors.Is(err, atomicfile.ErrTooLarge) {
		return nil, fmt.Errorf("fs: key '%s' is larger than %d bytes", name, maxValueSize)
	}
	if err != nil {
		return nil, fmt.Errorf("fs: failed to read key: %w", err)
	}
	return value, nil
}

// Replace renames a synced new file over the old one if the old one still
// holds old.
func (s *Store) Replace(ctx context.Context, name string, old, value []byte) error {
	if err := checkWrite(name, value); err != nil {
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
		if err := atomicfile.Replace(s.dir, name, value); err != nil {
			return fmt.Errorf("fs: failed to replace key: %w", err)
		}
		return nil
	})
}

// Delete removes a key file, and any temporary file that a crashed
// writer left as a second name of it.
func (s *Store) Delete(_ context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	return s.write(func() error {
		if err := atomicfile.Remove(s.dir, name); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return keystore.ErrKeyNotFound
			}
			return fmt.Errorf("fs: failed to delete key: %w", err)
		}
		return nil
	})
}

// List returns the names of the key files that start with prefix. Files
// whose name is not a valid key name (the store's own, or anything else
// put into the directory) are left out, so every listed name can be read
// with Get.
func (s *Store) List(_ context.Context, prefix string) ([]string, error) {
	names, err := atomicfile.List(s.dir, prefix)
	if err != nil {
		return nil, fmt.Errorf("fs: failed to list keys: %w", err)
	}
	return slices.DeleteFunc(names, func(n string) bool { return checkName(n) != nil }), nil
}

// Status checks that the directory is there.
func (s *Store) Status(context.Context) (keystore.State, error) {
	start := time.Now()
	if _, err := os.Stat(s.dir); err != nil {
		return keystore.State{}, &keystore.UnreachableError{Store: "fs", Err: err}
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Close releases the directory.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.dirf.Close()
}

func (s *Store) String() string { return "Filesystem: " + s.dir }
