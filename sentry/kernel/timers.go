package kernel

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
)

var timeNever time.Time

// errRestartSys is what an interrupted blocking call returns.
var errRestartSys error = linuxerr.ERESTARTSYS

// SetITimerReal sets ITIMER_REAL (alarm, setitimer) and returns the old
// remaining time and interval.
func (tg *ThreadGroup) SetITimerReal(value, interval time.Duration) (oldValue, oldInterval time.Duration) {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if tg.itimerReal != nil {
		tg.itimerReal.Stop()
		tg.itimerReal = nil
		if r := time.Until(tg.itimerRealDeadline); r > 0 {
			oldValue = r
		} else {
			oldValue = time.Microsecond
		}
		oldInterval = tg.itimerRealInterval
	}
	tg.itimerRealInterval = interval
	if value > 0 {
		tg.armITimerRealLocked(value)
	}
	return
}

func (tg *ThreadGroup) armITimerRealLocked(d time.Duration) {
	tg.itimerRealDeadline = time.Now().Add(d)
	var timer *time.Timer
	timer = time.AfterFunc(d, func() {
		tg.k.mu.Lock()
		defer tg.k.mu.Unlock()
		if tg.itimerReal != timer {
			return
		}
		tg.itimerReal = nil
		if lt := tg.leaderLocked(); lt != nil {
			lt.sendSignalLocked(&arch.SignalInfo{Signo: int32(unix.SIGALRM), Code: arch.SI_KERNEL}, true)
		}
		if tg.itimerRealInterval > 0 && !tg.exiting {
			tg.armITimerRealLocked(tg.itimerRealInterval)
		}
	})
	tg.itimerReal = timer
}

// ITimerReal returns the remaining time and interval of ITIMER_REAL.
func (tg *ThreadGroup) ITimerReal() (value, interval time.Duration) {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if tg.itimerReal != nil {
		value = time.Until(tg.itimerRealDeadline)
		if value <= 0 {
			value = time.Microsecond
		}
	}
	return value, tg.itimerRealInterval
}

// posixTimer is a timer_create(2) timer on CLOCK_REALTIME/MONOTONIC.
type posixTimer struct {
	mu       sync.Mutex
	tg       *ThreadGroup
	id       int32
	signo    int
	value    uint64
	target   *Task // SIGEV_THREAD_ID, else nil for the process
	none     bool  // SIGEV_NONE
	timer    *time.Timer
	deadline time.Time
	interval time.Duration
	overrun  int32
}

func (pt *posixTimer) stop() {
	pt.mu.Lock()
	if pt.timer != nil {
		pt.timer.Stop()
		pt.timer = nil
	}
	pt.mu.Unlock()
}

func (pt *posixTimer) arm(d time.Duration) {
	pt.deadline = time.Now().Add(d)
	var timer *time.Timer
	timer = time.AfterFunc(d, func() {
		pt.mu.Lock()
		if pt.timer != timer {
			pt.mu.Unlock()
			return
		}
		pt.timer = nil
		if pt.interval > 0 {
			pt.arm(pt.interval)
		}
		pt.mu.Unlock()
		if pt.none {
			return
		}
		info := &arch.SignalInfo{Signo: int32(pt.signo), Code: arch.SI_TIMER}
		info.SetTimerID(pt.id)
		info.SetValue(pt.value)
		k := pt.tg.k
		k.mu.Lock()
		defer k.mu.Unlock()
		if pt.target != nil {
			pt.target.sendSignalLocked(info, false)
		} else if lt := pt.tg.leaderLocked(); lt != nil {
			lt.sendSignalLocked(info, true)
		}
	})
	pt.timer = timer
}

// TimerCreate is timer_create(2). target nil means the whole process.
// valueIsID makes si_value the new timer's ID (timer_create with no
// sigevent).
func (tg *ThreadGroup) TimerCreate(signo int, value uint64, valueIsID bool, target *Task, none bool) (int32, error) {
	if !none && (signo < 1 || signo > NumSignals) {
		return 0, unix.EINVAL
	}
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if tg.posixTimers == nil {
		tg.posixTimers = make(map[int32]*posixTimer)
	}
	id := tg.nextTimerID
	tg.nextTimerID++
	if valueIsID {
		value = uint64(id)
	}
	tg.posixTimers[id] = &posixTimer{tg: tg, id: id, signo: signo, value: value, target: target, none: none}
	return id, nil
}

func (tg *ThreadGroup) timer(id int32) (*posixTimer, error) {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	pt := tg.posixTimers[id]
	if pt == nil {
		return nil, unix.EINVAL
	}
	return pt, nil
}

// TimerSet is timer_settime with relative value; it returns the old setting.
func (tg *ThreadGroup) TimerSet(id int32, value, interval time.Duration) (oldValue, oldInterval time.Duration, err error) {
	pt, err := tg.timer(id)
	if err != nil {
		return 0, 0, err
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.timer != nil {
		oldValue = time.Until(pt.deadline)
		pt.timer.Stop()
		pt.timer = nil
	}
	oldInterval = pt.interval
	pt.interval = interval
	if value > 0 {
		pt.arm(value)
	}
	return oldValue, oldInterval, nil
}

// TimerGet is timer_gettime.
func (tg *ThreadGroup) TimerGet(id int32) (value, interval time.Duration, err error) {
	pt, err := tg.timer(id)
	if err != nil {
		return 0, 0, err
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.timer != nil {
		value = time.Until(pt.deadline)
		if value <= 0 {
			value = 1
		}
	}
	return value, pt.interval, nil
}

// TimerDelete is timer_delete.
func (tg *ThreadGroup) TimerDelete(id int32) error {
	tg.k.mu.Lock()
	pt := tg.posixTimers[id]
	delete(tg.posixTimers, id)
	tg.k.mu.Unlock()
	if pt == nil {
		return unix.EINVAL
	}
	pt.stop()
	return nil
}

// TimerOverrun is timer_getoverrun.
func (tg *ThreadGroup) TimerOverrun(id int32) (int32, error) {
	pt, err := tg.timer(id)
	if err != nil {
		return 0, err
	}
	return pt.overrun, nil
}

// negErrno is the rax image of a failed syscall.
func negErrno(e unix.Errno) uint64 { return uint64(-int64(e)) }
