package linux

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

func init() {
	reg(unix.SYS_EPOLL_CREATE, Full, EpollCreate)
	reg(unix.SYS_EPOLL_CREATE1, Full, EpollCreate1)
	reg(unix.SYS_EPOLL_CTL, Partial, EpollCtl, "EPOLLEXCLUSIVE wakes every waiter; nested epoll loops refused one level deep only")
	reg(unix.SYS_EPOLL_WAIT, Full, EpollWait)
	reg(unix.SYS_EPOLL_PWAIT, Full, EpollPwait)
}

func epollCreate(t *kernel.Task, flags uint32) (uintptr, error) {
	if flags&^unix.EPOLL_CLOEXEC != 0 {
		return 0, unix.EINVAL
	}
	f := vfs.NewEpollInstance(0)
	defer f.DecRef(t)
	fd, err := t.FDTable().NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.EPOLL_CLOEXEC != 0}, t.FileLimit())
	return uintptr(fd), err
}

// EpollCreate is epoll_create(2): size is a hint that must be positive.
func EpollCreate(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[0].Int() <= 0 {
		return 0, unix.EINVAL
	}
	return epollCreate(t, 0)
}

// EpollCreate1 is epoll_create1(2).
func EpollCreate1(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return epollCreate(t, args[0].Uint())
}

// EpollCtl is epoll_ctl(2).
func EpollCtl(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	epfd, op, fd := args[0].Int(), int(args[1].Int()), args[2].Int()
	epf, err := getFileNoPath(t, epfd)
	if err != nil {
		return 0, err
	}
	defer epf.DecRef(t)
	f, err := getFileNoPath(t, fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	ep := vfs.AsEpoll(epf)
	if ep == nil || epf == f {
		return 0, unix.EINVAL
	}
	var ev vfs.EpollEvent
	if op == unix.EPOLL_CTL_ADD || op == unix.EPOLL_CTL_MOD {
		var b [12]byte
		if _, err := t.CopyInBytes(args[3].Pointer(), b[:]); err != nil {
			return 0, unix.EFAULT
		}
		ev.Events = binary.LittleEndian.Uint32(b[0:])
		ev.Data = binary.LittleEndian.Uint64(b[4:])
	}
	return 0, ep.Ctl(epf, op, fd, f, ev)
}

// epollWait is epoll_wait/epoll_pwait; timeout in ms, negative: forever.
func epollWait(t *kernel.Task, epfd int32, evAddr hostarch.Addr, maxEvents int32, ms int32) (uintptr, error) {
	if maxEvents <= 0 || maxEvents > (1<<31-1)/12 {
		return 0, unix.EINVAL
	}
	epf, err := getFileNoPath(t, epfd)
	if err != nil {
		return 0, err
	}
	defer epf.DecRef(t)
	ep := vfs.AsEpoll(epf)
	if ep == nil {
		return 0, unix.EINVAL
	}
	var deadline time.Time
	if ms > 0 {
		deadline = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	var e *waiter.Entry
	var ch chan struct{}
	for {
		evs := ep.ReadEvents(int(maxEvents))
		if len(evs) > 0 {
			b := make([]byte, 0, 12*len(evs))
			for _, ev := range evs {
				b = binary.LittleEndian.AppendUint32(b, ev.Events)
				b = binary.LittleEndian.AppendUint64(b, ev.Data)
			}
			if _, err := t.CopyOutBytes(evAddr, b); err != nil {
				return 0, unix.EFAULT
			}
			return uintptr(len(evs)), nil
		}
		if ms == 0 {
			return 0, nil
		}
		if e == nil {
			// Register before re-checking so no event is missed.
			e, ch = waiter.NewChannelEntry(waiter.EventIn)
			epf.EventRegister(e)
			defer epf.EventUnregister(e)
			continue
		}
		switch err := t.Block(ch, deadline); err {
		case nil:
		case kernel.ErrTimedOut:
			return 0, nil
		default:
			return 0, unix.EINTR
		}
	}
}

// EpollWait is epoll_wait(2).
func EpollWait(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return epollWait(t, args[0].Int(), args[1].Pointer(), args[2].Int(), args[3].Int())
}

// EpollPwait is epoll_pwait(2).
func EpollPwait(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	masked, err := installSigmask(t, args[4].Pointer(), args[5].SizeT())
	if err != nil {
		return 0, err
	}
	if masked {
		defer t.RestoreSavedSignalMask()
	}
	return epollWait(t, args[0].Int(), args[1].Pointer(), args[2].Int(), args[3].Int())
}
