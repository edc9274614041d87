package vfs

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"weak"

	"golang.org/x/sys/unix"
)

// Limits of path resolution (include/uapi/linux/limits.h, fs/namei.c).
const (
	PathMax     = 4096 // including the NUL
	NameMax     = 255
	MaxSymlinks = 40
)

// Filesystem is a FilesystemImpl as the VFS tracks it: its dentry tree and
// device number.
type Filesystem struct {
	impl  FilesystemImpl
	root  *Dentry
	dev   uint32 // minor of the anonymous device (major 0)
	mnts  atomic.Int32
	vfsys *VirtualFilesystem

	// lruMu guards the eviction list (see dcache.go) and the lru fields
	// of this filesystem's dentries. It is a leaf lock.
	lruMu            sync.Mutex
	lruHead, lruTail *Dentry
	lruLen, lruMax   int
}

// Impl returns the filesystem implementation.
func (fs *Filesystem) Impl() FilesystemImpl { return fs.impl }

// Dev returns the filesystem's device number as st_dev shows it.
func (fs *Filesystem) Dev() uint64 { return uint64(fs.dev) }

func (fs *Filesystem) fillDev(st *Statx) {
	st.DevMajor = 0
	st.DevMinor = fs.dev
}

// Dentry is a cached (parent, name) → Inode binding of one Filesystem.
type Dentry struct {
	fs    *Filesystem
	inode Inode

	// parent and name are protected by VirtualFilesystem.renameMu. The
	// root of a filesystem has a nil parent.
	parent *Dentry
	name   string
	// dead is set (under renameMu) when the file is unlinked.
	dead bool
	// linkable marks the dentry of an O_TMPFILE file opened without
	// O_EXCL, which linkat may give a name although it has no link
	// (protected by renameMu).
	linkable bool
	// mounts counts mounts whose mount point this dentry is (changed
	// under VirtualFilesystem.mountMu; atomic so that walks, which check
	// it for every component, need not take that lock to find none).
	mounts atomic.Int32
	// pins counts mounts whose mount point or root this dentry is; such
	// a dentry is never evicted. Atomic so the evictor need not take
	// mountMu.
	pins atomic.Int32

	// mu protects children, the cache of looked-up children, and
	// evicted, the children dropped from it that may still be
	// referenced elsewhere (see dcache.go).
	mu       sync.Mutex
	children map[string]*Dentry
	evicted  map[string]weak.Pointer[Dentry]

	// ino caches the inode number (0 until first needed) for lock and
	// inotify identities.
	ino atomic.Uint64

	// evictable is set at creation when the inode is an InodeEvicter.
	evictable bool
	// referenced is set by lookup hits and cleared by the evictor.
	referenced atomic.Bool
	// inLRU, lruPrev and lruNext are protected by fs.lruMu.
	inLRU            bool
	lruPrev, lruNext *Dentry
}

func newDentry(fs *Filesystem, parent *Dentry, name string, ino Inode) *Dentry {
	_, ev := ino.(InodeEvicter)
	return &Dentry{fs: fs, inode: ino, parent: parent, name: name, evictable: ev}
}

// Inode returns the filesystem's inode.
func (d *Dentry) Inode() Inode { return d.inode }

// Filesystem returns the dentry's filesystem.
func (d *Dentry) Filesystem() *Filesystem { return d.fs }

func (d *Dentry) isDir() bool     { return d.inode.Perms().IsDir() }
func (d *Dentry) isSymlink() bool { return d.inode.Perms().IsSymlink() }

// Mount is one mount: a Filesystem subtree attached somewhere.
type Mount struct {
	fs   *Filesystem
	root *Dentry
	// parent and point say where the mount is attached; nil for the root
	// mount. Protected by VirtualFilesystem.mountMu.
	parent *Mount
	point  *Dentry
	flags  atomic.Uint32
	id     uint64
}

// Mount flags (MS_*) the VFS enforces.
const (
	MountReadOnly = unix.MS_RDONLY
	MountNoSUID   = unix.MS_NOSUID
	MountNoDev    = unix.MS_NODEV
	MountNoExec   = unix.MS_NOEXEC
)

// ReadOnly reports whether the mount is read-only (writes give EROFS).
func (m *Mount) ReadOnly() bool { return m.flags.Load()&MountReadOnly != 0 }

// NoExec reports MS_NOEXEC.
func (m *Mount) NoExec() bool { return m.flags.Load()&MountNoExec != 0 }

// Flags returns the MS_* flags of the mount.
func (m *Mount) Flags() uint32 { return m.flags.Load() }

// Filesystem returns the mounted filesystem.
func (m *Mount) Filesystem() *Filesystem { return m.fs }

// Root returns the mount's root.
func (m *Mount) Root() VirtualDentry { return VirtualDentry{m, m.root} }

// ID returns the mount ID as /proc/self/mountinfo shows it.
func (m *Mount) ID() uint64 { return m.id }

// VirtualDentry is a position in the mount namespace.
type VirtualDentry struct {
	Mount  *Mount
	Dentry *Dentry
}

// Ok reports whether vd is set.
func (vd VirtualDentry) Ok() bool { return vd.Dentry != nil }

// Inode returns the inode at vd.
func (vd VirtualDentry) Inode() Inode { return vd.Dentry.inode }

type mountKey struct {
	parent *Mount
	point  *Dentry
}

// VirtualFilesystem is the mount namespace and the dentry caches of all
// filesystems in it. One per sandbox.
type VirtualFilesystem struct {
	// mountMu protects the mount table and Dentry.mounts.
	mountMu sync.RWMutex
	mounts  map[mountKey]*Mount
	root    *Mount
	nextID  uint64

	// renameMu protects the shape of every dentry tree (see package doc).
	renameMu sync.RWMutex

	devMu   sync.Mutex
	nextDev uint32
}

// New returns an empty VirtualFilesystem; MountRoot must be called first.
func New() *VirtualFilesystem {
	return &VirtualFilesystem{mounts: make(map[mountKey]*Mount), nextDev: 1, nextID: 1}
}

// NewFilesystem registers impl with the VFS, giving it a device number and
// a root dentry.
func (vfs *VirtualFilesystem) NewFilesystem(ctx context.Context, impl FilesystemImpl) (*Filesystem, error) {
	root, err := impl.Root(ctx)
	if err != nil {
		return nil, err
	}
	// A non-directory root is a filesystem of one file (a bind-mounted
	// file); it can be mounted only over a file (attach checks).
	vfs.devMu.Lock()
	dev := vfs.nextDev
	vfs.nextDev++
	vfs.devMu.Unlock()
	fs := &Filesystem{impl: impl, dev: dev, vfsys: vfs, lruMax: DefaultMaxCachedDentries}
	fs.root = newDentry(fs, nil, "", root)
	return fs, nil
}

// MountRoot makes fs the root of the namespace. flags are MS_* flags.
func (vfs *VirtualFilesystem) MountRoot(ctx context.Context, fs *Filesystem, flags uint32) (VirtualDentry, error) {
	if !fs.root.isDir() {
		return VirtualDentry{}, unix.ENOTDIR
	}
	vfs.mountMu.Lock()
	defer vfs.mountMu.Unlock()
	if vfs.root != nil {
		return VirtualDentry{}, unix.EBUSY
	}
	m := vfs.newMountLocked(fs, fs.root, flags)
	vfs.root = m
	return m.Root(), nil
}

func (vfs *VirtualFilesystem) newMountLocked(fs *Filesystem, root *Dentry, flags uint32) *Mount {
	m := &Mount{fs: fs, root: root, id: vfs.nextID}
	vfs.nextID++
	m.flags.Store(flags & (MountReadOnly | MountNoSUID | MountNoDev | MountNoExec))
	fs.mnts.Add(1)
	return m
}

// Root returns the root of the namespace.
func (vfs *VirtualFilesystem) Root() VirtualDentry {
	vfs.mountMu.RLock()
	defer vfs.mountMu.RUnlock()
	if vfs.root == nil {
		return VirtualDentry{}
	}
	return vfs.root.Root()
}

// MountAt attaches fs's root at target, a directory. Mounting over a mount
// point stacks: the new mount hides the old one.
func (vfs *VirtualFilesystem) MountAt(ctx context.Context, fs *Filesystem, target VirtualDentry, flags uint32) (*Mount, error) {
	return vfs.attach(fs, fs.root, target, flags)
}

// BindMount attaches the subtree at source at target (mount --bind).
func (vfs *VirtualFilesystem) BindMount(ctx context.Context, source, target VirtualDentry, flags uint32) (*Mount, error) {
	return vfs.attach(source.Dentry.fs, source.Dentry, target, flags)
}

func (vfs *VirtualFilesystem) attach(fs *Filesystem, root *Dentry, target VirtualDentry, flags uint32) (*Mount, error) {
	if !target.Ok() {
		return nil, unix.EINVAL
	}
	if root.isDir() != target.Dentry.isDir() {
		return nil, unix.ENOTDIR
	}
	vfs.renameMu.RLock()
	dead := target.Dentry.dead
	vfs.renameMu.RUnlock()
	if dead {
		return nil, unix.ENOENT
	}
	vfs.mountMu.Lock()
	defer vfs.mountMu.Unlock()
	// Attach to whatever is visible at target now, so stacking works.
	for {
		top, ok := vfs.mounts[mountKey{target.Mount, target.Dentry}]
		if !ok {
			break
		}
		target = top.Root()
	}
	m := vfs.newMountLocked(fs, root, flags)
	m.parent, m.point = target.Mount, target.Dentry
	target.Dentry.mounts.Add(1)
	vfs.mounts[mountKey{target.Mount, target.Dentry}] = m
	pin(root)
	pin(target.Dentry)
	return m, nil
}

// Remount changes the flags of m (mount -o remount,ro).
func (vfs *VirtualFilesystem) Remount(m *Mount, flags uint32) {
	m.flags.Store(flags & (MountReadOnly | MountNoSUID | MountNoDev | MountNoExec))
}

// Umount detaches the mount whose root is at vd: EINVAL if vd is not a
// mount root, EBUSY if something is mounted under it.
func (vfs *VirtualFilesystem) Umount(ctx context.Context, vd VirtualDentry) error {
	vfs.mountMu.Lock()
	m := vd.Mount
	if m == nil || vd.Dentry != m.root || m.parent == nil {
		vfs.mountMu.Unlock()
		return unix.EINVAL
	}
	for k := range vfs.mounts {
		if k.parent == m {
			vfs.mountMu.Unlock()
			return unix.EBUSY
		}
	}
	delete(vfs.mounts, mountKey{m.parent, m.point})
	m.point.mounts.Add(-1)
	point := m.point
	m.parent, m.point = nil, nil
	vfs.mountMu.Unlock()
	unpin(point)
	unpin(m.root)
	if m.fs.mnts.Add(-1) == 0 {
		m.fs.impl.Release(ctx)
	}
	return nil
}

// Mounts returns every mount with its path, parents before children (for
// /proc/self/mounts).
func (vfs *VirtualFilesystem) Mounts() []*Mount {
	vfs.mountMu.RLock()
	defer vfs.mountMu.RUnlock()
	if vfs.root == nil {
		return nil
	}
	out := []*Mount{vfs.root}
	for i := 0; i < len(out); i++ {
		for k, m := range vfs.mounts {
			if k.parent == out[i] {
				out = append(out, m)
			}
		}
	}
	return out
}

// mountedAt returns the mount on top of (m, d), following stacks, or nil.
func (vfs *VirtualFilesystem) mountedAt(m *Mount, d *Dentry) *Mount {
	if d.mounts.Load() == 0 {
		return nil
	}
	vfs.mountMu.RLock()
	defer vfs.mountMu.RUnlock()
	var top *Mount
	for {
		n, ok := vfs.mounts[mountKey{m, d}]
		if !ok {
			return top
		}
		top = n
		m, d = n, n.root
	}
}

// mountParent returns the mount point of m, or false for the root mount.
func (vfs *VirtualFilesystem) mountParent(m *Mount) (VirtualDentry, bool) {
	vfs.mountMu.RLock()
	defer vfs.mountMu.RUnlock()
	if m.parent == nil {
		return VirtualDentry{}, false
	}
	return VirtualDentry{m.parent, m.point}, true
}

// PathnameWithin returns the path of vd as seen from root (getcwd,
// /proc/self/fd links). reachable is false when vd is not under root (a
// cwd outside a chroot) or has been deleted; the path then is the best
// name Linux would print, and getcwd reports ENOENT for a deleted cwd.
func (vfs *VirtualFilesystem) PathnameWithin(root, vd VirtualDentry) (path string, reachable bool) {
	vfs.renameMu.RLock()
	defer vfs.renameMu.RUnlock()
	var parts []string
	reachable = !vd.Dentry.dead
	for {
		if vd == root {
			break
		}
		if vd.Dentry == vd.Mount.root {
			p, ok := vfs.mountParent(vd.Mount)
			if !ok {
				reachable = false
				break
			}
			vd = p
			continue
		}
		parts = append(parts, vd.Dentry.name)
		vd.Dentry = vd.Dentry.parent
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	if b.Len() == 0 {
		return "/", reachable
	}
	return b.String(), reachable
}

// pin keeps d in the cache while it is a mount point or mount root.
func pin(d *Dentry) {
	if d.pins.Add(1) == 1 {
		d.fs.lruRemove(d)
	}
}

// unpin undoes pin; a leaf becomes an eviction candidate again.
func unpin(d *Dentry) {
	if d.pins.Add(-1) != 0 {
		return
	}
	d.mu.Lock()
	leaf := len(d.children) == 0
	d.mu.Unlock()
	if leaf {
		d.fs.lruAdd(d)
	}
}

// lookupChildLocked returns the dentry for name in directory d, asking the
// filesystem on a cache miss. renameMu is held (at least for reading).
func (vfs *VirtualFilesystem) lookupChildLocked(ctx context.Context, d *Dentry, name string) (*Dentry, error) {
	d.mu.Lock()
	if c, ok := d.children[name]; ok {
		rv, check := d.inode.(DirRevalidator)
		if !check || rv.Revalidate(ctx, name, c.inode) {
			d.mu.Unlock()
			c.referenced.Store(true)
			return c, nil
		}
		// Gone or replaced behind the VFS's back: forget it and look
		// the name up afresh. (Not marked dead: that changes only under
		// renameMu held for writing; whoever still holds c keeps a
		// dentry no walk reaches, as after an eviction.)
		delete(d.children, name)
		d.fs.lruRemove(c)
		if len(d.children) == 0 {
			d.fs.lruAdd(d)
		}
	}
	c := d.reviveLocked(name)
	d.mu.Unlock()
	if c != nil {
		d.fs.shrink(ctx)
		return c, nil
	}
	ino, err := d.inode.Lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if c, ok := d.children[name]; ok {
		// Another walker got there first; keep one dentry per name.
		d.mu.Unlock()
		if ev, ok := ino.(InodeEvicter); ok && ino != c.inode {
			ev.Evict(ctx)
		}
		return c, nil
	}
	if c := d.reviveLocked(name); c != nil {
		// Evicted by another walker while we looked it up.
		d.mu.Unlock()
		if ev, ok := ino.(InodeEvicter); ok && ino != c.inode {
			ev.Evict(ctx)
		}
		d.fs.shrink(ctx)
		return c, nil
	}
	c = newDentry(d.fs, d, name, ino)
	d.addChildLocked(c)
	d.fs.lruAdd(c)
	d.mu.Unlock()
	d.fs.shrink(ctx)
	return c, nil
}

// cachedChildLocked is lookupChildLocked without asking the filesystem
// (RESOLVE_CACHED): a miss is EAGAIN, telling the caller to retry without
// the flag. renameMu is held.
func (vfs *VirtualFilesystem) cachedChildLocked(d *Dentry, name string) (*Dentry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.children[name]; ok {
		c.referenced.Store(true)
		return c, nil
	}
	return nil, unix.EAGAIN
}

// insertChildLocked caches a newly created child. renameMu is held for
// writing.
func insertChildLocked(ctx context.Context, d *Dentry, name string, ino Inode) *Dentry {
	c := newDentry(d.fs, d, name, ino)
	d.mu.Lock()
	d.addChildLocked(c)
	d.fs.lruAdd(c)
	d.mu.Unlock()
	d.fs.shrink(ctx)
	return c
}

// removeChildLocked drops c, a child of d, from the cache and marks it
// dead. c is passed rather than found by name because an eviction may
// already have dropped it from d.children. renameMu is held for writing.
func removeChildLocked(ctx context.Context, d, c *Dentry) {
	d.mu.Lock()
	if d.children[c.name] == c {
		delete(d.children, c.name)
	}
	delete(d.evicted, c.name)
	if len(d.children) == 0 {
		d.fs.lruAdd(d)
	}
	d.mu.Unlock()
	c.dead = true
	d.fs.lruRemove(c)
	if ev, ok := c.inode.(InodeEvicter); ok {
		ev.Evict(ctx)
	}
}
