package mm

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
)

// Flags of mremap(2), msync(2) and mlockall(2) (Linux ABI).
const (
	MREMAP_MAYMOVE   = 0x1
	MREMAP_FIXED     = 0x2
	MREMAP_DONTUNMAP = 0x4

	MS_ASYNC      = 0x1
	MS_INVALIDATE = 0x2
	MS_SYNC       = 0x4

	MCL_CURRENT = 0x1
	MCL_FUTURE  = 0x2
	MCL_ONFAULT = 0x4
)

// pageAlignLen rounds a length up to pages; false on overflow.
func pageAlignLen(n uint64) (uint64, bool) {
	r := (n + pageMask) &^ uint64(pageMask)
	return r, r >= n
}

// MMap creates a mapping as mmap(2) does and returns its address. The vma
// takes its own reference to opts.Mappable. An anonymous shared mapping
// (Mappable nil, Private false) gets a fresh shared memory object.
func (m *MemoryManager) MMap(opts memmap.MMapOpts) (hostarch.Addr, error) {
	if opts.Length == 0 {
		return 0, unix.EINVAL
	}
	length, ok := pageAlignLen(opts.Length)
	if !ok || length > uint64(m.maxAddr) {
		return 0, unix.ENOMEM
	}
	if opts.Offset&pageMask != 0 {
		return 0, unix.EINVAL
	}
	if opts.Mappable != nil && opts.Offset+length < opts.Offset {
		return 0, unix.EOVERFLOW
	}
	if !opts.MaxPerms.SupersetOf(opts.Perms) {
		return 0, unix.EACCES
	}

	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	if m.vmas.Len() >= maxMapCount {
		return 0, unix.ENOMEM
	}
	var addr hostarch.Addr
	if opts.Fixed {
		addr = opts.Addr
		if !addr.IsPageAligned() {
			return 0, unix.EINVAL
		}
		end, ok := addr.AddLength(length)
		if !ok || end > m.maxAddr {
			return 0, unix.ENOMEM
		}
		if addr < minMmapAddr {
			return 0, unix.EPERM
		}
		if !opts.Unmap {
			if len(m.overlappingLocked(addr, end)) != 0 {
				return 0, unix.EEXIST
			}
		} else {
			m.unmapLocked(addr, end)
		}
	} else {
		if addr, ok = m.findAvailableLocked(opts.Addr, length); !ok {
			return 0, unix.ENOMEM
		}
	}

	v := &vma{
		start:     addr,
		end:       addr + hostarch.Addr(length),
		perms:     opts.Perms,
		maxPerms:  opts.MaxPerms,
		private:   opts.Private,
		growsDown: opts.GrowsDown,
		mappable:  opts.Mappable,
		off:       opts.Offset,
		name:      opts.Name,
		dev:       opts.Dev,
		ino:       opts.Ino,
		hint:      opts.Hint,
	}
	switch {
	case v.mappable == nil && !v.private:
		v.mappable = newAnonShared(m.mf, length)
		v.off = 0
		v.name = "/dev/zero (deleted)"
		v.dev = unix.Mkdev(0, 1)
		v.ino = v.mappable.(*anonShared).ino
	case v.mappable != nil:
		v.mappable.IncRef()
	default:
		v.off = 0
	}
	if v.mappable != nil {
		v.mappable.AddMapping(m, v.ar(), v.off, v.writableMapping())
	}
	m.vmas.ReplaceOrInsert(v)
	m.mergeRangeLocked(v.start, v.end)
	return addr, nil
}

// unmapLocked removes every mapping in [start, end) (page aligned): vmas,
// platform mappings, then page-table pages. Needs mappingMu for writing.
func (m *MemoryManager) unmapLocked(start, end hostarch.Addr) {
	vs := m.overlappingLocked(start, end)
	if len(vs) == 0 {
		return
	}
	m.splitLocked(start)
	m.splitLocked(end)
	for _, v := range m.overlappingLocked(start, end) {
		m.vmas.Delete(v)
		v.dropMappable(m)
	}
	m.pagesMu.Lock()
	runs := m.pages.remove(uint64(start), uint64(end))
	m.unmapAS(start, end)
	m.pagesMu.Unlock()
	m.decRefRuns(runs)
}

// MUnmap implements munmap(2).
func (m *MemoryManager) MUnmap(addr hostarch.Addr, length uint64) error {
	if !addr.IsPageAligned() || length == 0 {
		return unix.EINVAL
	}
	length, ok := pageAlignLen(length)
	if !ok {
		return unix.EINVAL
	}
	end, ok := addr.AddLength(length)
	if !ok || end > m.maxAddr {
		return unix.EINVAL
	}
	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	m.unmapLocked(addr, end)
	return nil
}

// MProtect implements mprotect(2). growsDown is PROT_GROWSDOWN: extend the
// change down to the start of a growsdown vma. As Linux does, vmas before a
// failure keep their new protection.
func (m *MemoryManager) MProtect(addr hostarch.Addr, length uint64, perms hostarch.AccessType, growsDown bool) error {
	if !addr.IsPageAligned() {
		return unix.EINVAL
	}
	length, ok := pageAlignLen(length)
	if !ok {
		return unix.ENOMEM
	}
	if length == 0 {
		return nil
	}
	end, ok := addr.AddLength(length)
	if !ok || end > m.maxAddr {
		return unix.ENOMEM
	}
	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	first := m.findVMALocked(addr)
	if first == nil {
		first = m.nextVMALocked(addr)
	}
	if first == nil {
		return unix.ENOMEM
	}
	if growsDown {
		if first.start >= end {
			return unix.ENOMEM
		}
		if !first.growsDown {
			return unix.EINVAL
		}
		addr = first.start
	} else if first.start > addr {
		return unix.ENOMEM
	}
	var err error
	cur := addr
	for cur < end {
		v := m.findVMALocked(cur)
		if v == nil {
			err = unix.ENOMEM
			break
		}
		if !v.maxPerms.SupersetOf(perms) {
			err = unix.EACCES
			break
		}
		segEnd := min(end, v.end)
		if v.perms != perms {
			m.splitLocked(cur)
			m.splitLocked(segEnd)
			v = m.findVMALocked(cur)
			reduced := !perms.SupersetOf(v.perms)
			v.perms = perms
			if reduced {
				m.pagesMu.Lock()
				m.unmapAS(cur, segEnd)
				m.pagesMu.Unlock()
			}
		}
		cur = segEnd
	}
	m.mergeRangeLocked(addr, cur)
	return err
}

// MRemap implements mremap(2) and returns the new address. MREMAP_DONTUNMAP
// is supported for private anonymous mappings.
func (m *MemoryManager) MRemap(oldAddr hostarch.Addr, oldSize, newSize uint64, flags int, newAddr hostarch.Addr) (hostarch.Addr, error) {
	if flags&^(MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP) != 0 || !oldAddr.IsPageAligned() {
		return 0, unix.EINVAL
	}
	mayMove, fixed, dontUnmap := flags&MREMAP_MAYMOVE != 0, flags&MREMAP_FIXED != 0, flags&MREMAP_DONTUNMAP != 0
	if fixed && !mayMove {
		return 0, unix.EINVAL
	}
	if dontUnmap && (!mayMove || oldSize != newSize) {
		return 0, unix.EINVAL
	}
	oldSize, ok1 := pageAlignLen(oldSize)
	newSize, ok2 := pageAlignLen(newSize)
	if !ok1 || !ok2 || newSize == 0 {
		return 0, unix.EINVAL
	}
	oldEnd, ok := oldAddr.AddLength(oldSize)
	if !ok {
		return 0, unix.EFAULT
	}

	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()

	if fixed || dontUnmap {
		if fixed {
			if !newAddr.IsPageAligned() {
				return 0, unix.EINVAL
			}
			newEnd, ok := newAddr.AddLength(newSize)
			if !ok || newEnd > m.maxAddr {
				return 0, unix.EINVAL
			}
			if (hostarch.AddrRange{Start: oldAddr, End: oldAddr + hostarch.Addr(max(oldSize, pageSize))}).Overlaps(hostarch.AddrRange{Start: newAddr, End: newEnd}) {
				return 0, unix.EINVAL
			}
		}
		v, err := m.vmaToResizeLocked(oldAddr, oldSize, newSize)
		if err != nil {
			return 0, err
		}
		if dontUnmap && (v.mappable != nil) {
			return 0, unix.EINVAL
		}
		if fixed {
			if newAddr < minMmapAddr {
				return 0, unix.EPERM
			}
			m.unmapLocked(newAddr, newAddr+hostarch.Addr(newSize))
		}
		if oldSize > newSize {
			m.unmapLocked(oldAddr+hostarch.Addr(newSize), oldEnd)
			oldSize = newSize
		}
		if !fixed {
			a, ok := m.findAvailableLocked(0, newSize)
			if !ok {
				return 0, unix.ENOMEM
			}
			newAddr = a
		}
		return m.moveLocked(oldAddr, oldSize, newAddr, newSize, dontUnmap)
	}

	if oldSize >= newSize && oldSize != 0 {
		if _, err := m.vmaToResizeLocked(oldAddr, oldSize, oldSize); err != nil {
			return 0, err
		}
		m.unmapLocked(oldAddr+hostarch.Addr(newSize), oldEnd)
		return oldAddr, nil
	}
	v, err := m.vmaToResizeLocked(oldAddr, oldSize, newSize)
	if err != nil {
		return 0, err
	}
	// Grow in place when the vma ends where the old range does and the
	// space after it is free.
	if oldSize != 0 && v.end == oldEnd {
		if newEnd, ok := oldAddr.AddLength(newSize); ok && newEnd <= m.maxAddr && m.rangeFreeLocked(oldEnd, newEnd) {
			if v.mappable != nil {
				v.mappable.AddMapping(m, hostarch.AddrRange{Start: oldEnd, End: newEnd}, v.offAt(oldEnd), v.writableMapping())
			}
			v.end = newEnd
			m.mergeRangeLocked(v.start, v.end)
			return oldAddr, nil
		}
	}
	if !mayMove {
		return 0, unix.ENOMEM
	}
	a, ok := m.findAvailableLocked(0, newSize)
	if !ok {
		return 0, unix.ENOMEM
	}
	return m.moveLocked(oldAddr, oldSize, a, newSize, false)
}

// vmaToResizeLocked finds the vma holding [addr, addr+oldSize) for mremap.
func (m *MemoryManager) vmaToResizeLocked(addr hostarch.Addr, oldSize, newSize uint64) (*vma, error) {
	v := m.findVMALocked(addr)
	if v == nil {
		return nil, unix.EFAULT
	}
	if oldSize > uint64(v.end-addr) {
		return nil, unix.EFAULT
	}
	if oldSize == 0 && v.private {
		// Only a shared mapping can be duplicated with old_size 0.
		return nil, unix.EINVAL
	}
	if m.vmas.Len() >= maxMapCount && newSize > oldSize {
		return nil, unix.ENOMEM
	}
	return v, nil
}

// moveLocked moves [oldAddr, oldAddr+oldSize) to newAddr (free), growing it
// to newSize; private pages move with it. With oldSize 0 the (shared)
// mapping is duplicated instead. With keepOld the old range stays mapped
// but empty (MREMAP_DONTUNMAP).
func (m *MemoryManager) moveLocked(oldAddr hostarch.Addr, oldSize uint64, newAddr hostarch.Addr, newSize uint64, keepOld bool) (hostarch.Addr, error) {
	oldEnd := oldAddr + hostarch.Addr(oldSize)
	src := m.findVMALocked(oldAddr)
	if oldSize != 0 {
		m.splitLocked(oldAddr)
		m.splitLocked(oldEnd)
		src = m.findVMALocked(oldAddr)
	}
	nv := *src
	nv.start, nv.end = newAddr, newAddr+hostarch.Addr(newSize)
	nv.off = src.offAt(oldAddr)
	if nv.mappable != nil {
		nv.mappable.IncRef()
		nv.mappable.AddMapping(m, nv.ar(), nv.off, nv.writableMapping())
	}
	if oldSize != 0 {
		m.pagesMu.Lock()
		runs := m.pages.remove(uint64(oldAddr), uint64(oldEnd))
		m.unmapAS(oldAddr, oldEnd)
		delta := uint64(newAddr) - uint64(oldAddr)
		for _, r := range runs {
			r.start += delta
			r.end += delta
			m.pages.insert(r)
		}
		m.pagesMu.Unlock()
		if !keepOld {
			m.vmas.Delete(src)
			src.dropMappable(m)
		}
	}
	m.vmas.ReplaceOrInsert(&nv)
	m.mergeRangeLocked(nv.start, nv.end)
	if keepOld {
		m.mergeRangeLocked(oldAddr, oldEnd)
	}
	return newAddr, nil
}

// madviseKnown lists the advice values Linux accepts (besides the ones
// handled specially).
func madviseKnown(advice int) bool {
	switch advice {
	case unix.MADV_NORMAL, unix.MADV_RANDOM, unix.MADV_SEQUENTIAL, unix.MADV_WILLNEED,
		unix.MADV_DONTNEED, unix.MADV_FREE, unix.MADV_REMOVE, unix.MADV_DONTFORK,
		unix.MADV_DOFORK, unix.MADV_MERGEABLE, unix.MADV_UNMERGEABLE, unix.MADV_HUGEPAGE,
		unix.MADV_NOHUGEPAGE, unix.MADV_DONTDUMP, unix.MADV_DODUMP, unix.MADV_WIPEONFORK,
		unix.MADV_KEEPONFORK, unix.MADV_COLD, unix.MADV_PAGEOUT, unix.MADV_POPULATE_READ,
		unix.MADV_POPULATE_WRITE, unix.MADV_DONTNEED_LOCKED, unix.MADV_COLLAPSE:
		return true
	}
	return false
}

// MAdvise implements madvise(2). DONTNEED and FREE drop private pages (so
// anonymous memory reads back zero and private file pages revert to the
// file's); REMOVE zeroes shared anonymous memory; DONTFORK, DOFORK,
// WIPEONFORK and KEEPONFORK change what fork copies; the rest are hints.
func (m *MemoryManager) MAdvise(addr hostarch.Addr, length uint64, advice int) error {
	if advice == unix.MADV_HWPOISON || advice == 101 /* MADV_SOFT_OFFLINE */ {
		return unix.EPERM
	}
	if !madviseKnown(advice) || !addr.IsPageAligned() {
		return unix.EINVAL
	}
	alen, ok := pageAlignLen(length)
	if !ok || (length != 0 && alen == 0) {
		return unix.EINVAL
	}
	end, ok := addr.AddLength(alen)
	if !ok {
		return unix.EINVAL
	}
	if end == addr {
		return nil
	}
	if end > m.maxAddr {
		return unix.ENOMEM
	}

	flagAdvice := advice == unix.MADV_DONTFORK || advice == unix.MADV_DOFORK ||
		advice == unix.MADV_WIPEONFORK || advice == unix.MADV_KEEPONFORK
	dropAdvice := advice == unix.MADV_DONTNEED || advice == unix.MADV_FREE ||
		advice == unix.MADV_DONTNEED_LOCKED || advice == unix.MADV_REMOVE
	if !flagAdvice && !dropAdvice {
		m.mappingMu.RLock()
		defer m.mappingMu.RUnlock()
		return m.holesLocked(addr, end)
	}

	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	var err error
	for _, v := range m.overlappingLocked(addr, end) {
		s, e := max(v.start, addr), min(v.end, end)
		switch advice {
		case unix.MADV_DONTNEED, unix.MADV_DONTNEED_LOCKED, unix.MADV_FREE:
			if advice == unix.MADV_FREE && v.mappable != nil {
				return unix.EINVAL
			}
			if v.locked && advice != unix.MADV_DONTNEED_LOCKED {
				return unix.EINVAL
			}
			m.pagesMu.Lock()
			runs := m.pages.remove(uint64(s), uint64(e))
			m.unmapAS(s, e)
			m.pagesMu.Unlock()
			m.decRefRuns(runs)
		case unix.MADV_REMOVE:
			shm, ok := v.mappable.(*anonShared)
			if v.private {
				return unix.EINVAL
			}
			if !ok {
				return unix.EOPNOTSUPP
			}
			shm.zero(v.offAt(s), uint64(e-s))
		default:
			if (advice == unix.MADV_WIPEONFORK || advice == unix.MADV_KEEPONFORK) && v.mappable != nil {
				return unix.EINVAL
			}
			m.splitLocked(s)
			m.splitLocked(e)
			w := m.findVMALocked(s)
			switch advice {
			case unix.MADV_DONTFORK:
				w.dontFork = true
			case unix.MADV_DOFORK:
				w.dontFork = false
			case unix.MADV_WIPEONFORK:
				w.wipeOnFork = true
			case unix.MADV_KEEPONFORK:
				w.wipeOnFork = false
			}
		}
	}
	if flagAdvice {
		m.mergeRangeLocked(addr, end)
	}
	if herr := m.holesLocked(addr, end); herr != nil {
		err = herr
	}
	return err
}

// holesLocked returns ENOMEM if part of [start, end) is not mapped.
func (m *MemoryManager) holesLocked(start, end hostarch.Addr) error {
	cur := start
	for _, v := range m.overlappingLocked(start, end) {
		if v.start > cur {
			return unix.ENOMEM
		}
		cur = v.end
	}
	if cur < end {
		return unix.ENOMEM
	}
	return nil
}

// BrkSetup sets where the program break starts (just past the loaded
// executable's data) and resets it there.
func (m *MemoryManager) BrkSetup(start hostarch.Addr) {
	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	m.brkStart, m.brk = start, start
}

// SetBrkStart is BrkSetup, under the name the loader's caller uses.
func (m *MemoryManager) SetBrkStart(start hostarch.Addr) { m.BrkSetup(start) }

// BrkRange returns the program break's start and current value.
func (m *MemoryManager) BrkRange() (start, brk hostarch.Addr) {
	m.mappingMu.RLock()
	defer m.mappingMu.RUnlock()
	return m.brkStart, m.brk
}

// Brk implements brk(2): it moves the program break to addr if it can and
// returns the break, unchanged when addr is below the start or the heap
// cannot grow into the space asked for.
func (m *MemoryManager) Brk(addr hostarch.Addr) hostarch.Addr {
	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	if addr < m.brkStart {
		return m.brk
	}
	newBrk, ok := addr.RoundUp()
	if !ok || newBrk > m.maxAddr {
		return m.brk
	}
	oldBrk := roundUpClamp(m.brk)
	switch {
	case newBrk == oldBrk:
	case newBrk < oldBrk:
		m.unmapLocked(newBrk, oldBrk)
	default:
		// Linux keeps a page of space above the new break, and the guard
		// gap of a stack above it.
		if len(m.overlappingLocked(oldBrk, newBrk+pageSize)) != 0 {
			return m.brk
		}
		if next := m.nextVMALocked(newBrk); next != nil && newBrk+pageSize > vmStartGap(next) {
			return m.brk
		}
		if m.vmas.Len() >= maxMapCount {
			return m.brk
		}
		m.vmas.ReplaceOrInsert(&vma{
			start: oldBrk, end: newBrk, private: true,
			perms: hostarch.ReadWrite, maxPerms: hostarch.AnyAccess,
		})
		m.mergeRangeLocked(oldBrk, newBrk)
	}
	m.brk = addr
	return addr
}

// MSync implements msync(2). Shared memory lives in the memory file; with
// MS_SYNC a Mappable that caches a backing store (memmap.Syncer) writes
// the range back. MS_ASYNC has nothing to start, as on Linux, where dirty
// pages are tracked anyway.
func (m *MemoryManager) MSync(addr hostarch.Addr, length uint64, flags int) error {
	if flags&^(MS_ASYNC|MS_INVALIDATE|MS_SYNC) != 0 || !addr.IsPageAligned() ||
		(flags&MS_ASYNC != 0 && flags&MS_SYNC != 0) {
		return unix.EINVAL
	}
	alen, ok := pageAlignLen(length)
	if !ok {
		return unix.ENOMEM
	}
	end, ok := addr.AddLength(alen)
	if !ok {
		return unix.ENOMEM
	}
	if end == addr {
		return nil
	}
	type syncRange struct {
		s        memmap.Syncer
		off, len uint64
	}
	var syncs []syncRange
	m.mappingMu.RLock()
	if flags&MS_INVALIDATE != 0 {
		for _, v := range m.overlappingLocked(addr, end) {
			if v.locked {
				m.mappingMu.RUnlock()
				return unix.EBUSY
			}
		}
	}
	if err := m.holesLocked(addr, end); err != nil {
		m.mappingMu.RUnlock()
		return err
	}
	if flags&MS_SYNC != 0 {
		for _, v := range m.overlappingLocked(addr, end) {
			if s, ok := v.mappable.(memmap.Syncer); ok && !v.private {
				start, stop := max(v.start, addr), min(v.end, end)
				v.mappable.IncRef()
				syncs = append(syncs, syncRange{s, v.offAt(start), uint64(stop - start)})
			}
		}
	}
	m.mappingMu.RUnlock()
	// Written back without mappingMu: it is host I/O.
	var err error
	for _, r := range syncs {
		if e := r.s.SyncRange(r.off, r.len); e != nil && err == nil {
			err = e
		}
		r.s.(memmap.Mappable).DecRef()
	}
	return err
}

// MLock implements mlock(2)/mlock2(2): all memory stays resident here, so
// it only checks the range and marks the vmas (for madvise's rules).
func (m *MemoryManager) MLock(addr hostarch.Addr, length uint64, lock bool) error {
	start := addr.RoundDown()
	alen, ok := pageAlignLen(length + uint64(addr-start))
	if !ok {
		return unix.ENOMEM
	}
	end, ok := start.AddLength(alen)
	if !ok || end > m.maxAddr {
		return unix.ENOMEM
	}
	if end == start {
		return nil
	}
	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	if err := m.holesLocked(start, end); err != nil {
		return err
	}
	m.splitLocked(start)
	m.splitLocked(end)
	for _, v := range m.overlappingLocked(start, end) {
		v.locked = lock
	}
	m.mergeRangeLocked(start, end)
	return nil
}

// MLockAll implements mlockall(2)'s flag checks.
func (m *MemoryManager) MLockAll(flags int) error {
	if flags == 0 || flags&^(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT) != 0 || flags == MCL_ONFAULT {
		return unix.EINVAL
	}
	if flags&MCL_CURRENT != 0 {
		m.mappingMu.Lock()
		m.vmas.Ascend(func(v *vma) bool {
			v.locked = true
			return true
		})
		m.mappingMu.Unlock()
	}
	return nil
}

// MUnlockAll implements munlockall(2).
func (m *MemoryManager) MUnlockAll() {
	m.mappingMu.Lock()
	m.vmas.Ascend(func(v *vma) bool {
		v.locked = false
		return true
	})
	m.mappingMu.Unlock()
}
