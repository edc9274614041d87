package mm

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// fileRun is application memory [start, end) resolved to the memory file at
// off; perms is the most the platform may map it with (write is withheld
// from pages that must be copied before they are written).
type fileRun struct {
	start, end hostarch.Addr
	off        uint64
	perms      hostarch.AccessType
}

func (r fileRun) length() uint64 { return uint64(r.end - r.start) }

// appendRun appends r to rs, merging it into the last run if contiguous in
// both spaces with equal perms.
func appendRun(rs []fileRun, r fileRun) []fileRun {
	if n := len(rs); n > 0 {
		l := &rs[n-1]
		if l.end == r.start && l.off+l.length() == r.off && l.perms == r.perms {
			l.end = r.end
			return rs
		}
	}
	return append(rs, r)
}

// translateErr turns a Mappable's Translate failure into a fault error.
func translateErr(err error) error {
	switch {
	case errors.Is(err, unix.EACCES):
		return unix.EFAULT
	case errors.Is(err, unix.ENOMEM):
		return unix.ENOMEM
	default:
		return ErrBusError
	}
}

// getPagesLocked makes [start, end) of v (page aligned) backed by memory
// for access at: allocating private anonymous pages, copying private pages
// that are copy-on-write shared or still the file's when at writes, and
// translating file and shared pages. It returns runs covering a prefix of
// the range in order, and an error if that prefix is short.
//
// Preconditions: mappingMu held (read suffices); pagesMu held.
func (m *MemoryManager) getPagesLocked(v *vma, start, end hostarch.Addr, at hostarch.AccessType) ([]fileRun, error) {
	if !v.private {
		return m.translateLocked(v, start, end, at)
	}
	var out []fileRun
	cur := start
	for cur < end {
		if r, ok := m.pages.find(uint64(cur)); ok {
			r = r.clip(uint64(cur), uint64(end))
			if at.Write && r.cow {
				var err error
				if r, err = m.breakCOWLocked(r); err != nil {
					return out, err
				}
			}
			perms := v.perms
			if r.cow {
				perms.Write = false
			}
			out = appendRun(out, fileRun{start: hostarch.Addr(r.start), end: hostarch.Addr(r.end), off: r.off, perms: perms})
			cur = hostarch.Addr(r.end)
			continue
		}
		hEnd := hostarch.Addr(m.pages.nextStart(uint64(cur), uint64(end)))
		if uint64(hEnd-cur) > maxAllocChunk {
			hEnd = cur + maxAllocChunk
		}
		switch {
		case v.mappable == nil:
			off, err := m.mf.Allocate(uint64(hEnd - cur))
			if err != nil {
				return out, err
			}
			m.pages.insert(pageRun{start: uint64(cur), end: uint64(hEnd), off: off})
			out = appendRun(out, fileRun{start: cur, end: hEnd, off: off, perms: v.perms})
		case at.Write:
			// A private file page being written: copy what the file has
			// into a page of our own.
			ts, terr := m.translateLocked(v, cur, hEnd, hostarch.Read)
			if len(ts) == 0 {
				return out, terr
			}
			cEnd := ts[len(ts)-1].end
			off, err := m.mf.Allocate(uint64(cEnd - cur))
			if err != nil {
				return out, err
			}
			dst, err := m.mf.MapInternal(off, uint64(cEnd-cur))
			if err != nil {
				m.mf.DecRef(off, uint64(cEnd-cur))
				return out, err
			}
			for _, t := range ts {
				src, err := m.mf.MapInternal(t.off, t.length())
				if err != nil {
					m.mf.DecRef(off, uint64(cEnd-cur))
					return out, err
				}
				copy(dst[t.start-cur:], src)
			}
			m.pages.insert(pageRun{start: uint64(cur), end: uint64(cEnd), off: off})
			out = appendRun(out, fileRun{start: cur, end: cEnd, off: off, perms: v.perms})
			if terr != nil {
				return out, terr
			}
		default:
			// Read or execute: the file's own pages, never writable.
			ts, terr := m.translateLocked(v, cur, hEnd, hostarch.AccessType{Read: true, Execute: at.Execute})
			for _, t := range ts {
				t.perms.Write = false
				out = appendRun(out, t)
			}
			if terr != nil {
				return out, terr
			}
		}
		cur = hEnd
	}
	return out, nil
}

// breakCOWLocked gives the page table its own copy of r (clipped to a
// contiguous allocation it can make), or just claims r when nobody else
// holds it any more. Preconditions: pagesMu held.
func (m *MemoryManager) breakCOWLocked(r pageRun) (pageRun, error) {
	if r.length() > maxAllocChunk {
		r = r.clip(r.start, r.start+maxAllocChunk)
	}
	if m.mf.Exclusive(r.off, r.length()) {
		m.pages.remove(r.start, r.end)
		r.cow = false
		m.pages.insert(r)
		return r, nil
	}
	off, err := m.mf.Allocate(r.length())
	if err != nil {
		return r, err
	}
	dst, err := m.mf.MapInternal(off, r.length())
	if err == nil {
		var src []byte
		if src, err = m.mf.MapInternal(r.off, r.length()); err == nil {
			copy(dst, src)
		}
	}
	if err != nil {
		m.mf.DecRef(off, r.length())
		return r, err
	}
	m.pages.remove(r.start, r.end)
	old := r.off
	r.off, r.cow = off, false
	m.pages.insert(r)
	m.mf.DecRef(old, r.length())
	return r, nil
}

// translateLocked asks v's Mappable for [start, end) and returns the runs
// covering a prefix of it, with perms limited by v and the translation.
func (m *MemoryManager) translateLocked(v *vma, start, end hostarch.Addr, at hostarch.AccessType) ([]fileRun, error) {
	off := v.offAt(start)
	limit := off + uint64(end-start)
	ts, err := v.mappable.Translate(off, limit-off, at)
	var out []fileRun
	next := off
	for _, t := range ts {
		tEnd := t.Offset + t.Length
		if t.Offset > next {
			break
		}
		if tEnd <= next {
			continue
		}
		e := min(tEnd, limit)
		out = appendRun(out, fileRun{
			start: start + hostarch.Addr(next-off),
			end:   start + hostarch.Addr(e-off),
			off:   t.FileOffset + (next - t.Offset),
			perms: v.perms.Intersect(t.Perms),
		})
		next = e
		if next >= limit {
			break
		}
	}
	if next < limit {
		if err == nil {
			return out, ErrBusError
		}
		return out, translateErr(err)
	}
	return out, nil
}
