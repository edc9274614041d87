package linux

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/timerfd"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_TIMERFD_CREATE, Full, TimerfdCreate)
	reg(unix.SYS_TIMERFD_SETTIME, Partial, TimerfdSettime,
		"TFD_TIMER_CANCEL_ON_SET is accepted but never cancels: the sandbox's CLOCK_REALTIME cannot be set from inside")
	reg(unix.SYS_TIMERFD_GETTIME, Full, TimerfdGettime)
}

// capWakeAlarm is CAP_WAKE_ALARM, needed for the *_ALARM clocks.
const capWakeAlarm = 35

// TimerfdCreate is timerfd_create(2). The sandbox never suspends, so
// BOOTTIME is MONOTONIC and the alarm clocks are their plain clocks.
func TimerfdCreate(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id, flags := args[0].Int(), args[1].Uint()
	if flags&^(timerfd.TFD_CLOEXEC|timerfd.TFD_NONBLOCK) != 0 {
		return 0, unix.EINVAL
	}
	var clock timerfd.Clock
	switch id {
	case unix.CLOCK_REALTIME, unix.CLOCK_REALTIME_ALARM:
		clock = kernel.RealtimeNow
	case unix.CLOCK_MONOTONIC, unix.CLOCK_BOOTTIME, unix.CLOCK_BOOTTIME_ALARM:
		clock = kernel.MonotonicNow
	default:
		return 0, unix.EINVAL
	}
	if (id == unix.CLOCK_REALTIME_ALARM || id == unix.CLOCK_BOOTTIME_ALARM) && !t.Credentials().HasCapability(capWakeAlarm) {
		return 0, unix.EPERM
	}
	f := timerfd.New(clock, flags)
	defer f.DecRef(t)
	fd, err := t.FDTable().NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&timerfd.TFD_CLOEXEC != 0}, t.FileLimit())
	return uintptr(fd), err
}

// timerFile returns the timerfd at fd: EBADF if fd is not open, EINVAL if
// it is not a timerfd.
func timerFile(t *kernel.Task, fd int32) (*timerfd.TimerFD, func(), error) {
	f, err := getFile(t, fd)
	if err != nil {
		return nil, nil, err
	}
	tf := timerfd.FromFD(f)
	if tf == nil {
		f.DecRef(t)
		return nil, nil, unix.EINVAL
	}
	return tf, func() { f.DecRef(t) }, nil
}

// copyOutItimerspec writes struct itimerspec {it_interval, it_value}.
func copyOutItimerspec(t *kernel.Task, addr hostarch.Addr, value, interval time.Duration) error {
	return copyOutLE(t, addr, int64(interval/time.Second), int64(interval%time.Second),
		int64(value/time.Second), int64(value%time.Second))
}

// parseTimespec decodes a struct timespec: EINVAL for a negative or
// denormal one; seconds past what a Duration holds saturate.
func parseTimespec(b []byte) (time.Duration, error) {
	sec := int64(binary.LittleEndian.Uint64(b[0:]))
	nsec := int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || nsec < 0 || nsec >= 1e9 {
		return 0, unix.EINVAL
	}
	if sec > (1<<63-1)/int64(time.Second)-1 {
		return time.Duration(1<<63 - 1), nil
	}
	return time.Duration(sec)*time.Second + time.Duration(nsec), nil
}

// TimerfdSettime is timerfd_settime(2).
func TimerfdSettime(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	// Linux's order: copy-in (EFAULT), flags and values (EINVAL), then fd.
	flags := args[1].Int()
	newAddr := args[2].Pointer()
	var raw [32]byte
	if _, err := t.CopyInBytes(newAddr, raw[:]); err != nil {
		return 0, unix.EFAULT
	}
	interval, err := parseTimespec(raw[:16])
	if err != nil {
		return 0, err
	}
	value, err := parseTimespec(raw[16:])
	if err != nil {
		return 0, err
	}
	if flags&^(timerfd.TFD_TIMER_ABSTIME|timerfd.TFD_TIMER_CANCEL_ON_SET) != 0 {
		return 0, unix.EINVAL
	}
	tf, done, err := timerFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer done()
	oldValue, oldInterval := tf.SetTime(value, interval, flags&timerfd.TFD_TIMER_ABSTIME != 0)
	if old := args[3].Pointer(); old != 0 {
		if err := copyOutItimerspec(t, old, oldValue, oldInterval); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

// TimerfdGettime is timerfd_gettime(2).
func TimerfdGettime(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	tf, done, err := timerFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer done()
	value, interval := tf.GetTime()
	if err := copyOutItimerspec(t, args[1].Pointer(), value, interval); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}
