// Package overlay owns the overlay filesystem that is the container's root
// by default: a read-only lower layer (the gofer-served rootfs) under a
// writable upper layer (a tmpfs in the sentry's memory file), so that the
// container sees its writes while its image on the host never changes.
//
// # Model
//
// An overlay inode pairs the upper and lower inodes found at one path. A
// name present in the upper layer hides the lower one, except that two
// directories merge: listing shows the union, and lookups try the upper
// one first. A file changed in any way is first copied up: its data,
// mode, owner, times and xattrs are copied into the upper layer (parents
// first) and all later access goes to the copy. Removing a name the lower layer has
// leaves a whiteout in the upper directory; a directory made where a
// whiteout was, or renamed over a lower directory, is opaque and hides the
// lower directory's contents.
//
// The upper layer is private to the overlay, so whiteouts and opaque marks
// are kept as the overlay's own records, keyed by upper inode, rather than
// as device nodes and xattrs visible to anyone (whiteouts still occupy
// their name in the upper directory, as character devices 0/0).
//
// Choices where Linux's overlayfs offers several:
//   - Renaming a directory that has a lower layer fails with EXDEV (as
//     overlayfs without redirect_dir); mv and other tools then copy the
//     tree. Directories that exist only in the upper layer rename freely.
//   - A lower file with several hard links is copied up once: the other
//     names find the copy (see Filesystem.links) and are linked to it when
//     they are copied up in turn, so the links stay links.
//   - st_ino is the lower inode number until copy-up and the upper one
//     afterwards, as readdir and fstat report them; the upper layer should
//     number its inodes clear of the lower's (UpperInoBase).
//   - A merged directory shows the lower directory's size and blocks and a
//     link count that follows its listing (the lower one's while nothing
//     changed in it), where overlayfs says 1: listings like ls -la / then
//     match the host's.
//   - Extended attributes are copied up with the file; a layer without
//     them gives EOPNOTSUPP for reads, as overlayfs does.
//
// # Locking
//
// Filesystem.mu serialises every change to the upper layer (copy-up,
// create, remove, rename) and guards whiteouts, opaque, links and each
// inode's parent and name. An inode's layers are an immutable set
// replaced whole under Filesystem.mu and read with one atomic load, so
// walks (Perms, Lookup) never wait for a copy-up's data copy. Order:
// Filesystem.mu → the layers' own locks.
package overlay

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/vfs"
)

// OVERLAYFS_SUPER_MAGIC is statfs's f_type for an overlay.
const OVERLAYFS_SUPER_MAGIC = 0x794c7630

// UpperInoBase is where an upper tmpfs should start numbering its inodes
// (tmpfs.Options.InoBase) to stay clear of a host file system's numbers.
const UpperInoBase = 1 << 62

// Filesystem is one overlay.
type Filesystem struct {
	upperFS, lowerFS vfs.FilesystemImpl
	root             *inode

	// mu: see the package doc.
	mu sync.Mutex
	// whiteouts are the upper entries that stand for a removed lower
	// name; opaque the upper directories that hide their lower one.
	whiteouts map[vfs.Inode]bool
	opaque    map[vfs.Inode]bool
	// links maps the inode number of a lower file with several links,
	// once copied up, to its copy.
	links map[uint64]vfs.Inode
}

// New stacks upper over lower. upper should be empty; its root takes the
// lower root's mode, owner and times.
func New(ctx context.Context, upper, lower vfs.FilesystemImpl) (*Filesystem, error) {
	ur, err := upper.Root(ctx)
	if err != nil {
		return nil, err
	}
	lr, err := lower.Root(ctx)
	if err != nil {
		return nil, err
	}
	st, err := lr.Stat(ctx)
	if err != nil {
		return nil, err
	}
	if err := ur.SetStat(ctx, copiedAttrs(st)); err != nil {
		return nil, err
	}
	fs := &Filesystem{
		upperFS: upper, lowerFS: lower,
		whiteouts: map[vfs.Inode]bool{}, opaque: map[vfs.Inode]bool{}, links: map[uint64]vfs.Inode{},
	}
	fs.root = fs.newInode(nil, "", ur, true, lr)
	return fs, nil
}

// copiedAttrs are the attributes a copy takes from st: mode, owner and
// times.
func copiedAttrs(st vfs.Statx) vfs.SetStatOptions {
	return vfs.SetStatOptions{
		Mask:  unix.STATX_MODE | unix.STATX_UID | unix.STATX_GID | unix.STATX_ATIME | unix.STATX_MTIME,
		Mode:  uint32(st.Mode) & 07777,
		UID:   kuid(st.UID),
		GID:   kgid(st.GID),
		Atime: st.Atime, Mtime: st.Mtime,
	}
}

// Name implements vfs.FilesystemImpl.
func (fs *Filesystem) Name() string { return "overlay" }

// Root implements vfs.FilesystemImpl.
func (fs *Filesystem) Root(context.Context) (vfs.Inode, error) { return fs.root, nil }

// StatFS implements vfs.FilesystemImpl: space is the upper layer's, where
// writes go.
func (fs *Filesystem) StatFS(ctx context.Context) (vfs.Statfs, error) {
	s, err := fs.upperFS.StatFS(ctx)
	s.Type = OVERLAYFS_SUPER_MAGIC
	return s, err
}

// Sync implements vfs.FilesystemImpl.
func (fs *Filesystem) Sync(ctx context.Context) error { return fs.upperFS.Sync(ctx) }

// Release implements vfs.FilesystemImpl.
func (fs *Filesystem) Release(ctx context.Context) {
	fs.upperFS.Release(ctx)
	fs.lowerFS.Release(ctx)
}

// isWhiteout reports whether c, an upper inode, is a whiteout.
func (fs *Filesystem) isWhiteout(c vfs.Inode) bool {
	if c.Perms().Type() != unix.S_IFCHR {
		return false
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.whiteouts[c]
}

func (fs *Filesystem) isOpaque(upperDir vfs.Inode) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.opaque[upperDir]
}

// evict lets a layer inode the overlay will not use go.
func evict(ctx context.Context, ino vfs.Inode) {
	if ev, ok := ino.(vfs.InodeEvicter); ok {
		ev.Evict(ctx)
	}
}

var _ vfs.FilesystemImpl = (*Filesystem)(nil)
