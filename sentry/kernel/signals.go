package kernel

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
)

// SignalSet is a sigset_t: bit N-1 for signal N.
type SignalSet uint64

// SignalSetOf returns the set holding sig.
func SignalSetOf(sig int) SignalSet { return SignalSet(1) << uint(sig-1) }

// NumSignals is _NSIG.
const NumSignals = 64

// SIGRTMIN is the first real-time signal.
const SIGRTMIN = 32

// unblockable can never be blocked or caught.
var unblockable = SignalSetOf(int(unix.SIGKILL)) | SignalSetOf(int(unix.SIGSTOP))

// pendingSignals is a set of queued signals: one slot per standard signal,
// a queue per real-time one.
type pendingSignals struct {
	set   SignalSet
	queue [NumSignals][]*arch.SignalInfo
}

func (p *pendingSignals) enqueue(info *arch.SignalInfo) bool {
	sig := int(info.Signo)
	if sig < SIGRTMIN && p.set&SignalSetOf(sig) != 0 {
		return false // standard signals do not queue
	}
	p.queue[sig-1] = append(p.queue[sig-1], info)
	p.set |= SignalSetOf(sig)
	return true
}

func (p *pendingSignals) dequeue(mask SignalSet) *arch.SignalInfo {
	avail := p.set &^ mask
	if avail == 0 {
		return nil
	}
	// Lowest-numbered first, as Linux (synchronous signals first is
	// approximated by this order for SIGSEGV/SIGBUS/SIGILL/SIGFPE < others).
	for sig := 1; sig <= NumSignals; sig++ {
		if avail&SignalSetOf(sig) == 0 {
			continue
		}
		q := p.queue[sig-1]
		info := q[0]
		p.queue[sig-1] = q[1:]
		if len(p.queue[sig-1]) == 0 {
			p.queue[sig-1] = nil
			p.set &^= SignalSetOf(sig)
		}
		return info
	}
	return nil
}

func (p *pendingSignals) discard(sig int) {
	p.queue[sig-1] = nil
	p.set &^= SignalSetOf(sig)
}

// SignalHandlers are the actions of a thread group (shared by CLONE_SIGHAND).
type SignalHandlers struct {
	actions [NumSignals]arch.SigAction
}

func (sh *SignalHandlers) fork() *SignalHandlers {
	n := *sh
	return &n
}

// defaultAction of a signal.
type defaultAction int

const (
	actTerm defaultAction = iota
	actCore
	actIgnore
	actStop
	actCont
)

func defaultActionOf(sig int) defaultAction {
	switch unix.Signal(sig) {
	case unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGBUS, unix.SIGFPE,
		unix.SIGSEGV, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGSYS:
		return actCore
	case unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH:
		return actIgnore
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return actStop
	case unix.SIGCONT:
		return actCont
	}
	return actTerm
}

// isIgnoredLocked reports whether sig would be discarded on arrival.
func (tg *ThreadGroup) isIgnoredLocked(sig int) bool {
	act := tg.handlers.actions[sig-1]
	if act.Handler == arch.SIG_IGN {
		return true
	}
	return act.Handler == arch.SIG_DFL && defaultActionOf(sig) == actIgnore
}

// SendSignal queues a signal for the task (thread-directed).
func (t *Task) SendSignal(info *arch.SignalInfo) error {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	return t.sendSignalLocked(info, false)
}

// SendSignal sends a process-directed signal to tg.
func (tg *ThreadGroup) SendSignal(info *arch.SignalInfo) error {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if tg.leaderLocked() == nil {
		return unix.ESRCH
	}
	return tg.leaderLocked().sendSignalLocked(info, true)
}

func (t *Task) sendSignalLocked(info *arch.SignalInfo, group bool) error {
	sig := int(info.Signo)
	if sig == 0 {
		return nil
	}
	if sig < 1 || sig > NumSignals {
		return unix.EINVAL
	}
	tg := t.tg
	if tg.exiting || len(tg.tasks) == 0 {
		return nil
	}
	// Stop and continue signals affect each other on arrival.
	switch defaultActionOf(sig) {
	case actStop:
		tg.discardLocked(int(unix.SIGCONT))
	case actCont:
		for _, s := range []unix.Signal{unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU} {
			tg.discardLocked(int(s))
		}
		tg.continueLocked()
	}
	if sig == int(unix.SIGKILL) {
		tg.continueLocked()
	}
	if tg.isIgnoredLocked(sig) && t.signalMask&SignalSetOf(sig) == 0 {
		return nil
	}
	if group {
		if !tg.pending.enqueue(info) {
			return nil
		}
		tg.notifySignalQueuedLocked()
		// Wake a task that can take it.
		for _, ot := range tg.tasks {
			if ot.signalMask&SignalSetOf(sig) == 0 || sig == int(unix.SIGKILL) {
				ot.interrupt()
				if sig != int(unix.SIGKILL) {
					break
				}
			}
		}
		return nil
	}
	if !t.pending.enqueue(info) {
		return nil
	}
	tg.notifySignalQueuedLocked()
	if t.signalMask&SignalSetOf(sig) == 0 || sig == int(unix.SIGKILL) {
		t.interrupt()
	}
	return nil
}

func (tg *ThreadGroup) discardLocked(sig int) {
	tg.pending.discard(sig)
	for _, t := range tg.tasks {
		t.pending.discard(sig)
	}
}

// hasDeliverableSignalLocked reports whether an unblocked signal is pending.
func (t *Task) hasDeliverableSignalLocked() bool {
	return (t.pending.set|t.tg.pending.set)&^t.signalMask != 0
}

// killedLocked reports whether the task is on its way out: exiting, or
// with a SIGKILL pending (Linux's fatal_signal_pending), for waits that
// only a kill may end.
func (t *Task) killedLocked() bool {
	return t.exiting || t.tg.exiting || (t.pending.set|t.tg.pending.set)&SignalSetOf(int(unix.SIGKILL)) != 0
}

// HasPendingSignal is for handlers that must return EINTR before blocking.
func (t *Task) HasPendingSignal() bool {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	return t.hasDeliverableSignalLocked()
}

// forceSignal delivers a synchronous signal from a fault: if it is blocked
// or ignored, its action is reset to default so that it kills, as Linux's
// force_sig_info does.
func (t *Task) forceSignal(info *arch.SignalInfo) {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	sig := int(info.Signo)
	act := &t.tg.handlers.actions[sig-1]
	if t.signalMask&SignalSetOf(sig) != 0 || act.Handler == arch.SIG_IGN {
		act.Handler = arch.SIG_DFL
		t.signalMask &^= SignalSetOf(sig)
	}
	t.pending.enqueue(info)
	t.pendingWork.Store(true)
}

// SignalMask returns the blocked set.
func (t *Task) SignalMask() SignalSet {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	return t.signalMask
}

// SetSignalMask sets the blocked set (SIGKILL and SIGSTOP stay unblocked).
func (t *Task) SetSignalMask(m SignalSet) {
	t.k.mu.Lock()
	t.signalMask = m &^ unblockable
	deliverable := t.hasDeliverableSignalLocked()
	t.k.mu.Unlock()
	if deliverable {
		t.wake()
	}
}

// SetSavedSignalMask installs a temporary mask (ppoll, pselect6,
// epoll_pwait, sigsuspend): the old one is restored after the signal that
// ends the call is delivered, or when the syscall returns.
func (t *Task) SetSavedSignalMask(m SignalSet) {
	t.k.mu.Lock()
	t.savedMask = t.signalMask
	t.haveSavedMask = true
	t.signalMask = m &^ unblockable
	t.k.mu.Unlock()
}

// RestoreSavedSignalMask undoes SetSavedSignalMask when the call returns
// without a signal to deliver.
func (t *Task) RestoreSavedSignalMask() {
	t.k.mu.Lock()
	if t.haveSavedMask && !t.hasDeliverableSignalLocked() {
		t.signalMask = t.savedMask
		t.haveSavedMask = false
	}
	t.k.mu.Unlock()
}

// PendingSignals returns the pending set (sigpending).
func (t *Task) PendingSignals() SignalSet {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	return (t.pending.set | t.tg.pending.set) & t.signalMask
}

// SigAction reads and/or sets the action of sig.
func (t *Task) SigAction(sig int, act *arch.SigAction) (arch.SigAction, error) {
	if sig < 1 || sig > NumSignals {
		return arch.SigAction{}, unix.EINVAL
	}
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	old := t.tg.handlers.actions[sig-1]
	if act != nil {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			return arch.SigAction{}, unix.EINVAL
		}
		a := *act
		a.Mask &^= uint64(unblockable)
		t.tg.handlers.actions[sig-1] = a
		// Setting SIG_IGN (or default-ignore) discards pending instances.
		if t.tg.isIgnoredLocked(sig) {
			t.tg.discardLocked(sig)
		}
	}
	return old, nil
}

// SignalStack returns the alternate signal stack.
func (t *Task) SignalStack() arch.SignalStack {
	s := t.altStack
	if s.Flags&arch.SS_DISABLE == 0 && s.Contains(t.ac.Regs.Rsp) {
		s.Flags |= arch.SS_ONSTACK
	}
	if s.Size == 0 && s.Flags&arch.SS_ONSTACK == 0 {
		s.Flags = arch.SS_DISABLE
	}
	return s
}

// OnSignalStack reports whether the task runs on its alternate stack.
func (t *Task) OnSignalStack() bool { return t.altStack.Contains(t.ac.Regs.Rsp) }

// SetSignalStack sets it.
func (t *Task) SetSignalStack(s arch.SignalStack) { t.altStack = s }

// deliverSignals delivers one pending signal, if any, as Linux does at
// every return to user mode; a syscall interrupted by it fails with EINTR
// or restarts according to its restart code and the handler's SA_RESTART.
func (t *Task) deliverSignals() {
	t.k.mu.Lock()
	for {
		info := t.pending.dequeue(t.signalMask)
		if info == nil {
			info = t.tg.pending.dequeue(t.signalMask)
		}
		if info == nil {
			break
		}
		sig := int(info.Signo)
		act := t.tg.handlers.actions[sig-1]
		switch {
		case act.Handler == arch.SIG_IGN:
			continue
		case act.Handler == arch.SIG_DFL:
			switch defaultActionOf(sig) {
			case actIgnore, actCont:
				continue
			case actStop:
				// Orphaned process groups ignore SIGTSTP/TTIN/TTOU;
				// SIGSTOP always stops.
				if t.tg.stopIgnoredLocked(sig) {
					continue
				}
				t.tg.initiateStopLocked(sig)
				t.k.mu.Unlock()
				return
			case actCore:
				t.k.mu.Unlock()
				t.finishRestart(false, act)
				t.killGroup(WaitStatus(sig) | 0x80)
				return
			default:
				t.k.mu.Unlock()
				t.finishRestart(false, act)
				t.killGroup(WaitStatus(sig))
				return
			}
		}
		// A handler: build its frame.
		t.k.mu.Unlock()
		t.finishRestart(true, act)
		if err := t.setupFrame(info, act); err != nil {
			// Could not write the frame: SIGSEGV, forced.
			t.k.Log.Printf("task %d: cannot deliver signal %d: %v", t.tid, sig, err)
			t.killGroup(WaitStatus(unix.SIGSEGV) | 0x80)
		}
		return
	}
	// No signal: an interrupted call restarts transparently.
	if t.haveSavedMask {
		t.signalMask = t.savedMask
		t.haveSavedMask = false
	}
	t.k.mu.Unlock()
	t.finishRestart(false, arch.SigAction{})
}

// finishRestart resolves a pending restart code in rax: handler says a
// handler is about to run.
func (t *Task) finishRestart(handler bool, act arch.SigAction) {
	if t.ac.Regs.Orig_rax == ^uint64(0) {
		return
	}
	rv := int64(t.ac.Regs.Rax)
	code := unix.Errno(-rv)
	if rv >= 0 || !linuxerr.IsRestart(code) {
		return
	}
	restart := false
	switch code {
	case linuxerr.ERESTARTNOINTR:
		restart = true
	case linuxerr.ERESTARTSYS:
		restart = !handler || act.Flags&arch.SA_RESTART != 0
	case linuxerr.ERESTARTNOHAND, linuxerr.ERESTART_RESTARTBLOCK:
		restart = !handler
	}
	if !restart {
		t.ac.Regs.Rax = negErrno(unix.EINTR)
		t.restart = nil
		return
	}
	if code == linuxerr.ERESTART_RESTARTBLOCK {
		t.ac.Regs.Rax = unix.SYS_RESTART_SYSCALL
	} else {
		t.ac.Regs.Rax = t.ac.Regs.Orig_rax
	}
	t.ac.Regs.Rip -= 2
	// Only once: the next stop at the syscall sets Orig_rax again.
	t.ac.Regs.Orig_rax = ^uint64(0)
}

// setupFrame builds the signal frame for a handler and points the task at
// the handler.
func (t *Task) setupFrame(info *arch.SignalInfo, act arch.SigAction) error {
	if err := t.pctx.PullFullState(t.mm.AddressSpace(), &t.ac); err != nil {
		return err
	}
	sig := int(info.Signo)
	sp := t.ac.Regs.Rsp
	onAlt := false
	if act.Flags&arch.SA_ONSTACK != 0 && t.altStack.Flags&arch.SS_DISABLE == 0 && t.altStack.Size != 0 && !t.altStack.Contains(sp) {
		sp = t.altStack.Addr + t.altStack.Size
		onAlt = true
	}
	t.k.mu.Lock()
	mask := t.signalMask
	if t.haveSavedMask {
		mask = t.savedMask
		t.haveSavedMask = false
	}
	t.k.mu.Unlock()
	alt := t.SignalStack()
	frame := arch.BuildSignalFrame(&t.ac, sp, onAlt, info, uint64(mask), act.Restorer, alt, uint64(info.Addr()))
	if _, err := t.CopyOutBytes(frame.FPAddr, frame.FP); err != nil {
		return err
	}
	if _, err := t.CopyOutBytes(frame.Addr, frame.Bytes); err != nil {
		return err
	}
	if onAlt && t.altStack.Flags&arch.SS_AUTODISARM != 0 {
		t.altStack = arch.SignalStack{Flags: arch.SS_DISABLE}
	}
	r := &t.ac.Regs
	r.Rsp = uint64(frame.Addr)
	r.Rip = act.Handler
	r.Rdi = uint64(sig)
	r.Rsi = uint64(frame.Addr) + 8 + arch.SigreturnFrameSize
	r.Rdx = uint64(frame.Addr) + 8
	r.Rax = 0
	r.Eflags &^= 0x100 | 0x400 | 0x40000 // TF, DF, AC cleared for the handler
	r.Orig_rax = ^uint64(0)
	// The handler starts with a clean FP state, as Linux's fpu__clear.
	t.ac.FP = arch.InitialFPState()
	t.ac.FPValid = true
	t.ac.FPDirty = true
	t.k.mu.Lock()
	newMask := t.signalMask | SignalSet(act.Mask)
	if act.Flags&arch.SA_NODEFER == 0 {
		newMask |= SignalSetOf(sig)
	}
	t.signalMask = newMask &^ unblockable
	if act.Flags&arch.SA_RESETHAND != 0 {
		t.tg.handlers.actions[sig-1] = arch.SigAction{}
	}
	t.k.mu.Unlock()
	return nil
}

// SignalReturn is rt_sigreturn: restore what setupFrame saved.
func (t *Task) SignalReturn() error {
	uc := make([]byte, arch.SigreturnFrameSize)
	if _, err := t.CopyInBytes(hostarch.Addr(t.ac.Regs.Rsp), uc); err != nil {
		t.forceSignal(segvInfo(hostarch.Addr(t.ac.Regs.Rsp)))
		return errNoReturn
	}
	mask, alt, fpAddr := arch.RestoreSignalFrame(&t.ac, uc)
	if fpAddr != 0 {
		if err := t.pctx.PullFullState(t.mm.AddressSpace(), &t.ac); err == nil {
			img := make([]byte, len(t.ac.FP))
			if _, err := t.CopyInBytes(hostarch.Addr(fpAddr), img); err != nil {
				t.forceSignal(segvInfo(hostarch.Addr(fpAddr)))
				return errNoReturn
			}
			if fp, ok := arch.CheckFPImage(img, len(t.ac.FP)); ok {
				t.ac.FP = fp
				t.ac.FPDirty = true
			}
		}
	}
	t.SetSignalMask(SignalSet(mask))
	if alt.Flags&arch.SS_DISABLE != 0 || alt.Size != 0 {
		if !t.altStack.Contains(t.ac.Regs.Rsp) {
			t.altStack = arch.SignalStack{Addr: alt.Addr, Size: alt.Size, Flags: alt.Flags &^ arch.SS_ONSTACK}
		}
	}
	return errNoReturn
}

func segvInfo(addr hostarch.Addr) *arch.SignalInfo {
	info := &arch.SignalInfo{Signo: int32(unix.SIGSEGV), Code: arch.SI_KERNEL}
	info.SetAddr(addr)
	return info
}

// SigSuspend is rt_sigsuspend: wait for a signal with mask installed.
func (t *Task) SigSuspend(mask SignalSet) error {
	t.SetSavedSignalMask(mask)
	for {
		if err := t.Block(nil, time.Time{}); err == ErrInterrupted {
			return linuxerr.ERESTARTNOHAND
		}
	}
}

// SigTimedWait is rt_sigtimedwait: take a signal of set without running a
// handler.
func (t *Task) SigTimedWait(set SignalSet, deadline time.Time) (*arch.SignalInfo, error) {
	set &^= unblockable
	for {
		t.k.mu.Lock()
		info := t.pending.dequeue(^set)
		if info == nil {
			info = t.tg.pending.dequeue(^set)
		}
		if info != nil {
			t.k.mu.Unlock()
			return info, nil
		}
		// Let the signals of set wake us while we wait.
		old := t.signalMask
		t.signalMask &^= set
		t.k.mu.Unlock()
		err := t.Block(nil, deadline)
		t.k.mu.Lock()
		t.signalMask = old
		t.k.mu.Unlock()
		if err == ErrTimedOut {
			return nil, unix.EAGAIN
		}
		if err == ErrInterrupted {
			t.k.mu.Lock()
			info := t.pending.dequeue(^set)
			if info == nil {
				info = t.tg.pending.dequeue(^set)
			}
			t.k.mu.Unlock()
			if info != nil {
				return info, nil
			}
			return nil, unix.EINTR
		}
	}
}
