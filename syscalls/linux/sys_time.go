package linux

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
)

// monotonicNow is the sandbox's CLOCK_MONOTONIC: the kernel's timekeeper
// keeps it (and the vDSO computes the same).
func monotonicNow() time.Duration { return kernel.MonotonicNow() }

// clockNow reads clock id for t.
func clockNow(t *kernel.Task, id int32) (time.Duration, error) {
	switch id {
	case unix.CLOCK_REALTIME, unix.CLOCK_REALTIME_COARSE, unix.CLOCK_TAI:
		return kernel.RealtimeNow(), nil
	case unix.CLOCK_MONOTONIC, unix.CLOCK_MONOTONIC_COARSE, unix.CLOCK_MONOTONIC_RAW, unix.CLOCK_BOOTTIME:
		return monotonicNow(), nil
	case unix.CLOCK_PROCESS_CPUTIME_ID:
		var total time.Duration
		for _, ot := range t.ThreadGroup().Tasks() {
			u, s := ot.CPUTime()
			total += u + s
		}
		return total, nil
	case unix.CLOCK_THREAD_CPUTIME_ID:
		u, s := t.CPUTime()
		return u + s, nil
	}
	return 0, unix.EINVAL
}

func copyOutTimespec(t *kernel.Task, addr hostarch.Addr, d time.Duration) error {
	return copyOutLE(t, addr, int64(d/time.Second), int64(d%time.Second))
}

func copyInTimespec(t *kernel.Task, addr hostarch.Addr) (time.Duration, error) {
	var b [16]byte
	if _, err := t.CopyInBytes(addr, b[:]); err != nil {
		return 0, unix.EFAULT
	}
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

func copyInTimeval(t *kernel.Task, addr hostarch.Addr) (time.Duration, error) {
	var b [16]byte
	if _, err := t.CopyInBytes(addr, b[:]); err != nil {
		return 0, unix.EFAULT
	}
	sec := int64(binary.LittleEndian.Uint64(b[0:]))
	usec := int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || usec < 0 || usec >= 1e6 {
		return 0, unix.EINVAL
	}
	return time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond, nil
}

func copyOutTimeval(t *kernel.Task, addr hostarch.Addr, d time.Duration) error {
	return copyOutLE(t, addr, int64(d/time.Second), int64((d%time.Second)/time.Microsecond))
}

func ClockGettime(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	now, err := clockNow(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	return 0, copyOutTimespec(t, args[1].Pointer(), now)
}

func ClockGetres(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if _, err := clockNow(t, args[0].Int()); err != nil {
		return 0, err
	}
	if args[1].Pointer() == 0 {
		return 0, nil
	}
	res := time.Nanosecond
	switch args[0].Int() {
	case unix.CLOCK_REALTIME_COARSE, unix.CLOCK_MONOTONIC_COARSE:
		res = 4 * time.Millisecond
	}
	return 0, copyOutTimespec(t, args[1].Pointer(), res)
}

func Gettimeofday(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if tv := args[0].Pointer(); tv != 0 {
		if err := copyOutTimeval(t, tv, kernel.RealtimeNow()); err != nil {
			return 0, unix.EFAULT
		}
	}
	if tz := args[1].Pointer(); tz != 0 {
		if err := copyOutLE(t, tz, int32(0), int32(0)); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func Time(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	now := int64(kernel.RealtimeNow() / time.Second)
	if p := args[0].Pointer(); p != 0 {
		if err := copyOutU64(t, p, uint64(now)); err != nil {
			return 0, unix.EFAULT
		}
	}
	return uintptr(now), nil
}

// sleepUntil blocks until clock id (the sandbox's, which the vDSO reads
// too) reaches target. The wait itself runs on Go's timers, which follow
// the host's clock; the sandbox clock is steered towards it but may run a
// little slow, so the clock is read again on waking and the sleep goes on
// until it has really passed target: a sleep never ends early as the
// application measures it. On interruption it arranges for
// restart_syscall to continue the same sleep and reports the remaining
// time at rem.
func sleepUntil(t *kernel.Task, id int32, target time.Duration, rem hostarch.Addr) (uintptr, error) {
	for {
		now, err := clockNow(t, id)
		if err != nil {
			return 0, err
		}
		if now >= target {
			return 0, nil
		}
		err = t.Block(nil, time.Now().Add(target-now))
		if err == kernel.ErrTimedOut || err == nil {
			continue
		}
		if rem != 0 {
			now, _ := clockNow(t, id)
			if err := copyOutTimespec(t, rem, max(target-now, 0)); err != nil {
				return 0, unix.EFAULT
			}
		}
		t.SetRestartBlock(func(t *kernel.Task) (uintptr, error) { return sleepUntil(t, id, target, rem) })
		return 0, linuxerr.ERESTART_RESTARTBLOCK
	}
}

func Nanosleep(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	d, err := copyInTimespec(t, args[0].Pointer())
	if err != nil {
		return 0, err
	}
	return sleepUntil(t, unix.CLOCK_MONOTONIC, monotonicNow()+d, args[1].Pointer())
}

func ClockNanosleep(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id, flags := args[0].Int(), args[1].Int()
	switch id {
	case unix.CLOCK_REALTIME, unix.CLOCK_MONOTONIC, unix.CLOCK_BOOTTIME, unix.CLOCK_TAI, unix.CLOCK_PROCESS_CPUTIME_ID:
	default:
		// CLOCK_THREAD_CPUTIME_ID and unknown clocks.
		return 0, unix.EINVAL
	}
	d, err := copyInTimespec(t, args[2].Pointer())
	if err != nil {
		return 0, err
	}
	now, err := clockNow(t, id)
	if err != nil {
		return 0, err
	}
	target := now + d
	if flags&unix.TIMER_ABSTIME != 0 {
		target = d
	}
	if id == unix.CLOCK_PROCESS_CPUTIME_ID {
		// Waited for as elapsed time from now: it never ends early, as
		// a sleeping process's CPU time advances no faster than that.
		id, target = unix.CLOCK_MONOTONIC, monotonicNow()+(target-now)
	}
	rem := args[3].Pointer()
	if flags&unix.TIMER_ABSTIME != 0 {
		rem = 0
	}
	return sleepUntil(t, id, target, rem)
}

func RestartSyscall(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return t.RestartSyscall()
}

func Times(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	const hz = 100
	ticks := func(d time.Duration) uint64 { return uint64(d / (time.Second / hz)) }
	if p := args[0].Pointer(); p != 0 {
		u, s := t.ThreadGroup().CPUTimes()
		cu, cs := t.ThreadGroup().ChildCPUTimes()
		if err := copyOutLE(t, p, ticks(u), ticks(s), ticks(cu), ticks(cs)); err != nil {
			return 0, unix.EFAULT
		}
	}
	return uintptr(ticks(t.Kernel().Uptime())), nil
}

func Getrusage(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	var u, s time.Duration
	switch args[0].Int() {
	case unix.RUSAGE_SELF:
		u, s = t.ThreadGroup().CPUTimes()
	case unix.RUSAGE_CHILDREN:
		u, s = t.ThreadGroup().ChildCPUTimes()
	case unix.RUSAGE_THREAD:
		u, s = t.CPUTime()
	default:
		return 0, unix.EINVAL
	}
	b := make([]byte, 144)
	binary.LittleEndian.PutUint64(b[0:], uint64(u/time.Second))
	binary.LittleEndian.PutUint64(b[8:], uint64((u%time.Second)/time.Microsecond))
	binary.LittleEndian.PutUint64(b[16:], uint64(s/time.Second))
	binary.LittleEndian.PutUint64(b[24:], uint64((s%time.Second)/time.Microsecond))
	if rss := t.MemoryManager().ResidentSize(); rss > 0 {
		binary.LittleEndian.PutUint64(b[32:], rss/1024) // ru_maxrss (KiB)
	}
	_, err := t.CopyOutBytes(args[1].Pointer(), b)
	return 0, err
}

func Alarm(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	old, _ := t.ThreadGroup().SetITimerReal(time.Duration(args[0].Uint())*time.Second, 0)
	secs := uintptr((old + time.Second/2) / time.Second)
	if old > 0 && secs == 0 {
		secs = 1
	}
	return secs, nil
}

func Getitimer(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	switch args[0].Int() {
	case unix.ITIMER_REAL:
		v, i := t.ThreadGroup().ITimerReal()
		if err := copyOutLE(t, args[1].Pointer(), int64(i/time.Second), int64((i%time.Second)/time.Microsecond),
			int64(v/time.Second), int64((v%time.Second)/time.Microsecond)); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	case unix.ITIMER_VIRTUAL, unix.ITIMER_PROF:
		return 0, copyOutLE(t, args[1].Pointer(), int64(0), int64(0), int64(0), int64(0))
	}
	return 0, unix.EINVAL
}

func Setitimer(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	var interval, value time.Duration
	if p := args[1].Pointer(); p != 0 {
		var err error
		if interval, err = copyInTimeval(t, p); err != nil {
			return 0, err
		}
		if value, err = copyInTimeval(t, p+16); err != nil {
			return 0, err
		}
	}
	switch args[0].Int() {
	case unix.ITIMER_REAL:
	case unix.ITIMER_VIRTUAL, unix.ITIMER_PROF:
		return 0, nil // accepted; CPU-time timers do not fire yet
	default:
		return 0, unix.EINVAL
	}
	ov, oi := t.ThreadGroup().SetITimerReal(value, interval)
	if p := args[2].Pointer(); p != 0 {
		if err := copyOutLE(t, p, int64(oi/time.Second), int64((oi%time.Second)/time.Microsecond),
			int64(ov/time.Second), int64((ov%time.Second)/time.Microsecond)); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func TimerCreate(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	switch args[0].Int() {
	case unix.CLOCK_REALTIME, unix.CLOCK_MONOTONIC, unix.CLOCK_BOOTTIME:
	default:
		return 0, unix.EINVAL
	}
	signo := int(unix.SIGALRM)
	var value uint64
	valueIsID := true // with no sigevent, si_value is the timer's ID
	var target *kernel.Task
	none := false
	if p := args[1].Pointer(); p != 0 {
		// struct sigevent: sigev_value (8), sigev_signo (4), sigev_notify (4), _tid (4).
		b := make([]byte, 64)
		if _, err := t.CopyInBytes(p, b); err != nil {
			return 0, unix.EFAULT
		}
		value = binary.LittleEndian.Uint64(b[0:])
		valueIsID = false
		signo = int(int32(binary.LittleEndian.Uint32(b[8:])))
		notify := int32(binary.LittleEndian.Uint32(b[12:]))
		switch notify {
		case 0: // SIGEV_SIGNAL
		case 1: // SIGEV_NONE
			none = true
		case 4: // SIGEV_THREAD_ID
			tid := kernel.ThreadID(int32(binary.LittleEndian.Uint32(b[16:])))
			target = t.Kernel().TaskByID(tid)
			if target == nil || target.ThreadGroup() != t.ThreadGroup() {
				return 0, unix.EINVAL
			}
		default:
			return 0, unix.EINVAL
		}
	}
	id, err := t.ThreadGroup().TimerCreate(signo, value, valueIsID, target, none)
	if err != nil {
		return 0, err
	}
	return 0, copyOutU32(t, args[2].Pointer(), uint32(id))
}

func TimerSettime(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id := args[0].Int()
	interval, err := copyInTimespec(t, args[2].Pointer())
	if err != nil {
		return 0, err
	}
	value, err := copyInTimespec(t, args[2].Pointer()+16)
	if err != nil {
		return 0, err
	}
	if args[1].Int()&unix.TIMER_ABSTIME != 0 && value > 0 {
		now, _ := clockNow(t, unix.CLOCK_REALTIME)
		value -= now
		if value <= 0 {
			value = 1
		}
	}
	ov, oi, err := t.ThreadGroup().TimerSet(id, value, interval)
	if err != nil {
		return 0, err
	}
	if p := args[3].Pointer(); p != 0 {
		if err := copyOutLE(t, p, int64(oi/time.Second), int64(oi%time.Second), int64(ov/time.Second), int64(ov%time.Second)); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func TimerGettime(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	v, i, err := t.ThreadGroup().TimerGet(args[0].Int())
	if err != nil {
		return 0, err
	}
	return 0, copyOutLE(t, args[1].Pointer(), int64(i/time.Second), int64(i%time.Second), int64(v/time.Second), int64(v%time.Second))
}

func TimerDelete(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.ThreadGroup().TimerDelete(args[0].Int())
}

func TimerGetoverrun(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	n, err := t.ThreadGroup().TimerOverrun(args[0].Int())
	return uintptr(n), err
}

func init() {
	reg(unix.SYS_CLOCK_GETTIME, Full, ClockGettime)
	reg(unix.SYS_CLOCK_GETRES, Full, ClockGetres)
	reg(unix.SYS_GETTIMEOFDAY, Full, Gettimeofday)
	reg(unix.SYS_TIME, Full, Time)
	reg(unix.SYS_NANOSLEEP, Full, Nanosleep)
	reg(unix.SYS_CLOCK_NANOSLEEP, Full, ClockNanosleep)
	reg(unix.SYS_RESTART_SYSCALL, Full, RestartSyscall)
	reg(unix.SYS_TIMES, Full, Times)
	reg(unix.SYS_GETRUSAGE, Partial, Getrusage, "CPU times and maxrss only")
	reg(unix.SYS_ALARM, Full, Alarm)
	reg(unix.SYS_GETITIMER, Partial, Getitimer, "ITIMER_REAL only")
	reg(unix.SYS_SETITIMER, Partial, Setitimer, "ITIMER_REAL only; VIRTUAL/PROF accepted but never fire")
	reg(unix.SYS_TIMER_CREATE, Partial, TimerCreate, "SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID on REALTIME/MONOTONIC/BOOTTIME")
	reg(unix.SYS_TIMER_SETTIME, Full, TimerSettime)
	reg(unix.SYS_TIMER_GETTIME, Full, TimerGettime)
	reg(unix.SYS_TIMER_DELETE, Full, TimerDelete)
	reg(unix.SYS_TIMER_GETOVERRUN, Partial, TimerGetoverrun, "always 0")
}
