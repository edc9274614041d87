package vfs

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// FileDescriptionImpl is what a file type implements behind an open file
// description. Embed FileDescriptionDefaultImpl (and DefaultStream for
// pipes, sockets and ttys) to get Linux's answers for what the type does
// not support.
//
// No method blocks waiting for another party: an operation that would have
// to wait returns unix.EAGAIN and the caller waits for Readiness (the
// syscall layer, unless the description is O_NONBLOCK).
type FileDescriptionImpl interface {
	// Release is called once, when the last reference goes away.
	Release(ctx context.Context)
	// Read reads into dst at offset off (stream files ignore off). It
	// returns the bytes read; 0 with a nil error is end of file.
	Read(ctx context.Context, dst usermem.IOSequence, off int64) (int64, error)
	// Write writes src at off, or at the end of the file when appending
	// (then atomically with respect to other appends). It returns the
	// bytes written and the offset just past them.
	Write(ctx context.Context, src usermem.IOSequence, off int64, appending bool) (n, end int64, err error)
	// Stat returns the file's attributes.
	Stat(ctx context.Context) (Statx, error)
	// SetStat changes attributes (fchmod, fchown, ftruncate, futimens);
	// the VFS has done permission checks.
	SetStat(ctx context.Context, opts SetStatOptions) error
	// Ioctl carries out ioctl(2). uio reaches the caller's memory.
	Ioctl(ctx context.Context, uio CopyIO, args arch.SyscallArguments) (uintptr, error)
	// ConfigureMMap sets opts.Mappable (and may adjust MaxPerms) for a
	// mapping of the file; ENODEV when the file cannot be mapped.
	ConfigureMMap(ctx context.Context, opts *memmap.MMapOpts) error
	// Sync flushes the file (fsync, fdatasync).
	Sync(ctx context.Context) error

	waiter.Waitable
}

// CopyIO reaches an application's memory for ioctl arguments; a
// *kernel.Task satisfies it.
type CopyIO interface {
	CopyInBytes(addr hostarch.Addr, dst []byte) (int, error)
	CopyOutBytes(addr hostarch.Addr, src []byte) (int, error)
}

// Seeker is implemented by files with their own lseek rules (directories,
// special files). Otherwise the VFS seeks using the size from Stat.
type Seeker interface {
	Seek(ctx context.Context, offset int64, whence int32, cur int64) (int64, error)
}

// OffsetSharer is implemented by files whose offset is also held outside
// the sandbox (a donated host file shares its open file description with
// the process that gave it): the VFS tells it every new file offset.
type OffsetSharer interface {
	OffsetChanged(off int64)
}

// Streamer marks stream files (pipes, sockets, ttys): lseek, pread and
// pwrite give ESPIPE. Embed DefaultStream.
type Streamer interface {
	IsStream()
}

// DirectoryImpl is implemented by the descriptions of directories.
type DirectoryImpl interface {
	// IterDirents calls cb for each entry from cookie on; cb returns false
	// when it has no room (the entry is then not consumed). It returns the
	// cookie to continue from.
	IterDirents(ctx context.Context, cookie int64, cb func(d Dirent, next int64) bool) (int64, error)
}

// FileDescriptionDefaultImpl answers as Linux does for a file type that
// does not support an operation.
type FileDescriptionDefaultImpl struct{}

func (FileDescriptionDefaultImpl) Release(context.Context) {}
func (FileDescriptionDefaultImpl) Read(context.Context, usermem.IOSequence, int64) (int64, error) {
	return 0, unix.EINVAL
}
func (FileDescriptionDefaultImpl) Write(context.Context, usermem.IOSequence, int64, bool) (int64, int64, error) {
	return 0, 0, unix.EINVAL
}
func (FileDescriptionDefaultImpl) SetStat(context.Context, SetStatOptions) error { return unix.EPERM }
func (FileDescriptionDefaultImpl) Ioctl(context.Context, CopyIO, arch.SyscallArguments) (uintptr, error) {
	return 0, unix.ENOTTY
}
func (FileDescriptionDefaultImpl) ConfigureMMap(context.Context, *memmap.MMapOpts) error {
	return unix.ENODEV
}
func (FileDescriptionDefaultImpl) Sync(context.Context) error { return unix.EINVAL }
func (FileDescriptionDefaultImpl) Readiness(mask waiter.EventMask) waiter.EventMask {
	return mask & (waiter.EventIn | waiter.EventOut | waiter.EventRdNorm)
}
func (FileDescriptionDefaultImpl) EventRegister(*waiter.Entry) error { return nil }
func (FileDescriptionDefaultImpl) EventUnregister(*waiter.Entry)     {}

// NoopSeeker marks stream files whose lseek succeeds and does nothing,
// returning 0 (Linux's noop_llseek: inotify, eventfd, timerfd, signalfd),
// while pread and pwrite still give ESPIPE.
type NoopSeeker interface {
	NoopSeek()
}

// DefaultStream marks a stream file.
type DefaultStream struct{}

func (DefaultStream) IsStream() {}

// Open flags kept as the description's status flags; F_SETFL may change
// only settableFlags.
const (
	statusFlagsMask = unix.O_APPEND | unix.O_NONBLOCK | unix.O_DIRECT | unix.O_NOATIME |
		unix.O_ASYNC | unix.O_DSYNC | unix.O_SYNC | unix.O_LARGEFILE | unix.O_PATH | unix.O_ACCMODE
	settableFlags = unix.O_APPEND | unix.O_NONBLOCK | unix.O_DIRECT | unix.O_NOATIME | unix.O_ASYNC
)

// FileDescription is an open file description: what open(2) creates and
// dup(2) shares. It is reference counted; the FD table, epoll and
// in-flight syscalls hold references.
type FileDescription struct {
	refs  atomic.Int64
	impl  FileDescriptionImpl
	vd    VirtualDentry
	flags atomic.Uint32

	readable, writable bool
	stream             bool

	// offMu serialises offset updates: a read or write at the file offset
	// holds it throughout, so concurrent reads see disjoint ranges.
	offMu sync.Mutex
	off   int64

	// epollMu guards watchers: the epoll instances watching this file,
	// which drop it when it is released.
	epollMu  sync.Mutex
	watchers map[*epollItem]struct{}

	// lkey caches the file's identity for locks (locks.go) once the
	// description has taken part in locking.
	lkey atomic.Pointer[any]
}

// NewFileDescription wraps impl with one reference. flags are the open(2)
// flags; vd is where the file was opened from (zero for anonymous files
// such as pipes).
func NewFileDescription(impl FileDescriptionImpl, flags uint32, vd VirtualDentry) *FileDescription {
	fd := &FileDescription{impl: impl, vd: vd}
	fd.refs.Store(1)
	fd.flags.Store(flags & statusFlagsMask)
	if flags&unix.O_PATH == 0 {
		acc := flags & unix.O_ACCMODE
		fd.readable = acc == unix.O_RDONLY || acc == unix.O_RDWR
		fd.writable = acc == unix.O_WRONLY || acc == unix.O_RDWR
	}
	_, fd.stream = impl.(Streamer)
	return fd
}

// Impl returns the file type's implementation.
func (fd *FileDescription) Impl() FileDescriptionImpl { return fd.impl }

// VirtualDentry returns where the file was opened (zero for anonymous files).
func (fd *FileDescription) VirtualDentry() VirtualDentry { return fd.vd }

// IncRef takes a reference.
func (fd *FileDescription) IncRef() { fd.refs.Add(1) }

// TryIncRef takes a reference unless the file is already released.
func (fd *FileDescription) TryIncRef() bool {
	for {
		r := fd.refs.Load()
		if r <= 0 {
			return false
		}
		if fd.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// DecRef drops a reference, releasing the file with the last one.
func (fd *FileDescription) DecRef(ctx context.Context) {
	switch r := fd.refs.Add(-1); {
	case r == 0:
		fd.epollMu.Lock()
		ws := fd.watchers
		fd.watchers = nil
		fd.epollMu.Unlock()
		for it := range ws {
			it.ep.fileReleased(it)
		}
		fd.releaseDescriptionLocks()
		if !fd.IsPath() {
			fd.notifyClose(ctx)
		}
		fd.impl.Release(ctx)
	case r < 0:
		panic("vfs: FileDescription.DecRef without a reference")
	}
}

// StatusFlags returns the open(2) flags kept on the description: access
// mode, O_APPEND, O_NONBLOCK and the like (what F_GETFL reports).
func (fd *FileDescription) StatusFlags() uint32 { return fd.flags.Load() }

// SetStatusFlags sets the F_SETFL-settable flags from flags.
func (fd *FileDescription) SetStatusFlags(flags uint32) {
	for {
		old := fd.flags.Load()
		n := old&^settableFlags | flags&settableFlags
		if fd.flags.CompareAndSwap(old, n) {
			return
		}
	}
}

// IsReadable and IsWritable report the access mode.
func (fd *FileDescription) IsReadable() bool { return fd.readable }
func (fd *FileDescription) IsWritable() bool { return fd.writable }

// IsPath reports whether the description is an O_PATH one.
func (fd *FileDescription) IsPath() bool { return fd.flags.Load()&unix.O_PATH != 0 }

// IsStream reports whether the file has no offset (pipes, sockets, ttys).
func (fd *FileDescription) IsStream() bool { return fd.stream }

// Read reads at the file offset and advances it (read(2), readv(2)).
func (fd *FileDescription) Read(ctx context.Context, dst usermem.IOSequence) (int64, error) {
	if !fd.readable {
		return 0, unix.EBADF
	}
	if fd.stream {
		return fd.impl.Read(ctx, dst, 0)
	}
	fd.offMu.Lock()
	n, err := fd.impl.Read(ctx, dst, fd.off)
	if n > 0 {
		fd.setOffLocked(fd.off + n)
	}
	fd.offMu.Unlock()
	if n > 0 {
		fd.notifyFile(ctx, InAccess)
	}
	return n, err
}

// setOffLocked moves the file offset; offMu is held.
func (fd *FileDescription) setOffLocked(off int64) {
	fd.off = off
	if s, ok := fd.impl.(OffsetSharer); ok {
		s.OffsetChanged(off)
	}
}

// PRead reads at off without touching the file offset (pread64(2)).
func (fd *FileDescription) PRead(ctx context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	if !fd.readable {
		return 0, unix.EBADF
	}
	if fd.stream {
		return 0, unix.ESPIPE
	}
	if off < 0 {
		return 0, unix.EINVAL
	}
	n, err := fd.impl.Read(ctx, dst, off)
	if n > 0 {
		fd.notifyFile(ctx, InAccess)
	}
	return n, err
}

// Write writes at the file offset (or the end with O_APPEND) and advances
// it (write(2), writev(2)).
func (fd *FileDescription) Write(ctx context.Context, src usermem.IOSequence) (int64, error) {
	if !fd.writable {
		return 0, unix.EBADF
	}
	appending := fd.flags.Load()&unix.O_APPEND != 0
	if fd.stream {
		n, _, err := fd.impl.Write(ctx, src, 0, appending)
		if n > 0 {
			fd.notifyFile(ctx, InModify)
		}
		return n, err
	}
	fd.offMu.Lock()
	n, end, err := fd.impl.Write(ctx, src, fd.off, appending)
	if n > 0 || appending {
		fd.setOffLocked(end)
	}
	fd.offMu.Unlock()
	if n > 0 {
		fd.notifyFile(ctx, InModify)
	}
	return n, err
}

// PWrite writes at off without touching the file offset (pwrite64(2)).
// As on Linux, O_APPEND still appends.
func (fd *FileDescription) PWrite(ctx context.Context, src usermem.IOSequence, off int64) (int64, error) {
	if !fd.writable {
		return 0, unix.EBADF
	}
	if fd.stream {
		return 0, unix.ESPIPE
	}
	if off < 0 {
		return 0, unix.EINVAL
	}
	n, _, err := fd.impl.Write(ctx, src, off, fd.flags.Load()&unix.O_APPEND != 0)
	if n > 0 {
		fd.notifyFile(ctx, InModify)
	}
	return n, err
}

// Offset returns the file offset.
func (fd *FileDescription) Offset() int64 {
	fd.offMu.Lock()
	defer fd.offMu.Unlock()
	return fd.off
}

// SetOffset sets the file offset (for file types that start elsewhere
// than 0, such as a donated host file).
func (fd *FileDescription) SetOffset(off int64) {
	fd.offMu.Lock()
	fd.off = off
	fd.offMu.Unlock()
}

// Seek carries out lseek(2).
func (fd *FileDescription) Seek(ctx context.Context, offset int64, whence int32) (int64, error) {
	if fd.stream {
		if _, ok := fd.impl.(NoopSeeker); ok {
			return 0, nil
		}
		return 0, unix.ESPIPE
	}
	fd.offMu.Lock()
	defer fd.offMu.Unlock()
	var n int64
	var err error
	if s, ok := fd.impl.(Seeker); ok {
		n, err = s.Seek(ctx, offset, whence, fd.off)
	} else {
		n, err = GenericSeek(ctx, fd.impl, offset, whence, fd.off)
	}
	if err == nil {
		fd.setOffLocked(n)
	}
	return n, err
}

// GenericSeek is lseek for a file whose size Stat reports: SEEK_DATA and
// SEEK_HOLE treat the whole file as data.
func GenericSeek(ctx context.Context, impl FileDescriptionImpl, offset int64, whence int32, cur int64) (int64, error) {
	var base int64
	switch whence {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		base = cur
	case unix.SEEK_END, unix.SEEK_DATA, unix.SEEK_HOLE:
		st, err := impl.Stat(ctx)
		if err != nil {
			return 0, err
		}
		size := int64(st.Size)
		switch whence {
		case unix.SEEK_END:
			base = size
		case unix.SEEK_DATA:
			if offset < 0 {
				return 0, unix.EINVAL
			}
			if offset >= size {
				return 0, unix.ENXIO
			}
			return offset, nil
		case unix.SEEK_HOLE:
			if offset < 0 {
				return 0, unix.EINVAL
			}
			if offset >= size {
				return 0, unix.ENXIO
			}
			return size, nil
		}
	default:
		return 0, unix.EINVAL
	}
	n := base + offset
	if (offset > 0 && n < base) || n < 0 {
		if offset > 0 {
			return 0, unix.EOVERFLOW
		}
		return 0, unix.EINVAL
	}
	return n, nil
}

// Stat returns the file's attributes (fstat(2)).
func (fd *FileDescription) Stat(ctx context.Context) (Statx, error) {
	st, err := fd.impl.Stat(ctx)
	if err == nil && fd.vd.Mount != nil {
		fd.vd.Mount.fs.fillDev(&st)
	}
	return st, err
}

// SetStat changes attributes after the permission checks Linux makes for
// the caller in ctx (fchmod, fchown, ftruncate, futimens).
func (fd *FileDescription) SetStat(ctx context.Context, opts SetStatOptions) error {
	if fd.vd.Mount != nil && fd.vd.Mount.ReadOnly() && opts.Mask != 0 {
		return unix.EROFS
	}
	st, err := fd.impl.Stat(ctx)
	if err != nil {
		return err
	}
	if err := CheckSetStat(ctx, opts, st); err != nil {
		return err
	}
	if err := fd.impl.SetStat(ctx, opts); err != nil {
		return err
	}
	fd.notifySetStat(ctx, opts.Mask)
	return nil
}

// notifySetStat reports an attribute change: IN_MODIFY for a size
// change, IN_ATTRIB for the rest.
func (fd *FileDescription) notifySetStat(ctx context.Context, mask uint32) {
	if mask&unix.STATX_SIZE != 0 {
		fd.notifyFile(ctx, InModify)
	}
	if mask&^unix.STATX_SIZE != 0 {
		fd.notifyFile(ctx, InAttrib)
	}
}

// Truncate is ftruncate(2): the file must be open for writing.
func (fd *FileDescription) Truncate(ctx context.Context, size int64) error {
	if size < 0 {
		return unix.EINVAL
	}
	if !fd.writable {
		return unix.EINVAL
	}
	if fd.flags.Load()&unix.O_APPEND != 0 {
		return unix.EPERM
	}
	st, err := fd.impl.Stat(ctx)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return unix.EINVAL
	}
	if fd.vd.Mount != nil && fd.vd.Mount.ReadOnly() {
		return unix.EROFS
	}
	if err := fd.impl.SetStat(ctx, SetStatOptions{Mask: unix.STATX_SIZE, Size: uint64(size)}); err != nil {
		return err
	}
	fd.notifyFile(ctx, InModify)
	return nil
}

// IterDirents reads directory entries from the file offset, advancing it
// past the entries cb accepts (getdents64(2)).
func (fd *FileDescription) IterDirents(ctx context.Context, cb func(d Dirent, next int64) bool) error {
	dir, ok := fd.impl.(DirectoryImpl)
	if !ok {
		return unix.ENOTDIR
	}
	fd.offMu.Lock()
	defer fd.offMu.Unlock()
	next, err := dir.IterDirents(ctx, fd.off, cb)
	fd.off = next
	return err
}

// Ioctl forwards ioctl(2) to the file type.
func (fd *FileDescription) Ioctl(ctx context.Context, uio CopyIO, args arch.SyscallArguments) (uintptr, error) {
	if fd.IsPath() {
		return 0, unix.EBADF
	}
	return fd.impl.Ioctl(ctx, uio, args)
}

// ConfigureMMap prepares a mapping of the file (mmap(2), the ELF loader):
// it checks the access mode against opts and asks the file type for its
// Mappable.
func (fd *FileDescription) ConfigureMMap(ctx context.Context, opts *memmap.MMapOpts) error {
	if fd.IsPath() {
		return unix.EBADF
	}
	if !fd.readable {
		return unix.EACCES
	}
	if !opts.Private && opts.Perms.Write && !fd.writable {
		return unix.EACCES
	}
	if opts.Perms.Execute && fd.vd.Mount != nil && fd.vd.Mount.NoExec() {
		return unix.EPERM
	}
	if !opts.Private && !fd.writable {
		opts.MaxPerms.Write = false
	}
	return fd.impl.ConfigureMMap(ctx, opts)
}

// Sync is fsync(2).
func (fd *FileDescription) Sync(ctx context.Context) error { return fd.impl.Sync(ctx) }

// Readiness, EventRegister and EventUnregister make the description a
// waiter.Waitable.
func (fd *FileDescription) Readiness(mask waiter.EventMask) waiter.EventMask {
	return fd.impl.Readiness(mask)
}
func (fd *FileDescription) EventRegister(e *waiter.Entry) error { return fd.impl.EventRegister(e) }
func (fd *FileDescription) EventUnregister(e *waiter.Entry)     { fd.impl.EventUnregister(e) }

// StatFS is fstatfs(2).
func (fd *FileDescription) StatFS(ctx context.Context) (Statfs, error) {
	if fd.vd.Mount == nil {
		if s, ok := fd.impl.(interface {
			StatFS(context.Context) (Statfs, error)
		}); ok {
			return s.StatFS(ctx)
		}
		return Statfs{}, unix.ENOSYS
	}
	return fd.vd.Mount.fs.impl.StatFS(ctx)
}
