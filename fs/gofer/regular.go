package gofer

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// regularFD is an open regular file of a gofer mount: reads and writes go
// to the host FD the gofer donated, straight into or out of the caller's
// memory.
type regularFD struct {
	vfs.FileDescriptionDefaultImpl
	inode *inode
	host  *hostFD // a reference of its own
	fd    int     // host.fd

	mu sync.Mutex // guards cache
	// cache is a page cache the description mapped that its inode could
	// not keep (mappable), with a reference.
	cache *pageCache
}

func newRegularFD(i *inode, h *hostFD) *regularFD { return &regularFD{inode: i, host: h, fd: h.fd} }

// Release implements vfs.FileDescriptionImpl.
func (f *regularFD) Release(context.Context) {
	f.host.decRef()
	if f.cache != nil {
		f.cache.DecRef()
	}
}

// Read implements vfs.FileDescriptionImpl.
func (f *regularFD) Read(ctx context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	defer f.inode.changed() // its atime
	pos := off
	c := f.inode.currentCache(!f.inode.fs.client.ReadOnly)
	n, err := dst.ReadFrom(func(bufs [][]byte) (int64, error) {
		for {
			n, err := unix.Preadv(f.fd, bufs, pos)
			if err == unix.EINTR {
				continue
			}
			if n > 0 {
				if c != nil {
					c.readv(bufs, pos, n)
				}
				pos += int64(n)
			}
			return int64(max(n, 0)), linuxerr.FromHost(err)
		}
	})
	if n > 0 {
		// Short reads and faults after some progress are not errors.
		return n, nil
	}
	return n, err
}

// Write implements vfs.FileDescriptionImpl.
func (f *regularFD) Write(ctx context.Context, src usermem.IOSequence, off int64, appending bool) (int64, int64, error) {
	defer f.inode.changed()
	if appending {
		// Appends are serialized on the inode so that each lands at the
		// end another left.
		f.inode.appendMu.Lock()
		defer f.inode.appendMu.Unlock()
		var st unix.Stat_t
		if err := unix.Fstat(f.fd, &st); err != nil {
			return 0, off, linuxerr.FromHost(err)
		}
		off = st.Size
	}
	if off < 0 {
		return 0, off, unix.EINVAL
	}
	pos := off
	c := f.inode.currentCache(!f.inode.fs.client.ReadOnly)
	n, err := src.WriteTo(func(bufs [][]byte) (int64, error) {
		for {
			var n int
			var err error
			if c != nil {
				n, err = c.pwritev(f.fd, bufs, pos)
			} else {
				n, err = unix.Pwritev(f.fd, bufs, pos)
			}
			if err == unix.EINTR {
				continue
			}
			if n > 0 {
				pos += int64(n)
			}
			return int64(max(n, 0)), linuxerr.FromHost(err)
		}
	})
	if n > 0 {
		f.keepSetID(ctx)
		err = nil
	}
	return n, off + n, err
}

// keepSetID undoes what the host did after a write: the host kernel clears
// set-user-ID and set-group-ID bits when a writer without CAP_FSETID (the
// sentry, always) changes a file, but a writer in the sandbox holding
// CAP_FSETID keeps them on Linux.
func (f *regularFD) keepSetID(ctx context.Context) {
	const setID = unix.S_ISUID | unix.S_ISGID
	mode := f.inode.cachedAttr().Mode
	if mode&setID == 0 || !auth.CredentialsFromContext(ctx).HasCapability(auth.CAP_FSETID) {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(f.fd, &st) != nil || st.Mode&setID == mode&setID {
		return
	}
	f.inode.SetStat(ctx, vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: mode & 0o7777})
}

// Stat implements vfs.FileDescriptionImpl. On a read-only mount the
// sandbox owns (its root image), the cached attributes are the file's, as
// for a stat by path; otherwise the open FD is the freshest source (a
// read-only bind mount may still change on the host), and the cache is
// refreshed from it when it changed.
func (f *regularFD) Stat(ctx context.Context) (vfs.Statx, error) {
	if f.inode.fs.cacheAttrs && f.inode.fs.owned {
		return statxOf(f.inode.cachedAttr()), nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return vfs.Statx{}, linuxerr.FromHost(err)
	}
	return statxOf(f.inode.noteHostStat(&st)), nil
}

// SetStat implements vfs.FileDescriptionImpl.
func (f *regularFD) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	return f.inode.SetStat(ctx, opts)
}

// Sync implements vfs.FileDescriptionImpl: pages written through shared
// mappings go to the host file first.
func (f *regularFD) Sync(context.Context) error {
	if c := f.inode.currentCache(!f.inode.fs.client.ReadOnly); c != nil {
		if err := c.writeBack(0, noLimit); err != nil {
			return err
		}
	}
	return linuxerr.FromHost(unix.Fsync(f.fd))
}

// ConfigureMMap implements vfs.FileDescriptionImpl: mappings are served
// from a page cache in the memory file filled from the host file, which
// shared writable mappings write into (cache.go).
func (f *regularFD) ConfigureMMap(ctx context.Context, opts *memmap.MMapOpts) error {
	if !opts.Private && f.inode.fs.client.ReadOnly {
		if opts.Perms.Write {
			return unix.EACCES
		}
		opts.MaxPerms.Write = false
	}
	if !opts.Private && opts.MaxPerms.Write {
		f.inode.ex.mappedShared.Store(true)
	}
	c, extra, err := f.inode.mappable(f.fd)
	if err != nil {
		return err
	}
	if extra {
		// The description keeps the reference until it is released, so
		// the cache outlives the memory manager's taking its own.
		f.mu.Lock()
		prev := f.cache
		f.cache = c
		f.mu.Unlock()
		if prev != nil {
			prev.DecRef()
		}
	}
	opts.Mappable = c
	a := f.inode.cachedAttr()
	opts.Dev, opts.Ino = a.Dev, a.Ino
	return nil
}

// fileKey names i's file in the shared registry.
func (i *inode) fileKey() fileKey {
	a := i.cachedAttr()
	return fileKey{i.fs.mf, a.Dev, a.Ino}
}

// currentCache returns the file's page cache, if any: the one that shared
// writable mappings use (shared.go), else the inode's. It is returned
// without a reference, for one read or write: a cache released meanwhile
// has no pages left to update and no FD to write back to.
func (i *inode) currentCache(any bool) *pageCache {
	if !any {
		return nil
	}
	if c := shared.find(i.fileKey()); c != nil {
		return c
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.hold.cache
}

// mappable returns the file's page cache: the one shared writable
// mappings use, else the inode's, which it creates with a duplicate of fd
// to fill from. When extra is set the caller holds a reference of its own
// to the cache, to keep while the mapping may need it (regularFD.cache).
func (i *inode) mappable(fd int) (c *pageCache, extra bool, err error) {
	found := shared.find(i.fileKey())
	if found != nil && !found.tryIncRef() {
		found = nil
	}
	// handleMu orders this against Evict: a cache made while the handle is
	// held is dropped by the next Evict (or with the garbage inode).
	i.fs.handleMu.RLock()
	defer i.fs.handleMu.RUnlock()
	i.mu.Lock()
	old := i.hold.cache
	switch {
	case found != nil && i.hold.held:
		// The inode keeps the found cache with the reference taken.
		i.hold.cache = found
		i.mu.Unlock()
		if old != nil {
			old.DecRef()
		}
		return found, false, nil
	case found != nil:
		i.mu.Unlock()
		return found, true, nil
	case old != nil:
		i.mu.Unlock()
		return old, false, nil
	}
	defer i.mu.Unlock()
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, false, linuxerr.FromHost(err)
	}
	c = newPageCache(i.fs.mf, dup, i.fileKey())
	if i.fs.cacheAttrs && i.fs.owned {
		c.size = i.cachedAttr().Size
	}
	if i.hold.held {
		// The inode keeps the cache (and its pages) while its dentry is
		// cached, so the next exec of a binary finds it warm.
		i.hold.cache = c
	} else {
		c.refs = 0
	}
	return c, false, nil
}
