package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/pipe"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_FCNTL, Partial, Fcntl, "F_SETOWN/F_GETOWN/leases/F_NOTIFY unsupported")
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
	case unix.F_GETLK, unix.F_SETLK, unix.F_SETLKW, unix.F_OFD_GETLK, unix.F_OFD_SETLK, unix.F_OFD_SETLKW:
		return fcntlLock(t, f, cmd, args[2].Pointer())
	case unix.F_ADD_SEALS, unix.F_GET_SEALS:
		return fcntlSeals(t, f, cmd, args[2].Uint())
	case unix.F_GETOWN:
		return 0, nil
	case unix.F_SETSIG, unix.F_GETSIG:
		return 0, nil
	}
	return 0, unix.EINVAL
}
