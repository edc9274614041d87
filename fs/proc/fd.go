package proc

import (
	"context"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// fdTable returns the live task's FD table after the access check.
func (x target) fdTable(ctx context.Context) (*kernel.Task, *vfs.FDTable, error) {
	t := x.task()
	if t == nil {
		return nil, nil, unix.ENOENT
	}
	if err := x.mayRead(ctx, t); err != nil {
		return nil, nil, err
	}
	if t.Exited() {
		return t, nil, nil
	}
	return t, t.FDTable(), nil
}

// fdDir is fd/ (magic links) or fdinfo/ (one file per FD).
func (x target) fdDir(info bool) vfs.Inode {
	slot, mode := uint64(8), uint32(0500)
	if info {
		slot = 27
	}
	mk := func(fd int32) vfs.Inode {
		if info {
			return x.fdInfoFile(fd)
		}
		return x.fdLink(fd)
	}
	return &dirInode{
		node: x.node(slot, mode),
		list: func(ctx context.Context) []entry {
			_, fdt, err := x.fdTable(ctx)
			if err != nil || fdt == nil {
				return nil
			}
			var out []entry
			fdt.ForEach(func(fd int32, _ *vfs.FileDescription, _ vfs.FDFlags) {
				out = append(out, entry{strconv.Itoa(int(fd)), func() vfs.Inode { return mk(fd) }})
			})
			return out
		},
		lookup: func(ctx context.Context, name string) (vfs.Inode, error) {
			n, err := strconv.ParseUint(name, 10, 31)
			if err != nil || (name[0] == '0' && name != "0") {
				return nil, unix.ENOENT
			}
			_, fdt, err := x.fdTable(ctx)
			if err != nil {
				return nil, err
			}
			if fdt == nil {
				return nil, unix.ENOENT
			}
			f, _ := fdt.Get(int32(n))
			if f == nil {
				return nil, unix.ENOENT
			}
			f.DecRef(ctx)
			return mk(int32(n)), nil
		},
	}
}

// openFile returns the description at fd with a reference, or ENOENT.
func (x target) openFile(ctx context.Context, fd int32) (*vfs.FileDescription, vfs.FDFlags, error) {
	_, fdt, err := x.fdTable(ctx)
	if err != nil {
		return nil, vfs.FDFlags{}, err
	}
	if fdt == nil {
		return nil, vfs.FDFlags{}, unix.ENOENT
	}
	f, flags := fdt.Get(fd)
	if f == nil {
		return nil, vfs.FDFlags{}, unix.ENOENT
	}
	return f, flags, nil
}

// fdAlive is the fd entries' liveness: the FD must still be open.
func (x target) fdAlive(fd int32) func() error {
	return func() error {
		t := x.task()
		if t == nil || t.Exited() || t.FDTable() == nil {
			return unix.ENOENT
		}
		f, _ := t.FDTable().Get(fd)
		if f == nil {
			return unix.ENOENT
		}
		f.DecRef(context.Background())
		return nil
	}
}

// fdLink is fd/N: a magic link to the open file.
func (x target) fdLink(fd int32) vfs.Inode {
	n := node{ino: inoFD(x.pid, false, fd), mode: 0700, owner: x.owner, alive: x.fdAlive(fd)}
	return &magicLinkInode{
		symlinkInode: symlinkInode{node: n, target: func(ctx context.Context) (string, error) {
			f, _, err := x.openFile(ctx, fd)
			if err != nil {
				return "", err
			}
			defer f.DecRef(ctx)
			return x.fs.fileName(ctx, f), nil
		}},
		jump: func(ctx context.Context, link vfs.VirtualDentry) (vfs.VirtualDentry, error) {
			f, _, err := x.openFile(ctx, fd)
			if err != nil {
				return vfs.VirtualDentry{}, err
			}
			defer f.DecRef(ctx)
			if vd := f.VirtualDentry(); vd.Ok() {
				return vd, nil
			}
			// No place in the tree: reach the same open file.
			st, err := f.Stat(ctx)
			if err != nil {
				return vfs.VirtualDentry{}, err
			}
			return vfs.DetachedDentry(link, &anonInode{file: f, st: st}), nil
		},
	}
}

// fileName is what readlink of /proc/PID/fd/N says.
func (fs *Filesystem) fileName(ctx context.Context, file *vfs.FileDescription) string {
	vd := file.VirtualDentry()
	if vd.Ok() {
		if a, ok := vd.Inode().(*anonInode); ok {
			return anonName(a.st)
		}
		return fs.pathFor(ctx, vd, vfs.VirtualDentry{})
	}
	if n, ok := file.Impl().(interface{ AnonName() string }); ok {
		return n.AnonName() // a memfd
	}
	st, _ := file.Stat(ctx)
	return anonName(st)
}

func anonName(st vfs.Statx) string {
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFIFO:
		return fmt.Sprintf("pipe:[%d]", st.Ino)
	case unix.S_IFSOCK:
		return fmt.Sprintf("socket:[%d]", st.Ino)
	case unix.S_IFCHR, unix.S_IFREG, unix.S_IFBLK, unix.S_IFDIR:
		// A donated host file: its name outside is not the sandbox's.
		return fmt.Sprintf("host:[%d]", st.Ino)
	}
	return fmt.Sprintf("anon_inode:[%d]", st.Ino)
}

// fdInfoFile is fdinfo/N.
func (x target) fdInfoFile(fd int32) vfs.Inode {
	n := node{ino: inoFD(x.pid, true, fd), mode: 0444, owner: x.owner, alive: x.fdAlive(fd)}
	return &fileInode{node: n, read: func(ctx context.Context) ([]byte, error) {
		f, flags, err := x.openFile(ctx, fd)
		if err != nil {
			return nil, err
		}
		defer f.DecRef(ctx)
		fl := f.StatusFlags()
		if flags.CloseOnExec {
			fl |= unix.O_CLOEXEC
		}
		var mnt, ino uint64
		if vd := f.VirtualDentry(); vd.Ok() {
			mnt = vd.Mount.ID()
		}
		if st, err := f.Stat(ctx); err == nil {
			ino = st.Ino
		}
		var pos int64
		if !f.IsStream() {
			pos = f.Offset()
		}
		return []byte(fmt.Sprintf("pos:\t%d\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n", pos, fl, mnt, ino)), nil
	}}
}

// anonInode stands for an open file with no place in the mount tree (a
// pipe, a socket, a donated host FD), so that opening /proc/PID/fd/N
// reaches it. It holds no reference: an open takes one if the file is
// still open somewhere.
type anonInode struct {
	vfs.NotDir
	vfs.NotSymlink
	file *vfs.FileDescription
	st   vfs.Statx
}

func (a *anonInode) Perms() vfs.Perms {
	return vfs.Perms{Mode: uint32(a.st.Mode), UID: auth.KUID(a.st.UID), GID: auth.KGID(a.st.GID)}
}

func (a *anonInode) Stat(ctx context.Context) (vfs.Statx, error) { return a.file.Stat(ctx) }

func (a *anonInode) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	return a.file.Impl().SetStat(ctx, opts)
}

func (a *anonInode) Open(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	if !a.file.TryIncRef() {
		return nil, unix.ENOENT
	}
	r := &reopened{file: a.file}
	if a.file.IsStream() {
		return &reopenedStream{r}, nil
	}
	return r, nil
}

// reopened is a new description of an anonymous file: it shares the
// file's state (the pipe buffer, the host FD) through its implementation
// and keeps the original alive.
type reopened struct {
	file *vfs.FileDescription
}

func (r *reopened) impl() vfs.FileDescriptionImpl { return r.file.Impl() }

func (r *reopened) Release(ctx context.Context) { r.file.DecRef(ctx) }
func (r *reopened) Read(ctx context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	return r.impl().Read(ctx, dst, off)
}
func (r *reopened) Write(ctx context.Context, src usermem.IOSequence, off int64, appending bool) (int64, int64, error) {
	return r.impl().Write(ctx, src, off, appending)
}
func (r *reopened) Stat(ctx context.Context) (vfs.Statx, error) { return r.impl().Stat(ctx) }
func (r *reopened) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	return r.impl().SetStat(ctx, opts)
}
func (r *reopened) Ioctl(ctx context.Context, uio vfs.CopyIO, args arch.SyscallArguments) (uintptr, error) {
	return r.impl().Ioctl(ctx, uio, args)
}
func (r *reopened) ConfigureMMap(ctx context.Context, opts *memmap.MMapOpts) error {
	return r.impl().ConfigureMMap(ctx, opts)
}
func (r *reopened) Sync(ctx context.Context) error { return r.impl().Sync(ctx) }
func (r *reopened) Readiness(mask waiter.EventMask) waiter.EventMask {
	return r.impl().Readiness(mask)
}
func (r *reopened) EventRegister(e *waiter.Entry) error { return r.impl().EventRegister(e) }
func (r *reopened) EventUnregister(e *waiter.Entry)     { r.impl().EventUnregister(e) }

// reopenedStream is a reopened pipe, socket or tty: no offsets.
type reopenedStream struct{ *reopened }

func (reopenedStream) IsStream() {}
