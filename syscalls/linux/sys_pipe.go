package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/pipe"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_PIPE, Full, Pipe)
	reg(unix.SYS_PIPE2, Partial, Pipe2, "O_DIRECT (packet mode) is refused with EINVAL")
}

func pipe2(t *kernel.Task, addr hostarch.Addr, flags uint32) (uintptr, error) {
	if flags&^(unix.O_NONBLOCK|unix.O_CLOEXEC) != 0 {
		return 0, unix.EINVAL
	}
	r, w := pipe.NewConnectedPipe(flags)
	defer r.DecRef(t)
	defer w.DecRef(t)
	fdf := vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0}
	rfd, err := t.FDTable().NewFD(0, r, fdf, t.FileLimit())
	if err != nil {
		return 0, err
	}
	wfd, err := t.FDTable().NewFD(0, w, fdf, t.FileLimit())
	if err != nil {
		if f := t.FDTable().Remove(rfd); f != nil {
			f.DecRef(t)
		}
		return 0, err
	}
	if err := copyOutLE(t, addr, rfd, wfd); err != nil {
		for _, fd := range []int32{rfd, wfd} {
			if f := t.FDTable().Remove(fd); f != nil {
				f.DecRef(t)
			}
		}
		return 0, unix.EFAULT
	}
	return 0, nil
}

// Pipe is pipe(2).
func Pipe(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return pipe2(t, args[0].Pointer(), 0)
}

// Pipe2 is pipe2(2).
func Pipe2(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return pipe2(t, args[0].Pointer(), args[1].Uint())
}
