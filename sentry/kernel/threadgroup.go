package kernel

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/limits"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// WaitStatus is a wait(2) status word.
type WaitStatus uint32

// ExitStatus makes the status of exit(code).
func ExitStatus(code int) WaitStatus { return WaitStatus(code&0xff) << 8 }

func (w WaitStatus) Exited() bool     { return w&0x7f == 0 }
func (w WaitStatus) ExitCode() int    { return int(w>>8) & 0xff }
func (w WaitStatus) Signaled() bool   { return w&0x7f != 0 && w&0x7f != 0x7f }
func (w WaitStatus) Signal() int      { return int(w & 0x7f) }
func (w WaitStatus) CoreDumped() bool { return w&0x80 != 0 }

// ShellStatus is the status a shell reports: the exit code, or 128+N.
func (w WaitStatus) ShellStatus() int {
	if w.Signaled() {
		return 128 + w.Signal()
	}
	return w.ExitCode()
}

// ThreadGroup is a process.
type ThreadGroup struct {
	k  *Kernel
	id ThreadID

	// Protected by k.mu.
	tasks    []*Task
	handlers *SignalHandlers
	pending  pendingSignals
	parent   *ThreadGroup
	children map[*ThreadGroup]struct{}
	pgid     ThreadID
	sid      ThreadID
	// tty is the controlling terminal (tty.go).
	tty *TTY
	// exiting: exit_group or a fatal signal; status is the group's.
	exiting bool
	status  WaitStatus
	// zombie: every task gone, waiting to be reaped.
	zombie bool
	// Job control: stopping (a stop is in progress), stopped (complete),
	// and what to report to a waiting parent.
	stopping       bool
	groupStopped   bool // every task has parked for the stop
	stopSignal     int
	stopReport     bool // a stop not yet reported by wait(WUNTRACED)
	continueReport bool // a continue not yet reported by wait(WCONTINUED)
	// childExit wakes waiters in the parent.
	childEvent chan struct{}
	// execing: a task is in execve and others must go.
	execing *Task

	exitSignal int
	limits     *limits.LimitSet
	// subreaper: PR_SET_CHILD_SUBREAPER.
	subreaper bool
	// execed: the process has called execve (setpgid then fails with EACCES).
	execed bool
	// timers
	itimerReal         *time.Timer
	itimerRealInterval time.Duration
	itimerRealDeadline time.Time
	posixTimers        map[int32]*posixTimer
	nextTimerID        int32

	// cputime of exited tasks and reaped children.
	deadUtime, deadStime   time.Duration
	childUtime, childStime time.Duration
	startTime              time.Time
	// proc is what /proc shows that nothing else keeps (procinfo.go).
	proc tgProcState
	// signalQueued wakes signalfd readers (signalfd.go).
	signalQueued waiter.Queue
}

// ID returns the thread group's ID (its PID).
func (tg *ThreadGroup) ID() ThreadID { return tg.id }

// Limits returns the rlimits.
func (tg *ThreadGroup) Limits() *limits.LimitSet { return tg.limits }

// Kernel returns the kernel.
func (tg *ThreadGroup) Kernel() *Kernel { return tg.k }

func (tg *ThreadGroup) leaderLocked() *Task {
	for _, t := range tg.tasks {
		if t.tid == tg.id {
			return t
		}
	}
	if len(tg.tasks) > 0 {
		return tg.tasks[0]
	}
	return nil
}

// Leader returns the group's main task (or any, if it has exited).
func (tg *ThreadGroup) Leader() *Task {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.leaderLocked()
}

// Tasks returns the live tasks.
func (tg *ThreadGroup) Tasks() []*Task {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return append([]*Task(nil), tg.tasks...)
}

// ParentID is the PID of the parent (0 for init).
func (tg *ThreadGroup) ParentID() ThreadID {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if tg.parent == nil {
		return 0
	}
	return tg.parent.id
}

// ProcessGroupID and SessionID.
func (tg *ThreadGroup) ProcessGroupID() ThreadID {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.pgid
}

func (tg *ThreadGroup) SessionID() ThreadID {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.sid
}

// State is the /proc state letter.
func (tg *ThreadGroup) State() string {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	switch {
	case tg.zombie:
		return "Z"
	case tg.stopping:
		return "T"
	}
	return "S"
}

// killGroup makes the whole group exit with status (exit_group, fatal
// signal).
func (t *Task) killGroup(status WaitStatus) {
	t.k.mu.Lock()
	t.tg.killLocked(status)
	t.k.mu.Unlock()
}

func (tg *ThreadGroup) killLocked(status WaitStatus) {
	if !tg.exiting {
		tg.exiting = true
		tg.status = status
	}
	for _, ot := range tg.tasks {
		ot.exiting = true
		ot.interrupt()
	}
}

// killAll ends every process of the sandbox (init died, platform failure).
func (k *Kernel) killAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, tg := range k.tgs {
		if len(tg.tasks) > 0 {
			tg.killLocked(WaitStatus(unix.SIGKILL))
		}
	}
}

// Exit is exit(2): only this task ends.
func (t *Task) Exit(code int) {
	t.k.mu.Lock()
	t.exiting = true
	t.pendingWork.Store(true)
	if len(t.tg.tasks) == 1 && !t.tg.exiting {
		t.tg.status = ExitStatus(code)
	}
	t.k.mu.Unlock()
}

// ExitGroup is exit_group(2).
func (t *Task) ExitGroup(code int) { t.killGroup(ExitStatus(code)) }

// checkStopAndExit runs at the top of the run loop: it parks the task
// during a group stop and reports whether the task must exit.
func (t *Task) checkStopAndExit() bool {
	t.k.mu.Lock()
	for {
		if t.exiting || t.tg.exiting {
			t.k.mu.Unlock()
			return true
		}
		if t.tg.execing != nil && t.tg.execing != t {
			t.exiting = true
			continue
		}
		if t.parkIfFrozenLocked() {
			continue
		}
		if !t.tg.stopping {
			t.k.mu.Unlock()
			return false
		}
		t.stopped = true
		t.tg.checkStopCompleteLocked()
		t.k.mu.Unlock()
		start := time.Now()
		<-t.interruptCh
		t.mark = t.mark.Add(time.Since(start))
		t.k.mu.Lock()
		t.stopped = false
	}
}

// initiateStopLocked begins a group stop for sig.
func (tg *ThreadGroup) initiateStopLocked(sig int) {
	if tg.stopping || tg.exiting {
		return
	}
	tg.stopping = true
	tg.stopSignal = sig
	for _, t := range tg.tasks {
		t.interrupt()
	}
}

// checkStopCompleteLocked notifies the parent once every task is parked.
func (tg *ThreadGroup) checkStopCompleteLocked() {
	for _, t := range tg.tasks {
		if !t.stopped {
			return
		}
	}
	if tg.groupStopped {
		return
	}
	tg.groupStopped = true
	tg.stopReport = true
	tg.continueReport = false
	if p := tg.parent; p != nil {
		act := p.handlers.actions[unix.SIGCHLD-1]
		if act.Flags&arch.SA_NOCLDSTOP == 0 {
			tg.notifyParentLocked(arch.CLD_STOPPED, int32(tg.stopSignal))
		} else {
			p.wakeWaitersLocked()
		}
	}
}

// continueLocked ends a group stop (SIGCONT or SIGKILL).
func (tg *ThreadGroup) continueLocked() {
	if !tg.stopping {
		return
	}
	wasStopped := tg.groupStopped
	tg.stopping = false
	tg.groupStopped = false
	tg.stopReport = false
	for _, t := range tg.tasks {
		t.wake()
	}
	if wasStopped {
		tg.continueReport = true
		if tg.parent != nil {
			act := tg.parent.handlers.actions[unix.SIGCHLD-1]
			if act.Flags&arch.SA_NOCLDSTOP == 0 {
				tg.notifyParentLocked(arch.CLD_CONTINUED, int32(unix.SIGCONT))
			} else {
				tg.parent.wakeWaitersLocked()
			}
		}
	}
}

func (tg *ThreadGroup) wakeWaitersLocked() {
	close(tg.childEvent)
	tg.childEvent = make(chan struct{})
}

// notifyParentLocked sends SIGCHLD with a CLD_* code to the parent and
// wakes its waiters.
func (tg *ThreadGroup) notifyParentLocked(code int32, status int32) {
	p := tg.parent
	if p == nil {
		return
	}
	info := &arch.SignalInfo{Signo: int32(unix.SIGCHLD), Code: code}
	info.SetPID(int32(tg.id))
	info.SetStatus(status)
	if lt := p.leaderLocked(); lt != nil {
		lt.sendSignalLocked(info, true)
	}
	p.wakeWaitersLocked()
}

// exit runs on the task's goroutine once it has left the run loop.
func (t *Task) exit() {
	k := t.k
	t.proc.stage.Store(stageExitMM)
	// Wake a vfork parent.
	if t.vforkDone != nil {
		close(t.vforkDone)
		t.vforkDone = nil
	}
	t.exitRobustList()
	if t.clearChildTID != 0 && t.mm != nil {
		var zero [4]byte
		if _, err := t.CopyOutBytes(t.clearChildTID, zero[:]); err == nil {
			k.futexes.wake(t, t.clearChildTID, false, 1, ^uint32(0))
		}
	}
	t.proc.stage.Store(stageExitFiles)
	t.fs.release()
	if t.mm != nil {
		t.mm.DecUsers()
	}
	t.proc.stage.Store(stageExitPlatform)
	t.pctx.Release()

	t.proc.stage.Store(stageExitTree)
	k.mu.Lock()
	tg := t.tg
	u, s := t.CPUTime()
	tg.deadUtime += u
	tg.deadStime += s
	for i, ot := range tg.tasks {
		if ot == t {
			tg.tasks = append(tg.tasks[:i], tg.tasks[i+1:]...)
			break
		}
	}
	delete(k.tasks, t.tid)
	tg.proc.taskExitedLocked(t)
	if tg.execing != nil {
		// The exec'ing task waits for the others to go.
		tg.execing.wake()
	}
	if len(tg.tasks) == 0 {
		tg.groupExitLocked()
	}
	k.nRunning--
	if k.nRunning == 0 {
		if k.initTG != nil {
			k.exitStatus = k.initTG.status
		}
		close(k.done)
	}
	k.mu.Unlock()
}

// groupExitLocked runs when the last task of tg is gone.
func (tg *ThreadGroup) groupExitLocked() {
	k := tg.k
	if !tg.exiting {
		tg.exiting = true
	}
	// SEM_UNDO before the parent can see the exit.
	k.ipc.ExitProcess(tg, int32(tg.id))
	tg.stopping = false
	if tg.itimerReal != nil {
		tg.itimerReal.Stop()
	}
	for _, pt := range tg.posixTimers {
		pt.stop()
	}
	// Children go to init (or the nearest subreaper).
	reaper := k.initTG
	for p := tg.parent; p != nil; p = p.parent {
		if p.subreaper && !p.exiting {
			reaper = p
			break
		}
	}
	if tg == k.initTG {
		// The PID namespace's init died: everything in it dies.
		for _, otg := range k.tgs {
			if otg != tg && len(otg.tasks) > 0 {
				otg.killLocked(WaitStatus(unix.SIGKILL))
			}
		}
		reaper = nil
	}
	for c := range tg.children {
		c.parent = reaper
		delete(tg.children, c)
		if reaper != nil {
			reaper.children[c] = struct{}{}
			if c.zombie {
				reaper.wakeWaitersLocked()
			}
		}
		c.killOrphanedPgrpLocked(tg)
		// PR_SET_PDEATHSIG of the children's tasks.
		for _, ct := range c.tasks {
			if ct.pdeathSig != 0 {
				ct.sendSignalLocked(&arch.SignalInfo{Signo: int32(ct.pdeathSig)}, true)
			}
		}
	}
	tg.killOrphanedPgrpLocked(nil)
	tg.exitTTYLocked()
	tg.zombie = true
	k.notifyExitLocked(tg)
	p := tg.parent
	if p == nil {
		if tg != k.initTG {
			delete(k.tgs, tg.id)
		}
		return
	}
	// Auto-reap when the parent ignores SIGCHLD or set SA_NOCLDWAIT.
	act := p.handlers.actions[unix.SIGCHLD-1]
	if act.Handler == arch.SIG_IGN || act.Flags&arch.SA_NOCLDWAIT != 0 {
		p.reapLocked(tg)
		p.wakeWaitersLocked()
		return
	}
	code := int32(arch.CLD_EXITED)
	st := int32(tg.status.ExitCode())
	if tg.status.Signaled() {
		code = arch.CLD_KILLED
		if tg.status.CoreDumped() {
			code = arch.CLD_DUMPED
		}
		st = int32(tg.status.Signal())
	}
	if tg.exitSignal != 0 {
		info := &arch.SignalInfo{Signo: int32(tg.exitSignal), Code: code}
		info.SetPID(int32(tg.id))
		info.SetStatus(st)
		if lt := p.leaderLocked(); lt != nil {
			lt.sendSignalLocked(info, true)
		}
	}
	p.wakeWaitersLocked()
}

// reapLocked removes a zombie child.
func (tg *ThreadGroup) reapLocked(c *ThreadGroup) {
	delete(tg.children, c)
	delete(tg.k.tgs, c.id)
	tg.childUtime += c.deadUtime + c.childUtime
	tg.childStime += c.deadStime + c.childStime
}

// WaitOptions select what Wait looks for.
type WaitOptions struct {
	// PID: >0 that child, 0 the caller's process group, -1 any, <-1 the
	// group -PID.
	PID       ThreadID
	Exited    bool // WEXITED
	Stopped   bool // WUNTRACED / WSTOPPED
	Continued bool // WCONTINUED
	NoHang    bool // WNOHANG
	NoWait    bool // WNOWAIT: leave the child waitable
	// Clone selects __WCLONE children; All (__WALL) any.
	Clone, All bool
}

// WaitResult describes what Wait found.
type WaitResult struct {
	PID    ThreadID
	UID    uint32
	Status WaitStatus
	// Code is the CLD_* code; Signo/Status for waitid.
	Code     int32
	SiStatus int32
	Utime    time.Duration
	Stime    time.Duration
}

// Wait is wait4/waitid.
func (t *Task) Wait(opts WaitOptions) (*WaitResult, error) {
	k := t.k
	for {
		k.mu.Lock()
		tg := t.tg
		ch := tg.childEvent
		any := false
		for c := range tg.children {
			if !t.waitMatchesLocked(c, opts) {
				continue
			}
			any = true
			if c.zombie && opts.Exited {
				r := &WaitResult{PID: c.id, Status: c.status, Utime: c.deadUtime + c.childUtime, Stime: c.deadStime + c.childStime}
				r.Code, r.SiStatus = arch.CLD_EXITED, int32(c.status.ExitCode())
				if c.status.Signaled() {
					r.Code, r.SiStatus = arch.CLD_KILLED, int32(c.status.Signal())
					if c.status.CoreDumped() {
						r.Code = arch.CLD_DUMPED
					}
				}
				if !opts.NoWait {
					tg.reapLocked(c)
				}
				k.mu.Unlock()
				return r, nil
			}
			if opts.Stopped && c.stopReport && c.stopping && !c.zombie {
				if !opts.NoWait {
					// Reported once; the group stays stopped.
					c.stopReport = false
				}
				r := &WaitResult{PID: c.id, Status: WaitStatus(c.stopSignal)<<8 | 0x7f, Code: arch.CLD_STOPPED, SiStatus: int32(c.stopSignal)}
				k.mu.Unlock()
				return r, nil
			}
			if opts.Continued && c.continueReport && !c.zombie {
				if !opts.NoWait {
					c.continueReport = false
				}
				r := &WaitResult{PID: c.id, Status: 0xffff, Code: arch.CLD_CONTINUED, SiStatus: int32(unix.SIGCONT)}
				k.mu.Unlock()
				return r, nil
			}
		}
		k.mu.Unlock()
		if !any {
			return nil, unix.ECHILD
		}
		if opts.NoHang {
			return nil, nil
		}
		if err := t.Block(ch, time.Time{}); err == ErrInterrupted {
			return nil, errRestartSys
		}
	}
}

func (t *Task) waitMatchesLocked(c *ThreadGroup, opts WaitOptions) bool {
	switch {
	case opts.PID > 0:
		if c.id != opts.PID {
			return false
		}
	case opts.PID == 0:
		if c.pgid != t.tg.pgid {
			return false
		}
	case opts.PID < -1:
		if c.pgid != -opts.PID {
			return false
		}
	}
	if opts.All {
		return true
	}
	// A "clone" child is one that reports with a signal other than SIGCHLD.
	isClone := c.exitSignal != int(unix.SIGCHLD)
	return isClone == opts.Clone
}

// Children returns the live and zombie children's IDs.
func (tg *ThreadGroup) Children() []ThreadID {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	var out []ThreadID
	for c := range tg.children {
		out = append(out, c.id)
	}
	return out
}

// exitRobustList walks the robust futex list at exit (see
// Documentation/locking/robust-futex-ABI.rst): every futex still held by
// this task gets FUTEX_OWNER_DIED and one waiter woken.
func (t *Task) exitRobustList() {
	if t.robustList == 0 || t.mm == nil {
		return
	}
	readPtr := func(a hostarch.Addr) (hostarch.Addr, bool) {
		var b [8]byte
		if _, err := t.CopyInBytes(a, b[:]); err != nil {
			return 0, false
		}
		return hostarch.Addr(le64(b[:])), true
	}
	head := t.robustList
	entry, ok := readPtr(head)
	if !ok {
		return
	}
	offB, ok := readPtr(head + 8)
	if !ok {
		return
	}
	off := int64(offB)
	pending, _ := readPtr(head + 16)
	handle := func(e hostarch.Addr) {
		uaddr := hostarch.Addr(int64(e&^1) + off)
		t.k.futexes.ownerDied(t, uaddr)
	}
	for i := 0; entry != head && i < 2048; i++ {
		next, ok := readPtr(entry &^ 1)
		if !ok {
			break
		}
		if entry != pending {
			handle(entry)
		}
		entry = next
	}
	if pending != 0 {
		handle(pending)
	}
}
