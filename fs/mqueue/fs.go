package mqueue

import (
	"context"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// Filesystem is a mount of the mqueue filesystem: every mount of one
// registry shows the same queues.
type Filesystem struct {
	r    *Registry
	root *rootInode
}

// NewFilesystem returns an mqueue filesystem showing r.
func NewFilesystem(r *Registry) *Filesystem {
	fs := &Filesystem{r: r}
	fs.root = &rootInode{r: r}
	return fs
}

func (fs *Filesystem) Name() string                            { return "mqueue" }
func (fs *Filesystem) Root(context.Context) (vfs.Inode, error) { return fs.root, nil }
func (fs *Filesystem) Sync(context.Context) error              { return nil }
func (fs *Filesystem) Release(context.Context)                 {}
func (fs *Filesystem) StatFS(context.Context) (vfs.Statfs, error) {
	return vfs.Statfs{Type: MQUEUE_MAGIC, BlockSize: 4096, FragSize: 4096, NameLength: 255}, nil
}

func ts(t time.Time) vfs.StatxTimestamp {
	return vfs.StatxTimestamp{Sec: t.Unix(), Nsec: uint32(t.Nanosecond())}
}

// rootInode is the directory of queues: sticky and world-writable, as
// Linux makes it; only queues live in it.
type rootInode struct {
	vfs.NotSymlink
	r *Registry
}

const rootMode = unix.S_IFDIR | unix.S_ISVTX | 0777

func (d *rootInode) Perms() vfs.Perms { return vfs.Perms{Mode: rootMode} }
func (d *rootInode) Stat(context.Context) (vfs.Statx, error) {
	d.r.mu.Lock()
	c := d.r.ctime
	d.r.mu.Unlock()
	return vfs.Statx{Mask: unix.STATX_BASIC_STATS, Blksize: 4096, Nlink: 2, Mode: rootMode, Ino: 1,
		Atime: ts(c), Mtime: ts(c), Ctime: ts(c)}, nil
}
func (d *rootInode) SetStat(context.Context, vfs.SetStatOptions) error { return unix.EPERM }
func (d *rootInode) Lookup(_ context.Context, name string) (vfs.Inode, error) {
	if q := d.r.lookup(name); q != nil {
		return &queueInode{q: q}, nil
	}
	return nil, unix.ENOENT
}

// Revalidate implements vfs.DirRevalidator: mq_open and mq_unlink change
// the set of queues without the VFS.
func (d *rootInode) Revalidate(_ context.Context, name string, child vfs.Inode) bool {
	qi, ok := child.(*queueInode)
	return ok && d.r.lookup(name) == qi.q
}

func (d *rootInode) ReadDir(context.Context) ([]vfs.Dirent, error) {
	var out []vfs.Dirent
	for _, q := range d.r.names() {
		out = append(out, vfs.Dirent{Name: q.name, Ino: q.ino, Type: vfs.DirentType(unix.S_IFREG)})
	}
	return out, nil
}
func (d *rootInode) Open(context.Context, uint32) (vfs.FileDescriptionImpl, error) {
	return nil, unix.EISDIR
}

// Create is creat(2) or open(O_CREAT) in the mount: a queue with the
// default attributes.
func (d *rootInode) Create(ctx context.Context, name string, opts vfs.CreateOptions) (vfs.Inode, error) {
	if opts.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, unix.EPERM
	}
	creds := auth.CredentialsFromContext(ctx)
	d.r.mu.Lock()
	defer d.r.mu.Unlock()
	if d.r.queues[name] != nil {
		return nil, unix.EEXIST
	}
	q, err := d.r.createLocked(name, opts.Mode, nil, creds)
	if err != nil {
		return nil, err
	}
	q.uid, q.gid = opts.UID, opts.GID
	return &queueInode{q: q}, nil
}
func (d *rootInode) Mkdir(context.Context, string, vfs.CreateOptions) (vfs.Inode, error) {
	return nil, unix.EPERM
}
func (d *rootInode) Symlink(context.Context, string, string, vfs.CreateOptions) (vfs.Inode, error) {
	return nil, unix.EPERM
}
func (d *rootInode) Link(context.Context, string, vfs.Inode) error { return unix.EPERM }
func (d *rootInode) Unlink(_ context.Context, name string, _ vfs.Inode) error {
	d.r.mu.Lock()
	defer d.r.mu.Unlock()
	if d.r.queues[name] == nil {
		return unix.ENOENT
	}
	delete(d.r.queues, name)
	d.r.ctime = time.Now()
	return nil
}
func (d *rootInode) Rmdir(context.Context, string, vfs.Inode) error { return unix.ENOTDIR }
func (d *rootInode) Rename(context.Context, string, vfs.Inode, vfs.Inode, string, vfs.Inode) error {
	return unix.EPERM
}

// queueInode is a queue seen in the mount.
type queueInode struct {
	vfs.NotDir
	vfs.NotSymlink
	q *Queue
}

func (i *queueInode) Perms() vfs.Perms {
	i.q.mu.Lock()
	defer i.q.mu.Unlock()
	return vfs.Perms{Mode: unix.S_IFREG | i.q.mode, UID: i.q.uid, GID: i.q.gid}
}

func (i *queueInode) Stat(context.Context) (vfs.Statx, error) {
	q := i.q
	q.mu.Lock()
	defer q.mu.Unlock()
	return vfs.Statx{Mask: unix.STATX_BASIC_STATS, Blksize: 4096, Nlink: 1, Mode: uint16(unix.S_IFREG | q.mode),
		UID: uint32(q.uid), GID: uint32(q.gid), Ino: q.ino, Size: fileSize,
		Atime: ts(q.atime), Mtime: ts(q.mtime), Ctime: ts(q.ctime)}, nil
}

func (i *queueInode) SetStat(_ context.Context, opts vfs.SetStatOptions) error {
	q := i.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if opts.Mask&unix.STATX_SIZE != 0 {
		return unix.EINVAL
	}
	if opts.Mask&unix.STATX_MODE != 0 {
		q.mode = opts.Mode & 07777
	}
	if opts.Mask&unix.STATX_UID != 0 {
		q.uid = opts.UID
	}
	if opts.Mask&unix.STATX_GID != 0 {
		q.gid = opts.GID
	}
	if opts.Mask&unix.STATX_ATIME != 0 {
		q.atime = time.Unix(opts.Atime.Sec, int64(opts.Atime.Nsec))
	}
	if opts.Mask&unix.STATX_MTIME != 0 {
		q.mtime = time.Unix(opts.Mtime.Sec, int64(opts.Mtime.Nsec))
	}
	q.ctime = time.Now()
	return nil
}

// Open of a queue's file in the mount gives a description that reads its
// status line (and works with the mq_* calls, as on Linux).
func (i *queueInode) Open(_ context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	return &File{q: i.q}, nil
}

// File is an open description of a queue, from mq_open or from an open
// of its file in a mount.
type File struct {
	vfs.FileDescriptionDefaultImpl
	q *Queue
}

// NewFile returns a description of q with open flags.
func NewFile(q *Queue, flags uint32) *vfs.FileDescription {
	return vfs.NewFileDescription(&File{q: q}, flags&(unix.O_ACCMODE|unix.O_NONBLOCK), vfs.VirtualDentry{})
}

// FromFD returns the queue behind fd, or nil.
func FromFD(fd *vfs.FileDescription) *Queue {
	if f, ok := fd.Impl().(*File); ok {
		return f.q
	}
	return nil
}

// AnonName is what readlink of /proc/PID/fd/N says of an mq_open
// descriptor, as on Linux: the queue's path in the mqueue filesystem.
func (f *File) AnonName() string { return "/" + f.q.name }

// Read gives the status line at off.
func (f *File) Read(_ context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	s := f.q.status()
	if off >= int64(len(s)) {
		return 0, nil
	}
	n, err := dst.CopyOut([]byte(s[off:]))
	return int64(n), err
}

func (f *File) Stat(ctx context.Context) (vfs.Statx, error) { return (&queueInode{q: f.q}).Stat(ctx) }

func (f *File) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	return (&queueInode{q: f.q}).SetStat(ctx, opts)
}

func (f *File) Readiness(mask waiter.EventMask) waiter.EventMask { return f.q.Readiness(mask) }
func (f *File) EventRegister(e *waiter.Entry) error              { return f.q.EventRegister(e) }
func (f *File) EventUnregister(e *waiter.Entry)                  { f.q.EventUnregister(e) }
