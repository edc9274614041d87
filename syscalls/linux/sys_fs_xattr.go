package linux

import (
	"bytes"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	const note = "user.*, trusted.* and security.* where the filesystem stores them (tmpfs); system.* (ACLs) EOPNOTSUPP"
	reg(unix.SYS_GETXATTR, Partial, pathXattr(true, getXattr), note)
	reg(unix.SYS_LGETXATTR, Partial, pathXattr(false, getXattr), note)
	reg(unix.SYS_FGETXATTR, Partial, fdXattr(unix.SYS_FGETXATTR, getXattr), note)
	reg(unix.SYS_SETXATTR, Partial, pathXattr(true, setXattr), note)
	reg(unix.SYS_LSETXATTR, Partial, pathXattr(false, setXattr), note)
	reg(unix.SYS_FSETXATTR, Partial, fdXattr(unix.SYS_FSETXATTR, setXattr), note)
	reg(unix.SYS_LISTXATTR, Partial, pathXattr(true, listXattr), note)
	reg(unix.SYS_LLISTXATTR, Partial, pathXattr(false, listXattr), note)
	reg(unix.SYS_FLISTXATTR, Partial, fdXattr(unix.SYS_FLISTXATTR, listXattr), note)
	reg(unix.SYS_REMOVEXATTR, Partial, pathXattr(true, removeXattr), note)
	reg(unix.SYS_LREMOVEXATTR, Partial, pathXattr(false, removeXattr), note)
	reg(unix.SYS_FREMOVEXATTR, Partial, fdXattr(unix.SYS_FREMOVEXATTR, removeXattr), note)
}

// xattrOp is one xattr call: prepare copies in its arguments (Linux does
// that before resolving the file, so EFAULT/ERANGE/E2BIG come first) and
// returns the operation to run on the file.
type xattrOp func(t *kernel.Task, args arch.SyscallArguments) (func(vd vfs.VirtualDentry) (uintptr, error), error)

// anonXattr gives, for each op, what it does on a file without a dentry:
// the name it names (none for list) and whether it writes.
func anonXattr(t *kernel.Task, f *vfs.FileDescription, nr uintptr, args arch.SyscallArguments) (uintptr, error) {
	if nr == unix.SYS_FLISTXATTR {
		return 0, nil
	}
	name, err := copyInXattrName(t, args[1].Pointer())
	if err != nil {
		return 0, err
	}
	return 0, vfs.AnonXattr(t, f, name, nr != unix.SYS_FGETXATTR)
}

func copyInXattrName(t *kernel.Task, addr hostarch.Addr) (string, error) {
	name, err := t.CopyInString(addr, vfs.XattrNameMax+1)
	if err == unix.ENAMETOOLONG || (err == nil && name == "") {
		return "", unix.ERANGE
	}
	return name, err
}

func getXattr(t *kernel.Task, args arch.SyscallArguments) (func(vfs.VirtualDentry) (uintptr, error), error) {
	name, err := copyInXattrName(t, args[1].Pointer())
	if err != nil {
		return nil, err
	}
	buf, size := args[2].Pointer(), uint64(args[3].SizeT())
	return func(vd vfs.VirtualDentry) (uintptr, error) {
		v, err := t.Kernel().VFS().GetXattr(t, vd, name)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			return uintptr(len(v)), nil
		}
		if uint64(len(v)) > size {
			return 0, unix.ERANGE
		}
		if _, err := t.CopyOutBytes(buf, []byte(v)); err != nil {
			return 0, unix.EFAULT
		}
		return uintptr(len(v)), nil
	}, nil
}

func setXattr(t *kernel.Task, args arch.SyscallArguments) (func(vfs.VirtualDentry) (uintptr, error), error) {
	flags := args[4].Uint()
	if flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return nil, unix.EINVAL
	}
	name, err := copyInXattrName(t, args[1].Pointer())
	if err != nil {
		return nil, err
	}
	size := uint64(args[3].SizeT())
	if size > vfs.XattrSizeMax {
		return nil, unix.E2BIG
	}
	val := make([]byte, size)
	if _, err := t.CopyInBytes(args[2].Pointer(), val); err != nil {
		return nil, unix.EFAULT
	}
	return func(vd vfs.VirtualDentry) (uintptr, error) {
		return 0, t.Kernel().VFS().SetXattr(t, vd, name, string(val), flags)
	}, nil
}

func listXattr(t *kernel.Task, args arch.SyscallArguments) (func(vfs.VirtualDentry) (uintptr, error), error) {
	buf, size := args[1].Pointer(), uint64(args[2].SizeT())
	return func(vd vfs.VirtualDentry) (uintptr, error) {
		names, err := t.Kernel().VFS().ListXattr(t, vd)
		if err != nil {
			return 0, err
		}
		var b bytes.Buffer
		for _, n := range names {
			b.WriteString(n)
			b.WriteByte(0)
		}
		if size == 0 {
			return uintptr(b.Len()), nil
		}
		if uint64(b.Len()) > size {
			if b.Len() > vfs.XattrListMax {
				return 0, unix.E2BIG
			}
			return 0, unix.ERANGE
		}
		if _, err := t.CopyOutBytes(buf, b.Bytes()); err != nil {
			return 0, unix.EFAULT
		}
		return uintptr(b.Len()), nil
	}, nil
}

func removeXattr(t *kernel.Task, args arch.SyscallArguments) (func(vfs.VirtualDentry) (uintptr, error), error) {
	name, err := copyInXattrName(t, args[1].Pointer())
	if err != nil {
		return nil, err
	}
	return func(vd vfs.VirtualDentry) (uintptr, error) {
		return 0, t.Kernel().VFS().RemoveXattr(t, vd, name)
	}, nil
}

// pathXattr makes the handler of the path (follow) or l (no follow)
// variant of an xattr call.
func pathXattr(follow bool, op xattrOp) Handler {
	return func(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
		run, err := op(t, args)
		if err != nil {
			return 0, err
		}
		pop, release, err := pathArg(t, unix.AT_FDCWD, args[0].Pointer(), follow)
		if err != nil {
			return 0, err
		}
		defer release()
		vd, err := t.Kernel().VFS().GetDentryAt(t, pop)
		if err != nil {
			return 0, err
		}
		return run(vd)
	}
}

// fdXattr makes the handler of the f variant.
func fdXattr(nr uintptr, op xattrOp) Handler {
	return func(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
		f, err := getFileNoPath(t, args[0].Int())
		if err != nil {
			return 0, err
		}
		defer f.DecRef(t)
		run, err := op(t, args)
		if err != nil {
			return 0, err
		}
		vd := f.VirtualDentry()
		if !vd.Ok() {
			return anonXattr(t, f, nr, args)
		}
		return run(vd)
	}
}
