// Package host owns files backed by host FDs donated to the sentry: the
// container's stdio. Reads and writes go to the donated FD (the sentry
// acting on its own FD, not replaying the application's call); readiness
// comes from one host epoll instance so that a task waiting for input stays
// interruptible; terminal ioctls are forwarded to the FD when it is a tty.
package host

import (
	"context"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// file is a donated host FD.
type file struct {
	vfs.FileDescriptionDefaultImpl
	fd      int
	isTTY   bool
	regular bool
	q       waiter.Queue
	// pollable says the host FD works with epoll (regular files do not:
	// they are always ready).
	pollable bool
}

// NewFD wraps hostFD (which the file now owns) in a file description.
func NewFD(hostFD int) (*vfs.FileDescription, error) {
	var st unix.Stat_t
	if err := unix.Fstat(hostFD, &st); err != nil {
		return nil, linuxerr.FromHost(err)
	}
	fl, err := unix.FcntlInt(uintptr(hostFD), unix.F_GETFL, 0)
	if err != nil {
		return nil, linuxerr.FromHost(err)
	}
	f := &file{fd: hostFD, regular: st.Mode&unix.S_IFMT == unix.S_IFREG}
	if _, err := unix.IoctlGetTermios(hostFD, unix.TCGETS); err == nil {
		f.isTTY = true
	}
	if !f.regular {
		f.pollable = notifier.add(f) == nil
	}
	// Keep the host's access mode; O_APPEND is honoured by the host FD.
	return vfs.NewFileDescription(f, uint32(fl)&(unix.O_ACCMODE|unix.O_APPEND), vfs.VirtualDentry{}), nil
}

func (f *file) Release(context.Context) {
	if f.pollable {
		notifier.remove(f)
	}
	unix.Close(f.fd)
}

func (f *file) ready(events int16) bool {
	if !f.pollable {
		return true
	}
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: events}}
	n, err := unix.Poll(fds, 0)
	return err != nil || n > 0
}

func (f *file) Read(ctx context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	if !f.ready(unix.POLLIN) {
		return 0, unix.EAGAIN
	}
	n, err := dst.ReadFrom(func(bufs [][]byte) (int64, error) {
		var n int
		var err error
		if f.regular {
			n, err = unix.Preadv(f.fd, bufs, off)
		} else {
			n, err = unix.Readv(f.fd, bufs)
		}
		if err != nil {
			return 0, linuxerr.FromHost(err)
		}
		return int64(n), nil
	})
	return n, err
}

func (f *file) Write(ctx context.Context, src usermem.IOSequence, off int64, appending bool) (int64, int64, error) {
	if !f.ready(unix.POLLOUT) {
		return 0, off, unix.EAGAIN
	}
	n, err := src.WriteTo(func(bufs [][]byte) (int64, error) {
		var n int
		var err error
		if f.regular && !appending {
			n, err = unix.Pwritev(f.fd, bufs, off)
		} else {
			n, err = unix.Writev(f.fd, bufs)
		}
		if err != nil {
			return 0, linuxerr.FromHost(err)
		}
		return int64(n), nil
	})
	return n, off + n, err
}

func (f *file) Stat(context.Context) (vfs.Statx, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return vfs.Statx{}, linuxerr.FromHost(err)
	}
	ts := func(t unix.Timespec) vfs.StatxTimestamp { return vfs.StatxTimestamp{Sec: t.Sec, Nsec: uint32(t.Nsec)} }
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: uint32(st.Blksize), Nlink: uint32(st.Nlink),
		UID: st.Uid, GID: st.Gid, Mode: uint16(st.Mode), Ino: st.Ino, Size: uint64(st.Size),
		Blocks: uint64(st.Blocks), Atime: ts(st.Atim), Mtime: ts(st.Mtim), Ctime: ts(st.Ctim),
		RdevMajor: unix.Major(st.Rdev), RdevMinor: unix.Minor(st.Rdev),
	}, nil
}

func (f *file) Sync(context.Context) error {
	if err := unix.Fsync(f.fd); err != nil && err != unix.EINVAL && err != unix.EROFS {
		return linuxerr.FromHost(err)
	}
	return nil
}

func (f *file) Readiness(mask waiter.EventMask) waiter.EventMask {
	if !f.pollable {
		return mask & (waiter.EventIn | waiter.EventOut | waiter.EventRdNorm)
	}
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: int16(mask)}}
	if n, err := unix.Poll(fds, 0); err != nil || n == 0 {
		return 0
	}
	return waiter.EventMask(fds[0].Revents) & (mask | waiter.AlwaysReported)
}

func (f *file) EventRegister(e *waiter.Entry) error { f.q.EventRegister(e); return nil }
func (f *file) EventUnregister(e *waiter.Entry)     { f.q.EventUnregister(e) }

// Ioctl forwards the terminal requests programs make on their stdio, with
// the argument sizes of the Linux ABI; anything else is ENOTTY.
func (f *file) Ioctl(ctx context.Context, uio vfs.CopyIO, args arch.SyscallArguments) (uintptr, error) {
	req := args[1].Uint()
	addr := args[2].Pointer()
	var size int
	var in, out bool
	switch req {
	case 0x541b: // FIONREAD
		size, out = 4, true
	case unix.TCGETS:
		if !f.isTTY {
			return 0, unix.ENOTTY
		}
		size, out = 36, true // struct termios (kernel layout)
	case unix.TCSETS, unix.TCSETSW, unix.TCSETSF:
		if !f.isTTY {
			return 0, unix.ENOTTY
		}
		size, in = 36, true
	case unix.TIOCGWINSZ:
		if !f.isTTY {
			return 0, unix.ENOTTY
		}
		size, out = 8, true
	case unix.TIOCSWINSZ:
		if !f.isTTY {
			return 0, unix.ENOTTY
		}
		size, in = 8, true
	default:
		return 0, unix.ENOTTY
	}
	buf := make([]byte, size)
	if in {
		if _, err := uio.CopyInBytes(addr, buf); err != nil {
			return 0, unix.EFAULT
		}
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(f.fd), uintptr(req), uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return 0, linuxerr.FromHost(e)
	}
	if out {
		if _, err := uio.CopyOutBytes(addr, buf); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

// notifier turns host epoll events on donated FDs into waiter
// notifications; one goroutine serves every donated FD.
var notifier = &hostNotifier{files: make(map[int32]*file)}

type hostNotifier struct {
	once  sync.Once
	epfd  int
	err   error
	mu    sync.Mutex
	files map[int32]*file
}

func (n *hostNotifier) start() {
	n.epfd, n.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if n.err == nil {
		go n.loop()
	}
}

func (n *hostNotifier) add(f *file) error {
	n.once.Do(n.start)
	if n.err != nil {
		return n.err
	}
	n.mu.Lock()
	n.files[int32(f.fd)] = f
	n.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(f.fd)}
	if err := unix.EpollCtl(n.epfd, unix.EPOLL_CTL_ADD, f.fd, &ev); err != nil {
		n.mu.Lock()
		delete(n.files, int32(f.fd))
		n.mu.Unlock()
		return err
	}
	return nil
}

func (n *hostNotifier) remove(f *file) {
	unix.EpollCtl(n.epfd, unix.EPOLL_CTL_DEL, f.fd, nil)
	n.mu.Lock()
	delete(n.files, int32(f.fd))
	n.mu.Unlock()
}

func (n *hostNotifier) loop() {
	events := make([]unix.EpollEvent, 32)
	for {
		c, err := unix.EpollWait(n.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:c] {
			n.mu.Lock()
			f := n.files[ev.Fd]
			n.mu.Unlock()
			if f != nil {
				f.q.Notify(waiter.EventMask(ev.Events))
			}
		}
	}
}
