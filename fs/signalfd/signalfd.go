// Package signalfd owns signalfd files (signalfd(2)): reading one takes
// pending signals of its mask from the reading task and its thread group
// and returns them as struct signalfd_siginfo records, instead of running
// handlers; poll, select and epoll see it readable while such a signal is
// pending.
package signalfd

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// Flags of signalfd4 (include/uapi/linux/signalfd.h).
const (
	SFD_CLOEXEC  = unix.O_CLOEXEC
	SFD_NONBLOCK = unix.O_NONBLOCK
)

// SiginfoSize is sizeof(struct signalfd_siginfo).
const SiginfoSize = 128

// SignalFD is the implementation behind a signalfd description.
type SignalFD struct {
	vfs.FileDescriptionDefaultImpl
	vfs.DefaultStream

	// owner is the task that made the file. Readiness has no caller to
	// ask, so it reports the signals pending for the owner (Linux asks
	// the polling thread; the two differ only for signals directed at
	// other threads).
	owner *kernel.Task
	mask  atomic.Uint64
}

// New returns a signalfd description for mask, made by t. flags may hold
// SFD_NONBLOCK (SFD_CLOEXEC is the caller's FD flag).
func New(t *kernel.Task, mask kernel.SignalSet, flags uint32) *vfs.FileDescription {
	s := &SignalFD{owner: t}
	s.SetMask(mask)
	return vfs.NewFileDescription(s, unix.O_RDWR|flags&unix.O_NONBLOCK, vfs.VirtualDentry{})
}

// FromFD returns the signalfd behind fd, or nil.
func FromFD(fd *vfs.FileDescription) *SignalFD {
	s, _ := fd.Impl().(*SignalFD)
	return s
}

// SetMask replaces the mask; SIGKILL and SIGSTOP are silently left out,
// as on Linux.
func (s *SignalFD) SetMask(mask kernel.SignalSet) {
	mask &^= kernel.SignalSetOf(int(unix.SIGKILL)) | kernel.SignalSetOf(int(unix.SIGSTOP))
	s.mask.Store(uint64(mask))
	s.owner.ThreadGroup().SignalQueuedQueue().Notify(waiter.EventIn)
}

// Mask returns the mask.
func (s *SignalFD) Mask() kernel.SignalSet { return kernel.SignalSet(s.mask.Load()) }

// Read takes as many pending signals of the mask as whole records fit in
// dst: EINVAL if not even one fits, EAGAIN when none is pending. The
// reader is the task in ctx.
func (s *SignalFD) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	room := dst.NumBytes() / SiginfoSize
	if room == 0 {
		return 0, unix.EINVAL
	}
	t, ok := ctx.(*kernel.Task)
	if !ok {
		t = s.owner
	}
	var done int64
	for ; done < room; done++ {
		info := t.DequeueSignalIn(s.Mask())
		if info == nil {
			break
		}
		rec := Record(info)
		if n, err := dst.CopyOut(rec[:]); n < SiginfoSize {
			// The signal is gone, as on Linux when the copy faults.
			if done > 0 {
				break
			}
			if err == nil {
				err = unix.EFAULT
			}
			return 0, err
		}
		dst = dst.DropFirst(SiginfoSize)
	}
	if done == 0 {
		return 0, unix.EAGAIN
	}
	return done * SiginfoSize, nil
}

// ReadWait is read(2) by task t: it waits, unless nonblock, for a signal
// of the mask pending for t itself (not for the owner, which is what the
// queue registered by poll would follow).
func (s *SignalFD) ReadWait(t *kernel.Task, dst usermem.IOSequence, nonblock bool) (int64, error) {
	n, err := s.Read(t, dst, 0)
	if err != unix.EAGAIN || nonblock {
		return n, err
	}
	q := t.ThreadGroup().SignalQueuedQueue()
	e, ch := waiter.NewChannelEntry(waiter.EventIn)
	q.EventRegister(e)
	defer q.EventUnregister(e)
	for {
		// Look again after registering: a signal may have come in between.
		n, err := s.Read(t, dst, 0)
		if err != unix.EAGAIN {
			return n, err
		}
		if err := t.Block(ch, time.Time{}); err != nil {
			return 0, linuxerr.ERESTARTSYS
		}
	}
}

// Record lays info out as struct signalfd_siginfo. Which union member of
// siginfo_t holds what depends on the signal and si_code, as Linux's
// siginfo_layout decides.
func Record(info *arch.SignalInfo) [SiginfoSize]byte {
	var r [SiginfoSize]byte
	le := binary.LittleEndian
	f := info.Fields[:]
	le.PutUint32(r[0:], uint32(info.Signo))
	le.PutUint32(r[4:], uint32(info.Errno))
	le.PutUint32(r[8:], uint32(info.Code))
	pidUID := func() {
		le.PutUint32(r[12:], le.Uint32(f[0:])) // ssi_pid
		le.PutUint32(r[16:], le.Uint32(f[4:])) // ssi_uid
	}
	value := func() {
		le.PutUint32(r[44:], le.Uint32(f[8:])) // ssi_int
		le.PutUint64(r[48:], le.Uint64(f[8:])) // ssi_ptr
	}
	sig, code := unix.Signal(info.Signo), info.Code
	switch {
	case code > arch.SI_USER && code < arch.SI_KERNEL:
		switch sig {
		case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE, unix.SIGTRAP:
			le.PutUint64(r[72:], le.Uint64(f[0:])) // ssi_addr
			le.PutUint16(r[80:], le.Uint16(f[8:])) // ssi_addr_lsb
		case unix.SIGCHLD:
			pidUID()
			le.PutUint32(r[40:], le.Uint32(f[8:]))  // ssi_status
			le.PutUint64(r[56:], le.Uint64(f[16:])) // ssi_utime
			le.PutUint64(r[64:], le.Uint64(f[24:])) // ssi_stime
		case unix.SIGPOLL:
			le.PutUint32(r[28:], le.Uint32(f[0:])) // ssi_band
			le.PutUint32(r[20:], le.Uint32(f[8:])) // ssi_fd
		case unix.SIGSYS:
			le.PutUint64(r[88:], le.Uint64(f[0:]))  // ssi_call_addr
			le.PutUint32(r[84:], le.Uint32(f[8:]))  // ssi_syscall
			le.PutUint32(r[96:], le.Uint32(f[12:])) // ssi_arch
		default:
			pidUID()
		}
	case code == arch.SI_TIMER:
		le.PutUint32(r[24:], le.Uint32(f[0:])) // ssi_tid
		le.PutUint32(r[32:], le.Uint32(f[4:])) // ssi_overrun
		value()
	case code == siSigio:
		le.PutUint32(r[28:], le.Uint32(f[0:]))
		le.PutUint32(r[20:], le.Uint32(f[8:]))
	case code < 0:
		pidUID()
		value()
	default:
		pidUID()
	}
	return r
}

// siSigio is SI_SIGIO.
const siSigio = -5

// NoopSeek makes lseek succeed without effect, as on Linux.
func (s *SignalFD) NoopSeek() {}

// Readiness is readable while a signal of the mask is pending.
func (s *SignalFD) Readiness(mask waiter.EventMask) waiter.EventMask {
	if s.owner.PendingSignalsIn(s.Mask()) != 0 {
		return mask & (waiter.EventIn | waiter.EventRdNorm)
	}
	return 0
}

func (s *SignalFD) EventRegister(e *waiter.Entry) error {
	s.owner.ThreadGroup().SignalQueuedQueue().EventRegister(e)
	return nil
}

func (s *SignalFD) EventUnregister(e *waiter.Entry) {
	s.owner.ThreadGroup().SignalQueuedQueue().EventUnregister(e)
}

func (s *SignalFD) Stat(context.Context) (vfs.Statx, error) {
	return vfs.Statx{Mask: unix.STATX_BASIC_STATS, Mode: 0600, Nlink: 1, Blksize: 4096}, nil
}

// Write is EINVAL, as on Linux (signalfds have no write operation).
func (s *SignalFD) Write(context.Context, usermem.IOSequence, int64, bool) (int64, int64, error) {
	return 0, 0, unix.EINVAL
}
