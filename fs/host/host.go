// Package host owns file descriptions over host FDs donated to the sentry
// (the container's stdio): reads and writes go to the host FD, which the
// sentry may do on its own behalf for a donated FD. Nothing here opens a
// host path.
//
// A stream FD (tty, pipe, socket) is never switched to O_NONBLOCK — it may
// be shared with the user's shell. Instead the sentry reads or writes only
// when a zero-timeout poll says the FD is ready, and learns of readiness
// from one host epoll instance watched by a notifier goroutine, so that a
// task waiting for input blocks interruptibly on a waiter.Queue.
//
// Lock order: notifier.mu → waiter.Queue locks.
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

// NewFD returns a description over hostFD, taking ownership of it (it is
// closed with the description). The access mode comes from the host FD.
func NewFD(hostFD int) (*vfs.FileDescription, error) {
	var st unix.Stat_t
	if err := unix.Fstat(hostFD, &st); err != nil {
		return nil, linuxerr.FromHost(err)
	}
	fl, err := unix.FcntlInt(uintptr(hostFD), unix.F_GETFL, 0)
	if err != nil {
		return nil, linuxerr.FromHost(err)
	}
	f := &hostFile{fd: hostFD, mode: st.Mode, fgPgrp: 1}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR {
		var ws [8]byte
		f.tty = ioctlPtr(hostFD, vfs.TIOCGWINSZ, unsafe.Pointer(&ws[0])) == nil
	}
	f.stream = st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFBLK
	var impl vfs.FileDescriptionImpl = f
	if f.stream {
		impl = &streamFile{f}
	}
	fd := vfs.NewFileDescription(impl, uint32(fl)&(unix.O_ACCMODE|unix.O_APPEND), vfs.VirtualDentry{})
	if !f.stream {
		// Continue from where the host description was.
		if off, err := unix.Seek(hostFD, 0, unix.SEEK_CUR); err == nil {
			fd.SetOffset(off)
		}
	}
	return fd, nil
}

// SameDescription reports whether host FDs a and b are one open file
// description of a seekable file (a shell's `>log 2>&1`), which must then
// be one description in the sandbox too, or each would write at its own
// offset over the other's output. Streams have no offset to share and
// report false. It moves the shared offset for a moment to find out, so
// that no host call beyond lseek and fstat is needed.
func SameDescription(a, b int) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(a, &sa) != nil || unix.Fstat(b, &sb) != nil ||
		sa.Dev != sb.Dev || sa.Ino != sb.Ino ||
		(sa.Mode&unix.S_IFMT != unix.S_IFREG && sa.Mode&unix.S_IFMT != unix.S_IFBLK) {
		return false
	}
	off, err := unix.Seek(a, 0, unix.SEEK_CUR)
	if err != nil {
		return false
	}
	if boff, err := unix.Seek(b, 0, unix.SEEK_CUR); err != nil || boff != off {
		return false
	}
	probe := off + 1
	if _, err := unix.Seek(a, probe, unix.SEEK_SET); err != nil {
		return false
	}
	boff, err := unix.Seek(b, 0, unix.SEEK_CUR)
	unix.Seek(a, off, unix.SEEK_SET)
	return err == nil && boff == probe
}

// hostFile is a donated FD.
type hostFile struct {
	vfs.FileDescriptionDefaultImpl
	fd     int
	mode   uint32
	tty    bool
	stream bool
	q      waiter.Queue

	// mu protects registered and fgPgrp.
	mu         sync.Mutex
	registered bool
	// fgPgrp emulates the foreground process group of a tty: the
	// sandbox's process groups mean nothing to the host terminal.
	fgPgrp int32
}

// streamFile marks the host file as a stream (ESPIPE for offsets).
type streamFile struct{ *hostFile }

func (streamFile) IsStream() {}

func (f *hostFile) Release(context.Context) {
	f.mu.Lock()
	if f.registered {
		theNotifier.remove(f)
		f.registered = false
	}
	f.mu.Unlock()
	unix.Close(f.fd)
}

// ready polls the host FD without blocking.
func (f *hostFile) ready(events int16) int16 {
	if !f.stream {
		return events & (unix.POLLIN | unix.POLLOUT)
	}
	pfd := []unix.PollFd{{Fd: int32(f.fd), Events: events}}
	for {
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return 0
		}
		return pfd[0].Revents
	}
}

func (f *hostFile) Read(ctx context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	if dst.NumBytes() == 0 {
		return 0, nil
	}
	if f.stream && f.ready(unix.POLLIN)&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) == 0 {
		return 0, unix.EAGAIN
	}
	n, err := dst.ReadFrom(func(bufs [][]byte) (int64, error) {
		var n int
		var err error
		if f.stream {
			n, err = unix.Readv(f.fd, bufs)
		} else {
			n, err = unix.Preadv(f.fd, bufs, off)
		}
		if n < 0 {
			n = 0
		}
		return int64(n), err
	})
	if n > 0 {
		return n, nil
	}
	return 0, linuxerr.FromHost(err)
}

func (f *hostFile) Write(ctx context.Context, src usermem.IOSequence, off int64, appending bool) (int64, int64, error) {
	if src.NumBytes() == 0 {
		return 0, off, nil
	}
	if f.stream && f.ready(unix.POLLOUT)&(unix.POLLOUT|unix.POLLERR|unix.POLLHUP) == 0 {
		return 0, off, unix.EAGAIN
	}
	n, err := src.WriteTo(func(bufs [][]byte) (int64, error) {
		var n int
		var err error
		if f.stream {
			n, err = unix.Writev(f.fd, bufs)
		} else {
			// With O_APPEND the host appends whatever off says.
			n, err = unix.Pwritev(f.fd, bufs, off)
		}
		if n < 0 {
			n = 0
		}
		return int64(n), err
	})
	end := off + n
	if appending && !f.stream {
		var st unix.Stat_t
		if unix.Fstat(f.fd, &st) == nil {
			end = st.Size
		}
	}
	if n > 0 {
		return n, end, nil
	}
	return 0, end, linuxerr.FromHost(err)
}

// OffsetChanged implements vfs.OffsetSharer: the host FD's offset follows
// the sandbox's, so that the process that donated the FD (a shell doing
// `(runsc do cmd; echo more) > file`) continues after what the sandbox
// wrote.
func (f *hostFile) OffsetChanged(off int64) {
	if !f.stream {
		unix.Seek(f.fd, off, unix.SEEK_SET)
	}
}

func (f *hostFile) Stat(context.Context) (vfs.Statx, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return vfs.Statx{}, linuxerr.FromHost(err)
	}
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: uint32(st.Blksize), Nlink: uint32(st.Nlink),
		UID: st.Uid, GID: st.Gid, Mode: uint16(st.Mode), Ino: st.Ino, Size: uint64(st.Size),
		Blocks:    uint64(st.Blocks),
		Atime:     vfs.StatxTimestamp{Sec: st.Atim.Sec, Nsec: uint32(st.Atim.Nsec)},
		Mtime:     vfs.StatxTimestamp{Sec: st.Mtim.Sec, Nsec: uint32(st.Mtim.Nsec)},
		Ctime:     vfs.StatxTimestamp{Sec: st.Ctim.Sec, Nsec: uint32(st.Ctim.Nsec)},
		RdevMajor: unix.Major(st.Rdev), RdevMinor: unix.Minor(st.Rdev),
		DevMajor: unix.Major(st.Dev), DevMinor: unix.Minor(st.Dev),
	}, nil
}

func (f *hostFile) Sync(context.Context) error {
	if f.stream {
		return unix.EINVAL
	}
	return linuxerr.FromHost(unix.Fsync(f.fd))
}

func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
	if e != 0 {
		return e
	}
	return nil
}

// termiosSize is sizeof(struct termios) of the ioctl ABI.
const termiosSize = 36

// Ioctl forwards terminal requests to the host tty (whose window size and
// modes are the user's), emulates the foreground process group, and
// answers FIONREAD.
func (f *hostFile) Ioctl(ctx context.Context, uio vfs.CopyIO, args arch.SyscallArguments) (uintptr, error) {
	req, addr := args[1].Uint(), args[2].Pointer()
	var size int
	var in bool
	switch req {
	case vfs.FIONREAD:
		size = 4
	case vfs.TCGETS:
		size = termiosSize
	case vfs.TCSETS, vfs.TCSETSW, vfs.TCSETSF:
		size, in = termiosSize, true
	case vfs.TIOCGWINSZ:
		size = 8
	case vfs.TIOCSWINSZ:
		size, in = 8, true
	case vfs.TIOCGPGRP, vfs.TIOCSPGRP:
		if !f.tty {
			return 0, unix.ENOTTY
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		var b [4]byte
		if req == vfs.TIOCGPGRP {
			*(*int32)(unsafe.Pointer(&b[0])) = f.fgPgrp
			if _, err := uio.CopyOutBytes(addr, b[:]); err != nil {
				return 0, unix.EFAULT
			}
			return 0, nil
		}
		if _, err := uio.CopyInBytes(addr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		if pg := *(*int32)(unsafe.Pointer(&b[0])); pg < 0 {
			return 0, unix.EINVAL
		} else {
			f.fgPgrp = pg
		}
		return 0, nil
	case vfs.TIOCSCTTY, vfs.TIOCNOTTY:
		if !f.tty {
			return 0, unix.ENOTTY
		}
		return 0, nil
	default:
		return 0, unix.ENOTTY
	}
	if req != vfs.FIONREAD && !f.tty {
		return 0, unix.ENOTTY
	}
	buf := make([]byte, size)
	if in {
		if _, err := uio.CopyInBytes(addr, buf); err != nil {
			return 0, unix.EFAULT
		}
	}
	if err := ioctlPtr(f.fd, uintptr(req), unsafe.Pointer(&buf[0])); err != nil {
		return 0, linuxerr.FromHost(err)
	}
	if !in {
		if _, err := uio.CopyOutBytes(addr, buf); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func (f *hostFile) Readiness(mask waiter.EventMask) waiter.EventMask {
	return waiter.EventMask(f.ready(int16(mask&(waiter.EventIn|waiter.EventOut|waiter.EventPri|waiter.EventRdHUp))|unix.POLLERR|unix.POLLHUP)) & (mask | waiter.AlwaysReported)
}

func (f *hostFile) EventRegister(e *waiter.Entry) error {
	f.q.EventRegister(e)
	if !f.stream {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.registered {
		if err := theNotifier.add(f); err != nil {
			return err
		}
		f.registered = true
	}
	return nil
}

func (f *hostFile) EventUnregister(e *waiter.Entry) { f.q.EventUnregister(e) }
