package kernel

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// SetClearChildTID is set_tid_address.
func (t *Task) SetClearChildTID(a hostarch.Addr) { t.clearChildTID = a }

// SetRobustList is set_robust_list.
func (t *Task) SetRobustList(a hostarch.Addr) { t.robustList = a }

// RobustList returns the robust list head.
func (t *Task) RobustList() hostarch.Addr { return t.robustList }

// SetParentDeathSignal is PR_SET_PDEATHSIG.
func (t *Task) SetParentDeathSignal(sig int) { t.pdeathSig = sig }

// ParentDeathSignal is PR_GET_PDEATHSIG.
func (t *Task) ParentDeathSignal() int { return t.pdeathSig }

// SetSubreaper is PR_SET_CHILD_SUBREAPER.
func (tg *ThreadGroup) SetSubreaper(v bool) {
	tg.k.mu.Lock()
	tg.subreaper = v
	tg.k.mu.Unlock()
}

// Subreaper is PR_GET_CHILD_SUBREAPER.
func (tg *ThreadGroup) Subreaper() bool {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.subreaper
}

// CPUTimes returns the user and system time of the group's tasks, live
// and dead.
func (tg *ThreadGroup) CPUTimes() (user, sys time.Duration) {
	tg.k.mu.Lock()
	user, sys = tg.deadUtime, tg.deadStime
	tasks := append([]*Task(nil), tg.tasks...)
	tg.k.mu.Unlock()
	for _, t := range tasks {
		u, s := t.CPUTime()
		user += u
		sys += s
	}
	return
}

// ChildCPUTimes returns the CPU time of reaped children.
func (tg *ThreadGroup) ChildCPUTimes() (user, sys time.Duration) {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.childUtime, tg.childStime
}

// StartTime is when the process was created.
func (tg *ThreadGroup) StartTime() time.Time { return tg.startTime }

// ThreadGroupByID returns a thread group (live or zombie).
func (k *Kernel) ThreadGroupByID(id ThreadID) *ThreadGroup {
	k.mu.Lock()
	defer k.mu.Unlock()
	tg := k.tgs[id]
	if tg == nil || (len(tg.tasks) == 0 && !tg.zombie) {
		return nil
	}
	return tg
}

// TotalMemory is the memory the sandbox reports (its limit).
func (k *Kernel) TotalMemory() uint64 { return k.totalMemory }

// hostTotalMemory is read once at start: the sentry's seccomp filter does
// not allow sysinfo.
func hostTotalMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		return uint64(si.Totalram) * uint64(si.Unit)
	}
	return 1 << 30
}

// SetProcessGroup is setpgid(pid, pgid).
func (t *Task) SetProcessGroup(pid, pgid ThreadID) error {
	if pgid < 0 {
		return unix.EINVAL
	}
	k := t.k
	k.mu.Lock()
	defer k.mu.Unlock()
	target := t.tg
	if pid != 0 && pid != t.tg.id {
		target = k.tgs[pid]
		if target == nil || target.parent != t.tg || target.zombie {
			return unix.ESRCH
		}
		if target.sid != t.tg.sid {
			return unix.EPERM
		}
		if target.execed {
			return unix.EACCES
		}
	}
	if target.sid == target.id {
		return unix.EPERM // a session leader cannot move
	}
	if pgid == 0 {
		pgid = target.id
	}
	if pgid != target.id {
		// The group must exist in the caller's session.
		found := false
		for _, o := range k.tgs {
			if o.pgid == pgid && o.sid == t.tg.sid && !o.zombie {
				found = true
				break
			}
		}
		if !found {
			return unix.EPERM
		}
	}
	target.pgid = pgid
	return nil
}

// CreateSession is setsid.
func (tg *ThreadGroup) CreateSession() (ThreadID, error) {
	k := tg.k
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, o := range k.tgs {
		if o.pgid == tg.id && !o.zombie {
			return 0, unix.EPERM
		}
	}
	tg.sid = tg.id
	tg.pgid = tg.id
	tg.tty = nil
	return tg.id, nil
}
