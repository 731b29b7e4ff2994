// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keystore

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
)

// ErrClosed is returned by a store after Close.
var ErrClosed = errors.New("keystore: store is closed")

// MemMaxValueSize is the MaxValueSize of a store from NewMem. It equals
// the read limit of the fs store (the default keystore), so that what
// works with `kes server --dev` also works on disk.
const MemMaxValueSize = 1 << 20

// MemStore is an in-memory Store, used by `kes server --dev` and tests.
// Its contents are lost when the process exits.
type MemStore struct {
	maxValueSize int

	mu     sync.RWMutex
	values map[string][]byte
	closed bool
}

// NewMem returns an empty in-memory store that holds values of up to
// MemMaxValueSize bytes.
func NewMem() *MemStore { return NewMemLimited(MemMaxValueSize) }

// NewMemLimited returns an empty in-memory store that refuses values
// larger than maxValueSize bytes (at least 1), for tests of what callers
// do at a store's size limit.
func NewMemLimited(maxValueSize int) *MemStore {
	return &MemStore{maxValueSize: max(maxValueSize, 1), values: map[string][]byte{}}
}

// Capabilities reports the store's size limit. Replace is linearizable:
// a MemStore lives in one process and one mutex orders every call.
func (s *MemStore) Capabilities() Capabilities {
	return Capabilities{MaxValueSize: s.maxValueSize, LinearizableReplace: true}
}

func (s *MemStore) Create(_ context.Context, name string, value []byte) error {
	if err := CheckValueSize(value, s.maxValueSize); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.values[name]; ok {
		return ErrKeyExists
	}
	s.values[name] = bytes.Clone(value)
	return nil
}

func (s *MemStore) Get(_ context.Context, name string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	v, ok := s.values[name]
	if !ok {
		return nil, ErrKeyNotFound
	}
	return bytes.Clone(v), nil
}

func (s *MemStore) Replace(_ context.Context, name string, old, value []byte) error {
	if err := CheckValueSize(value, s.maxValueSize); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	v, ok := s.values[name]
	if !ok {
		return ErrKeyNotFound
	}
	if !bytes.Equal(v, old) {
		return ErrConflict
	}
	clear(v)
	s.values[name] = bytes.Clone(value)
	return nil
}

func (s *MemStore) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	v, ok := s.values[name]
	if !ok {
		return ErrKeyNotFound
	}
	clear(v)
	delete(s.values, name)
	return nil
}

func (s *MemStore) List(_ context.Context, prefix string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	names := make([]string, 0, len(s.values))
	for name := range s.values {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (s *MemStore) Status(context.Context) (State, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return State{}, ErrClosed
	}
	return State{Latency: 0}, nil
}

// Close wipes all values.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.values {
		clear(v)
	}
	s.values, s.closed = nil, true
	return nil
}

func (s *MemStore) String() string { return "In-Memory" }
