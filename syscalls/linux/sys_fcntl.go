package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/pipe"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_FCNTL, Partial, Fcntl, "record locks (F_GETLK/F_SETLK/F_SETLKW, OFD locks) are accepted without locking; F_SETOWN/F_GETOWN/leases/notify unsupported")
}

// Fcntl is fcntl(2).
func Fcntl(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	fd, cmd := args[0].Int(), args[1].Int()
	f, flags := t.FDTable().Get(fd)
	if f == nil {
		return 0, unix.EBADF
	}
	defer f.DecRef(t)
	switch cmd {
	case unix.F_DUPFD, unix.F_DUPFD_CLOEXEC:
		min := args[2].Int()
		if min < 0 || min >= t.FileLimit() {
			return 0, unix.EINVAL
		}
		nfd, err := t.FDTable().NewFD(min, f, vfs.FDFlags{CloseOnExec: cmd == unix.F_DUPFD_CLOEXEC}, t.FileLimit())
		return uintptr(nfd), err
	case unix.F_GETFD:
		return uintptr(flags.ToLinux()), nil
	case unix.F_SETFD:
		return 0, t.FDTable().SetFlags(fd, vfs.FDFlags{CloseOnExec: args[2].Int()&unix.FD_CLOEXEC != 0})
	case unix.F_GETFL:
		return uintptr(f.StatusFlags()), nil
	case unix.F_SETFL:
		if f.IsPath() {
			return 0, unix.EBADF
		}
		f.SetStatusFlags(args[2].Uint())
		return 0, nil
	case unix.F_GETPIPE_SZ:
		p := pipe.FromFD(f)
		if p == nil {
			return 0, unix.EBADF
		}
		return uintptr(p.Size()), nil
	case unix.F_SETPIPE_SZ:
		p := pipe.FromFD(f)
		if p == nil {
			return 0, unix.EBADF
		}
		n, err := p.SetSize(t, int64(args[2].Uint()))
		return uintptr(n), err
	case unix.F_GETLK, unix.F_OFD_GETLK:
		// Nothing is ever locked: report F_UNLCK in l_type.
		if f.IsPath() {
			return 0, unix.EBADF
		}
		if _, err := t.CopyOutBytes(args[2].Pointer(), []byte{unix.F_UNLCK, 0}); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	case unix.F_SETLK, unix.F_SETLKW, unix.F_OFD_SETLK, unix.F_OFD_SETLKW:
		if f.IsPath() {
			return 0, unix.EBADF
		}
		var b [2]byte
		if _, err := t.CopyInBytes(args[2].Pointer(), b[:]); err != nil {
			return 0, unix.EFAULT
		}
		switch int16(b[0]) | int16(b[1])<<8 {
		case unix.F_RDLCK:
			if !f.IsReadable() {
				return 0, unix.EBADF
			}
		case unix.F_WRLCK:
			if !f.IsWritable() {
				return 0, unix.EBADF
			}
		case unix.F_UNLCK:
		default:
			return 0, unix.EINVAL
		}
		return 0, nil
	case unix.F_GETOWN:
		return 0, nil
	case unix.F_SETSIG, unix.F_GETSIG:
		return 0, nil
	}
	return 0, unix.EINVAL
}
