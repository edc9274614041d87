package mm

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/memory"
)

// SharedMemory is a fixed-size object of shared pages, the same thing that
// backs MAP_SHARED|MAP_ANONYMOUS memory, for owners outside this package
// (SysV shared memory segments). The owner holds one reference, dropped
// by Release; its Mappable wraps Translate and decides its own lifetime.
type SharedMemory struct {
	s *anonShared
}

// NewSharedMemory returns size bytes (a whole number of pages) of shared
// memory, allocated on first touch.
func NewSharedMemory(mf *memory.File, size uint64) *SharedMemory {
	return &SharedMemory{s: newAnonShared(mf, size)}
}

// Translate implements memmap.Mappable's Translate.
func (m *SharedMemory) Translate(off, length uint64, at hostarch.AccessType) ([]memmap.Translation, error) {
	return m.s.Translate(off, length, at)
}

// Resident is how much of the object has pages.
func (m *SharedMemory) Resident() uint64 {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	return m.s.pages.bytes()
}

// Release drops the owner's reference; the pages go with the last one.
func (m *SharedMemory) Release() { m.s.DecRef() }

// DetachSegment is the address-space half of shmdt(2). isSeg reports
// whether a Mappable is a segment, and its size. The first vma at or above
// addr that maps a segment at the offset of its distance from addr marks
// the attachment; it and every later piece of the same segment placed the
// same way, ending within the segment's size of addr, are unmapped (pieces
// exist when mprotect or munmap split the attachment). It returns the
// segment, or EINVAL when no such vma exists.
func (m *MemoryManager) DetachSegment(addr hostarch.Addr, isSeg func(memmap.Mappable) (uint64, bool)) (memmap.Mappable, error) {
	if !addr.IsPageAligned() {
		return nil, unix.EINVAL
	}
	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	var (
		seg   memmap.Mappable
		limit uint64
		drop  []hostarch.AddrRange
	)
	m.vmas.Ascend(func(v *vma) bool {
		if v.end <= addr {
			return true
		}
		placed := v.mappable != nil && v.start >= addr && uint64(v.start-addr) == v.off
		if seg == nil {
			if !placed {
				return true
			}
			size, ok := isSeg(v.mappable)
			if !ok {
				return true
			}
			seg = v.mappable
			limit, _ = pageAlignLen(size)
			drop = append(drop, v.ar())
			return true
		}
		if uint64(v.end-addr) > limit {
			return false
		}
		if placed && v.mappable == seg {
			drop = append(drop, v.ar())
		}
		return true
	})
	if seg == nil {
		return nil, unix.EINVAL
	}
	for _, r := range drop {
		m.unmapLocked(r.Start, r.End)
	}
	return seg, nil
}
