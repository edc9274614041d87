package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/eventfd"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_EVENTFD, Full, Eventfd)
	reg(unix.SYS_EVENTFD2, Full, Eventfd2)
}

func eventfd2(t *kernel.Task, initval uint32, flags uint32) (uintptr, error) {
	if flags&^(eventfd.EFD_SEMAPHORE|eventfd.EFD_CLOEXEC|eventfd.EFD_NONBLOCK) != 0 {
		return 0, unix.EINVAL
	}
	f := eventfd.New(uint64(initval), flags)
	defer f.DecRef(t)
	fd, err := t.FDTable().NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&eventfd.EFD_CLOEXEC != 0}, t.FileLimit())
	return uintptr(fd), err
}

// Eventfd is eventfd(2): eventfd2 without flags.
func Eventfd(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return eventfd2(t, args[0].Uint(), 0)
}

// Eventfd2 is eventfd2(2).
func Eventfd2(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return eventfd2(t, args[0].Uint(), args[1].Uint())
}
