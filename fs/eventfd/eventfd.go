// Package eventfd owns eventfd files (eventfd(2)): a 64-bit counter that
// writes add to and reads take from, either whole or one at a time
// (EFD_SEMAPHORE), with readiness for poll, select and epoll. Operations
// never block: they return EAGAIN and the syscall layer waits on the
// file's queue, as for every file.
package eventfd

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// MaxCounter is the largest value the counter may hold: a write that
// would take it past waits (or fails with EAGAIN).
const MaxCounter = 0xfffffffffffffffe

// Flags of eventfd2 (include/uapi/linux/eventfd.h).
const (
	EFD_SEMAPHORE = 1
	EFD_CLOEXEC   = unix.O_CLOEXEC
	EFD_NONBLOCK  = unix.O_NONBLOCK
)

// EventFD is the implementation behind an eventfd description.
type EventFD struct {
	vfs.FileDescriptionDefaultImpl
	vfs.DefaultStream

	// q carries EventIn when the counter becomes non-zero and EventOut
	// when it drops so that a write fits.
	q         waiter.Queue
	semaphore bool

	// mu protects val. It is not held while notifying q.
	mu  sync.Mutex
	val uint64
}

// New returns an eventfd description with counter initval. flags may hold
// EFD_SEMAPHORE and EFD_NONBLOCK (EFD_CLOEXEC is the caller's FD flag).
func New(initval uint64, flags uint32) *vfs.FileDescription {
	e := &EventFD{val: initval, semaphore: flags&EFD_SEMAPHORE != 0}
	return vfs.NewFileDescription(e, unix.O_RDWR|flags&unix.O_NONBLOCK, vfs.VirtualDentry{})
}

// FromFD returns the eventfd behind fd, or nil.
func FromFD(fd *vfs.FileDescription) *EventFD {
	e, _ := fd.Impl().(*EventFD)
	return e
}

// Read takes the counter (or 1 of it with EFD_SEMAPHORE) into an 8-byte
// buffer: EINVAL for a shorter buffer, EAGAIN while the counter is 0.
func (e *EventFD) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	if dst.NumBytes() < 8 {
		return 0, unix.EINVAL
	}
	e.mu.Lock()
	if e.val == 0 {
		e.mu.Unlock()
		return 0, unix.EAGAIN
	}
	v := e.val
	if e.semaphore {
		v = 1
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	// Copy out under the lock so that a fault leaves the counter as it was.
	if n, err := dst.CopyOut(b[:]); n < 8 {
		e.mu.Unlock()
		if err == nil {
			err = unix.EFAULT
		}
		return 0, err
	}
	e.val -= v
	e.mu.Unlock()
	e.q.Notify(waiter.EventOut)
	return 8, nil
}

// Write adds 8-byte values, one per range of src (writev(2) writes each
// iovec on its own): EINVAL for a range that is not exactly 8 bytes, as
// Linux since 6.9 (before, longer ones were taken as their first 8 bytes),
// EINVAL for 0xffffffffffffffff, EAGAIN while the sum would pass
// MaxCounter. Values written before an error count and are reported.
func (e *EventFD) Write(ctx context.Context, src usermem.IOSequence, _ int64, _ bool) (int64, int64, error) {
	var done int64
	for i := range src.Ranges {
		r := usermem.IOSequence{IO: src.IO, Ranges: src.Ranges[i : i+1]}
		if err := e.writeOne(r); err != nil {
			if done > 0 {
				return done, 0, nil
			}
			return 0, 0, err
		}
		done += 8
	}
	return done, 0, nil
}

func (e *EventFD) writeOne(src usermem.IOSequence) error {
	if src.NumBytes() != 8 {
		return unix.EINVAL
	}
	var b [8]byte
	if n, err := src.CopyIn(b[:]); n < 8 {
		if err == nil {
			err = unix.EFAULT
		}
		return err
	}
	v := binary.LittleEndian.Uint64(b[:])
	if v == ^uint64(0) {
		return unix.EINVAL
	}
	e.mu.Lock()
	if MaxCounter-e.val < v {
		e.mu.Unlock()
		return unix.EAGAIN
	}
	e.val += v
	e.mu.Unlock()
	if v != 0 {
		e.q.Notify(waiter.EventIn | waiter.EventRdNorm)
	}
	return nil
}

// Signal adds v to the counter without waiting, saturating at
// MaxCounter, for in-sentry producers (as the kernel's eventfd_signal).
func (e *EventFD) Signal(v uint64) {
	e.mu.Lock()
	if MaxCounter-e.val < v {
		v = MaxCounter - e.val
	}
	e.val += v
	e.mu.Unlock()
	e.q.Notify(waiter.EventIn | waiter.EventRdNorm)
}

// NoopSeek makes lseek succeed without effect, as on Linux.
func (e *EventFD) NoopSeek() {}

// Readiness is readable while the counter is non-zero and writable while
// at least 1 can be added.
func (e *EventFD) Readiness(mask waiter.EventMask) waiter.EventMask {
	e.mu.Lock()
	v := e.val
	e.mu.Unlock()
	var r waiter.EventMask
	if v > 0 {
		r |= waiter.EventIn | waiter.EventRdNorm
	}
	if v < MaxCounter {
		r |= waiter.EventOut
	}
	return r & mask
}

func (e *EventFD) EventRegister(w *waiter.Entry) error { e.q.EventRegister(w); return nil }
func (e *EventFD) EventUnregister(w *waiter.Entry)     { e.q.EventUnregister(w) }

func (e *EventFD) Stat(context.Context) (vfs.Statx, error) {
	return vfs.Statx{Mask: unix.STATX_BASIC_STATS, Mode: 0600, Nlink: 1, Blksize: 4096}, nil
}

// Ioctl knows no requests (Linux's eventfd has none).
func (e *EventFD) Ioctl(context.Context, vfs.CopyIO, arch.SyscallArguments) (uintptr, error) {
	return 0, unix.ENOTTY
}

// FDInfo is the eventfd-count line /proc/PID/fdinfo shows.
func (e *EventFD) FDInfo() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return fmt.Sprintf("eventfd-count: %16x\n", e.val)
}
