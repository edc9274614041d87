package linux

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/signalfd"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	const note = "poll/epoll readiness follows the signals pending for the thread that made the signalfd (reads take the reader's)"
	reg(unix.SYS_SIGNALFD, Partial, Signalfd, note)
	reg(unix.SYS_SIGNALFD4, Partial, Signalfd4, note)
}

func signalfd4(t *kernel.Task, fd int32, maskAddr arch.SyscallArgument, sizemask uint64, flags uint32) (uintptr, error) {
	if sizemask != 8 {
		return 0, unix.EINVAL
	}
	var b [8]byte
	if _, err := t.CopyInBytes(maskAddr.Pointer(), b[:]); err != nil {
		return 0, unix.EFAULT
	}
	mask := kernel.SignalSet(binary.LittleEndian.Uint64(b[:]))
	if flags&^(signalfd.SFD_CLOEXEC|signalfd.SFD_NONBLOCK) != 0 {
		return 0, unix.EINVAL
	}
	if fd != -1 {
		f, err := getFile(t, fd)
		if err != nil {
			return 0, err
		}
		defer f.DecRef(t)
		s := signalfd.FromFD(f)
		if s == nil {
			return 0, unix.EINVAL
		}
		s.SetMask(mask)
		return uintptr(fd), nil
	}
	f := signalfd.New(t, mask, flags)
	defer f.DecRef(t)
	nfd, err := t.FDTable().NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&signalfd.SFD_CLOEXEC != 0}, t.FileLimit())
	return uintptr(nfd), err
}

// Signalfd is signalfd(2): signalfd4 without flags.
func Signalfd(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return signalfd4(t, args[0].Int(), args[1], args[2].Uint64(), 0)
}

// Signalfd4 is signalfd4(2).
func Signalfd4(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return signalfd4(t, args[0].Int(), args[1], args[2].Uint64(), args[3].Uint())
}
