package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	const note = "events for changes made inside the sandbox; changes made on the host under a gofer mount are not seen"
	reg(unix.SYS_INOTIFY_INIT, Full, InotifyInit)
	reg(unix.SYS_INOTIFY_INIT1, Full, InotifyInit1)
	reg(unix.SYS_INOTIFY_ADD_WATCH, Partial, InotifyAddWatch, note)
	reg(unix.SYS_INOTIFY_RM_WATCH, Full, InotifyRmWatch)
}

func inotifyInit(t *kernel.Task, flags uint32) (uintptr, error) {
	if flags&^(unix.IN_NONBLOCK|unix.IN_CLOEXEC) != 0 {
		return 0, unix.EINVAL
	}
	f := vfs.NewInotify(flags & unix.O_NONBLOCK)
	defer f.DecRef(t)
	fd, err := t.FDTable().NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.IN_CLOEXEC != 0}, t.FileLimit())
	return uintptr(fd), err
}

// InotifyInit is inotify_init(2).
func InotifyInit(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return inotifyInit(t, 0)
}

// InotifyInit1 is inotify_init1(2).
func InotifyInit1(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return inotifyInit(t, args[0].Uint())
}

// inotifyFile returns the inotify instance at fd: EBADF if fd is not
// open, EINVAL if it is not an inotify file.
func inotifyFile(t *kernel.Task, fd int32) (*vfs.Inotify, func(), error) {
	f, err := getFile(t, fd)
	if err != nil {
		return nil, nil, err
	}
	in, ok := f.Impl().(*vfs.Inotify)
	if !ok {
		f.DecRef(t)
		return nil, nil, unix.EINVAL
	}
	return in, func() { f.DecRef(t) }, nil
}

// InotifyAddWatch is inotify_add_watch(2).
func InotifyAddWatch(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	mask := args[2].Uint()
	if mask&vfs.InMaskAdd != 0 && mask&vfs.InMaskCreate != 0 {
		return 0, unix.EINVAL
	}
	if mask&vfs.InAllBits == 0 {
		return 0, unix.EINVAL
	}
	in, done, err := inotifyFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer done()
	pop, release, err := pathArg(t, unix.AT_FDCWD, args[1].Pointer(), mask&vfs.InDontFollow == 0)
	if err != nil {
		return 0, err
	}
	defer release()
	vd, err := t.Kernel().VFS().GetDentryAt(t, pop)
	if err != nil {
		return 0, err
	}
	if mask&vfs.InOnlydir != 0 && !vd.Inode().Perms().IsDir() {
		return 0, unix.ENOTDIR
	}
	if err := vfs.GenericCheckPermissions(t.Credentials(), vfs.MayRead, vd.Inode().Perms()); err != nil {
		return 0, err
	}
	wd, err := in.AddWatch(t, vd, mask)
	return uintptr(wd), err
}

// InotifyRmWatch is inotify_rm_watch(2).
func InotifyRmWatch(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	in, done, err := inotifyFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer done()
	return 0, in.RmWatch(args[1].Int())
}
