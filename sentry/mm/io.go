package mm

import (
	"bytes"
	"errors"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/usermem"
)

var _ usermem.IO = (*MemoryManager)(nil)

// copyChunk bounds how much one CopyIn/CopyOut step pins and allocates.
const copyChunk = 1 << 20

// pin resolves [start, end) (page aligned) for access at, as the
// application could access it, and takes a reference to every memory-file
// page of it, so the pages outlive a concurrent munmap or copy-on-write
// break until unpin. It returns runs covering a prefix of the range and
// EFAULT (or ENOMEM) if that prefix is short. Stacks do not grow here:
// since Linux 6.5 only faults expand them.
func (m *MemoryManager) pin(start, end hostarch.Addr, at hostarch.AccessType) ([]fileRun, error) {
	m.mappingMu.RLock()
	defer m.mappingMu.RUnlock()
	var out []fileRun
	cur := start
	for cur < end {
		v := m.findVMALocked(cur)
		if v == nil || !v.perms.SupersetOf(at) {
			return out, unix.EFAULT
		}
		segEnd := min(end, v.end)
		m.pagesMu.Lock()
		runs, err := m.getPagesLocked(v, cur, segEnd, at)
		for _, r := range runs {
			if !r.perms.SupersetOf(at) {
				err = unix.EFAULT
				break
			}
			m.mf.IncRef(r.off, r.length())
			out = append(out, r)
			cur = r.end
		}
		m.pagesMu.Unlock()
		if err != nil {
			if errors.Is(err, unix.ENOMEM) {
				return out, unix.ENOMEM
			}
			return out, unix.EFAULT
		}
		if cur < segEnd {
			return out, unix.EFAULT
		}
	}
	return out, nil
}

func (m *MemoryManager) unpin(runs []fileRun) {
	for _, r := range runs {
		m.mf.DecRef(r.off, r.length())
	}
}

// checkRange validates [addr, addr+n) as an application range.
func (m *MemoryManager) checkRange(addr hostarch.Addr, n uint64) (hostarch.Addr, error) {
	end, ok := addr.AddLength(n)
	if !ok || end > m.maxAddr {
		return 0, unix.EFAULT
	}
	return end, nil
}

// Blocks implements usermem.IO. The slices alias the memory file and stay
// valid, with their pages allocated, until release is called.
func (m *MemoryManager) Blocks(ar hostarch.AddrRange, write bool) ([][]byte, func(), error) {
	if ar.End <= ar.Start {
		if ar.End < ar.Start {
			return nil, func() {}, unix.EFAULT
		}
		return nil, func() {}, nil
	}
	at := hostarch.Read
	if write {
		at = hostarch.Write
	}
	if ar.End > m.maxAddr {
		ar.End = m.maxAddr
		if ar.Start >= ar.End {
			return nil, func() {}, unix.EFAULT
		}
		bs, rel, err := m.Blocks(ar, write)
		if err == nil {
			err = unix.EFAULT
		}
		return bs, rel, err
	}
	runs, err := m.pin(ar.Start.RoundDown(), roundUpClamp(ar.End), at)
	var once sync.Once
	release := func() { once.Do(func() { m.unpin(runs) }) }
	var blocks [][]byte
	// Runs adjacent in the file are adjacent in the sentry's view, so
	// they make one block: lastOff is the file offset blocks[last] starts at.
	var lastOff uint64
	for _, r := range runs {
		s, e := max(r.start, ar.Start), min(r.end, ar.End)
		if s >= e {
			continue
		}
		off, n := r.off+uint64(s-r.start), uint64(e-s)
		if k := len(blocks); k > 0 && lastOff+uint64(len(blocks[k-1])) == off {
			if b, merr := m.mf.MapInternal(lastOff, uint64(len(blocks[k-1]))+n); merr == nil {
				blocks[k-1] = b
				continue
			}
		}
		b, merr := m.mf.MapInternal(off, n)
		if merr != nil {
			release()
			return nil, func() {}, unix.EFAULT
		}
		blocks = append(blocks, b)
		lastOff = off
	}
	return blocks, release, err
}

// CopyOut implements usermem.IO: it writes src at addr as the application
// could (EFAULT where it could not), faulting pages in without mapping them
// into the platform address space.
func (m *MemoryManager) CopyOut(addr hostarch.Addr, src []byte) (int, error) {
	if _, err := m.checkRange(addr, uint64(len(src))); err != nil {
		return m.partial(addr, src, true)
	}
	if len(src) <= smallCopy {
		if n, ok, err := m.copyLocked(addr, src, true); ok {
			return n, err
		}
	}
	done := 0
	for done < len(src) {
		n := min(len(src)-done, copyChunk)
		ar := hostarch.AddrRange{Start: addr + hostarch.Addr(done), End: addr + hostarch.Addr(done+n)}
		bs, release, err := m.Blocks(ar, true)
		for _, b := range bs {
			done += copy(b, src[done:])
		}
		release()
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// CopyIn implements usermem.IO: it reads len(dst) bytes at addr.
func (m *MemoryManager) CopyIn(addr hostarch.Addr, dst []byte) (int, error) {
	if _, err := m.checkRange(addr, uint64(len(dst))); err != nil {
		return m.partial(addr, dst, false)
	}
	if len(dst) <= smallCopy {
		if n, ok, err := m.copyLocked(addr, dst, false); ok {
			return n, err
		}
	}
	done := 0
	for done < len(dst) {
		n := min(len(dst)-done, copyChunk)
		ar := hostarch.AddrRange{Start: addr + hostarch.Addr(done), End: addr + hostarch.Addr(done+n)}
		bs, release, err := m.Blocks(ar, false)
		for _, b := range bs {
			done += copy(dst[done:], b)
		}
		release()
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// partial copies the part of a range that wraps or runs past the user
// range up to where it stops being valid.
func (m *MemoryManager) partial(addr hostarch.Addr, buf []byte, out bool) (int, error) {
	if addr >= m.maxAddr {
		return 0, unix.EFAULT
	}
	n := int(m.maxAddr - addr)
	if n > len(buf) {
		n = len(buf)
	}
	var done int
	var err error
	if out {
		done, err = m.CopyOut(addr, buf[:n])
	} else {
		done, err = m.CopyIn(addr, buf[:n])
	}
	if err == nil {
		err = unix.EFAULT
	}
	return done, err
}

// ZeroOut writes n zero bytes at addr.
func (m *MemoryManager) ZeroOut(addr hostarch.Addr, n uint64) (uint64, error) {
	if _, err := m.checkRange(addr, n); err != nil {
		return 0, unix.EFAULT
	}
	var done uint64
	for done < n {
		c := min(n-done, copyChunk)
		ar := hostarch.AddrRange{Start: addr + hostarch.Addr(done), End: addr + hostarch.Addr(done+c)}
		bs, release, err := m.Blocks(ar, true)
		for _, b := range bs {
			clear(b)
			done += uint64(len(b))
		}
		release()
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// CopyInString reads a NUL-terminated string of at most maxLen bytes
// (without the NUL) at addr, a page at a time so that a string ending
// just before unmapped memory reads fine. ENAMETOOLONG if no NUL comes
// within maxLen bytes.
func (m *MemoryManager) CopyInString(addr hostarch.Addr, maxLen int) (string, error) {
	var out []byte
	for len(out) < maxLen {
		n := int(pageSize - uint64(addr)&pageMask)
		if n > maxLen-len(out) {
			n = maxLen - len(out)
		}
		buf := make([]byte, n)
		got, err := m.CopyIn(addr, buf)
		if i := bytes.IndexByte(buf[:got], 0); i >= 0 {
			return string(append(out, buf[:i]...)), nil
		}
		out = append(out, buf[:got]...)
		if err != nil {
			return string(out), err
		}
		addr += hostarch.Addr(n)
	}
	return string(out), unix.ENAMETOOLONG
}
