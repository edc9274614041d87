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
// memory file, filled by pread from a host FD of the file. Translations are
// never writable: private mappings copy on write in the memory manager, and
// shared writable mappings are refused by ConfigureMMap.
type pageCache struct {
	mf *memory.File
	fd int // host FD filled from; closed when the last reference goes

	mu sync.Mutex // guards everything below
	// pages maps a page-aligned file offset to its memory file offset.
	pages    map[uint64]uint64
	mappings map[mappingKey]struct{}
	refs     int64
}

type mappingKey struct {
	ms  memmap.MappingSpace
	ar  hostarch.AddrRange
	off uint64
}

func newPageCache(mf *memory.File, fd int) *pageCache {
	return &pageCache{mf: mf, fd: fd, pages: map[uint64]uint64{}, mappings: map[mappingKey]struct{}{}, refs: 1}
}

const pageSize = hostarch.PageSize

// Translate implements memmap.Mappable.
func (c *pageCache) Translate(off, length uint64, at hostarch.AccessType) ([]memmap.Translation, error) {
	if at.Write {
		return nil, unix.EACCES
	}
	var st unix.Stat_t
	if err := unix.Fstat(c.fd, &st); err != nil {
		return nil, unix.EIO
	}
	size := uint64(st.Size)
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
	var out []memmap.Translation
	perms := hostarch.AccessType{Read: true, Execute: true}
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
		if n := len(out); n > 0 && out[n-1].FileOffset+out[n-1].Length == fo && out[n-1].Offset+out[n-1].Length == p {
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

// refresh re-reads cached pages overlapping [off, off+n) after a write
// through an FD, so mappings see it as they would on Linux.
func (c *pageCache) refresh(off, n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := off &^ (pageSize - 1); p < off+n; p += pageSize {
		if fo, ok := c.pages[p]; ok {
			c.readPage(p, fo)
		}
	}
}

// truncate drops pages at or past size and makes mappings forget them.
func (c *pageCache) truncate(size uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := (size + pageSize - 1) &^ (pageSize - 1)
	for k := range c.mappings {
		end := k.off + k.ar.Length()
		if end <= keep {
			continue
		}
		start := max(k.off, keep)
		k.ms.Invalidate(hostarch.AddrRange{
			Start: k.ar.Start + hostarch.Addr(start-k.off),
			End:   k.ar.End,
		})
	}
	for p, fo := range c.pages {
		if p >= keep {
			c.mf.DecRef(fo, pageSize)
			delete(c.pages, p)
		}
	}
	// The partial last page is re-read so it holds zeros past EOF.
	if size%pageSize != 0 {
		if fo, ok := c.pages[size&^(pageSize-1)]; ok {
			c.readPage(size&^(pageSize-1), fo)
		}
	}
}

// AddMapping implements memmap.Mappable.
func (c *pageCache) AddMapping(ms memmap.MappingSpace, ar hostarch.AddrRange, off uint64, writable bool) {
	c.mu.Lock()
	c.mappings[mappingKey{ms, ar, off}] = struct{}{}
	c.mu.Unlock()
}

// RemoveMapping implements memmap.Mappable.
func (c *pageCache) RemoveMapping(ms memmap.MappingSpace, ar hostarch.AddrRange, off uint64, writable bool) {
	c.mu.Lock()
	delete(c.mappings, mappingKey{ms, ar, off})
	c.mu.Unlock()
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
	for p, fo := range c.pages {
		c.mf.DecRef(fo, pageSize)
		delete(c.pages, p)
	}
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// attrFromStat converts a host stat of a donated FD.
func attrFromStat(st *unix.Stat_t) *proto.Attr {
	return &proto.Attr{
		Mode: st.Mode, Uid: st.Uid, Gid: st.Gid, Nlink: uint64(st.Nlink), Ino: st.Ino, Dev: st.Dev,
		Size: st.Size, Blocks: st.Blocks, Blksize: int64(st.Blksize), Rdev: st.Rdev,
		Atime: &proto.Timespec{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec},
		Mtime: &proto.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
		Ctime: &proto.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec},
	}
}

var _ memmap.Mappable = (*pageCache)(nil)
