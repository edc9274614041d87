package mm

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// Most copies a syscall makes are a few bytes to a few KiB of the
// application's private memory (a path, a struct, a small buffer). pin
// references every page in the memory file's refcount tree and unpin
// drops them again, which costs more than the copy. For private memory
// the mm's own locks already keep the pages: they can only be freed by
// munmap (mappingMu held for writing) or a copy-on-write break (pagesMu),
// so a small copy done with mappingMu read-held and pagesMu held needs no
// references. Shared mappings' pages belong to their file, which may drop
// them on truncate, so those keep the pinning path.

// smallCopy is the largest copy done under the locks; it bounds how long
// other threads' faults wait on pagesMu.
const smallCopy = 16 << 10

// copyLocked copies buf to (write) or from application memory at addr
// under the mm's locks. ok is false, with nothing copied, if the range
// touches a shared mapping; otherwise it returns what copyIn/copyOut
// would: the bytes done and EFAULT or ENOMEM where the range stops being
// accessible.
func (m *MemoryManager) copyLocked(addr hostarch.Addr, buf []byte, write bool) (done int, ok bool, err error) {
	at := hostarch.Read
	if write {
		at = hostarch.Write
	}
	end := addr + hostarch.Addr(len(buf)) // checkRange was done by the caller
	m.mappingMu.RLock()
	defer m.mappingMu.RUnlock()
	for cur := addr.RoundDown(); cur < end; {
		v := m.findVMALocked(cur)
		if v == nil {
			break // EFAULT at cur, found below
		}
		if !v.private {
			return 0, false, nil
		}
		cur = v.end
	}
	m.pagesMu.Lock()
	defer m.pagesMu.Unlock()
	for cur := addr.RoundDown(); cur < end; {
		v := m.findVMALocked(cur)
		if v == nil || !v.perms.SupersetOf(at) {
			return done, true, unix.EFAULT
		}
		segEnd := min(roundUpClamp(end), v.end)
		runs, gerr := m.getPagesLocked(v, cur, segEnd, at)
		for _, r := range runs {
			if !r.perms.SupersetOf(at) {
				return done, true, unix.EFAULT
			}
			s, e := max(r.start, addr), min(r.end, end)
			if s < e {
				b, merr := m.mf.MapInternal(r.off+uint64(s-r.start), uint64(e-s))
				if merr != nil {
					return done, true, unix.EFAULT
				}
				if write {
					done += copy(b, buf[done:])
				} else {
					done += copy(buf[done:], b)
				}
			}
			cur = r.end
		}
		if gerr != nil {
			if errors.Is(gerr, unix.ENOMEM) {
				return done, true, unix.ENOMEM
			}
			return done, true, unix.EFAULT
		}
		if cur < segEnd {
			return done, true, unix.EFAULT
		}
	}
	return done, true, nil
}
