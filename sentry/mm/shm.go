package mm

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/memory"
)

// anonInoCounter numbers shared anonymous objects for /proc/pid/maps, as
// Linux shows each one as its own deleted /dev/zero inode.
var anonInoCounter atomic.Uint64

// anonShared is the object behind MAP_SHARED|MAP_ANONYMOUS memory: pages
// of the memory file shared by every address space that maps it (across
// fork). Its size is fixed at creation, as a shmem file's is; access past
// it is SIGBUS.
//
// Lock order: anonShared.mu comes after MemoryManager.pagesMu.
type anonShared struct {
	mf   *memory.File
	size uint64
	ino  uint64
	refs atomic.Int64

	mu    sync.Mutex
	pages pageSet
}

func newAnonShared(mf *memory.File, size uint64) *anonShared {
	s := &anonShared{mf: mf, size: size, ino: anonInoCounter.Add(1), pages: newPageSet()}
	s.refs.Store(1)
	return s
}

// Translate implements memmap.Mappable, allocating pages on first use.
func (s *anonShared) Translate(off, length uint64, at hostarch.AccessType) ([]memmap.Translation, error) {
	end := off + length
	var err error
	if end > s.size || end < off {
		end, err = s.size, unix.EFAULT
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []memmap.Translation
	for cur := off; cur < end; {
		if r, ok := s.pages.find(cur); ok {
			r = r.clip(cur, end)
			out = append(out, memmap.Translation{Offset: r.start, Length: r.length(), FileOffset: r.off, Perms: hostarch.AnyAccess})
			cur = r.end
			continue
		}
		hEnd := min(s.pages.nextStart(cur, end), cur+maxAllocChunk)
		fo, aerr := s.mf.Allocate(hEnd - cur)
		if aerr != nil {
			return out, aerr
		}
		s.pages.insert(pageRun{start: cur, end: hEnd, off: fo})
		out = append(out, memmap.Translation{Offset: cur, Length: hEnd - cur, FileOffset: fo, Perms: hostarch.AnyAccess})
		cur = hEnd
	}
	return out, err
}

// zero clears [off, off+length) (MADV_REMOVE). The pages stay allocated:
// other address spaces may have them mapped, and this object does not
// track them to invalidate.
func (s *anonShared) zero(off, length uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.pages.overlapping(off, off+length) {
		r = r.clip(off, off+length)
		if b, err := s.mf.MapInternal(r.off, r.length()); err == nil {
			clear(b)
		}
	}
}

// AddMapping implements memmap.Mappable. The object never invalidates
// translations (its size is fixed and its pages live as long as it), so
// it need not track mappings.
func (s *anonShared) AddMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {}

// RemoveMapping implements memmap.Mappable.
func (s *anonShared) RemoveMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {}

// IncRef implements memmap.Mappable.
func (s *anonShared) IncRef() { s.refs.Add(1) }

// DecRef implements memmap.Mappable; the last reference frees the pages.
func (s *anonShared) DecRef() {
	switch n := s.refs.Add(-1); {
	case n == 0:
		s.mu.Lock()
		runs := s.pages.all()
		s.pages.t.Clear(false)
		s.mu.Unlock()
		for _, r := range runs {
			s.mf.DecRef(r.off, r.length())
		}
	case n < 0:
		panic("mm: anonShared DecRef without a reference")
	}
}
