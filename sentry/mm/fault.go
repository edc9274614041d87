package mm

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// HandleFault services a page fault the platform reported at addr with
// access at; mapped says whether the host had a page there (SEGV_ACCERR)
// or not (SEGV_MAPERR). On success the page (and up to a window of its
// neighbours) is mapped into the platform address space, if there is one.
// Errors: ErrNoVMA, unix.EFAULT (access not allowed), ErrBusError, or
// ENOMEM; FaultSignal says which signal each means.
func (m *MemoryManager) HandleFault(addr hostarch.Addr, at hostarch.AccessType, mapped bool) error {
	if addr >= m.maxAddr {
		return ErrNoVMA
	}
	if mapped && !at.Write && !at.Execute {
		// Pages we map are always readable, so a fault on a present page
		// that the platform could not classify was a write.
		at.Write = true
	}
	if !at.Any() {
		at.Read = true
	}

	m.mappingMu.RLock()
	v := m.findVMALocked(addr)
	if v == nil {
		m.mappingMu.RUnlock()
		if err := m.growStack(addr); err != nil {
			return err
		}
		m.mappingMu.RLock()
		if v = m.findVMALocked(addr); v == nil {
			m.mappingMu.RUnlock()
			return ErrNoVMA
		}
	}
	defer m.mappingMu.RUnlock()
	if !v.perms.SupersetOf(at) {
		return unix.EFAULT
	}

	page := addr.RoundDown()
	wStart := page &^ (faultWindowPages*pageSize - 1)
	wEnd := wStart + faultWindowPages*pageSize
	if wStart < v.start {
		wStart = v.start
	}
	if wEnd > v.end || wEnd < wStart {
		wEnd = v.end
	}

	m.pagesMu.Lock()
	defer m.pagesMu.Unlock()
	if v.private {
		// Work only on the piece of the window that is uniform around
		// the fault: one page-table run, or one hole.
		if r, ok := m.pages.find(uint64(page)); ok {
			wStart = max(wStart, hostarch.Addr(r.start))
			wEnd = min(wEnd, hostarch.Addr(r.end))
		} else {
			wEnd = min(wEnd, hostarch.Addr(m.pages.nextStart(uint64(page), uint64(wEnd))))
			wStart = max(wStart, hostarch.Addr(m.pages.prevEnd(uint64(page))))
		}
	}
	runs, err := m.getPagesLocked(v, wStart, wEnd, at)
	for _, r := range runs {
		if r.start <= addr && addr < r.end {
			if !r.perms.SupersetOf(at) {
				return unix.EFAULT
			}
			if as := m.AddressSpace(); as != nil {
				return as.MapFile(r.start, r.off, r.length(), r.perms)
			}
			return nil
		}
	}
	if err == nil {
		err = ErrBusError
	}
	return err
}

// growStack extends a growsdown vma down to cover addr, as Linux does for a
// fault just below the stack: within the stack limit, and keeping the guard
// gap from the vma below.
func (m *MemoryManager) growStack(addr hostarch.Addr) error {
	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	if m.findVMALocked(addr) != nil {
		return nil // someone else grew it
	}
	next := m.nextVMALocked(addr)
	if next == nil || !next.growsDown {
		return ErrNoVMA
	}
	newStart := addr.RoundDown()
	if newStart < minMmapAddr || uint64(next.end-newStart) > m.stackLimit {
		return ErrNoVMA
	}
	delta := uint64(next.start - newStart)
	if next.mappable != nil && next.off < delta {
		return ErrNoVMA
	}
	if prev := m.prevVMALocked(newStart); prev != nil && !prev.growsDown && prev.perms.Any() &&
		(prev.end > newStart || uint64(newStart-prev.end) < guardGap) {
		return ErrNoVMA
	}
	m.vmas.Delete(next)
	if next.mappable != nil {
		next.off -= delta
		next.mappable.AddMapping(m, hostarch.AddrRange{Start: newStart, End: next.start}, next.off, next.writableMapping())
	}
	next.start = newStart
	m.vmas.ReplaceOrInsert(next)
	return nil
}
