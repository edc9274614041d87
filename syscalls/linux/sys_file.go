package linux

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_OPEN, Full, Open)
	reg(unix.SYS_OPENAT, Full, Openat)
	reg(unix.SYS_CREAT, Full, Creat)
	reg(unix.SYS_CLOSE, Full, Close)
	reg(unix.SYS_CLOSE_RANGE, Full, CloseRange)
	reg(unix.SYS_DUP, Full, Dup)
	reg(unix.SYS_DUP2, Full, Dup2)
	reg(unix.SYS_DUP3, Full, Dup3)
	reg(unix.SYS_MKDIR, Full, Mkdir)
	reg(unix.SYS_MKDIRAT, Full, Mkdirat)
	reg(unix.SYS_MKNOD, Partial, Mknod, "FIFOs and device nodes open only where the filesystem supports them")
	reg(unix.SYS_MKNODAT, Partial, Mknodat, "FIFOs and device nodes open only where the filesystem supports them")
	reg(unix.SYS_UNLINK, Full, Unlink)
	reg(unix.SYS_UNLINKAT, Full, Unlinkat)
	reg(unix.SYS_RMDIR, Full, Rmdir)
	reg(unix.SYS_RENAME, Full, Rename)
	reg(unix.SYS_RENAMEAT, Full, Renameat)
	reg(unix.SYS_RENAMEAT2, Partial, Renameat2, "RENAME_WHITEOUT gives EINVAL; RENAME_EXCHANGE where the filesystem supports it (tmpfs)")
	reg(unix.SYS_SYMLINK, Full, Symlink)
	reg(unix.SYS_SYMLINKAT, Full, Symlinkat)
	reg(unix.SYS_LINK, Full, Link)
	reg(unix.SYS_LINKAT, Full, Linkat)
	reg(unix.SYS_READLINK, Full, Readlink)
	reg(unix.SYS_READLINKAT, Full, Readlinkat)
	reg(unix.SYS_CHDIR, Full, Chdir)
	reg(unix.SYS_FCHDIR, Full, Fchdir)
	reg(unix.SYS_GETCWD, Full, Getcwd)
	reg(unix.SYS_UMASK, Full, Umask)
	reg(unix.SYS_ACCESS, Full, Access)
	reg(unix.SYS_FACCESSAT, Full, Faccessat)
	reg(unix.SYS_FACCESSAT2, Full, Faccessat2)
	reg(unix.SYS_GETDENTS64, Full, Getdents64)
	reg(unix.SYS_TRUNCATE, Full, Truncate)
	reg(unix.SYS_FTRUNCATE, Full, Ftruncate)
	reg(unix.SYS_CHMOD, Full, Chmod)
	reg(unix.SYS_FCHMOD, Full, Fchmod)
	reg(unix.SYS_FCHMODAT, Full, Fchmodat)
	reg(unix.SYS_CHOWN, Full, Chown)
	reg(unix.SYS_FCHOWN, Full, Fchown)
	reg(unix.SYS_LCHOWN, Full, Lchown)
	reg(unix.SYS_FCHOWNAT, Full, Fchownat)
	reg(unix.SYS_UTIMENSAT, Full, Utimensat)
	reg(unix.SYS_UTIME, Full, Utime)
	reg(unix.SYS_UTIMES, Full, Utimes)
	reg(unix.SYS_FUTIMESAT, Full, Futimesat)
	reg(unix.SYS_SYNC, Full, Sync)
	reg(unix.SYS_SYNCFS, Full, Syncfs)
	reg(unix.SYS_FSYNC, Full, Fsync)
	reg(unix.SYS_FDATASYNC, Full, Fdatasync)
	reg(unix.SYS_STATFS, Full, Statfs)
	reg(unix.SYS_FSTATFS, Full, Fstatfs)
}

// openat is open(2) and openat(2): unknown flags are ignored, as Linux
// does for these two.
func openat(t *kernel.Task, dirfd int32, pathAddr hostarch.Addr, flags uint32, mode uint32) (uintptr, error) {
	return doOpen(t, dirfd, pathAddr, flags&validOpenFlags, mode, 0)
}

// Open is open(2).
func Open(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return openat(t, unix.AT_FDCWD, args[0].Pointer(), args[1].Uint(), args[2].ModeT())
}

// Openat is openat(2).
func Openat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return openat(t, args[0].Int(), args[1].Pointer(), args[2].Uint(), args[3].ModeT())
}

// Creat is creat(2).
func Creat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return openat(t, unix.AT_FDCWD, args[0].Pointer(), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, args[1].ModeT())
}

// Close is close(2).
func Close(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f := t.FDTable().Remove(args[0].Int())
	if f == nil {
		return 0, unix.EBADF
	}
	f.DecRef(t)
	return 0, nil
}

// CloseRange is close_range(2).
func CloseRange(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	first, last, flags := args[0].Uint(), args[1].Uint(), args[2].Uint()
	if flags&^(unix.CLOSE_RANGE_CLOEXEC|unix.CLOSE_RANGE_UNSHARE) != 0 || first > last {
		return 0, unix.EINVAL
	}
	// CLOSE_RANGE_UNSHARE needs the kernel to swap the task's table; the
	// effect on this task is the same, so the shared table is used.
	t.FDTable().RemoveRange(t, first, last, flags&unix.CLOSE_RANGE_CLOEXEC != 0)
	return 0, nil
}

// Dup is dup(2).
func Dup(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	fd, err := t.FDTable().NewFD(0, f, vfs.FDFlags{}, t.FileLimit())
	return uintptr(fd), err
}

// Dup2 is dup2(2): dup2(fd, fd) checks fd and returns it.
func Dup2(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	oldfd, newfd := args[0].Int(), args[1].Int()
	if oldfd == newfd {
		f, err := getFile(t, oldfd)
		if err != nil {
			return 0, err
		}
		f.DecRef(t)
		return uintptr(newfd), nil
	}
	return dup3(t, oldfd, newfd, 0)
}

// Dup3 is dup3(2).
func Dup3(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	oldfd, newfd, flags := args[0].Int(), args[1].Int(), args[2].Uint()
	if oldfd == newfd || flags&^unix.O_CLOEXEC != 0 {
		return 0, unix.EINVAL
	}
	return dup3(t, oldfd, newfd, flags)
}

func dup3(t *kernel.Task, oldfd, newfd int32, flags uint32) (uintptr, error) {
	f, err := getFile(t, oldfd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	if err := t.FDTable().NewFDAt(t, newfd, f, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0}, t.FileLimit()); err != nil {
		return 0, err
	}
	return uintptr(newfd), nil
}

func mkdirat(t *kernel.Task, dirfd int32, addr hostarch.Addr, mode uint32) (uintptr, error) {
	pop, done, err := pathArg(t, dirfd, addr, false)
	if err != nil {
		return 0, err
	}
	defer done()
	return 0, t.Kernel().VFS().MkdirAt(t, pop, mode&07777&^t.FSContext().Umask())
}

// Mkdir is mkdir(2).
func Mkdir(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return mkdirat(t, unix.AT_FDCWD, args[0].Pointer(), args[1].ModeT())
}

// Mkdirat is mkdirat(2).
func Mkdirat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return mkdirat(t, args[0].Int(), args[1].Pointer(), args[2].ModeT())
}

func mknodat(t *kernel.Task, dirfd int32, addr hostarch.Addr, mode uint32, dev uint32) (uintptr, error) {
	pop, done, err := pathArg(t, dirfd, addr, false)
	if err != nil {
		return 0, err
	}
	defer done()
	mode = mode&unix.S_IFMT | mode&07777&^t.FSContext().Umask()
	return 0, t.Kernel().VFS().MknodAt(t, pop, mode, uint64(dev))
}

// Mknod is mknod(2).
func Mknod(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return mknodat(t, unix.AT_FDCWD, args[0].Pointer(), args[1].ModeT(), args[2].Uint())
}

// Mknodat is mknodat(2).
func Mknodat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return mknodat(t, args[0].Int(), args[1].Pointer(), args[2].ModeT(), args[3].Uint())
}

func unlinkat(t *kernel.Task, dirfd int32, addr hostarch.Addr, dir bool) (uintptr, error) {
	pop, done, err := pathArg(t, dirfd, addr, false)
	if err != nil {
		return 0, err
	}
	defer done()
	if dir {
		return 0, t.Kernel().VFS().RmdirAt(t, pop)
	}
	return 0, t.Kernel().VFS().UnlinkAt(t, pop)
}

// Unlink is unlink(2).
func Unlink(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return unlinkat(t, unix.AT_FDCWD, args[0].Pointer(), false)
}

// Rmdir is rmdir(2).
func Rmdir(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return unlinkat(t, unix.AT_FDCWD, args[0].Pointer(), true)
}

// Unlinkat is unlinkat(2).
func Unlinkat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	flags := args[2].Int()
	if flags&^unix.AT_REMOVEDIR != 0 {
		return 0, unix.EINVAL
	}
	return unlinkat(t, args[0].Int(), args[1].Pointer(), flags&unix.AT_REMOVEDIR != 0)
}

func renameat(t *kernel.Task, olddirfd int32, oldAddr hostarch.Addr, newdirfd int32, newAddr hostarch.Addr, flags uint32) (uintptr, error) {
	oldpop, done1, err := pathArg(t, olddirfd, oldAddr, false)
	if err != nil {
		return 0, err
	}
	defer done1()
	newpop, done2, err := pathArg(t, newdirfd, newAddr, false)
	if err != nil {
		return 0, err
	}
	defer done2()
	return 0, t.Kernel().VFS().RenameAt(t, oldpop, newpop, flags)
}

// Rename is rename(2).
func Rename(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return renameat(t, unix.AT_FDCWD, args[0].Pointer(), unix.AT_FDCWD, args[1].Pointer(), 0)
}

// Renameat is renameat(2).
func Renameat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return renameat(t, args[0].Int(), args[1].Pointer(), args[2].Int(), args[3].Pointer(), 0)
}

// Renameat2 is renameat2(2).
func Renameat2(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	flags := args[4].Uint()
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE|unix.RENAME_WHITEOUT) != 0 ||
		flags&unix.RENAME_EXCHANGE != 0 && flags&(unix.RENAME_NOREPLACE|unix.RENAME_WHITEOUT) != 0 {
		return 0, unix.EINVAL
	}
	return renameat(t, args[0].Int(), args[1].Pointer(), args[2].Int(), args[3].Pointer(), flags)
}

func symlinkat(t *kernel.Task, targetAddr hostarch.Addr, dirfd int32, addr hostarch.Addr) (uintptr, error) {
	target, err := copyInPath(t, targetAddr)
	if err != nil {
		return 0, err
	}
	pop, done, err := pathArg(t, dirfd, addr, false)
	if err != nil {
		return 0, err
	}
	defer done()
	return 0, t.Kernel().VFS().SymlinkAt(t, pop, target)
}

// Symlink is symlink(2).
func Symlink(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return symlinkat(t, args[0].Pointer(), unix.AT_FDCWD, args[1].Pointer())
}

// Symlinkat is symlinkat(2).
func Symlinkat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return symlinkat(t, args[0].Pointer(), args[1].Int(), args[2].Pointer())
}

func linkat(t *kernel.Task, olddirfd int32, oldAddr hostarch.Addr, newdirfd int32, newAddr hostarch.Addr, flags int32) (uintptr, error) {
	if flags&^(unix.AT_SYMLINK_FOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	oldPath, err := copyInPath(t, oldAddr)
	if err != nil {
		return 0, err
	}
	newpop, done2, err := pathArg(t, newdirfd, newAddr, false)
	if err != nil {
		return 0, err
	}
	defer done2()
	v := t.Kernel().VFS()
	if oldPath == "" && flags&unix.AT_EMPTY_PATH != 0 {
		if !t.Credentials().HasCapability(auth.CAP_DAC_READ_SEARCH) {
			return 0, unix.ENOENT
		}
		f, err := getFile(t, olddirfd)
		if err != nil {
			return 0, err
		}
		defer f.DecRef(t)
		if !f.VirtualDentry().Ok() {
			return 0, unix.ENOENT
		}
		return 0, v.LinkDentryAt(t, f.VirtualDentry(), newpop)
	}
	oldpop, done1, err := pathOp(t, olddirfd, oldPath, flags&unix.AT_SYMLINK_FOLLOW != 0)
	if err != nil {
		return 0, err
	}
	defer done1()
	return 0, v.LinkAt(t, oldpop, newpop)
}

// Link is link(2).
func Link(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return linkat(t, unix.AT_FDCWD, args[0].Pointer(), unix.AT_FDCWD, args[1].Pointer(), 0)
}

// Linkat is linkat(2).
func Linkat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return linkat(t, args[0].Int(), args[1].Pointer(), args[2].Int(), args[3].Pointer(), args[4].Int())
}

func readlinkat(t *kernel.Task, dirfd int32, addr, buf hostarch.Addr, size int32) (uintptr, error) {
	if size <= 0 {
		return 0, unix.EINVAL
	}
	path, err := copyInPath(t, addr)
	if err != nil {
		return 0, err
	}
	var target string
	if path == "" {
		// readlinkat(fd, "") reads an O_PATH|O_NOFOLLOW descriptor's link.
		f, err := getFile(t, dirfd)
		if err != nil {
			return 0, err
		}
		defer f.DecRef(t)
		if !f.VirtualDentry().Ok() {
			return 0, unix.ENOENT
		}
		if target, err = f.VirtualDentry().Inode().Readlink(t); err != nil {
			if err == unix.EINVAL {
				return 0, unix.ENOENT
			}
			return 0, err
		}
	} else {
		pop, done, err := pathOp(t, dirfd, path, false)
		if err != nil {
			return 0, err
		}
		defer done()
		if target, err = t.Kernel().VFS().ReadlinkAt(t, pop); err != nil {
			return 0, err
		}
	}
	if len(target) > int(size) {
		target = target[:size]
	}
	n, err := t.CopyOutBytes(buf, []byte(target))
	if err != nil {
		return 0, unix.EFAULT
	}
	return uintptr(n), nil
}

// Readlink is readlink(2).
func Readlink(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return readlinkat(t, unix.AT_FDCWD, args[0].Pointer(), args[1].Pointer(), int32(args[2].Int64()))
}

// Readlinkat is readlinkat(2).
func Readlinkat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return readlinkat(t, args[0].Int(), args[1].Pointer(), args[2].Pointer(), int32(args[3].Int64()))
}

func chdirTo(t *kernel.Task, vd vfs.VirtualDentry) error {
	if !vd.Inode().Perms().IsDir() {
		return unix.ENOTDIR
	}
	if err := vfs.CheckAccess(t, vd, vfs.MayExec); err != nil {
		return err
	}
	t.FSContext().SetWorkingDirectory(vd)
	return nil
}

// Chdir is chdir(2).
func Chdir(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	pop, done, err := pathArg(t, unix.AT_FDCWD, args[0].Pointer(), true)
	if err != nil {
		return 0, err
	}
	defer done()
	vd, err := t.Kernel().VFS().GetDentryAt(t, pop)
	if err != nil {
		return 0, err
	}
	return 0, chdirTo(t, vd)
}

// Fchdir is fchdir(2).
func Fchdir(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	if !f.VirtualDentry().Ok() {
		return 0, unix.ENOTDIR
	}
	return 0, chdirTo(t, f.VirtualDentry())
}

// Getcwd is getcwd(2): ENOENT for a removed cwd, "(unreachable)" prefix
// for a cwd outside the root, ERANGE when it does not fit.
func Getcwd(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	fsc := t.FSContext()
	path, ok := t.Kernel().VFS().PathnameWithin(fsc.Root(), fsc.WorkingDirectory())
	if !ok {
		if st, err := fsc.WorkingDirectory().Inode().Stat(t); err == nil && st.Nlink == 0 {
			return 0, unix.ENOENT
		}
		path = "(unreachable)" + path
	}
	b := append([]byte(path), 0)
	if uint64(len(b)) > uint64(args[1].SizeT()) {
		return 0, unix.ERANGE
	}
	if _, err := t.CopyOutBytes(args[0].Pointer(), b); err != nil {
		return 0, unix.EFAULT
	}
	return uintptr(len(b)), nil
}

// Umask is umask(2).
func Umask(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.FSContext().SwapUmask(args[0].Uint() & 0777)), nil
}

func faccessat(t *kernel.Task, dirfd int32, addr hostarch.Addr, mode uint32, flags int32) (uintptr, error) {
	if mode&^7 != 0 || flags&^(unix.AT_EACCESS|unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	ctx := accessContext{t, t.Credentials()}
	if flags&unix.AT_EACCESS == 0 {
		// access(2) checks with the real IDs; root's capabilities count
		// only if the real ID is root.
		c := t.Credentials().Fork()
		c.FSKUID, c.FSKGID = c.RealKUID, c.RealKGID
		if c.RealKUID != 0 {
			c.EffectiveCaps = 0
		} else {
			c.EffectiveCaps = c.PermittedCaps
		}
		ctx.creds = c
	}
	path, err := copyInPath(t, addr)
	if err != nil {
		return 0, err
	}
	var vd vfs.VirtualDentry
	if path == "" && flags&unix.AT_EMPTY_PATH != 0 {
		f, err := getFile(t, dirfd)
		if err != nil {
			return 0, err
		}
		defer f.DecRef(t)
		if vd = f.VirtualDentry(); !vd.Ok() {
			return 0, nil
		}
	} else {
		pop, done, err := pathOp(t, dirfd, path, flags&unix.AT_SYMLINK_NOFOLLOW == 0)
		if err != nil {
			return 0, err
		}
		defer done()
		if vd, err = t.Kernel().VFS().GetDentryAt(ctx, pop); err != nil {
			return 0, err
		}
	}
	if mode == 0 {
		return 0, nil
	}
	var ats vfs.AccessTypes
	if mode&unix.R_OK != 0 {
		ats |= vfs.MayRead
	}
	if mode&unix.W_OK != 0 {
		ats |= vfs.MayWrite
	}
	if mode&unix.X_OK != 0 {
		ats |= vfs.MayExec
	}
	return 0, vfs.CheckAccess(ctx, vd, ats)
}

// accessContext is the task as a context carrying other credentials.
type accessContext struct {
	*kernel.Task
	creds *auth.Credentials
}

func (c accessContext) Value(key any) any {
	if key == auth.CtxCredentials {
		return c.creds
	}
	return c.Task.Value(key)
}

// Access is access(2).
func Access(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return faccessat(t, unix.AT_FDCWD, args[0].Pointer(), args[1].Uint(), 0)
}

// Faccessat is faccessat(2) (no flags argument).
func Faccessat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return faccessat(t, args[0].Int(), args[1].Pointer(), args[2].Uint(), 0)
}

// Faccessat2 is faccessat2(2).
func Faccessat2(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return faccessat(t, args[0].Int(), args[1].Pointer(), args[2].Uint(), args[3].Int())
}

// Getdents64 is getdents64(2): linux_dirent64 records (d_ino, d_off,
// d_reclen, d_type, d_name NUL-terminated, 8-byte aligned).
func Getdents64(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	size := int(args[2].Uint())
	var buf []byte
	tooSmall := false
	err = f.IterDirents(t, func(d vfs.Dirent, next int64) bool {
		reclen := (19 + len(d.Name) + 1 + 7) &^ 7
		if len(buf)+reclen > size {
			if len(buf) == 0 {
				tooSmall = true
			}
			return false
		}
		rec := make([]byte, reclen)
		binary.LittleEndian.PutUint64(rec[0:], d.Ino)
		binary.LittleEndian.PutUint64(rec[8:], uint64(next))
		binary.LittleEndian.PutUint16(rec[16:], uint16(reclen))
		rec[18] = d.Type
		copy(rec[19:], d.Name)
		buf = append(buf, rec...)
		return true
	})
	if err != nil {
		return 0, err
	}
	if tooSmall {
		return 0, unix.EINVAL
	}
	if _, err := t.CopyOutBytes(args[1].Pointer(), buf); err != nil {
		return 0, unix.EFAULT
	}
	return uintptr(len(buf)), nil
}

// Truncate is truncate(2).
func Truncate(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[1].Int64() < 0 {
		return 0, unix.EINVAL
	}
	pop, done, err := pathArg(t, unix.AT_FDCWD, args[0].Pointer(), true)
	if err != nil {
		return 0, err
	}
	defer done()
	return 0, t.Kernel().VFS().SetStatAt(t, pop, vfs.SetStatOptions{Mask: unix.STATX_SIZE, Size: uint64(args[1].Int64())})
}

// Ftruncate is ftruncate(2).
func Ftruncate(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	return 0, f.Truncate(t, args[1].Int64())
}

// setStatPath applies opts to a path or, with AT_EMPTY_PATH and an empty
// path, to dirfd's file.
func setStatPath(t *kernel.Task, dirfd int32, addr hostarch.Addr, flags int32, opts vfs.SetStatOptions) (uintptr, error) {
	path, err := copyInPath(t, addr)
	if err != nil {
		return 0, err
	}
	if path == "" && flags&unix.AT_EMPTY_PATH != 0 {
		f, err := getFile(t, dirfd)
		if err != nil {
			return 0, err
		}
		defer f.DecRef(t)
		return 0, setStatFile(t, f, opts)
	}
	pop, done, err := pathOp(t, dirfd, path, flags&unix.AT_SYMLINK_NOFOLLOW == 0)
	if err != nil {
		return 0, err
	}
	defer done()
	return 0, t.Kernel().VFS().SetStatAt(t, pop, opts)
}

// setStatFile applies opts to an open file: through its dentry when it
// has one (so the checks are the path ones), else the description.
func setStatFile(t *kernel.Task, f *vfs.FileDescription, opts vfs.SetStatOptions) error {
	if vd := f.VirtualDentry(); vd.Ok() {
		return t.Kernel().VFS().SetStatDentry(t, vd, opts)
	}
	return f.SetStat(t, opts)
}

func chmodOpts(mode uint32) vfs.SetStatOptions {
	return vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: mode & 07777}
}

// Chmod is chmod(2).
func Chmod(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return setStatPath(t, unix.AT_FDCWD, args[0].Pointer(), 0, chmodOpts(args[1].ModeT()))
}

// Fchmod is fchmod(2).
func Fchmod(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	return 0, setStatFile(t, f, chmodOpts(args[1].ModeT()))
}

// Fchmodat is fchmodat(2) (no flags argument: always follows).
func Fchmodat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return setStatPath(t, args[0].Int(), args[1].Pointer(), 0, chmodOpts(args[2].ModeT()))
}

func chownOpts(uid, gid uint32) vfs.SetStatOptions {
	var opts vfs.SetStatOptions
	if uid != auth.NoID {
		opts.Mask |= unix.STATX_UID
		opts.UID = auth.KUID(uid)
	}
	if gid != auth.NoID {
		opts.Mask |= unix.STATX_GID
		opts.GID = auth.KGID(gid)
	}
	return opts
}

// Chown is chown(2).
func Chown(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return setStatPath(t, unix.AT_FDCWD, args[0].Pointer(), 0, chownOpts(args[1].Uint(), args[2].Uint()))
}

// Lchown is lchown(2).
func Lchown(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return setStatPath(t, unix.AT_FDCWD, args[0].Pointer(), unix.AT_SYMLINK_NOFOLLOW, chownOpts(args[1].Uint(), args[2].Uint()))
}

// Fchown is fchown(2).
func Fchown(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	return 0, setStatFile(t, f, chownOpts(args[1].Uint(), args[2].Uint()))
}

// Fchownat is fchownat(2).
func Fchownat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	flags := args[4].Int()
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	return setStatPath(t, args[0].Int(), args[1].Pointer(), flags, chownOpts(args[2].Uint(), args[3].Uint()))
}

// timesOpts builds the SetStatOptions of utimensat from two timestamps
// (nil: both now), honouring UTIME_NOW and UTIME_OMIT.
func timesOpts(ts *[2]vfs.StatxTimestamp, nsec *[2]int64) (vfs.SetStatOptions, error) {
	now := vfs.Now()
	if ts == nil {
		return vfs.SetStatOptions{Mask: unix.STATX_ATIME | unix.STATX_MTIME, Atime: now, Mtime: now, TouchNow: true}, nil
	}
	var opts vfs.SetStatOptions
	nowCount := 0
	for i := 0; i < 2; i++ {
		var v vfs.StatxTimestamp
		switch nsec[i] {
		case unix.UTIME_OMIT:
			continue
		case unix.UTIME_NOW:
			v = now
			nowCount++
		default:
			if nsec[i] < 0 || nsec[i] >= 1e9 {
				return opts, unix.EINVAL
			}
			v = ts[i]
		}
		if i == 0 {
			opts.Mask |= unix.STATX_ATIME
			opts.Atime = v
		} else {
			opts.Mask |= unix.STATX_MTIME
			opts.Mtime = v
		}
	}
	opts.TouchNow = nowCount == 2
	return opts, nil
}

func copyInTimes(t *kernel.Task, addr hostarch.Addr, usec bool) (*[2]vfs.StatxTimestamp, *[2]int64, error) {
	if addr == 0 {
		return nil, nil, nil
	}
	var b [32]byte
	if _, err := t.CopyInBytes(addr, b[:]); err != nil {
		return nil, nil, unix.EFAULT
	}
	var ts [2]vfs.StatxTimestamp
	var ns [2]int64
	for i := 0; i < 2; i++ {
		ts[i].Sec = int64(binary.LittleEndian.Uint64(b[16*i:]))
		ns[i] = int64(binary.LittleEndian.Uint64(b[16*i+8:]))
		if usec {
			if ns[i] < 0 || ns[i] >= 1e6 {
				return nil, nil, unix.EINVAL
			}
			ns[i] *= 1000
		}
		ts[i].Nsec = uint32(ns[i])
	}
	return &ts, &ns, nil
}

// Utimensat is utimensat(2).
func Utimensat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	dirfd, pathAddr, flags := args[0].Int(), args[1].Pointer(), args[3].Int()
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	ts, ns, err := copyInTimes(t, args[2].Pointer(), false)
	if err != nil {
		return 0, err
	}
	opts, err := timesOpts(ts, ns)
	if err != nil {
		return 0, err
	}
	if opts.Mask == 0 {
		return 0, nil
	}
	if pathAddr == 0 {
		// futimens: the glibc wrapper passes a NULL path.
		f, err := getFileNoPath(t, dirfd)
		if err != nil {
			return 0, err
		}
		defer f.DecRef(t)
		return 0, setStatFile(t, f, opts)
	}
	return setStatPath(t, dirfd, pathAddr, flags, opts)
}

// Utime is utime(2): struct utimbuf {actime, modtime}.
func Utime(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	var opts vfs.SetStatOptions
	if addr := args[1].Pointer(); addr != 0 {
		var b [16]byte
		if _, err := t.CopyInBytes(addr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		opts = vfs.SetStatOptions{
			Mask:  unix.STATX_ATIME | unix.STATX_MTIME,
			Atime: vfs.StatxTimestamp{Sec: int64(binary.LittleEndian.Uint64(b[0:]))},
			Mtime: vfs.StatxTimestamp{Sec: int64(binary.LittleEndian.Uint64(b[8:]))},
		}
	} else {
		opts, _ = timesOpts(nil, nil)
	}
	return setStatPath(t, unix.AT_FDCWD, args[0].Pointer(), 0, opts)
}

func futimesat(t *kernel.Task, dirfd int32, pathAddr, timesAddr hostarch.Addr) (uintptr, error) {
	ts, ns, err := copyInTimes(t, timesAddr, true)
	if err != nil {
		return 0, err
	}
	opts, err := timesOpts(ts, ns)
	if err != nil {
		return 0, err
	}
	return setStatPath(t, dirfd, pathAddr, 0, opts)
}

// Utimes is utimes(2): two struct timeval.
func Utimes(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return futimesat(t, unix.AT_FDCWD, args[0].Pointer(), args[1].Pointer())
}

// Futimesat is futimesat(2).
func Futimesat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return futimesat(t, args[0].Int(), args[1].Pointer(), args[2].Pointer())
}

// Sync is sync(2).
func Sync(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	t.Kernel().VFS().SyncAll(t)
	return 0, nil
}

// Syncfs is syncfs(2).
func Syncfs(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	if vd := f.VirtualDentry(); vd.Ok() {
		return 0, vd.Mount.Filesystem().Impl().Sync(t)
	}
	return 0, nil
}

// Fsync is fsync(2).
func Fsync(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	return 0, f.Sync(t)
}

// Fdatasync is fdatasync(2).
func Fdatasync(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return Fsync(t, args)
}

// copyOutStatfs writes struct statfs (x86-64: 120 bytes).
func copyOutStatfs(t *kernel.Task, addr hostarch.Addr, s vfs.Statfs) error {
	b := make([]byte, 0, 120)
	le := binary.LittleEndian
	b = le.AppendUint64(b, s.Type)
	b = le.AppendUint64(b, uint64(s.BlockSize))
	b = le.AppendUint64(b, s.Blocks)
	b = le.AppendUint64(b, s.BlocksFree)
	b = le.AppendUint64(b, s.BlocksAvail)
	b = le.AppendUint64(b, s.Files)
	b = le.AppendUint64(b, s.FilesFree)
	b = le.AppendUint32(b, uint32(s.FSID[0]))
	b = le.AppendUint32(b, uint32(s.FSID[1]))
	b = le.AppendUint64(b, s.NameLength)
	b = le.AppendUint64(b, uint64(s.FragSize))
	b = le.AppendUint64(b, s.Flags)
	b = append(b, make([]byte, 120-len(b))...)
	if _, err := t.CopyOutBytes(addr, b); err != nil {
		return unix.EFAULT
	}
	return nil
}

// statfsFlags adds the mount's ST_* flags.
func statfsFlags(s *vfs.Statfs, m *vfs.Mount) {
	s.Flags |= 0x20 // ST_VALID
	if m.ReadOnly() {
		s.Flags |= unix.ST_RDONLY
	}
	if m.Flags()&vfs.MountNoSUID != 0 {
		s.Flags |= unix.ST_NOSUID
	}
	if m.Flags()&vfs.MountNoDev != 0 {
		s.Flags |= unix.ST_NODEV
	}
	if m.NoExec() {
		s.Flags |= unix.ST_NOEXEC
	}
}

// Statfs is statfs(2).
func Statfs(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	pop, done, err := pathArg(t, unix.AT_FDCWD, args[0].Pointer(), true)
	if err != nil {
		return 0, err
	}
	defer done()
	vd, err := t.Kernel().VFS().GetDentryAt(t, pop)
	if err != nil {
		return 0, err
	}
	s, err := vd.Mount.Filesystem().Impl().StatFS(t)
	if err != nil {
		return 0, err
	}
	statfsFlags(&s, vd.Mount)
	return 0, copyOutStatfs(t, args[1].Pointer(), s)
}

// Fstatfs is fstatfs(2).
func Fstatfs(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	s, err := f.StatFS(t)
	if err != nil {
		return 0, err
	}
	if vd := f.VirtualDentry(); vd.Ok() {
		statfsFlags(&s, vd.Mount)
	}
	return 0, copyOutStatfs(t, args[1].Pointer(), s)
}
