package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
)

// Extended attributes are not stored by any of Veil's filesystems yet, so
// every filesystem answers as one without xattr support does: the file is
// resolved (ENOENT, ENOTDIR, EACCES...) and the name checked, then the
// operation is EOPNOTSUPP.

const xattrNameMax = 255

func xattrName(t *kernel.Task, addr hostarch.Addr) error {
	name, err := t.CopyInString(addr, xattrNameMax+1)
	if err == unix.ENAMETOOLONG {
		return unix.ERANGE
	}
	if err != nil {
		return err
	}
	if name == "" {
		return unix.ERANGE
	}
	return nil
}

func xattrPath(t *kernel.Task, pathAddr hostarch.Addr, follow bool) error {
	pop, release, err := pathArg(t, unix.AT_FDCWD, pathAddr, follow)
	if err != nil {
		return err
	}
	defer release()
	_, err = t.Kernel().VFS().StatAt(t, pop)
	return err
}

func xattrFD(t *kernel.Task, fd int32) error {
	f, err := getFileNoPath(t, fd)
	if err != nil {
		return err
	}
	f.DecRef(t)
	return nil
}

func pathXattr(follow, named bool) Handler {
	return func(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
		if err := xattrPath(t, args[0].Pointer(), follow); err != nil {
			return 0, err
		}
		if named {
			if err := xattrName(t, args[1].Pointer()); err != nil {
				return 0, err
			}
		}
		return 0, unix.EOPNOTSUPP
	}
}

func fdXattr(named bool) Handler {
	return func(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
		if err := xattrFD(t, args[0].Int()); err != nil {
			return 0, err
		}
		if named {
			if err := xattrName(t, args[1].Pointer()); err != nil {
				return 0, err
			}
		}
		return 0, unix.EOPNOTSUPP
	}
}

func init() {
	const note = "no filesystem stores xattrs yet: EOPNOTSUPP after path and name checks"
	reg(unix.SYS_GETXATTR, Partial, pathXattr(true, true), note)
	reg(unix.SYS_LGETXATTR, Partial, pathXattr(false, true), note)
	reg(unix.SYS_FGETXATTR, Partial, fdXattr(true), note)
	reg(unix.SYS_SETXATTR, Partial, pathXattr(true, true), note)
	reg(unix.SYS_LSETXATTR, Partial, pathXattr(false, true), note)
	reg(unix.SYS_FSETXATTR, Partial, fdXattr(true), note)
	reg(unix.SYS_LISTXATTR, Partial, pathXattr(true, false), note)
	reg(unix.SYS_LLISTXATTR, Partial, pathXattr(false, false), note)
	reg(unix.SYS_FLISTXATTR, Partial, fdXattr(false), note)
	reg(unix.SYS_REMOVEXATTR, Partial, pathXattr(true, true), note)
	reg(unix.SYS_LREMOVEXATTR, Partial, pathXattr(false, true), note)
	reg(unix.SYS_FREMOVEXATTR, Partial, fdXattr(true), note)
}
