package tmpfs

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// maxFileSize bounds a tmpfs file (MAX_LFS_FILESIZE).
const maxFileSize = 1<<63 - 1

// chunk bounds how much one read or write step copies through the
// bounce buffer.
const chunk = 256 << 10

type mappingKey struct {
	ms  memmap.MappingSpace
	ar  hostarch.AddrRange
	off uint64
}

// regular is a regular file's data: one memory-file page per file page,
// allocated on first write or fault. It is the file's memmap.Mappable.
type regular struct {
	inode *inode

	// mapMu protects mappings.
	mapMu    sync.Mutex
	mappings map[mappingKey]int

	// dataMu protects size, pages, refs.
	dataMu sync.RWMutex
	size   uint64
	pages  map[uint64]uint64 // file page index → memory-file offset
	// refs counts open descriptions and mappings; with no links left the
	// pages go back to the memory file when it drops to zero.
	refs     int
	unlinkd  bool
	released bool
}

func (r *regular) incRef() {
	r.dataMu.Lock()
	r.refs++
	r.dataMu.Unlock()
}

func (r *regular) decRef() {
	r.dataMu.Lock()
	r.refs--
	free := r.refs == 0 && r.unlinkd
	r.dataMu.Unlock()
	if free {
		r.freeAll()
	}
}

// unlinked is called when the last link goes away.
func (r *regular) unlinked() {
	r.dataMu.Lock()
	r.unlinkd = true
	free := r.refs == 0
	r.dataMu.Unlock()
	if free {
		r.freeAll()
	}
}

// relinked is called when a file with no links (O_TMPFILE) gets one.
func (r *regular) relinked() {
	r.dataMu.Lock()
	r.unlinkd = false
	r.dataMu.Unlock()
}

func (r *regular) freeAll() {
	r.dataMu.Lock()
	pages := r.pages
	r.pages = make(map[uint64]uint64)
	r.size = 0
	r.released = true
	r.dataMu.Unlock()
	for _, off := range pages {
		r.inode.fs.mf.DecRef(off, hostarch.PageSize)
	}
	r.inode.fs.used.Add(-int64(len(pages)) * hostarch.PageSize)
}

// pageLocked returns the memory-file offset of page idx, allocating it if
// alloc. dataMu is held for writing when alloc is set.
func (r *regular) pageLocked(idx uint64, alloc bool) (uint64, bool, error) {
	if off, ok := r.pages[idx]; ok {
		return off, true, nil
	}
	if !alloc {
		return 0, false, nil
	}
	fs := r.inode.fs
	if uint64(fs.used.Load())+hostarch.PageSize > fs.opts.MaxBytes {
		return 0, false, unix.ENOSPC
	}
	off, err := fs.mf.Allocate(hostarch.PageSize)
	if err != nil {
		return 0, false, unix.ENOSPC
	}
	fs.used.Add(hostarch.PageSize)
	r.pages[idx] = off
	return off, true, nil
}

// readAt copies [off, off+len(dst)) clipped to the size into dst.
func (r *regular) readAt(dst []byte, off uint64) (int, error) {
	r.dataMu.RLock()
	defer r.dataMu.RUnlock()
	if off >= r.size {
		return 0, nil
	}
	if rem := r.size - off; uint64(len(dst)) > rem {
		dst = dst[:rem]
	}
	done := 0
	for done < len(dst) {
		pos := off + uint64(done)
		idx, in := pos/hostarch.PageSize, pos%hostarch.PageSize
		n := int(hostarch.PageSize - in)
		if n > len(dst)-done {
			n = len(dst) - done
		}
		if moff, ok, _ := r.pageLocked(idx, false); ok {
			b, err := r.inode.fs.mf.MapInternal(moff+in, uint64(n))
			if err != nil {
				return done, err
			}
			copy(dst[done:done+n], b)
		} else {
			clear(dst[done : done+n])
		}
		done += n
	}
	return done, nil
}

// writeAt copies src to off (or the end when appending), growing the file.
func (r *regular) writeAt(src []byte, off uint64, appending bool) (uint64, int, error) {
	r.dataMu.Lock()
	defer r.dataMu.Unlock()
	if appending {
		off = r.size
	}
	if off+uint64(len(src)) > maxFileSize || off+uint64(len(src)) < off {
		return off, 0, unix.EFBIG
	}
	done := 0
	for done < len(src) {
		pos := off + uint64(done)
		idx, in := pos/hostarch.PageSize, pos%hostarch.PageSize
		n := int(hostarch.PageSize - in)
		if n > len(src)-done {
			n = len(src) - done
		}
		moff, _, err := r.pageLocked(idx, true)
		if err != nil {
			if done == 0 {
				return off, 0, err
			}
			break
		}
		b, err := r.inode.fs.mf.MapInternal(moff+in, uint64(n))
		if err != nil {
			return off, done, err
		}
		copy(b, src[done:done+n])
		done += n
	}
	if end := off + uint64(done); end > r.size {
		r.size = end
	}
	return off, done, nil
}

// truncate sets the size, dropping pages past it (after invalidating
// mappings of them, as the mm's contract requires).
func (r *regular) truncate(size uint64) error {
	if size > maxFileSize {
		return unix.EFBIG
	}
	r.mapMu.Lock()
	defer r.mapMu.Unlock()
	r.dataMu.Lock()
	old := r.size
	r.size = size
	var dropped []uint64
	if size < old {
		first := (size + hostarch.PageSize - 1) / hostarch.PageSize
		for idx, off := range r.pages {
			if idx >= first {
				dropped = append(dropped, off)
				delete(r.pages, idx)
			}
		}
		// Zero the tail of a partial last page so a later extension reads
		// zeros.
		if in := size % hostarch.PageSize; in != 0 {
			if off, ok := r.pages[size/hostarch.PageSize]; ok {
				if b, err := r.inode.fs.mf.MapInternal(off+in, hostarch.PageSize-in); err == nil {
					clear(b)
				}
			}
		}
	}
	r.dataMu.Unlock()
	if size < old {
		boundary := (size + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
		for k := range r.mappings {
			end := k.off + k.ar.Length()
			if end <= boundary {
				continue
			}
			start := k.ar.Start
			if k.off < boundary {
				start += hostarch.Addr(boundary - k.off)
			}
			k.ms.Invalidate(hostarch.AddrRange{Start: start, End: k.ar.End})
		}
	}
	for _, off := range dropped {
		r.inode.fs.mf.DecRef(off, hostarch.PageSize)
	}
	r.inode.fs.used.Add(-int64(len(dropped)) * hostarch.PageSize)
	return nil
}

// Translate implements memmap.Mappable: pages are allocated on demand, up
// to the page containing EOF; beyond it the caller gets EFAULT (SIGBUS).
func (r *regular) Translate(off, length uint64, at hostarch.AccessType) ([]memmap.Translation, error) {
	r.dataMu.Lock()
	defer r.dataMu.Unlock()
	eof := (r.size + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
	if off >= eof {
		return nil, unix.EFAULT
	}
	end := off + length
	if end > eof || end < off {
		end = eof
	}
	var out []memmap.Translation
	for p := off &^ (hostarch.PageSize - 1); p < end; p += hostarch.PageSize {
		moff, _, err := r.pageLocked(p/hostarch.PageSize, true)
		if err != nil {
			if len(out) > 0 {
				return out, nil
			}
			return nil, err
		}
		if n := len(out); n > 0 && out[n-1].Offset+out[n-1].Length == p && out[n-1].FileOffset+out[n-1].Length == moff {
			out[n-1].Length += hostarch.PageSize
			continue
		}
		out = append(out, memmap.Translation{Offset: p, Length: hostarch.PageSize, FileOffset: moff, Perms: hostarch.AnyAccess})
	}
	return out, nil
}

func (r *regular) AddMapping(ms memmap.MappingSpace, ar hostarch.AddrRange, off uint64, writable bool) {
	r.mapMu.Lock()
	if r.mappings == nil {
		r.mappings = make(map[mappingKey]int)
	}
	r.mappings[mappingKey{ms, ar, off}]++
	r.mapMu.Unlock()
}

func (r *regular) RemoveMapping(ms memmap.MappingSpace, ar hostarch.AddrRange, off uint64, writable bool) {
	r.mapMu.Lock()
	k := mappingKey{ms, ar, off}
	if r.mappings[k]--; r.mappings[k] <= 0 {
		delete(r.mappings, k)
	}
	r.mapMu.Unlock()
}

func (r *regular) IncRef() { r.incRef() }
func (r *regular) DecRef() { r.decRef() }

// regularFD is an open tmpfs regular file.
type regularFD struct {
	vfs.FileDescriptionDefaultImpl
	vfs.NoPoll
	reg *regular
}

func (fd *regularFD) Release(context.Context) { fd.reg.decRef() }

func (fd *regularFD) Read(ctx context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	var total int64
	buf := make([]byte, min(dst.NumBytes(), chunk))
	for dst.NumBytes() > 0 {
		want := min(dst.NumBytes(), int64(len(buf)))
		n, err := fd.reg.readAt(buf[:want], uint64(off+total))
		if n > 0 {
			c, cerr := dst.CopyOut(buf[:n])
			total += int64(c)
			dst = dst.DropFirst(int64(c))
			if cerr != nil {
				if total > 0 {
					break
				}
				return 0, cerr
			}
		}
		if err != nil || int64(n) < want {
			break
		}
	}
	if total > 0 {
		fd.reg.inode.touchAtime()
	}
	return total, nil
}

func (fd *regularFD) Write(ctx context.Context, src usermem.IOSequence, off int64, appending bool) (int64, int64, error) {
	var total int64
	end := off
	buf := make([]byte, min(src.NumBytes(), chunk))
	for src.NumBytes() > 0 {
		want := min(src.NumBytes(), int64(len(buf)))
		c, cerr := src.CopyIn(buf[:want])
		if c > 0 {
			at, n, err := fd.reg.writeAt(buf[:c], uint64(off+total), appending)
			if appending && total == 0 {
				off = int64(at)
			}
			total += int64(n)
			end = int64(at) + int64(n)
			src = src.DropFirst(int64(n))
			if err != nil {
				if total > 0 {
					break
				}
				return 0, end, err
			}
		}
		if cerr != nil {
			if total == 0 {
				return 0, end, cerr
			}
			break
		}
	}
	if total > 0 {
		fd.reg.inode.touchMtime(auth.CredentialsFromContext(ctx).HasCapability(auth.CAP_FSETID))
	}
	return total, end, nil
}

func (fd *regularFD) Stat(ctx context.Context) (vfs.Statx, error) { return fd.reg.inode.Stat(ctx) }

func (fd *regularFD) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	return fd.reg.inode.SetStat(ctx, opts)
}

func (fd *regularFD) Sync(context.Context) error { return nil }

func (fd *regularFD) ConfigureMMap(ctx context.Context, opts *memmap.MMapOpts) error {
	opts.Mappable = fd.reg
	opts.Ino = fd.reg.inode.ino
	return nil
}

func (fd *regularFD) Ioctl(ctx context.Context, uio vfs.CopyIO, args arch.SyscallArguments) (uintptr, error) {
	return 0, unix.ENOTTY
}

// touchAtime updates atime as relatime does: only when it is not newer
// than mtime or ctime (or a day old).
func (i *inode) touchAtime() {
	now := vfs.Now()
	i.fs.mu.Lock()
	if !tsAfter(i.atime, i.mtime) || !tsAfter(i.atime, i.ctime) || now.Sec-i.atime.Sec >= 24*3600 {
		i.atime = now
	}
	i.fs.mu.Unlock()
}

func (i *inode) touchMtime(fsetid bool) {
	now := vfs.Now()
	i.fs.mu.Lock()
	i.mtime, i.ctime = now, now
	// A write without CAP_FSETID drops set-user-ID (and group-executable
	// set-group-ID), as Linux's file_remove_privs does.
	if !fsetid {
		kill := uint32(unix.S_ISUID)
		if i.mode&unix.S_IXGRP != 0 {
			kill |= unix.S_ISGID
		}
		i.mode &^= kill
	}
	i.fs.mu.Unlock()
}

func tsAfter(a, b vfs.StatxTimestamp) bool {
	return a.Sec > b.Sec || (a.Sec == b.Sec && a.Nsec > b.Nsec)
}

// invalidateMappingsLocked makes every mapping of file bytes [start, end)
// (page aligned) fault again. mapMu is held.
func (r *regular) invalidateMappingsLocked(start, end uint64) {
	for k := range r.mappings {
		mEnd := k.off + k.ar.Length()
		if mEnd <= start || k.off >= end {
			continue
		}
		s, e := max(start, k.off), min(end, mEnd)
		k.ms.Invalidate(hostarch.AddrRange{Start: k.ar.Start + hostarch.Addr(s-k.off), End: k.ar.Start + hostarch.Addr(e-k.off)})
	}
}

// Allocate implements fallocate: 0 and FALLOC_FL_KEEP_SIZE allocate the
// pages of the range (growing the file for 0), PUNCH_HOLE|KEEP_SIZE
// frees whole pages inside it and zeroes the partial ones at its ends.
func (fd *regularFD) Allocate(ctx context.Context, mode uint32, off, length uint64) error {
	r := fd.reg
	end := off + length
	if end > maxFileSize || end < off {
		return unix.EFBIG
	}
	if mode&unix.FALLOC_FL_PUNCH_HOLE != 0 {
		r.punchHole(off, end)
		fd.reg.inode.touchMtime(true)
		return nil
	}
	r.dataMu.Lock()
	// Refuse up front what cannot fit, rather than leave part of it.
	firstIdx, endIdx := off/hostarch.PageSize, (end+hostarch.PageSize-1)/hostarch.PageSize
	need := endIdx - firstIdx
	for idx := range r.pages {
		if idx >= firstIdx && idx < endIdx {
			need--
		}
	}
	fs := r.inode.fs
	if uint64(fs.used.Load())+need*hostarch.PageSize > fs.opts.MaxBytes {
		r.dataMu.Unlock()
		return unix.ENOSPC
	}
	for idx := firstIdx; idx < endIdx; idx++ {
		if _, _, err := r.pageLocked(idx, true); err != nil {
			r.dataMu.Unlock()
			return err
		}
	}
	grew := mode&unix.FALLOC_FL_KEEP_SIZE == 0 && end > r.size
	if grew {
		r.size = end
	}
	r.dataMu.Unlock()
	if grew {
		fd.reg.inode.touchMtime(true)
	}
	return nil
}

// punchHole frees the pages wholly inside [off, end) and zeroes the parts
// of the pages at its ends that it covers.
func (r *regular) punchHole(off, end uint64) {
	r.mapMu.Lock()
	defer r.mapMu.Unlock()
	r.dataMu.Lock()
	first := (off + hostarch.PageSize - 1) / hostarch.PageSize
	last := end / hostarch.PageSize // exclusive
	zero := func(from, to uint64) {
		if from >= to {
			return
		}
		if moff, ok := r.pages[from/hostarch.PageSize]; ok {
			if b, err := r.inode.fs.mf.MapInternal(moff+from%hostarch.PageSize, to-from); err == nil {
				clear(b)
			}
		}
	}
	if first > last {
		// The hole is inside one page.
		zero(off, end)
	} else {
		zero(off, first*hostarch.PageSize)
		zero(last*hostarch.PageSize, end)
	}
	var dropped []uint64
	for idx := first; idx < last; idx++ {
		if moff, ok := r.pages[idx]; ok {
			dropped = append(dropped, moff)
			delete(r.pages, idx)
		}
	}
	r.dataMu.Unlock()
	if first < last {
		r.invalidateMappingsLocked(first*hostarch.PageSize, last*hostarch.PageSize)
	}
	for _, moff := range dropped {
		r.inode.fs.mf.DecRef(moff, hostarch.PageSize)
	}
	r.inode.fs.used.Add(-int64(len(dropped)) * hostarch.PageSize)
}
