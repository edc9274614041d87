// Package memory owns the memory file: the one memfd that holds every page
// of application memory (anonymous memory, tmpfs data, page caches). It
// allocates page ranges of the file, counts references to each page (so
// copy-on-write sharing after fork and pinning during copy-in/out keep a page
// alive), gives pages back to the host with FALLOC_FL_PUNCH_HOLE when their
// count drops to zero, and maps the file into the sentry so that the sentry
// reaches application memory with a plain memmove.
//
// It knows nothing of address spaces: callers hand it file offsets.
//
// Lock order: File.mu is a leaf. File.chunkMu (lazy mapping of the internal
// view) is also a leaf and is never held together with File.mu.
package memory

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/google/btree"
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
)

const (
	// DefaultSize is the (sparse) size of the memory file and of the
	// sentry's virtual reservation for it. Nothing is committed until a
	// page is written; the reservation only costs address space.
	DefaultSize = 128 << 30

	// ChunkSize is the granularity in which the file is mapped into the
	// sentry. Chunks are mapped on first use and kept.
	ChunkSize = 1 << 30

	pageMask = hostarch.PageSize - 1
)

// File is the memory file. All methods may be called from any goroutine.
type File struct {
	fd   int
	size uint64

	// view is the sentry's reservation for the whole file: PROT_NONE
	// anonymous memory until a chunk is mapped over it with MAP_FIXED, so
	// that any file range, even one crossing chunks, is one slice.
	view []byte

	chunkMu sync.Mutex
	// chunkMapped[i] != 0 once chunk i is mapped; read without chunkMu
	// on the fast path.
	chunkMapped []atomic.Uint32

	mu sync.Mutex
	// bump is the end of the part of the file ever handed out; past it
	// the file has never been used.
	bump uint64
	// free holds free ranges below bump, coalesced.
	free *btree.BTreeG[span]
	// refs holds allocated ranges with their reference count; adjacent
	// ranges with the same count are merged so that a large allocation
	// costs one entry, not one per page.
	refs *btree.BTreeG[span]
	// used is the number of allocated bytes.
	used uint64

	closed bool
}

// span is [start, end) of the file; count is meaningful in refs only.
type span struct {
	start, end uint64
	count      uint64
}

func spanLess(a, b span) bool { return a.start < b.start }

// New creates a memory file of DefaultSize.
func New() (*File, error) { return NewSized(DefaultSize) }

// NewSized creates a memory file of size bytes (rounded up to ChunkSize).
func NewSized(size uint64) (*File, error) {
	if size == 0 {
		return nil, unix.EINVAL
	}
	size = (size + ChunkSize - 1) &^ (ChunkSize - 1)
	fd, err := unix.MemfdCreate("veil-memory", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, linuxerr.FromHost(err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, linuxerr.FromHost(err)
	}
	view, err := unix.Mmap(-1, 0, int(size), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		unix.Close(fd)
		return nil, linuxerr.FromHost(err)
	}
	return &File{
		fd:          fd,
		size:        size,
		view:        view,
		chunkMapped: make([]atomic.Uint32, size/ChunkSize),
		free:        btree.NewG(8, spanLess),
		refs:        btree.NewG(8, spanLess),
	}, nil
}

// FD is the host file descriptor of the memory file, for platforms that map
// it into stub processes. It stays owned by the File.
func (f *File) FD() int { return f.fd }

// Size is the size of the file: the most memory it can hold.
func (f *File) Size() uint64 { return f.size }

// Close unmaps the sentry's view and closes the file. Callers must have
// stopped using every slice MapInternal returned.
func (f *File) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()
	err := unix.Munmap(f.view)
	if cerr := unix.Close(f.fd); err == nil {
		err = cerr
	}
	return linuxerr.FromHost(err)
}

func checkRange(off, length uint64) error {
	if length == 0 || off&pageMask != 0 || length&pageMask != 0 || off+length < off {
		return unix.EINVAL
	}
	return nil
}

// Allocate returns the offset of length bytes (a whole number of pages) of
// zeroed file memory with a reference count of one. It prefers reusing a
// freed range that fits, then fresh space at the end of the used part of the
// file; ENOMEM when the file has no contiguous range that large.
func (f *File) Allocate(length uint64) (uint64, error) {
	if length == 0 || length&pageMask != 0 {
		return 0, unix.EINVAL
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, unix.EINVAL
	}
	off, ok := f.takeFreeLocked(length)
	if !ok {
		if f.size-f.bump < length {
			return 0, unix.ENOMEM
		}
		off = f.bump
		f.bump += length
	}
	f.setCountLocked(off, off+length, 1)
	f.used += length
	return off, nil
}

// takeFreeLocked takes length bytes from the first free range large enough.
func (f *File) takeFreeLocked(length uint64) (uint64, bool) {
	var found span
	ok := false
	f.free.Ascend(func(s span) bool {
		if s.end-s.start >= length {
			found, ok = s, true
			return false
		}
		return true
	})
	if !ok {
		return 0, false
	}
	f.free.Delete(found)
	if found.end-found.start > length {
		f.free.ReplaceOrInsert(span{start: found.start + length, end: found.end})
	}
	return found.start, true
}

// setCountLocked records [start, end) (which must not be in refs) with
// count c, merging with equal neighbours.
func (f *File) setCountLocked(start, end, c uint64) {
	s := span{start: start, end: end, count: c}
	if prev, ok := f.spanBeforeLocked(f.refs, start); ok && prev.end == start && prev.count == c {
		f.refs.Delete(prev)
		s.start = prev.start
	}
	if next, ok := f.refs.Get(span{start: end}); ok && next.count == c {
		f.refs.Delete(next)
		s.end = next.end
	}
	f.refs.ReplaceOrInsert(s)
}

// spanBeforeLocked returns the span of t with the greatest start < off.
func (f *File) spanBeforeLocked(t *btree.BTreeG[span], off uint64) (span, bool) {
	var out span
	ok := false
	t.DescendLessOrEqual(span{start: off}, func(s span) bool {
		if s.start == off {
			return true
		}
		out, ok = s, true
		return false
	})
	return out, ok
}

// splitLocked makes off a boundary of refs if it falls inside a span.
func (f *File) splitLocked(off uint64) {
	var s span
	ok := false
	f.refs.DescendLessOrEqual(span{start: off}, func(x span) bool {
		s, ok = x, true
		return false
	})
	if !ok || s.start == off || s.end <= off {
		return
	}
	f.refs.ReplaceOrInsert(span{start: s.start, end: off, count: s.count})
	f.refs.ReplaceOrInsert(span{start: off, end: s.end, count: s.count})
}

// spansLocked returns the refs spans covering [off, off+length) after
// splitting at both ends, panicking if part of the range is not allocated:
// that is a sentry bug, never application input.
func (f *File) spansLocked(off, length uint64) []span {
	end := off + length
	f.splitLocked(off)
	f.splitLocked(end)
	var out []span
	next := off
	f.refs.AscendRange(span{start: off}, span{start: end}, func(s span) bool {
		if s.start != next {
			return false
		}
		out = append(out, s)
		next = s.end
		return true
	})
	if next != end {
		panic(fmt.Sprintf("memory: reference to unallocated range [%#x, %#x)", next, end))
	}
	return out
}

// mergeAroundLocked re-merges equal-count neighbours in [start, end] after
// counts changed.
func (f *File) mergeAroundLocked(start, end uint64) {
	var all []span
	lo := start
	if prev, ok := f.spanBeforeLocked(f.refs, start); ok {
		lo = prev.start
	}
	f.refs.AscendGreaterOrEqual(span{start: lo}, func(s span) bool {
		if s.start > end {
			return false
		}
		all = append(all, s)
		return true
	})
	for i := 0; i+1 < len(all); i++ {
		a, b := all[i], all[i+1]
		if a.end == b.start && a.count == b.count {
			f.refs.Delete(a)
			f.refs.Delete(b)
			b.start = a.start
			f.refs.ReplaceOrInsert(b)
			all[i+1] = b
		}
	}
}

// IncRef adds a reference to every page of [off, off+length), all of which
// must be allocated.
func (f *File) IncRef(off, length uint64) {
	if err := checkRange(off, length); err != nil {
		panic(fmt.Sprintf("memory: IncRef of bad range %#x+%#x", off, length))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.spansLocked(off, length) {
		s.count++
		f.refs.ReplaceOrInsert(s)
	}
	f.mergeAroundLocked(off, off+length)
}

// DecRef drops a reference to every page of [off, off+length). Pages whose
// count reaches zero are freed: their memory goes back to the host (hole
// punched, one fallocate per contiguous run), so they read back as zero.
func (f *File) DecRef(off, length uint64) {
	if err := checkRange(off, length); err != nil {
		panic(fmt.Sprintf("memory: DecRef of bad range %#x+%#x", off, length))
	}
	var dead []span
	f.mu.Lock()
	for _, s := range f.spansLocked(off, length) {
		if s.count == 1 {
			f.refs.Delete(s)
			f.used -= s.end - s.start
			if n := len(dead); n > 0 && dead[n-1].end == s.start {
				dead[n-1].end = s.end
			} else {
				dead = append(dead, s)
			}
			continue
		}
		s.count--
		f.refs.ReplaceOrInsert(s)
	}
	f.mergeAroundLocked(off, off+length)
	closed := f.closed
	f.mu.Unlock()

	// Punch outside f.mu: the dead ranges are in neither refs nor free,
	// so nobody can be handed them until they are zero.
	for _, d := range dead {
		if !closed {
			// A failed punch leaves stale data; never hand the range out
			// again rather than leak it to another allocation.
			if err := unix.Fallocate(f.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(d.start), int64(d.end-d.start)); err != nil {
				continue
			}
		}
		f.mu.Lock()
		f.freeLocked(d.start, d.end)
		f.mu.Unlock()
	}
}

// freeLocked returns [start, end) to the free set, coalescing, and gives
// the tail back to the bump pointer.
func (f *File) freeLocked(start, end uint64) {
	if prev, ok := f.spanBeforeLocked(f.free, start); ok && prev.end == start {
		f.free.Delete(prev)
		start = prev.start
	}
	if next, ok := f.free.Get(span{start: end}); ok {
		f.free.Delete(next)
		end = next.end
	}
	if end == f.bump {
		f.bump = start
		return
	}
	f.free.ReplaceOrInsert(span{start: start, end: end})
}

// RefCount returns the reference count of the page at off (zero if free).
func (f *File) RefCount(off uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var c uint64
	f.refs.DescendLessOrEqual(span{start: off &^ pageMask}, func(s span) bool {
		if off < s.end {
			c = s.count
		}
		return false
	})
	return c
}

// Exclusive reports whether every page of [off, off+length) has exactly one
// reference: a copy-on-write page its holder may now write in place.
func (f *File) Exclusive(off, length uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := off + length
	next := off
	lo := off
	if prev, ok := f.spanBeforeLocked(f.refs, off); ok {
		lo = prev.start
	}
	excl := true
	f.refs.AscendGreaterOrEqual(span{start: lo}, func(s span) bool {
		if s.end <= next {
			return true
		}
		if s.start > next || s.count != 1 {
			excl = false
			return false
		}
		next = s.end
		return next < end
	})
	return excl && next >= end
}

// TotalUsage is the number of bytes allocated (referenced) in the file.
func (f *File) TotalUsage() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.used
}

// MapInternal returns the sentry's view of [off, off+length) of the file.
// The slice stays valid until Close; the caller must hold a reference to
// the pages for as long as it uses them.
func (f *File) MapInternal(off, length uint64) ([]byte, error) {
	end := off + length
	if end < off || end > f.size {
		return nil, unix.EFAULT
	}
	if length == 0 {
		return nil, nil
	}
	for c := off / ChunkSize; c <= (end-1)/ChunkSize; c++ {
		if f.chunkMapped[c].Load() == 0 {
			if err := f.mapChunk(c); err != nil {
				return nil, err
			}
		}
	}
	return f.view[off:end:end], nil
}

func (f *File) mapChunk(c uint64) error {
	f.chunkMu.Lock()
	defer f.chunkMu.Unlock()
	if f.chunkMapped[c].Load() != 0 {
		return nil
	}
	addr := unsafe.Pointer(&f.view[c*ChunkSize])
	if _, err := unix.MmapPtr(f.fd, int64(c*ChunkSize), addr, ChunkSize,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
		return linuxerr.FromHost(err)
	}
	f.chunkMapped[c].Store(1)
	return nil
}

// ForEachBlock calls fn with the sentry's view of [off, off+length) of the
// file; with a contiguous view that is one call, but callers that use it do
// not depend on that.
func (f *File) ForEachBlock(off, length uint64, fn func(b []byte) error) error {
	b, err := f.MapInternal(off, length)
	if err != nil {
		return err
	}
	return fn(b)
}
