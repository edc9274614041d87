// Package tmpfs owns the in-sentry memory filesystem: directories,
// regular files whose pages live in the sentry's memory file (so mappings
// of them are coherent with read and write), symlinks, hard links, FIFOs
// and device nodes, with Linux's timestamps and link counts.
//
// Lock order: Filesystem.mu (tree and metadata of every inode) and
// regular.mapMu (mappings) → regular.dataMu (size and pages) → memory
// file locks. Filesystem.mu is never held while copying to or from
// application memory, nor together with dataMu.
package tmpfs

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/pipe"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// TMPFS_MAGIC is statfs's f_type for tmpfs.
const TMPFS_MAGIC = 0x01021994

// MemoryFile is what tmpfs needs of the memory file (*memory.File).
type MemoryFile interface {
	Allocate(length uint64) (uint64, error)
	IncRef(off, length uint64)
	DecRef(off, length uint64)
	MapInternal(off, length uint64) ([]byte, error)
}

// FifoOpener makes the open file of a named pipe, replacing tmpfs's own
// (an fs/pipe pipe per FIFO).
type FifoOpener func(ctx context.Context, ino vfs.Inode, flags uint32) (vfs.FileDescriptionImpl, error)

// DeviceOpener opens a character device node by its rdev (fs/dev).
type DeviceOpener func(ctx context.Context, rdev uint64, flags uint32) (vfs.FileDescriptionImpl, error)

// Options configure a tmpfs instance.
type Options struct {
	// Mode, UID and GID of the root directory (mode 01777 for /tmp).
	Mode uint32
	UID  auth.KUID
	GID  auth.KGID
	// MaxBytes bounds the data held (ENOSPC beyond); 0 means 1 GiB.
	MaxBytes uint64
	// OpenFIFO overrides how FIFOs open; OpenDevice opens device nodes
	// (nil gives ENXIO).
	OpenFIFO   FifoOpener
	OpenDevice DeviceOpener
	// InoBase is added to every inode number, so that a tmpfs stacked
	// over another filesystem (an overlay's upper layer) keeps its
	// numbers clear of the other's.
	InoBase uint64
}

// Filesystem is one tmpfs instance.
type Filesystem struct {
	mf   MemoryFile
	opts Options

	// mu protects the metadata and directory contents of every inode.
	mu sync.Mutex

	nextIno atomic.Uint64
	used    atomic.Int64 // bytes of data pages held
	root    *inode
}

// New returns a tmpfs whose file data lives in mf.
func New(mf MemoryFile, opts Options) *Filesystem {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.Mode == 0 {
		opts.Mode = 0777
	}
	fs := &Filesystem{mf: mf, opts: opts}
	fs.nextIno.Store(opts.InoBase)
	fs.root = fs.newInode(vfs.CreateOptions{Mode: unix.S_IFDIR | opts.Mode&07777, UID: opts.UID, GID: opts.GID})
	fs.root.nlink = 2
	return fs
}

func (fs *Filesystem) Name() string                            { return "tmpfs" }
func (fs *Filesystem) Root(context.Context) (vfs.Inode, error) { return fs.root, nil }
func (fs *Filesystem) Sync(context.Context) error              { return nil }
func (fs *Filesystem) Release(context.Context)                 {}

// StatFS reports TMPFS_MAGIC and the data limit.
func (fs *Filesystem) StatFS(context.Context) (vfs.Statfs, error) {
	blocks := fs.opts.MaxBytes / 4096
	used := uint64(fs.used.Load()) / 4096
	free := uint64(0)
	if used < blocks {
		free = blocks - used
	}
	return vfs.Statfs{
		Type: TMPFS_MAGIC, BlockSize: 4096, FragSize: 4096, NameLength: vfs.NameMax,
		Blocks: blocks, BlocksFree: free, BlocksAvail: free,
		Files: 1 << 20, FilesFree: 1<<20 - (fs.nextIno.Load() - fs.opts.InoBase),
	}, nil
}

// inode is a tmpfs file of any type. Fields other than ino, fs and the
// type-specific pointer are protected by fs.mu.
type inode struct {
	fs  *Filesystem
	ino uint64

	mode                       uint32
	uid                        auth.KUID
	gid                        auth.KGID
	nlink                      uint32
	rdev                       uint64
	atime, mtime, ctime, btime vfs.StatxTimestamp

	// Directories.
	children map[string]*inode
	// Symlinks.
	target string
	// Regular files.
	reg *regular
	// FIFOs: the pipe every open of the FIFO shares.
	fifo *pipe.Pipe
	// xattrs holds extended attributes by full name.
	xattrs map[string]string
	// tmpfile is set on an O_TMPFILE file until it is first linked:
	// Link accepts it with no links.
	tmpfile bool
}

func (fs *Filesystem) newInode(opts vfs.CreateOptions) *inode {
	now := vfs.Now()
	i := &inode{
		fs: fs, ino: fs.nextIno.Add(1), mode: opts.Mode, uid: opts.UID, gid: opts.GID,
		nlink: 1, rdev: opts.Rdev, atime: now, mtime: now, ctime: now, btime: now,
	}
	switch opts.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		i.children = make(map[string]*inode)
		i.nlink = 2
	case unix.S_IFREG:
		i.reg = &regular{inode: i, pages: make(map[uint64]uint64)}
	case unix.S_IFIFO:
		i.fifo = pipe.New()
	}
	return i
}

func nowTS() vfs.StatxTimestamp { return vfs.Now() }

func (i *inode) isDir() bool { return i.mode&unix.S_IFMT == unix.S_IFDIR }

func (i *inode) Perms() vfs.Perms {
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	return vfs.Perms{Mode: i.mode, UID: i.uid, GID: i.gid}
}

func (i *inode) Stat(ctx context.Context) (vfs.Statx, error) {
	i.fs.mu.Lock()
	st := vfs.Statx{
		Mask:    unix.STATX_BASIC_STATS | unix.STATX_BTIME,
		Blksize: 4096, Nlink: i.nlink, UID: uint32(i.uid), GID: uint32(i.gid),
		Mode: uint16(i.mode), Ino: i.ino, Atime: i.atime, Mtime: i.mtime, Ctime: i.ctime, Btime: i.btime,
		RdevMajor: unix.Major(i.rdev), RdevMinor: unix.Minor(i.rdev),
	}
	switch {
	case i.isDir():
		// Linux's tmpfs counts a bogus 20 bytes per entry, "." and ".."
		// included (BOGO_DIRENT_SIZE).
		st.Size = 20 * uint64(2+len(i.children))
	case i.mode&unix.S_IFMT == unix.S_IFLNK:
		st.Size = uint64(len(i.target))
	}
	i.fs.mu.Unlock()
	if i.reg != nil {
		i.reg.dataMu.RLock()
		st.Size = i.reg.size
		st.Blocks = uint64(len(i.reg.pages)) * 8
		i.reg.dataMu.RUnlock()
	}
	return st, nil
}

func (i *inode) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	if opts.Mask&unix.STATX_SIZE != 0 {
		if i.reg == nil {
			if i.isDir() {
				return unix.EISDIR
			}
			return unix.EINVAL
		}
		if err := i.reg.truncate(opts.Size); err != nil {
			return err
		}
	}
	now := vfs.Now()
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	if opts.Mask&unix.STATX_MODE != 0 {
		i.mode = i.mode&unix.S_IFMT | opts.Mode&07777
	}
	if opts.Mask&unix.STATX_UID != 0 {
		i.uid = opts.UID
	}
	if opts.Mask&unix.STATX_GID != 0 {
		i.gid = opts.GID
	}
	if opts.Mask&unix.STATX_SIZE != 0 {
		i.mtime = now
	}
	if opts.Mask&unix.STATX_ATIME != 0 {
		i.atime = opts.Atime
	}
	if opts.Mask&unix.STATX_MTIME != 0 {
		i.mtime = opts.Mtime
	}
	if opts.Mask != 0 {
		i.ctime = now
	}
	return nil
}

func (i *inode) Lookup(ctx context.Context, name string) (vfs.Inode, error) {
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	if !i.isDir() {
		return nil, unix.ENOTDIR
	}
	c, ok := i.children[name]
	if !ok {
		return nil, unix.ENOENT
	}
	return c, nil
}

func (i *inode) ReadDir(ctx context.Context) ([]vfs.Dirent, error) {
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	if !i.isDir() {
		return nil, unix.ENOTDIR
	}
	out := make([]vfs.Dirent, 0, len(i.children))
	for name, c := range i.children {
		out = append(out, vfs.Dirent{Name: name, Ino: c.ino, Type: vfs.DirentType(c.mode)})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	i.atime = vfs.Now()
	return out, nil
}

func (i *inode) Readlink(ctx context.Context) (string, error) {
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	if i.mode&unix.S_IFMT != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	i.atime = vfs.Now()
	return i.target, nil
}

func (i *inode) Open(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	switch i.mode & unix.S_IFMT {
	case unix.S_IFREG:
		i.reg.incRef()
		return &regularFD{reg: i.reg}, nil
	case unix.S_IFIFO:
		if i.fs.opts.OpenFIFO != nil {
			return i.fs.opts.OpenFIFO(ctx, i, flags)
		}
		return i.fifo.OpenFIFO(ctx, i, flags)
	case unix.S_IFCHR:
		if i.fs.opts.OpenDevice != nil {
			return i.fs.opts.OpenDevice(ctx, i.rdev, flags)
		}
	case unix.S_IFDIR:
		return nil, unix.EISDIR
	}
	return nil, unix.ENXIO
}

// addChildLocked links c as name, updating times and link counts.
func (i *inode) addChildLocked(name string, c *inode, now vfs.StatxTimestamp) {
	i.children[name] = c
	if c.isDir() {
		i.nlink++
	}
	i.mtime, i.ctime = now, now
}

func (i *inode) create(name string, opts vfs.CreateOptions, target string) (*inode, error) {
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	if !i.isDir() {
		return nil, unix.ENOTDIR
	}
	if i.nlink == 0 {
		return nil, unix.ENOENT
	}
	if _, ok := i.children[name]; ok {
		return nil, unix.EEXIST
	}
	c := i.fs.newInode(opts)
	c.target = target
	i.addChildLocked(name, c, c.ctime)
	return c, nil
}

func (i *inode) Create(ctx context.Context, name string, opts vfs.CreateOptions) (vfs.Inode, error) {
	switch opts.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK, unix.S_IFSOCK:
	default:
		return nil, unix.EINVAL
	}
	return i.create(name, opts, "")
}

func (i *inode) Mkdir(ctx context.Context, name string, opts vfs.CreateOptions) (vfs.Inode, error) {
	opts.Mode = unix.S_IFDIR | opts.Mode&07777
	return i.create(name, opts, "")
}

func (i *inode) Symlink(ctx context.Context, name, target string, opts vfs.CreateOptions) (vfs.Inode, error) {
	opts.Mode = unix.S_IFLNK | 0777
	return i.create(name, opts, target)
}

func (i *inode) Link(ctx context.Context, name string, target vfs.Inode) error {
	t, ok := target.(*inode)
	if !ok || t.fs != i.fs {
		return unix.EXDEV
	}
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	if !i.isDir() {
		return unix.ENOTDIR
	}
	if t.isDir() {
		return unix.EPERM
	}
	if _, ok := i.children[name]; ok {
		return unix.EEXIST
	}
	if t.nlink == 0 && !t.tmpfile {
		return unix.ENOENT
	}
	if t.nlink >= 65000 {
		return unix.EMLINK
	}
	now := vfs.Now()
	if t.nlink == 0 && t.reg != nil {
		t.reg.relinked()
	}
	t.tmpfile = false
	t.nlink++
	t.ctime = now
	i.addChildLocked(name, t, now)
	return nil
}

// CreateTmpfile makes an unnamed regular file (O_TMPFILE).
func (i *inode) CreateTmpfile(ctx context.Context, opts vfs.CreateOptions) (vfs.Inode, error) {
	i.fs.mu.Lock()
	if !i.isDir() || i.nlink == 0 {
		i.fs.mu.Unlock()
		return nil, unix.ENOENT
	}
	opts.Mode = unix.S_IFREG | opts.Mode&07777
	c := i.fs.newInode(opts)
	c.nlink = 0
	c.tmpfile = true
	i.fs.mu.Unlock()
	// No link: the data goes with the last open description.
	c.reg.unlinked()
	return c, nil
}

// dropLinkLocked removes one link of c, freeing its data with the last.
func (c *inode) dropLinkLocked(now vfs.StatxTimestamp) (freeData bool) {
	if c.isDir() {
		c.nlink = 0
	} else if c.nlink > 0 {
		c.nlink--
	}
	c.ctime = now
	return c.nlink == 0 && c.reg != nil
}

func (i *inode) remove(name string, child vfs.Inode, dir bool) error {
	i.fs.mu.Lock()
	c, ok := i.children[name]
	if !ok || c != child {
		i.fs.mu.Unlock()
		return unix.ENOENT
	}
	if dir {
		if !c.isDir() {
			i.fs.mu.Unlock()
			return unix.ENOTDIR
		}
		if len(c.children) != 0 {
			i.fs.mu.Unlock()
			return unix.ENOTEMPTY
		}
	} else if c.isDir() {
		i.fs.mu.Unlock()
		return unix.EISDIR
	}
	now := vfs.Now()
	delete(i.children, name)
	if dir {
		i.nlink--
	}
	i.mtime, i.ctime = now, now
	free := c.dropLinkLocked(now)
	i.fs.mu.Unlock()
	if free {
		c.reg.unlinked()
	}
	return nil
}

func (i *inode) Unlink(ctx context.Context, name string, child vfs.Inode) error {
	return i.remove(name, child, false)
}

func (i *inode) Rmdir(ctx context.Context, name string, child vfs.Inode) error {
	return i.remove(name, child, true)
}

func (i *inode) Rename(ctx context.Context, oldName string, child vfs.Inode, newParent vfs.Inode, newName string, replaced vfs.Inode) error {
	np, ok := newParent.(*inode)
	if !ok || np.fs != i.fs {
		return unix.EXDEV
	}
	i.fs.mu.Lock()
	c, ok := i.children[oldName]
	if !ok || c != child {
		i.fs.mu.Unlock()
		return unix.ENOENT
	}
	if !np.isDir() || np.nlink == 0 {
		i.fs.mu.Unlock()
		return unix.ENOENT
	}
	r := np.children[newName]
	if (r == nil) != (replaced == nil) || (r != nil && vfs.Inode(r) != replaced) {
		i.fs.mu.Unlock()
		return unix.ENOENT
	}
	if r != nil {
		if r.isDir() {
			if !c.isDir() {
				i.fs.mu.Unlock()
				return unix.EISDIR
			}
			if len(r.children) != 0 {
				i.fs.mu.Unlock()
				return unix.ENOTEMPTY
			}
		} else if c.isDir() {
			i.fs.mu.Unlock()
			return unix.ENOTDIR
		}
	}
	now := vfs.Now()
	free := false
	if r != nil {
		delete(np.children, newName)
		if r.isDir() {
			np.nlink--
		}
		free = r.dropLinkLocked(now)
	}
	delete(i.children, oldName)
	if c.isDir() {
		i.nlink--
	}
	i.mtime, i.ctime = now, now
	np.addChildLocked(newName, c, now)
	c.ctime = now
	i.fs.mu.Unlock()
	if free {
		r.reg.unlinked()
	}
	return nil
}

// Exchange swaps two entries (RENAME_EXCHANGE).
func (i *inode) Exchange(ctx context.Context, oldName string, child vfs.Inode, newParent vfs.Inode, newName string, other vfs.Inode) error {
	np, ok := newParent.(*inode)
	if !ok || np.fs != i.fs {
		return unix.EXDEV
	}
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	a, b := i.children[oldName], np.children[newName]
	if a == nil || b == nil || vfs.Inode(a) != child || vfs.Inode(b) != other {
		return unix.ENOENT
	}
	i.children[oldName], np.children[newName] = b, a
	if i != np && a.isDir() != b.isDir() {
		// A directory changing parents moves its ".." link.
		if a.isDir() {
			i.nlink--
			np.nlink++
		} else {
			np.nlink--
			i.nlink++
		}
	}
	now := vfs.Now()
	i.mtime, i.ctime = now, now
	np.mtime, np.ctime = now, now
	a.ctime, b.ctime = now, now
	return nil
}
