package vfs

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
)

// FilesystemImpl is one filesystem instance (one tmpfs, one gofer
// connection, ...). The VFS wraps it in a Filesystem when it is first
// mounted.
type FilesystemImpl interface {
	// Name is the filesystem type as /proc/mounts shows it ("tmpfs").
	Name() string
	// Root returns the root directory.
	Root(ctx context.Context) (Inode, error)
	// StatFS answers statfs(2); the VFS fills nothing in.
	StatFS(ctx context.Context) (Statfs, error)
	// Sync flushes everything to backing store (sync(2), syncfs(2)).
	Sync(ctx context.Context) error
	// Release is called when the last mount of the filesystem goes away.
	Release(ctx context.Context)
}

// Inode is one file as its filesystem implements it. Methods on a directory
// take a single path component: never "", ".", "..", or a name containing
// '/' (the VFS handles those) and never longer than NAME_MAX.
//
// The VFS does all permission checks (search, write on the parent, sticky
// directories, owner checks for SetStat) and all type checks it can make
// from Perms before calling a mutating method, and holds its rename lock
// for writing around directory mutations, so a filesystem need not
// serialise concurrent mutations of the same directory against walks.
// A filesystem still checks what only it can know: existence (EEXIST,
// ENOENT), emptiness (ENOTEMPTY), its own read-only state (EROFS) and
// anything its backing store refuses.
//
// Inodes of a non-directory embed NotDir to get the directory methods
// answered with ENOTDIR.
type Inode interface {
	// Perms returns the file type and permission bits, owner and group
	// from cached attributes. The walker calls it for every component, so
	// it must not block on I/O.
	Perms() Perms
	// Stat returns the file's attributes. The VFS overrides DevMajor and
	// DevMinor with the Filesystem's device number.
	Stat(ctx context.Context) (Statx, error)
	// SetStat changes the attributes in opts.Mask (chmod, chown, truncate,
	// utimes). The filesystem updates ctime as Linux does.
	SetStat(ctx context.Context, opts SetStatOptions) error

	// Lookup returns the child called name: ENOENT if there is none.
	Lookup(ctx context.Context, name string) (Inode, error)
	// ReadDir lists the directory's entries, without "." and "..". The VFS
	// snapshots the list when a directory is read from offset 0, so
	// getdents sees a consistent listing.
	ReadDir(ctx context.Context) ([]Dirent, error)
	// Readlink returns a symlink's target: EINVAL for anything else.
	Readlink(ctx context.Context) (string, error)
	// Open returns the implementation of a new open file description of
	// this (non-directory) inode; directories are opened by the VFS using
	// ReadDir. flags are the open(2) flags; permission checks are done.
	// O_TRUNC has already been applied through SetStat.
	Open(ctx context.Context, flags uint32) (FileDescriptionImpl, error)

	// Create makes a non-directory child: opts.Mode carries the type
	// (S_IFREG, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK).
	Create(ctx context.Context, name string, opts CreateOptions) (Inode, error)
	// Mkdir makes a directory child.
	Mkdir(ctx context.Context, name string, opts CreateOptions) (Inode, error)
	// Symlink makes a symlink child pointing at target.
	Symlink(ctx context.Context, name, target string, opts CreateOptions) (Inode, error)
	// Link makes name a new hard link to target, an inode of the same
	// filesystem (the VFS has checked EXDEV) that is not a directory.
	Link(ctx context.Context, name string, target Inode) error
	// Unlink removes the non-directory child name, which the VFS looked up
	// as child.
	Unlink(ctx context.Context, name string, child Inode) error
	// Rmdir removes the directory child name (ENOTEMPTY unless empty).
	Rmdir(ctx context.Context, name string, child Inode) error
	// Rename moves child from oldName in this directory to newName in
	// newParent (same filesystem), replacing replaced if non-nil. The VFS
	// has checked the type rules (EISDIR, ENOTDIR), that a directory is
	// not moved under itself, and RENAME_NOREPLACE; the filesystem checks
	// that a replaced directory is empty.
	Rename(ctx context.Context, oldName string, child Inode, newParent Inode, newName string, replaced Inode) error
}

// InodeEvicter is implemented by inodes that hold resources (a remote
// handle) the VFS should let go of: Evict is called when the VFS drops a
// dentry of the inode, after unlink, rmdir or a rename over it, and when
// the dentry cache evicts it to stay within its bound. Only the latter
// leaves the file linked: the inode may still be used afterwards (by a
// cwd, an open file, or because a later lookup revives the dentry) and
// must then re-acquire what it released. Evict may be called more than
// once, concurrently with other methods. Open file descriptions obtained
// from the inode must keep working after Evict.
type InodeEvicter interface {
	Evict(ctx context.Context)
}

// DirRevalidator is implemented by directories whose entries also change
// other than through the VFS (the mqueue filesystem: mq_open, mq_unlink):
// a cached child is used only while Revalidate says it is still the file
// called name; otherwise the VFS drops it and asks Lookup again. It is
// called with the directory's dentry lock held and must not call back
// into the VFS.
type DirRevalidator interface {
	Revalidate(ctx context.Context, name string, child Inode) bool
}

// Perms are the attributes the walker and permission checks need.
type Perms struct {
	// Mode holds the file type (S_IFMT bits) and permission bits.
	Mode uint32
	UID  auth.KUID
	GID  auth.KGID
}

// Type returns the S_IFMT bits.
func (p Perms) Type() uint32 { return p.Mode & unix.S_IFMT }

// IsDir, IsSymlink and IsRegular test the file type.
func (p Perms) IsDir() bool     { return p.Type() == unix.S_IFDIR }
func (p Perms) IsSymlink() bool { return p.Type() == unix.S_IFLNK }
func (p Perms) IsRegular() bool { return p.Type() == unix.S_IFREG }

// CreateOptions describe a new file. The VFS computes them from the
// caller's credentials, the umask and the parent (set-group-ID
// directories), so filesystems use them as given.
type CreateOptions struct {
	// Mode is the type and permission bits, umask already applied.
	Mode uint32
	UID  auth.KUID
	GID  auth.KGID
	// Rdev is the device number for S_IFCHR and S_IFBLK.
	Rdev uint64
}

// Dirent is one directory entry as ReadDir reports it.
type Dirent struct {
	Name string
	Ino  uint64
	// Type is a DT_* constant (unix.DT_REG...).
	Type uint8
}

// DirentType converts S_IFMT bits to a DT_* value.
func DirentType(mode uint32) uint8 { return uint8((mode & unix.S_IFMT) >> 12) }

// StatxTimestamp is struct statx_timestamp.
type StatxTimestamp struct {
	Sec  int64
	Nsec uint32
}

// Statx is the full set of file attributes, shaped like struct statx.
// Mask says which fields are valid (STATX_* bits).
type Statx struct {
	Mask       uint32
	Blksize    uint32
	Attributes uint64
	Nlink      uint32
	UID        uint32
	GID        uint32
	Mode       uint16
	Ino        uint64
	Size       uint64
	Blocks     uint64
	Atime      StatxTimestamp
	Btime      StatxTimestamp
	Ctime      StatxTimestamp
	Mtime      StatxTimestamp
	RdevMajor  uint32
	RdevMinor  uint32
	DevMajor   uint32
	DevMinor   uint32
}

// SetStatOptions say which attributes to change (Mask, STATX_MODE,
// STATX_UID, STATX_GID, STATX_SIZE, STATX_ATIME, STATX_MTIME) and to what.
// Times are absolute: the VFS turns UTIME_NOW into the current time and
// leaves UTIME_OMIT out of the mask.
type SetStatOptions struct {
	Mask  uint32
	Mode  uint32 // permission bits only (07777)
	UID   auth.KUID
	GID   auth.KGID
	Size  uint64
	Atime StatxTimestamp
	Mtime StatxTimestamp
	// TouchNow says both times are "now" (utimensat with NULL times or
	// UTIME_NOW for both): the VFS then lets anyone with write permission
	// do it. Filesystems ignore it.
	TouchNow bool
}

// Statfs is struct statfs.
type Statfs struct {
	Type        uint64
	BlockSize   int64
	Blocks      uint64
	BlocksFree  uint64
	BlocksAvail uint64
	Files       uint64
	FilesFree   uint64
	FSID        [2]int32
	NameLength  uint64
	FragSize    int64
	Flags       uint64
}

// NotDir supplies the directory methods of a non-directory inode.
type NotDir struct{}

func (NotDir) Lookup(context.Context, string) (Inode, error) { return nil, unix.ENOTDIR }
func (NotDir) ReadDir(context.Context) ([]Dirent, error)     { return nil, unix.ENOTDIR }
func (NotDir) Create(context.Context, string, CreateOptions) (Inode, error) {
	return nil, unix.ENOTDIR
}
func (NotDir) Mkdir(context.Context, string, CreateOptions) (Inode, error) {
	return nil, unix.ENOTDIR
}
func (NotDir) Symlink(context.Context, string, string, CreateOptions) (Inode, error) {
	return nil, unix.ENOTDIR
}
func (NotDir) Link(context.Context, string, Inode) error   { return unix.ENOTDIR }
func (NotDir) Unlink(context.Context, string, Inode) error { return unix.ENOTDIR }
func (NotDir) Rmdir(context.Context, string, Inode) error  { return unix.ENOTDIR }
func (NotDir) Rename(context.Context, string, Inode, Inode, string, Inode) error {
	return unix.ENOTDIR
}

// NotSymlink supplies Readlink for anything but a symlink.
type NotSymlink struct{}

func (NotSymlink) Readlink(context.Context) (string, error) { return "", unix.EINVAL }
