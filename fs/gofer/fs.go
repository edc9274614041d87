package gofer

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/memory"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// Filesystem presents one gofer mount to the VFS.
type Filesystem struct {
	client *Client
	mf     *memory.File
	// cacheAttrs: on a read-only mount nothing the sandbox does changes
	// the files, so attributes and symlink targets are cached for good
	// and Stat never crosses the socket.
	cacheAttrs bool
	// owned: nothing outside the sandbox changes the mount; exclusive:
	// owned and writable (exclusive.go).
	owned, exclusive bool
	root             *inode

	// handleMu guards inode.hold and inode.links of every inode, and
	// closing (see handle.go).
	handleMu sync.RWMutex
	// closing holds released handles not yet closed.
	closing []uint32

	fifos fifos
}

// NewFilesystem makes the filesystem of client's mount. Page caches of
// mapped files live in mf.
func NewFilesystem(client *Client, mf *memory.File) *Filesystem {
	fs := &Filesystem{client: client, mf: mf, cacheAttrs: client.ReadOnly}
	fs.root = fs.newInode(client.Root, client.RootAttr, nil, "")
	return fs
}

// Client returns the filesystem's gofer connection.
func (fs *Filesystem) Client() *Client { return fs.client }

// Name implements vfs.FilesystemImpl.
func (fs *Filesystem) Name() string { return "9p" }

// Root implements vfs.FilesystemImpl.
func (fs *Filesystem) Root(context.Context) (vfs.Inode, error) { return fs.root, nil }

// StatFS implements vfs.FilesystemImpl.
func (fs *Filesystem) StatFS(context.Context) (vfs.Statfs, error) {
	s, err := fs.client.StatFS(fs.root.hold.handle)
	if err != nil {
		return vfs.Statfs{}, err
	}
	return vfs.Statfs{
		Type: uint64(s.Type), BlockSize: s.Bsize, Blocks: s.Blocks, BlocksFree: s.Bfree,
		BlocksAvail: s.Bavail, Files: s.Files, FilesFree: s.Ffree, NameLength: uint64(s.Namelen),
		FragSize: s.Frsize, Flags: uint64(s.Flags),
	}, nil
}

// Sync implements vfs.FilesystemImpl: writes go straight to host FDs, so
// there is nothing buffered in the sentry.
func (fs *Filesystem) Sync(context.Context) error { return nil }

// Release implements vfs.FilesystemImpl.
func (fs *Filesystem) Release(context.Context) { fs.client.Shutdown() }

// inode is one file of the mount, holding a gofer handle for it while its
// dentry is cached (handle.go).
type inode struct {
	fs *Filesystem

	// hold and links are guarded by fs.handleMu. links are the names the
	// inode is known by, to walk to it again once its handle was
	// released; none left means it was unlinked. The root has none and
	// never lets go of its handle.
	hold  *holding
	links []link

	// appendMu serializes O_APPEND writes (find the end, write there).
	appendMu sync.Mutex

	// attr is the latest attributes; the walker reads them for every
	// component (Perms), so without a lock. A Stat is never changed once
	// stored.
	attr atomic.Pointer[proto.Stat]

	mu     sync.Mutex // guards target, list, lookups, childLists and hold.cache
	target string     // cached symlink target, when cacheAttrs
	// list and lookups: the directory's listing and how many lookups
	// were made in it, when cacheAttrs; childLists, how many of its
	// subdirectories were listed by name (dircache.go).
	list       *listing
	lookups    int
	childLists int

	// ex caches what an exclusive mount lets it (exclusive.go).
	ex exclusiveState
}

func (i *inode) cachedAttr() *proto.Stat { return i.attr.Load() }

// setAttr caches attributes the gofer sent.
func (i *inode) setAttr(a *proto.Attr) {
	st := proto.StatOf(a)
	i.attr.Store(&st)
}

// Perms implements vfs.Inode.
func (i *inode) Perms() vfs.Perms {
	a := i.cachedAttr()
	return vfs.Perms{Mode: a.Mode, UID: auth.KUID(a.UID), GID: auth.KGID(a.GID)}
}

func statxOf(a *proto.Stat) vfs.Statx {
	ts := func(t proto.StatTime) vfs.StatxTimestamp { return vfs.StatxTimestamp{Sec: t.Sec, Nsec: t.Nsec} }
	return vfs.Statx{
		Mask:      unix.STATX_BASIC_STATS,
		Blksize:   a.Blksize,
		Nlink:     uint32(a.Nlink),
		UID:       a.UID,
		GID:       a.GID,
		Mode:      uint16(a.Mode),
		Ino:       a.Ino,
		Size:      uint64(a.Size),
		Blocks:    uint64(a.Blocks),
		Atime:     ts(a.Atime),
		Mtime:     ts(a.Mtime),
		Ctime:     ts(a.Ctime),
		RdevMajor: unix.Major(a.Rdev),
		RdevMinor: unix.Minor(a.Rdev),
	}
}

// Stat implements vfs.Inode.
func (i *inode) Stat(context.Context) (vfs.Statx, error) {
	if !i.fs.cacheAttrs {
		if i.attrsGood() {
			return statxOf(i.cachedAttr()), nil
		}
		done := i.fetchingAttrs()
		if a := i.statKeptFD(); a != nil {
			done()
			return statxOf(a), nil
		}
		err := i.withHandle(i.refreshWith)
		if err == nil {
			done()
		}
		if err == unix.ESTALE && i.unlinked() {
			// A deleted file or directory still held open (or as a
			// cwd): the last attributes, with no links, as Linux shows.
			st := statxOf(i.cachedAttr())
			st.Nlink = 0
			return st, nil
		}
		if err != nil {
			return vfs.Statx{}, err
		}
	}
	return statxOf(i.cachedAttr()), nil
}

// refreshWith re-reads attributes through h, i's handle, after a change.
func (i *inode) refreshWith(h uint32) error {
	a, err := i.fs.client.Stat(h)
	if err == nil {
		i.setAttr(a)
	}
	return err
}

// SetStat implements vfs.Inode.
func (i *inode) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	r := &proto.SetStatReq{}
	if opts.Mask&unix.STATX_MODE != 0 {
		r.Mask |= proto.SetStatMode
		r.Mode = opts.Mode & 0o7777
	}
	if opts.Mask&unix.STATX_UID != 0 {
		r.Mask |= proto.SetStatUID
		r.Uid = uint32(opts.UID)
	}
	if opts.Mask&unix.STATX_GID != 0 {
		r.Mask |= proto.SetStatGID
		r.Gid = uint32(opts.GID)
	}
	if opts.Mask&unix.STATX_SIZE != 0 {
		if opts.Size > 1<<63-1 {
			return unix.EFBIG
		}
		r.Mask |= proto.SetStatSize
		r.Size = int64(opts.Size)
	}
	if opts.Mask&unix.STATX_ATIME != 0 {
		r.Mask |= proto.SetStatAtime
		r.Atime = &proto.Timespec{Sec: opts.Atime.Sec, Nsec: int64(opts.Atime.Nsec)}
	}
	if opts.Mask&unix.STATX_MTIME != 0 {
		r.Mask |= proto.SetStatMtime
		r.Mtime = &proto.Timespec{Sec: opts.Mtime.Sec, Nsec: int64(opts.Mtime.Nsec)}
	}
	if c := i.currentCache(r.Mask&proto.SetStatSize != 0); c != nil {
		c.limitWriteBack(uint64(r.Size))
		defer c.limitWriteBack(noLimit)
	}
	err := i.withHandle(func(h uint32) error {
		err := i.fs.client.SetStat(h, r)
		i.changed()
		if err != nil {
			return err
		}
		done := i.fetchingAttrs()
		if err := i.refreshWith(h); err != nil {
			return err
		}
		done()
		return nil
	})
	if err == nil && r.Mask&proto.SetStatSize != 0 {
		// Outside handleMu: dropping pages invalidates mappings, which
		// takes memory manager locks, and mmap takes handleMu under
		// those (mappable).
		i.truncated(uint64(r.Size))
	}
	return err
}

// Lookup implements vfs.Inode.
func (i *inode) Lookup(ctx context.Context, name string) (vfs.Inode, error) {
	if i.fs.cacheAttrs {
		if c, ok, err := i.lookupListed(name); ok {
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	if i.isAbsent(name) {
		return nil, unix.ENOENT
	}
	var c *inode
	err := i.withHandle(func(dh uint32) error {
		h, a, err := i.fs.client.Walk(dh, name)
		if err == nil {
			c = i.fs.newInode(h, a, i, name)
		}
		return err
	})
	if err == unix.ENOENT {
		i.noteAbsent(name)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ReadDir implements vfs.Inode.
func (i *inode) ReadDir(context.Context) ([]vfs.Dirent, error) {
	if i.fs.cacheAttrs {
		l, err := i.cachedListing(true)
		if err != nil {
			return nil, err
		}
		return l.dirents(), nil
	}
	var ents []*proto.Dirent
	i.changed() // its atime
	err := i.withHandle(func(h uint32) (err error) {
		ents, err = i.fs.client.ReaddirAll(h, "", false)
		return err
	})
	if err == unix.ESTALE && i.unlinked() {
		// A removed directory was empty, as Linux lists it.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return direntsOf(ents), nil
}

// Readlink implements vfs.Inode.
func (i *inode) Readlink(context.Context) (string, error) {
	if i.Perms().Type() != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	if i.fs.cacheAttrs {
		i.mu.Lock()
		t := i.target
		i.mu.Unlock()
		if t != "" {
			return t, nil
		}
	}
	var t string
	err := i.withHandle(func(h uint32) (err error) {
		t, err = i.fs.client.Readlink(h)
		return err
	})
	if err == nil && i.fs.cacheAttrs {
		i.mu.Lock()
		i.target = t
		i.mu.Unlock()
	}
	return t, err
}

// Open implements vfs.Inode. Each description holds a reference on a
// donated FD, so it keeps working after the inode lets go of its handle,
// even if the file is unlinked meanwhile; the FD is shared with other
// descriptions of the same access mode (fdcache.go).
func (i *inode) Open(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	switch i.Perms().Type() {
	case unix.S_IFREG:
	case unix.S_IFIFO:
		return i.openFIFO(ctx, flags)
	default:
		// Sockets and devices of a gofer mount cannot be opened: the
		// gofer hands over no such FDs.
		return nil, unix.ENXIO
	}
	if h := i.cachedFD(flags); h != nil {
		return newRegularFD(i, h), nil
	}
	var fd int
	err := i.withHandle(func(h uint32) error {
		f, a, err := i.fs.client.Open(h, flags&unix.O_ACCMODE)
		if err == nil {
			fd = f
			i.setAttr(a)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return newRegularFD(i, i.keepFD(flags, newHostFD(fd))), nil
}

func createOpts(opts vfs.CreateOptions) (mode, uid, gid uint32) {
	return opts.Mode, uint32(opts.UID), uint32(opts.GID)
}

// Create implements vfs.Inode.
func (i *inode) Create(ctx context.Context, name string, opts vfs.CreateOptions) (vfs.Inode, error) {
	mode, uid, gid := createOpts(opts)
	var c *inode
	err := i.withHandle(func(dh uint32) error {
		switch mode & unix.S_IFMT {
		case unix.S_IFREG, 0:
			h, a, fd, err := i.fs.client.Create(dh, name, unix.O_RDWR, mode&0o7777, uid, gid)
			if err != nil {
				return err
			}
			// The VFS opens the new file next: it takes this FD from
			// the cache instead of asking again.
			c = i.fs.newInode(h, a, i, name)
			c.keepFD(unix.O_RDWR, newHostFD(fd)).decRef()
			return nil
		case unix.S_IFIFO, unix.S_IFSOCK:
			h, a, err := i.fs.client.Mknod(dh, name, mode, uid, gid)
			if err != nil {
				return err
			}
			c = i.fs.newInode(h, a, i, name)
			return nil
		default:
			return unix.EPERM
		}
	})
	if err != nil {
		return nil, err
	}
	i.created(name)
	return c, nil
}

// Mkdir implements vfs.Inode.
func (i *inode) Mkdir(ctx context.Context, name string, opts vfs.CreateOptions) (vfs.Inode, error) {
	mode, uid, gid := createOpts(opts)
	var c *inode
	err := i.withHandle(func(dh uint32) error {
		h, a, err := i.fs.client.Mkdir(dh, name, mode&0o7777, uid, gid)
		if err != nil {
			return err
		}
		c = i.fs.newInode(h, a, i, name)
		i.refreshWith(dh)
		return nil
	})
	if err != nil {
		return nil, err
	}
	i.created(name)
	return c, nil
}

// Symlink implements vfs.Inode.
func (i *inode) Symlink(ctx context.Context, name, target string, opts vfs.CreateOptions) (vfs.Inode, error) {
	_, uid, gid := createOpts(opts)
	var c *inode
	err := i.withHandle(func(dh uint32) error {
		h, a, err := i.fs.client.Symlink(dh, name, target, uid, gid)
		if err == nil {
			c = i.fs.newInode(h, a, i, name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	i.created(name)
	return c, nil
}

// Link implements vfs.Inode.
func (i *inode) Link(ctx context.Context, name string, target vfs.Inode) error {
	t, ok := target.(*inode)
	if !ok || t.fs != i.fs {
		return unix.EXDEV
	}
	fs := i.fs
	fs.handleMu.Lock()
	defer fs.handleMu.Unlock()
	th, err := fs.acquireLocked(t)
	if err != nil {
		return err
	}
	dh, err := fs.acquireLocked(i)
	if err != nil {
		return err
	}
	if err := fs.client.Link(th, dh, name); err != nil {
		return err
	}
	i.created(name)
	t.changed()
	t.links = append(t.links, link{i, name})
	t.refreshWith(th)
	return nil
}

// Unlink implements vfs.Inode.
func (i *inode) Unlink(ctx context.Context, name string, child vfs.Inode) error {
	fs := i.fs
	fs.handleMu.Lock()
	defer fs.handleMu.Unlock()
	dh, err := fs.acquireLocked(i)
	if err != nil {
		return err
	}
	if err := fs.client.Unlink(dh, name); err != nil {
		return err
	}
	i.changed()
	if c, ok := child.(*inode); ok {
		c.changed()
		c.removeLinkLocked(i, name)
		if c.hold.held {
			c.refreshWith(c.hold.handle)
		}
	}
	return nil
}

// Rmdir implements vfs.Inode.
func (i *inode) Rmdir(ctx context.Context, name string, child vfs.Inode) error {
	fs := i.fs
	fs.handleMu.Lock()
	defer fs.handleMu.Unlock()
	dh, err := fs.acquireLocked(i)
	if err != nil {
		return err
	}
	if err := fs.client.Rmdir(dh, name); err != nil {
		return err
	}
	i.changed()
	if c, ok := child.(*inode); ok {
		c.changed()
		c.removeLinkLocked(i, name)
	}
	i.refreshWith(dh)
	return nil
}

// Rename implements vfs.Inode. The VFS has checked RENAME_NOREPLACE, so a
// plain rename carries it out.
func (i *inode) Rename(ctx context.Context, oldName string, child vfs.Inode, newParent vfs.Inode, newName string, replaced vfs.Inode) error {
	np, ok := newParent.(*inode)
	if !ok || np.fs != i.fs {
		return unix.EXDEV
	}
	fs := i.fs
	fs.handleMu.Lock()
	defer fs.handleMu.Unlock()
	oh, err := fs.acquireLocked(i)
	if err != nil {
		return err
	}
	nh, err := fs.acquireLocked(np)
	if err != nil {
		return err
	}
	if err := fs.client.Rename(oh, oldName, nh, newName, 0); err != nil {
		return err
	}
	i.changed()
	np.created(newName)
	if r, ok := replaced.(*inode); ok {
		r.changed()
		r.removeLinkLocked(np, newName)
	}
	if c, ok := child.(*inode); ok {
		c.changed()
		c.removeLinkLocked(i, oldName)
		c.links = append(c.links, link{np, newName})
	}
	return nil
}

// Exchange implements vfs.InodeExchanger (RENAME_EXCHANGE), which the
// gofer does with renameat2.
func (i *inode) Exchange(ctx context.Context, oldName string, child vfs.Inode, newParent vfs.Inode, newName string, other vfs.Inode) error {
	np, ok := newParent.(*inode)
	if !ok || np.fs != i.fs {
		return unix.EXDEV
	}
	fs := i.fs
	fs.handleMu.Lock()
	defer fs.handleMu.Unlock()
	oh, err := fs.acquireLocked(i)
	if err != nil {
		return err
	}
	nh, err := fs.acquireLocked(np)
	if err != nil {
		return err
	}
	if err := fs.client.Rename(oh, oldName, nh, newName, unix.RENAME_EXCHANGE); err != nil {
		return err
	}
	i.changed()
	np.changed()
	if c, ok := child.(*inode); ok {
		c.changed()
		c.removeLinkLocked(i, oldName)
		c.links = append(c.links, link{np, newName})
	}
	if o, ok := other.(*inode); ok {
		o.changed()
		o.removeLinkLocked(np, newName)
		o.links = append(o.links, link{i, oldName})
	}
	return nil
}

// Evict implements vfs.InodeEvicter: the gofer handle goes, to be walked
// to again if the inode is used later; open descriptions keep their own
// FDs, and mappings keep the page cache.
func (i *inode) Evict(context.Context) {
	fs := i.fs
	if i == fs.root {
		return
	}
	fs.handleMu.Lock()
	batch := fs.releaseLocked(i.hold)
	i.mu.Lock()
	c := i.hold.cache
	i.hold.cache = nil
	i.hold.dropFDs()
	i.mu.Unlock()
	fs.handleMu.Unlock()
	if c != nil {
		c.DecRef() // the inode's own reference
	}
	fs.closeHandles(batch)
}

// truncated drops cached pages past a new size.
func (i *inode) truncated(size uint64) {
	i.mu.Lock()
	c := i.hold.cache
	i.mu.Unlock()
	if c != nil {
		c.truncate(size)
	}
}

var (
	_ vfs.FilesystemImpl = (*Filesystem)(nil)
	_ vfs.Inode          = (*inode)(nil)
	_ vfs.InodeEvicter   = (*inode)(nil)
	_ vfs.InodeExchanger = (*inode)(nil)
)
