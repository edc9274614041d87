package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_IOCTL, Partial, Ioctl, "FIONBIO, FIOCLEX, FIONCLEX, FIOASYNC generic; others (FIONREAD, tty requests) as each file type implements them")
}

// Ioctl is ioctl(2): the generic requests here, the rest by the file.
func Ioctl(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	fd := args[0].Int()
	f, err := getFileNoPath(t, fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	switch args[1].Uint() {
	case vfs.FIOCLEX:
		return 0, t.FDTable().SetFlags(fd, vfs.FDFlags{CloseOnExec: true})
	case vfs.FIONCLEX:
		return 0, t.FDTable().SetFlags(fd, vfs.FDFlags{CloseOnExec: false})
	case vfs.FIONBIO, vfs.FIOASYNC:
		v, err := copyInU32(t, args[2].Pointer())
		if err != nil {
			return 0, unix.EFAULT
		}
		bit := uint32(unix.O_NONBLOCK)
		if args[1].Uint() == vfs.FIOASYNC {
			bit = unix.O_ASYNC
		}
		fl := f.StatusFlags() &^ bit
		if v != 0 {
			fl |= bit
		}
		f.SetStatusFlags(fl)
		return 0, nil
	}
	return f.Ioctl(t, t, args)
}
