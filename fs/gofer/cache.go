package gofer

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/memory"
)

// pageCache is the memmap.Mappable of a gofer file: its pages live in the
// memory file, filled by pread from a host FD of the file. Private mappings
// copy on write in the memory manager and only ever read here. Shared
// writable mappings write into the cached pages themselves: a page handed
// out writable is dirty, newer than the host file, until it is written back
// (fsync, msync, the last writable mapping going away). Until then the
// cache, not the host file, holds the file's contents for those pages: FD
// reads see dirty pages over what pread returned (readv), and FD writes go
// to the host file and into cached pages under mu (pwritev), so a write-back
// never puts older bytes over a newer write.
//
// Coherence is per cache. While a file has writable shared mappings its
// cache is found by the file's identity from any inode of it (shared.go);
// otherwise a cache is per inode, and a read-only mapping made through
// another inode of the same file (a hard link) may keep older pages.
type pageCache struct {
	mf *memory.File
	fd int // host FD filled from; closed when the last reference goes
	// size is the file's size when it cannot change (a read-only mount
	// the sandbox owns), else -1: Translate then asks the host file each
	// time.
	size int64

	mu sync.Mutex // guards everything below
	// pages maps a page-aligned file offset to its memory file offset.
	pages    map[uint64]uint64
	mappings map[mappingKey]struct{}
	refs     int64
	// dirty holds the pages handed out writable since they were last
	// written back with no writable mapping left.
	dirty map[uint64]struct{}
	// writable counts the bytes of shared writable mappings (pieces of a
	// split mapping are removed one by one, so bytes, not calls, balance).
	writable uint64
	// wbLimit caps write-back below a size being truncated to, so that no
	// dirty page past it lands in the host file between the truncation
	// and truncate dropping the page.
	wbLimit uint64
	// key names the file in the shared registry (shared.go); registered
	// says the cache is in it, holding a reference, while it has
	// writable mappings.
	key        fileKey
	registered bool
}

type mappingKey struct {
	ms  memmap.MappingSpace
	ar  hostarch.AddrRange
	off uint64
}

func newPageCache(mf *memory.File, fd int, key fileKey) *pageCache {
	return &pageCache{mf: mf, fd: fd, size: -1, pages: map[uint64]uint64{}, mappings: map[mappingKey]struct{}{},
		dirty: map[uint64]struct{}{}, refs: 1, wbLimit: noLimit, key: key}
}

const pageSize = hostarch.PageSize

const noLimit = ^uint64(0)

// Translate implements memmap.Mappable.
func (c *pageCache) Translate(off, length uint64, at hostarch.AccessType) ([]memmap.Translation, error) {
	// A private file page is translated on every access the sentry makes
	// to it until it is copied (a string in a binary's .rodata that a
	// syscall reads), so a fixed size saves a host call each time.
	size := uint64(c.size)
	if c.size < 0 {
		var st unix.Stat_t
		if err := unix.Fstat(c.fd, &st); err != nil {
			return nil, unix.EIO
		}
		size = uint64(st.Size)
	}
	start := off &^ (pageSize - 1)
	end := off + length
	if end < off {
		return nil, unix.EFAULT
	}
	eof := (size + pageSize - 1) &^ (pageSize - 1)
	if start >= eof {
		return nil, unix.EFAULT
	}
	end = min((end+pageSize-1)&^(pageSize-1), eof)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs <= 0 {
		return nil, unix.EFAULT
	}
	if at.Write && c.writable == 0 {
		return nil, unix.EACCES
	}
	var out []memmap.Translation
	for p := start; p < end; p += pageSize {
		fo, ok := c.pages[p]
		if !ok {
			var err error
			if fo, err = c.fillLocked(p); err != nil {
				if len(out) > 0 {
					return out, nil
				}
				return nil, err
			}
		}
		// A page is writable only once asked for a write (and then
		// dirty), so that a clean page is written to through a fault.
		perms := hostarch.AccessType{Read: true, Execute: true}
		if at.Write {
			c.dirty[p] = struct{}{}
		}
		if _, ok := c.dirty[p]; ok && c.writable > 0 {
			perms.Write = true
		}
		if n := len(out); n > 0 && out[n-1].FileOffset+out[n-1].Length == fo && out[n-1].Offset+out[n-1].Length == p && out[n-1].Perms == perms {
			out[n-1].Length += pageSize
			continue
		}
		out = append(out, memmap.Translation{Offset: p, Length: pageSize, FileOffset: fo, Perms: perms})
	}
	return out, nil
}

// fillLocked reads file page p into a new page of the memory file.
func (c *pageCache) fillLocked(p uint64) (uint64, error) {
	fo, err := c.mf.Allocate(pageSize)
	if err != nil {
		return 0, err
	}
	if err := c.readPage(p, fo); err != nil {
		c.mf.DecRef(fo, pageSize)
		return 0, err
	}
	c.pages[p] = fo
	return fo, nil
}

// readPage fills memory file page fo from file page p, zeroing past EOF.
func (c *pageCache) readPage(p, fo uint64) error {
	b, err := c.mf.MapInternal(fo, pageSize)
	if err != nil {
		return err
	}
	done := 0
	for done < len(b) {
		n, err := unix.Pread(c.fd, b[done:], int64(p)+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return unix.EIO
		}
		if n == 0 {
			break
		}
		done += n
	}
	clear(b[done:])
	return nil
}

// pwritev writes bufs to the host file at off and copies what was written
// into the cached pages it covers, so that mappings see it as they would on
// Linux; mu keeps a write-back from landing between the two.
func (c *pageCache) pwritev(fd int, bufs [][]byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := unix.Pwritev(fd, bufs, off)
	if n <= 0 {
		return n, err
	}
	pos, left := uint64(off), n
	for _, b := range bufs {
		b = b[:min(len(b), left)]
		c.copyLocked(pos, b, true)
		pos += uint64(len(b))
		if left -= len(b); left == 0 {
			break
		}
	}
	return n, err
}

// readv fixes up what pread put in bufs (n bytes read at off) with the
// cache's dirty pages, which are newer than the host file.
func (c *pageCache) readv(bufs [][]byte, off int64, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dirty) == 0 {
		return
	}
	pos, left := uint64(off), n
	for _, b := range bufs {
		if left == 0 {
			break
		}
		b = b[:min(len(b), left)]
		c.copyLocked(pos, b, false)
		pos += uint64(len(b))
		left -= len(b)
	}
}

// copyLocked copies b to (in) or from the cached pages over file offset
// off: all cached pages when in, only dirty ones when not.
func (c *pageCache) copyLocked(off uint64, b []byte, in bool) {
	for len(b) > 0 {
		p := off &^ (pageSize - 1)
		k := min(uint64(len(b)), p+pageSize-off)
		fo, ok := c.pages[p]
		if _, dirty := c.dirty[p]; ok && (in || dirty) {
			if page, err := c.mf.MapInternal(fo, pageSize); err == nil {
				if in {
					copy(page[off-p:], b[:k])
				} else {
					copy(b[:k], page[off-p:])
				}
			}
		}
		b, off = b[k:], off+k
	}
}

// writeBack writes the dirty pages overlapping [off, off+n) to the host
// file, up to its size (and wbLimit). A page stays dirty while writable
// mappings can still change it; with none left, written-back pages are
// clean again.
func (c *pageCache) writeBack(off, n uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeBackLocked(off, n)
}

func (c *pageCache) writeBackLocked(off, n uint64) error {
	if len(c.dirty) == 0 || c.fd < 0 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(c.fd, &st); err != nil {
		return unix.EIO
	}
	size := min(uint64(st.Size), c.wbLimit)
	end := off + n
	if end < off {
		end = noLimit
	}
	var firstErr error
	for p := range c.dirty {
		if p+pageSize <= off || p >= end {
			continue
		}
		if p < size {
			if err := c.writePageLocked(p, min(pageSize, size-p)); err != nil && firstErr == nil {
				firstErr = err
				continue
			}
		}
		if c.writable == 0 {
			delete(c.dirty, p)
		}
	}
	return firstErr
}

// writePageLocked writes the first n bytes of cached page p to the file.
func (c *pageCache) writePageLocked(p, n uint64) error {
	fo, ok := c.pages[p]
	if !ok {
		return nil
	}
	b, err := c.mf.MapInternal(fo, n)
	if err != nil {
		return unix.EIO
	}
	for len(b) > 0 {
		w, err := unix.Pwrite(c.fd, b, int64(p)+int64(n)-int64(len(b)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return unix.EIO
		}
		b = b[w:]
	}
	return nil
}

// SyncRange implements memmap.Syncer (msync(2)).
func (c *pageCache) SyncRange(off, n uint64) error { return c.writeBack(off, n) }

// limitWriteBack caps write-back below size while a truncation to size is
// under way (noLimit lifts the cap).
func (c *pageCache) limitWriteBack(size uint64) {
	c.mu.Lock()
	c.wbLimit = size
	c.mu.Unlock()
}

// truncate drops pages at or past size and makes mappings forget them.
// The pages leave the cache first, mappings are invalidated without mu
// held (Translate takes mu under the memory manager's pagesMu, which
// Invalidate takes), and only then are the pages freed, so that no address
// space maps a freed page.
func (c *pageCache) truncate(size uint64) {
	c.mu.Lock()
	keep := (size + pageSize - 1) &^ (pageSize - 1)
	var inval []mappingKey
	for k := range c.mappings {
		if k.off+k.ar.Length() > keep {
			inval = append(inval, k)
		}
	}
	var dropped []uint64
	for p, fo := range c.pages {
		if p >= keep {
			dropped = append(dropped, fo)
			delete(c.pages, p)
			delete(c.dirty, p)
		}
	}
	// The partial last page holds zeros past EOF, as the host file now
	// does; what precedes EOF is kept, dirty or not.
	if in := size % pageSize; in != 0 {
		if fo, ok := c.pages[size-in]; ok {
			if b, err := c.mf.MapInternal(fo+in, pageSize-in); err == nil {
				clear(b)
			}
		}
	}
	c.mu.Unlock()
	for _, k := range inval {
		start := max(k.off, keep)
		k.ms.Invalidate(hostarch.AddrRange{
			Start: k.ar.Start + hostarch.Addr(start-k.off),
			End:   k.ar.End,
		})
	}
	for _, fo := range dropped {
		c.mf.DecRef(fo, pageSize)
	}
}

// AddMapping implements memmap.Mappable.
func (c *pageCache) AddMapping(ms memmap.MappingSpace, ar hostarch.AddrRange, off uint64, writable bool) {
	c.mu.Lock()
	c.mappings[mappingKey{ms, ar, off}] = struct{}{}
	if writable {
		if c.writable == 0 && !c.registered && shared.add(c.key, c) {
			c.registered = true
			c.refs++ // the registry's
		}
		c.writable += ar.Length()
	}
	c.mu.Unlock()
}

// RemoveMapping implements memmap.Mappable. When the last writable mapping
// goes, dirty pages are written back: nothing can change them any more,
// and the sandbox may end before anything else would write them.
func (c *pageCache) RemoveMapping(ms memmap.MappingSpace, ar hostarch.AddrRange, off uint64, writable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.mappings, mappingKey{ms, ar, off})
	if writable {
		c.writable -= min(c.writable, ar.Length())
		if c.writable == 0 {
			c.writeBackLocked(0, noLimit)
			if c.registered {
				c.registered = false
				shared.remove(c.key, c)
				// Never the last reference: the mapping being removed
				// holds one until the memory manager drops it.
				c.refs--
			}
		}
	}
}

// IncRef implements memmap.Mappable.
func (c *pageCache) IncRef() {
	c.mu.Lock()
	c.refs++
	c.mu.Unlock()
}

// DecRef implements memmap.Mappable. The last reference frees the pages
// and the host FD.
func (c *pageCache) DecRef() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refs--
	if c.refs > 0 {
		return
	}
	c.writeBackLocked(0, noLimit) // only pages a failed write-back left
	for p, fo := range c.pages {
		c.mf.DecRef(fo, pageSize)
		delete(c.pages, p)
	}
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// sameAttr reports whether a says what st does, so that a need not be
// replaced.
func sameAttr(a *proto.Stat, st *unix.Stat_t) bool {
	return a != nil && *a == proto.HostStat(st)
}

var _ memmap.Mappable = (*pageCache)(nil)
