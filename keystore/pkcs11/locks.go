// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import "sync"

// nameLocks serialises writers of one key name inside the process and
// keeps readers out while a write is half-done. Entries exist only while
// somebody holds or waits for them.
type nameLocks struct {
	mu sync.Mutex
	m  map[string]*nameLock
}

type nameLock struct {
	sync.RWMutex
	refs int
}

func (l *nameLocks) get(name string) *nameLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*nameLock{}
	}
	nl := l.m[name]
	if nl == nil {
		nl = &nameLock{}
		l.m[name] = nl
	}
	nl.refs++
	return nl
}

func (l *nameLocks) put(name string, nl *nameLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if nl.refs--; nl.refs == 0 {
		delete(l.m, name)
	}
}

// lock takes name exclusively and returns the unlock function.
func (l *nameLocks) lock(name string) func() {
	nl := l.get(name)
	nl.Lock()
	return func() { nl.Unlock(); l.put(name, nl) }
}

// rlock takes name shared and returns the unlock function.
func (l *nameLocks) rlock(name string) func() {
	nl := l.get(name)
	nl.RLock()
	return func() { nl.RUnlock(); l.put(name, nl) }
}
