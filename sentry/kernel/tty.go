package kernel

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
)

// This file is the kernel's half of terminals: which session a terminal
// controls, its foreground process group, and the job-control rules
// around them (credentials-free parts of drivers/tty/tty_jobctrl.c and
// the orphaned process group rules of kernel/exit.c). The terminal device
// itself (line discipline, buffers) lives in fs/devpts and calls in here.
//
// All of this state is protected by Kernel.mu. A terminal's own lock is
// never held while calling these methods, so Kernel.mu stays outermost.

// TTY is a terminal as job control sees it. fs/devpts makes one per
// pseudo-terminal pair.
type TTY struct {
	// Index is the terminal's number (N of /dev/pts/N).
	Index uint32
	// Terminal is the device behind the TTY; the kernel never looks
	// inside (fs/dev uses it to open /dev/tty).
	Terminal any
	// Rdev is the terminal's device number (/proc/PID/stat's tty_nr).
	Rdev uint64

	// k is set when a task first makes the TTY its controlling
	// terminal: signals are only ever sent to sessions and groups that
	// exist in that kernel.
	k atomic.Pointer[Kernel]
	// sid is the session the TTY controls (0: none), fg its foreground
	// process group (0: none). Protected by Kernel.mu.
	sid, fg ThreadID
}

// ControllingTTY returns the process's controlling terminal, or nil.
func (tg *ThreadGroup) ControllingTTY() *TTY {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.tty
}

// TTYState returns the controlling terminal and its foreground process
// group, for /proc/PID/stat (tty_nr, tpgid).
func (tg *ThreadGroup) TTYState() (*TTY, ThreadID) {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if tg.tty == nil {
		return nil, 0
	}
	return tg.tty, tg.tty.fg
}

// SetConsole makes tty what /dev/console opens (nil: nothing).
func (k *Kernel) SetConsole(tty *TTY) { k.console.Store(tty) }

// Console returns the TTY behind /dev/console, or nil.
func (k *Kernel) Console() *TTY { return k.console.Load() }

// attachLocked makes tty the controlling terminal of t's process and of
// its session, with t's group in the foreground (proc_set_tty).
func (tty *TTY) attachLocked(t *Task) {
	tty.k.Store(t.k)
	tty.sid = t.tg.sid
	tty.fg = t.tg.pgid
	t.tg.tty = tty
}

// attachNewLocked makes tty (if not nil and free) the controlling
// terminal of t, a new session leader (InitArgs.TTY).
func (tty *TTY) attachNewLocked(t *Task) {
	if tty != nil && tty.sid == 0 {
		tty.attachLocked(t)
	}
}

// detachSessionLocked forgets tty in every process of its session and
// the session and foreground group in tty (session_clear_tty).
func (tty *TTY) detachSessionLocked(k *Kernel) {
	for _, tg := range k.tgs {
		if tg.tty == tty {
			tg.tty = nil
		}
	}
	tty.sid, tty.fg = 0, 0
}

// OpenedBy applies the rule of open(2) without O_NOCTTY: a session leader
// with no controlling terminal acquires tty if it controls no session.
// Only readable opens qualify, as on Linux.
func (tty *TTY) OpenedBy(t *Task, readable bool) {
	if !readable {
		return
	}
	k := t.k
	k.mu.Lock()
	defer k.mu.Unlock()
	tg := t.tg
	if tg.sid == tg.id && tg.tty == nil && tty.sid == 0 {
		tty.attachLocked(t)
	}
}

// SetControlling is TIOCSCTTY: the caller, a session leader without a
// controlling terminal, takes tty; steal (with CAP_SYS_ADMIN) takes it
// from another session. readable is whether the file was opened for
// reading, which is required without CAP_SYS_ADMIN.
func (tty *TTY) SetControlling(t *Task, steal, readable bool) error {
	k := t.k
	admin := t.Credentials().HasCapability(auth.CAP_SYS_ADMIN)
	k.mu.Lock()
	defer k.mu.Unlock()
	tg := t.tg
	leader := tg.sid == tg.id
	if leader && tty.sid == tg.sid {
		return nil
	}
	if !leader || tg.tty != nil {
		return unix.EPERM
	}
	if tty.sid != 0 {
		if !steal || !admin {
			return unix.EPERM
		}
		tty.detachSessionLocked(k)
	}
	if !readable && !admin {
		return unix.EPERM
	}
	tty.attachLocked(t)
	return nil
}

// ReleaseControlling is TIOCNOTTY: the caller gives up tty, which must be
// its controlling terminal. A session leader giving it up disassociates
// the whole session, and its foreground group gets SIGHUP and SIGCONT.
func (tty *TTY) ReleaseControlling(t *Task) error {
	k := t.k
	k.mu.Lock()
	defer k.mu.Unlock()
	tg := t.tg
	if tg.tty != tty {
		return unix.ENOTTY
	}
	if tg.sid != tg.id {
		tg.tty = nil
		return nil
	}
	fg := tty.fg
	tty.detachSessionLocked(k)
	k.signalGroupLocked(fg, unix.SIGHUP)
	k.signalGroupLocked(fg, unix.SIGCONT)
	return nil
}

// ForegroundGroup is TIOCGPGRP. Through the replica (viaMaster false)
// the terminal must be the caller's controlling terminal; the master
// side may always ask. 0 means no foreground group.
func (tty *TTY) ForegroundGroup(t *Task, viaMaster bool) (ThreadID, error) {
	k := t.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if !viaMaster && t.tg.tty != tty {
		return 0, unix.ENOTTY
	}
	return tty.fg, nil
}

// Session is TIOCGSID: ENOTTY when tty controls no session, or (through
// the replica) is not the caller's controlling terminal.
func (tty *TTY) Session(t *Task, viaMaster bool) (ThreadID, error) {
	k := t.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if !viaMaster && t.tg.tty != tty {
		return 0, unix.ENOTTY
	}
	if tty.sid == 0 {
		return 0, unix.ENOTTY
	}
	return tty.sid, nil
}

// SetForegroundGroup is TIOCSPGRP: the caller's controlling terminal gets
// pgid, a process group of the caller's session, as its foreground
// group. A background caller is subject to SIGTTOU like a termios change.
func (tty *TTY) SetForegroundGroup(t *Task, pgid ThreadID) error {
	if err := tty.CheckAccess(t, unix.SIGTTOU); err != nil {
		if err == unix.EIO {
			return unix.ENOTTY
		}
		return err
	}
	k := t.k
	k.mu.Lock()
	defer k.mu.Unlock()
	tg := t.tg
	if tg.tty != tty || tty.sid != tg.sid {
		return unix.ENOTTY
	}
	if pgid < 0 {
		return unix.EINVAL
	}
	// The group's session: that of a member, or else of the process
	// with that ID (session_of_pgrp).
	var sid ThreadID
	found := false
	for _, o := range k.tgs {
		if o.pgid == pgid && !o.zombie {
			sid, found = o.sid, true
			break
		}
	}
	if !found {
		o := k.tgs[pgid]
		if o == nil {
			return unix.ESRCH
		}
		sid = o.sid
	}
	if sid != tg.sid {
		return unix.EPERM
	}
	tty.fg = pgid
	return nil
}

// CheckAccess is the job-control check made before a read (sig SIGTTIN),
// or a write with TOSTOP, a termios change and the like (SIGTTOU), on
// tty: a process in a background group of the terminal's session gets
// sig sent to its whole group and the call restarts once it is continued
// (ERESTARTSYS). With the signal ignored or blocked the call goes ahead,
// except a read, which gets EIO; an orphaned group, which nobody could
// continue, gets EIO too. Callers that are not tasks (the sentry's own
// pumps) and processes that tty does not control pass.
func (tty *TTY) CheckAccess(ctx any, sig unix.Signal) error {
	t, ok := ctx.(*Task)
	if !ok {
		return nil
	}
	k := t.k
	k.mu.Lock()
	defer k.mu.Unlock()
	tg := t.tg
	if tg.tty != tty || tty.fg == 0 || tty.fg == tg.pgid {
		return nil
	}
	if t.signalMask&SignalSetOf(int(sig)) != 0 || tg.handlers.actions[sig-1].Handler == arch.SIG_IGN {
		if sig == unix.SIGTTIN {
			return unix.EIO
		}
		return nil
	}
	if k.pgrpOrphanedLocked(tg.pgid, nil) {
		return unix.EIO
	}
	k.signalGroupLocked(tg.pgid, sig)
	return linuxerr.ERESTARTSYS
}

// SignalForeground sends sig to tty's foreground process group, if any
// (the ISIG characters, SIGWINCH on a resize).
func (tty *TTY) SignalForeground(sig unix.Signal) {
	k := tty.k.Load()
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.signalGroupLocked(tty.fg, sig)
}

// Hangup is the terminal going away under its session (the master side
// closed): every process of the session loses it as controlling terminal
// and the session leader gets SIGHUP and SIGCONT.
func (tty *TTY) Hangup() {
	k := tty.k.Load()
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	sid := tty.sid
	if sid == 0 {
		return
	}
	tty.detachSessionLocked(k)
	if leader := k.tgs[sid]; leader != nil && leader.sid == sid && !leader.zombie {
		if lt := leader.leaderLocked(); lt != nil {
			lt.sendSignalLocked(kernelSignal(unix.SIGHUP), true)
			lt.sendSignalLocked(kernelSignal(unix.SIGCONT), true)
		}
	}
}

func kernelSignal(sig unix.Signal) *arch.SignalInfo {
	return &arch.SignalInfo{Signo: int32(sig), Code: arch.SI_KERNEL}
}

// signalGroupLocked sends sig to every live process of group pgid.
func (k *Kernel) signalGroupLocked(pgid ThreadID, sig unix.Signal) {
	if pgid == 0 {
		return
	}
	for _, tg := range k.tgs {
		if tg.pgid == pgid && !tg.zombie {
			if lt := tg.leaderLocked(); lt != nil {
				lt.sendSignalLocked(kernelSignal(sig), true)
			}
		}
	}
}

// pgrpOrphanedLocked reports whether group pgid is orphaned, not counting
// ignore (a process on its way out): no member has a parent in another
// group of the same session (will_become_orphaned_pgrp). Such a group
// ignores keyboard stops and gets EIO where a background group would be
// stopped.
func (k *Kernel) pgrpOrphanedLocked(pgid ThreadID, ignore *ThreadGroup) bool {
	for _, tg := range k.tgs {
		if tg.pgid != pgid || tg == ignore || tg.zombie || len(tg.tasks) == 0 {
			continue
		}
		if p := tg.parent; p != nil && p.pgid != pgid && p.sid == tg.sid {
			return false
		}
	}
	return true
}

// pgrpHasStoppedLocked reports whether a process of group pgid is stopped.
func (k *Kernel) pgrpHasStoppedLocked(pgid ThreadID) bool {
	for _, tg := range k.tgs {
		if tg.pgid == pgid && !tg.zombie && tg.groupStopped {
			return true
		}
	}
	return false
}

// killOrphanedPgrpLocked is the exit-time rule of POSIX job control: when
// tg's leaving (tg exits, reparenting is false) or tg's reparenting away
// from an exiting parent (reparenting true) leaves tg's process group
// orphaned with stopped members, the group gets SIGHUP then SIGCONT, so
// that it does not stay stopped forever.
func (tg *ThreadGroup) killOrphanedPgrpLocked(formerParent *ThreadGroup) {
	k := tg.k
	parent, ignore := formerParent, (*ThreadGroup)(nil)
	if parent == nil {
		parent, ignore = tg.parent, tg
	}
	if parent == nil || parent.pgid == tg.pgid || parent.sid != tg.sid {
		return
	}
	if k.pgrpOrphanedLocked(tg.pgid, ignore) && k.pgrpHasStoppedLocked(tg.pgid) {
		k.signalGroupLocked(tg.pgid, unix.SIGHUP)
		k.signalGroupLocked(tg.pgid, unix.SIGCONT)
	}
}

// exitTTYLocked runs when the last task of tg is gone: a session leader
// takes its controlling terminal with it, and the terminal's foreground
// group gets SIGHUP (disassociate_ctty for a pseudo-terminal).
func (tg *ThreadGroup) exitTTYLocked() {
	tty := tg.tty
	if tty == nil || tg.sid != tg.id {
		return
	}
	fg := tty.fg
	if tty.sid == tg.sid {
		tty.detachSessionLocked(tg.k)
	} else {
		tg.tty = nil
	}
	tg.k.signalGroupLocked(fg, unix.SIGHUP)
}

// stopIgnoredLocked reports whether a keyboard stop signal (SIGTSTP,
// SIGTTIN, SIGTTOU) with its default action is discarded for tg: an
// orphaned process group has nobody to continue it.
func (tg *ThreadGroup) stopIgnoredLocked(sig int) bool {
	return sig != int(unix.SIGSTOP) && tg.k.pgrpOrphanedLocked(tg.pgid, nil)
}
