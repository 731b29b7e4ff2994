// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package crypto

import (
	"errors"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/awnumar/memguard"
)

// Key material lives in slots carved out of a few large memguard buffers
// (locked, guard-paged pages that are wiped when freed) instead of one
// memguard buffer per key. A buffer per key would cost three mappings and
// at least one locked page per key, which runs into RLIMIT_MEMLOCK and
// vm.max_map_count after a few thousand cached keys.
//
// memguard panics (after destroying every buffer it knows) when mlock
// fails. A server must not crash because a limit was reached, so every new
// chunk is first probed with a plain mlock; if that fails, slots come from
// the Go heap instead. They are still wiped on release, and the fallback
// is counted so that operators see it in the status and metrics.
const (
	slotSize  = 64
	chunkSize = 64 << 10
)

var arena struct {
	mu   sync.Mutex
	free [][]byte
	bufs []*memguard.LockedBuffer
}

var (
	lockedSlots   atomic.Int64
	unlockedSlots atomic.Int64
)

// MemoryStats reports how many key slots are in use in locked memory and
// how many had to fall back to ordinary memory because mlock failed.
func MemoryStats() (locked, unlocked int64) {
	return lockedSlots.Load(), unlockedSlots.Load()
}

// slot is a block of key memory: 64 bytes of a locked chunk, or a heap
// buffer. The bytes are reached through an unsafe.Pointer rather than a
// slice because every printer that walks a value by reflection (fmt's
// %v of a copied key, its %!verb(...) fallback, debuggers' dumps) shows
// an unsafe.Pointer as an address, and a []byte as its contents. Key
// types hold a *slot.
type slot struct {
	p      unsafe.Pointer // first byte; nil once released
	n      int
	locked bool
}

// newHeapSlot returns a slot of n bytes of ordinary memory.
func newHeapSlot(n int) *slot {
	b := make([]byte, n)
	return &slot{p: unsafe.Pointer(unsafe.SliceData(b)), n: n}
}

// bytes returns the slot's memory. The slot must not be released.
func (s *slot) bytes() []byte { return unsafe.Slice((*byte)(s.p), s.n) }

func allocSlot() *slot {
	arena.mu.Lock()
	defer arena.mu.Unlock()
	if len(arena.free) == 0 && canLock(chunkSize) {
		buf := memguard.NewBuffer(chunkSize)
		if buf.Size() == chunkSize {
			arena.bufs = append(arena.bufs, buf)
			mem := buf.Bytes()
			for off := 0; off+slotSize <= len(mem); off += slotSize {
				arena.free = append(arena.free, mem[off:off+slotSize:off+slotSize])
			}
		}
	}
	if n := len(arena.free); n > 0 {
		b := arena.free[n-1]
		arena.free = arena.free[:n-1]
		lockedSlots.Add(1)
		return &slot{p: unsafe.Pointer(unsafe.SliceData(b)), n: slotSize, locked: true}
	}
	unlockedSlots.Add(1)
	return newHeapSlot(slotSize)
}

func (s *slot) release() {
	if s == nil || s.p == nil {
		return
	}
	b := s.bytes()
	clear(b)
	if s.locked {
		lockedSlots.Add(-1)
		arena.mu.Lock()
		arena.free = append(arena.free, b)
		arena.mu.Unlock()
	} else {
		unlockedSlots.Add(-1)
	}
	s.p = nil
}

// CheckLocking reports whether key memory can be locked now: nil if a
// chunk of key slots can be locked, else an error that says how to allow
// it.
func CheckLocking() error {
	if !canLock(chunkSize) {
		return errors.New("crypto: failed to lock memory for keys (mlock): raise the memlock limit (ulimit -l), run as root or: sudo setcap cap_ipc_lock=+ep $(which kes)")
	}
	return nil
}
