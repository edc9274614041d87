// Package timerfd owns timerfd files (timerfd_create(2)): a one-shot or
// periodic timer on one of the sandbox's clocks whose expirations a read
// returns as a count, with readiness for poll, select and epoll.
//
// The expiration count is derived from the clock itself whenever it is
// looked at (read, poll, gettime), so it is exact whatever the scheduling
// of the sentry; a Go timer only wakes waiters when the file turns
// readable. The sandbox clock is steered towards the host's but may lag it
// slightly, so a wake-up that comes early by the sandbox clock re-arms for
// the rest.
package timerfd

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// Flags of timerfd_create and timerfd_settime (include/uapi/linux/timerfd.h).
const (
	TFD_CLOEXEC             = unix.O_CLOEXEC
	TFD_NONBLOCK            = unix.O_NONBLOCK
	TFD_TIMER_ABSTIME       = 1
	TFD_TIMER_CANCEL_ON_SET = 2
)

// maxDeadline bounds deadlines so that arithmetic on them cannot wrap.
const maxDeadline = time.Duration(1 << 62)

// Clock reads a clock, in nanoseconds since its epoch.
type Clock func() time.Duration

// TimerFD is the implementation behind a timerfd description.
//
// Lock order: TimerFD.mu is a leaf; q is notified without it.
type TimerFD struct {
	vfs.FileDescriptionDefaultImpl
	vfs.DefaultStream

	q     waiter.Queue
	clock Clock

	mu sync.Mutex
	// deadline is the next expiration on clock; zero when disarmed.
	deadline time.Duration
	interval time.Duration
	// ticks counts expirations not read yet, up to the last update.
	ticks uint64
	// timer wakes waiters at deadline; gen tells a stale firing (of a
	// timer stopped or replaced since) from the current one.
	timer *time.Timer
	gen   uint64
}

// New returns a timerfd description on clock. flags may hold TFD_NONBLOCK
// (TFD_CLOEXEC is the caller's FD flag).
func New(clock Clock, flags uint32) *vfs.FileDescription {
	tf := &TimerFD{clock: clock}
	return vfs.NewFileDescription(tf, unix.O_RDWR|flags&unix.O_NONBLOCK, vfs.VirtualDentry{})
}

// FromFD returns the timerfd behind fd, or nil.
func FromFD(fd *vfs.FileDescription) *TimerFD {
	tf, _ := fd.Impl().(*TimerFD)
	return tf
}

// updateLocked moves expirations that have happened by now into ticks.
func (tf *TimerFD) updateLocked(now time.Duration) {
	if tf.deadline == 0 || now < tf.deadline {
		return
	}
	if tf.interval == 0 {
		tf.ticks++
		tf.deadline = 0
		return
	}
	n := uint64((now-tf.deadline)/tf.interval) + 1
	tf.ticks += n
	tf.deadline += time.Duration(n) * tf.interval
}

// remainingLocked is the time to the next expiration (0 when disarmed).
func (tf *TimerFD) remainingLocked(now time.Duration) time.Duration {
	if tf.deadline == 0 {
		return 0
	}
	return tf.deadline - now
}

// armLocked (re)starts the wake-up timer for the current deadline, or
// stops it when there is none or the file is readable already (nobody
// needs waking until a read).
func (tf *TimerFD) armLocked(now time.Duration) {
	tf.gen++
	if tf.timer != nil {
		tf.timer.Stop()
		tf.timer = nil
	}
	if tf.deadline == 0 || tf.ticks > 0 {
		return
	}
	gen := tf.gen
	tf.timer = time.AfterFunc(tf.deadline-now, func() { tf.fire(gen) })
}

// fire runs when the wake-up timer expires.
func (tf *TimerFD) fire(gen uint64) {
	tf.mu.Lock()
	if gen != tf.gen {
		tf.mu.Unlock()
		return
	}
	now := tf.clock()
	tf.updateLocked(now)
	ready := tf.ticks > 0
	// Early by the sandbox's clock, this waits for the rest.
	tf.armLocked(now)
	tf.mu.Unlock()
	if ready {
		tf.q.Notify(waiter.EventIn | waiter.EventRdNorm)
	}
}

// SetTime arms the timer (timerfd_settime): value is relative to now, or
// an absolute time on the clock when abs; value 0 disarms. It returns the
// old setting as timerfd_gettime would have, and drops unread
// expirations.
func (tf *TimerFD) SetTime(value, interval time.Duration, abs bool) (oldValue, oldInterval time.Duration) {
	tf.mu.Lock()
	now := tf.clock()
	tf.updateLocked(now)
	oldValue, oldInterval = tf.remainingLocked(now), tf.interval
	tf.ticks = 0
	tf.interval = min(interval, maxDeadline)
	switch {
	case value == 0:
		tf.deadline = 0
	case abs:
		tf.deadline = min(value, maxDeadline)
	case now > maxDeadline-value:
		tf.deadline = maxDeadline
	default:
		tf.deadline = now + value
	}
	// An absolute time already past expires at once.
	tf.updateLocked(now)
	ready := tf.ticks > 0
	tf.armLocked(now)
	tf.mu.Unlock()
	if ready {
		tf.q.Notify(waiter.EventIn | waiter.EventRdNorm)
	}
	return oldValue, oldInterval
}

// GetTime returns the time to the next expiration (0 when disarmed) and
// the interval (timerfd_gettime).
func (tf *TimerFD) GetTime() (value, interval time.Duration) {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	now := tf.clock()
	tf.updateLocked(now)
	return tf.remainingLocked(now), tf.interval
}

// Read returns the count of expirations since the last read or settime as
// 8 bytes: EINVAL for a shorter buffer, EAGAIN when there has been none.
func (tf *TimerFD) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	if dst.NumBytes() < 8 {
		return 0, unix.EINVAL
	}
	tf.mu.Lock()
	defer tf.mu.Unlock()
	now := tf.clock()
	tf.updateLocked(now)
	if tf.ticks == 0 {
		return 0, unix.EAGAIN
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], tf.ticks)
	if n, err := dst.CopyOut(b[:]); n < 8 {
		if err == nil {
			err = unix.EFAULT
		}
		return 0, err
	}
	tf.ticks = 0
	// Not readable any more: wake waiters at the next expiration.
	tf.armLocked(now)
	return 8, nil
}

// Release stops the wake-up timer.
func (tf *TimerFD) Release(context.Context) {
	tf.mu.Lock()
	tf.deadline = 0
	tf.armLocked(0)
	tf.mu.Unlock()
}

// NoopSeek makes lseek succeed without effect, as on Linux.
func (tf *TimerFD) NoopSeek() {}

// Readiness is readable once the timer has expired since the last read.
func (tf *TimerFD) Readiness(mask waiter.EventMask) waiter.EventMask {
	tf.mu.Lock()
	tf.updateLocked(tf.clock())
	ready := tf.ticks > 0
	tf.mu.Unlock()
	if ready {
		return mask & (waiter.EventIn | waiter.EventRdNorm)
	}
	return 0
}

func (tf *TimerFD) EventRegister(e *waiter.Entry) error { tf.q.EventRegister(e); return nil }
func (tf *TimerFD) EventUnregister(e *waiter.Entry)     { tf.q.EventUnregister(e) }

func (tf *TimerFD) Stat(context.Context) (vfs.Statx, error) {
	return vfs.Statx{Mask: unix.STATX_BASIC_STATS, Mode: 0600, Nlink: 1, Blksize: 4096}, nil
}

// Write is EINVAL, as on Linux (timerfds have no write operation).
func (tf *TimerFD) Write(context.Context, usermem.IOSequence, int64, bool) (int64, int64, error) {
	return 0, 0, unix.EINVAL
}

// Ioctl knows no requests (TFD_IOC_SET_TICKS is not supported).
func (tf *TimerFD) Ioctl(context.Context, vfs.CopyIO, arch.SyscallArguments) (uintptr, error) {
	return 0, unix.ENOTTY
}
