package mm

import (
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
)

// vma is one virtual memory area: [start, end) with uniform attributes.
// A vma is keyed by start in MemoryManager.vmas; changing start means
// deleting and reinserting it. Each vma with a Mappable holds one reference
// to it and a mapping registered with AddMapping.
type vma struct {
	start, end      hostarch.Addr
	perms, maxPerms hostarch.AccessType
	private         bool
	growsDown       bool

	// mappable is nil for private anonymous memory; shared anonymous
	// memory has an *anonShared. off is the Mappable offset of start.
	mappable memmap.Mappable
	off      uint64

	// name, dev and ino describe the file for /proc/pid/maps; hint names
	// special areas ("[stack]", "[vdso]").
	name     string
	dev, ino uint64
	hint     string

	dontFork   bool
	wipeOnFork bool
	locked     bool
}

func vmaLess(a, b *vma) bool { return a.start < b.start }

func (v *vma) length() uint64 { return uint64(v.end - v.start) }

func (v *vma) ar() hostarch.AddrRange { return hostarch.AddrRange{Start: v.start, End: v.end} }

// offAt is the Mappable offset of a (which is in v).
func (v *vma) offAt(a hostarch.Addr) uint64 { return v.off + uint64(a-v.start) }

// writableMapping is what AddMapping's writable means: the vma may write
// through to its Mappable.
func (v *vma) writableMapping() bool { return !v.private && v.maxPerms.Write }

// isAnonPrivate: memory that is only the page table's.
func (v *vma) isAnonPrivate() bool { return v.mappable == nil }

// dropMappable unregisters v's mapping and drops its reference; v is gone.
func (v *vma) dropMappable(ms memmap.MappingSpace) {
	if v.mappable != nil {
		v.mappable.RemoveMapping(ms, v.ar(), v.off, v.writableMapping())
		v.mappable.DecRef()
	}
}

// canMerge reports whether b, starting where a ends, can join a.
func canMerge(a, b *vma) bool {
	if a.end != b.start || a.perms != b.perms || a.maxPerms != b.maxPerms ||
		a.private != b.private || a.growsDown != b.growsDown ||
		a.mappable != b.mappable || a.name != b.name || a.dev != b.dev ||
		a.ino != b.ino || a.hint != b.hint || a.dontFork != b.dontFork ||
		a.wipeOnFork != b.wipeOnFork || a.locked != b.locked {
		return false
	}
	return a.mappable == nil || a.off+a.length() == b.off
}

// findVMALocked returns the vma containing a. Needs mappingMu.
func (m *MemoryManager) findVMALocked(a hostarch.Addr) *vma {
	var out *vma
	m.vmas.DescendLessOrEqual(&vma{start: a}, func(v *vma) bool {
		if a < v.end {
			out = v
		}
		return false
	})
	return out
}

// nextVMALocked returns the first vma starting at or after a.
func (m *MemoryManager) nextVMALocked(a hostarch.Addr) *vma {
	var out *vma
	m.vmas.AscendGreaterOrEqual(&vma{start: a}, func(v *vma) bool {
		out = v
		return false
	})
	return out
}

// prevVMALocked returns the last vma starting before a.
func (m *MemoryManager) prevVMALocked(a hostarch.Addr) *vma {
	var out *vma
	m.vmas.DescendLessOrEqual(&vma{start: a}, func(v *vma) bool {
		if v.start < a {
			out = v
			return false
		}
		return true
	})
	return out
}

// overlappingLocked returns the vmas intersecting [start, end) in order.
func (m *MemoryManager) overlappingLocked(start, end hostarch.Addr) []*vma {
	var out []*vma
	if v := m.findVMALocked(start); v != nil {
		out = append(out, v)
		start = v.end
	}
	if start >= end {
		return out
	}
	m.vmas.AscendRange(&vma{start: start}, &vma{start: end}, func(v *vma) bool {
		out = append(out, v)
		return true
	})
	return out
}

// splitLocked makes a a vma boundary. Needs mappingMu for writing.
func (m *MemoryManager) splitLocked(a hostarch.Addr) {
	v := m.findVMALocked(a)
	if v == nil || v.start == a {
		return
	}
	hi := *v
	hi.start = a
	hi.off = v.offAt(a)
	v.end = a
	if hi.mappable != nil {
		// Each piece holds its own reference; the registered mapping
		// range is unchanged, and each piece removes its part later.
		hi.mappable.IncRef()
	}
	m.vmas.ReplaceOrInsert(&hi)
}

// mergeRangeLocked merges compatible neighbours among the vmas touching
// [start, end].
func (m *MemoryManager) mergeRangeLocked(start, end hostarch.Addr) {
	first := m.prevVMALocked(start)
	if first == nil {
		first = m.nextVMALocked(start)
	}
	if first == nil {
		return
	}
	var list []*vma
	m.vmas.AscendGreaterOrEqual(first, func(v *vma) bool {
		if v.start > end {
			return false
		}
		list = append(list, v)
		return true
	})
	cur := list[0]
	for _, v := range list[1:] {
		if canMerge(cur, v) {
			m.vmas.Delete(v)
			cur.end = v.end
			if v.mappable != nil {
				v.mappable.DecRef()
			}
			continue
		}
		cur = v
	}
}

// vmStartGap is where v's lower guard ends: nothing may be placed above it.
func vmStartGap(v *vma) hostarch.Addr {
	if v.growsDown && v.start >= guardGap {
		return v.start - guardGap
	}
	if v.growsDown {
		return 0
	}
	return v.start
}

// rangeFreeLocked reports whether [start, end) can be given to a new
// mapping without touching a vma or a stack's guard gap.
func (m *MemoryManager) rangeFreeLocked(start, end hostarch.Addr) bool {
	if len(m.overlappingLocked(start, end)) != 0 {
		return false
	}
	if next := m.nextVMALocked(start); next != nil && end > vmStartGap(next) {
		return false
	}
	return true
}

// findAvailableLocked picks an address for a length-byte mapping: the hint
// if it is free, else the highest free range below mmapBase, else the
// lowest above it.
func (m *MemoryManager) findAvailableLocked(hint hostarch.Addr, length uint64) (hostarch.Addr, bool) {
	if hint != 0 {
		if h, ok := hint.RoundUp(); ok && h >= minMmapAddr {
			if end, ok := h.AddLength(length); ok && end <= m.maxAddr && m.rangeFreeLocked(h, end) {
				return h, true
			}
		}
	}
	if a, ok := m.findTopDownLocked(minMmapAddr, m.mmapBase, length); ok {
		return a, true
	}
	return m.findBottomUpLocked(m.mmapBase, m.maxAddr, length)
}

func (m *MemoryManager) findTopDownLocked(low, high hostarch.Addr, length uint64) (hostarch.Addr, bool) {
	if high <= low || uint64(high-low) < length {
		return 0, false
	}
	end := high
	if next := m.nextVMALocked(high); next != nil && vmStartGap(next) < end {
		end = vmStartGap(next)
	}
	var found hostarch.Addr
	ok := false
	m.vmas.DescendLessOrEqual(&vma{start: high}, func(v *vma) bool {
		if v.start >= high {
			if g := vmStartGap(v); g < end {
				end = g
			}
			return true
		}
		if v.end <= end && uint64(end-v.end) >= length {
			found, ok = end-hostarch.Addr(length), true
			return false
		}
		if g := vmStartGap(v); g < end {
			end = g
		}
		return end > low && uint64(end-low) >= length
	})
	if ok {
		return found, true
	}
	if end > low && uint64(end-low) >= length {
		return end - hostarch.Addr(length), true
	}
	return 0, false
}

func (m *MemoryManager) findBottomUpLocked(low, high hostarch.Addr, length uint64) (hostarch.Addr, bool) {
	start := low
	if v := m.findVMALocked(low); v != nil {
		start = v.end
	}
	var found hostarch.Addr
	ok := false
	m.vmas.AscendGreaterOrEqual(&vma{start: start}, func(v *vma) bool {
		if g := vmStartGap(v); g > start && uint64(g-start) >= length {
			found, ok = start, true
			return false
		}
		if v.end > start {
			start = v.end
		}
		return start < high
	})
	if ok {
		return found, true
	}
	if start < high && uint64(high-start) >= length {
		return start, true
	}
	return 0, false
}
