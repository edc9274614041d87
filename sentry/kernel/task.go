package kernel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/mm"
	"github.com/veil-sandbox/veil/sentry/usermem"
)

// ErrInterrupted is returned by Block when a signal (or exit) needs the
// task; syscall handlers turn it into EINTR or a restart code.
var ErrInterrupted = errors.New("kernel: interrupted")

// ErrTimedOut is returned by Block when its deadline passes.
var ErrTimedOut = errors.New("kernel: timed out")

// Task is one application thread.
type Task struct {
	k    *Kernel
	tg   *ThreadGroup
	tid  ThreadID
	fs   taskFS
	pctx platform.Context
	ac   arch.Context

	// Fields below are used only by the task's own goroutine unless noted.
	mm    *mm.MemoryManager
	creds atomic.Pointer[auth.Credentials]
	name  atomic.Value // string: comm

	// Signal state, protected by k.mu.
	signalMask    SignalSet
	savedMask     SignalSet
	haveSavedMask bool
	pending       pendingSignals
	altStack      arch.SignalStack
	// interruptCh wakes Block; it has room for one wake-up.
	interruptCh chan struct{}
	// pendingWork says something may need the run loop's slow path
	// (signals, stops, exit); set before every wake-up.
	pendingWork atomic.Bool
	// exiting is set (under k.mu) when the task must exit: exit_group,
	// a fatal signal, or exec by another thread.
	exiting bool
	// stopped: in a group stop (under k.mu).
	stopped bool

	clearChildTID hostarch.Addr
	robustList    hostarch.Addr
	// vforkDone is closed when a vfork child execs or exits.
	vforkDone chan struct{}
	// restart is the continuation of an interrupted restartable call
	// (nanosleep...), run by restart_syscall.
	restart func(t *Task) (uintptr, error)
	// exitSignal is sent to the parent when this (leader) task's group
	// dies (clone's low byte).
	exitSignal int
	// utime and stime are CPU time spent in application code and in the
	// sentry on the task's behalf.
	utime, stime atomic.Int64
	// mark is when the task last entered or left application code.
	mark      time.Time
	startTime time.Time
	// pdeathSig is prctl(PR_SET_PDEATHSIG).
	pdeathSig int
	// proc is what /proc shows that nothing else keeps (procinfo.go).
	proc taskProcState
}

// Kernel returns the task's kernel.
func (t *Task) Kernel() *Kernel { return t.k }

// ThreadGroup returns the task's thread group.
func (t *Task) ThreadGroup() *ThreadGroup { return t.tg }

// ThreadID returns the task's ID.
func (t *Task) ThreadID() ThreadID { return t.tid }

// MemoryManager returns the task's address space.
func (t *Task) MemoryManager() *mm.MemoryManager { return t.mm }

// Arch returns the task's registers.
func (t *Task) Arch() *arch.Context { return &t.ac }

// Credentials returns the task's credentials; treat them as immutable.
func (t *Task) Credentials() *auth.Credentials { return t.creds.Load() }

// SetCredentials installs new credentials.
func (t *Task) SetCredentials(c *auth.Credentials) { t.creds.Store(c) }

// Name returns the task's comm.
func (t *Task) Name() string { s, _ := t.name.Load().(string); return s }

// SetName sets comm (truncated to 15 bytes as Linux).
func (t *Task) SetName(n string) {
	if len(n) > 15 {
		n = n[:15]
	}
	t.name.Store(n)
}

// StartTime is when the task was created.
func (t *Task) StartTime() time.Time { return t.startTime }

// CPUTime returns user and system time.
func (t *Task) CPUTime() (user, sys time.Duration) {
	return time.Duration(t.utime.Load()), time.Duration(t.stime.Load())
}

// context.Context, so that layers below (VFS) can find the credentials.
func (t *Task) Deadline() (time.Time, bool) { return time.Time{}, false }
func (t *Task) Done() <-chan struct{}       { return nil }
func (t *Task) Err() error                  { return nil }
func (t *Task) Value(key any) any {
	if key == auth.CtxCredentials {
		return t.Credentials()
	}
	return nil
}

var _ context.Context = (*Task)(nil)

// CopyInBytes copies from application memory.
func (t *Task) CopyInBytes(addr hostarch.Addr, dst []byte) (int, error) {
	return t.mm.CopyIn(addr, dst)
}

// CopyOutBytes copies to application memory.
func (t *Task) CopyOutBytes(addr hostarch.Addr, src []byte) (int, error) {
	return t.mm.CopyOut(addr, src)
}

// CopyInString copies a NUL-terminated string of at most maxlen bytes
// (ENAMETOOLONG past that, EFAULT for a bad pointer).
func (t *Task) CopyInString(addr hostarch.Addr, maxlen int) (string, error) {
	var out []byte
	buf := make([]byte, 256)
	for len(out) < maxlen {
		// Never read across a page boundary in one go: the next page may
		// be unmapped although the string ends before it.
		n := int(hostarch.PageSize - uint64(addr)%hostarch.PageSize)
		if n > len(buf) {
			n = len(buf)
		}
		if rem := maxlen - len(out); n > rem {
			n = rem
		}
		c, err := t.mm.CopyIn(addr, buf[:n])
		for i := 0; i < c; i++ {
			if buf[i] == 0 {
				return string(append(out, buf[:i]...)), nil
			}
		}
		if err != nil {
			return "", unix.EFAULT
		}
		out = append(out, buf[:c]...)
		addr += hostarch.Addr(c)
	}
	return "", unix.ENAMETOOLONG
}

// CopyInStringVec reads a NULL-terminated array of string pointers (argv).
func (t *Task) CopyInStringVec(addr hostarch.Addr, maxTotal int) ([]string, error) {
	var out []string
	total := 0
	for addr != 0 {
		var b [8]byte
		if _, err := t.CopyInBytes(addr, b[:]); err != nil {
			return nil, unix.EFAULT
		}
		p := hostarch.Addr(le64(b[:]))
		if p == 0 {
			break
		}
		s, err := t.CopyInString(p, 128<<10)
		if err != nil {
			if err == unix.ENAMETOOLONG {
				return nil, unix.E2BIG
			}
			return nil, err
		}
		total += len(s) + 1 + 8
		if total > maxTotal {
			return nil, unix.E2BIG
		}
		out = append(out, s)
		addr += 8
	}
	return out, nil
}

// maxRWCount is MAX_RW_COUNT: Linux clamps one transfer to this.
const maxRWCount = 0x7ffff000

// SingleIOSequence is [addr, addr+length) of the task's memory.
func (t *Task) SingleIOSequence(addr hostarch.Addr, length int) (usermem.IOSequence, error) {
	// A negative length is a size_t of 2^63 or more: no range that long
	// fits in user space, so access_ok fails (EFAULT) before the clamp.
	if length < 0 {
		return usermem.IOSequence{}, unix.EFAULT
	}
	end, ok := addr.AddLength(uint64(length))
	if !ok || end > t.mm.MaxAddress() {
		return usermem.IOSequence{}, unix.EFAULT
	}
	if length > maxRWCount {
		end = addr + maxRWCount
	}
	return usermem.IOSequence{IO: t.mm, Ranges: []hostarch.AddrRange{{Start: addr, End: end}}}, nil
}

// IovecsIOSequence reads an iovec array (readv/writev).
func (t *Task) IovecsIOSequence(addr hostarch.Addr, iovcnt int) (usermem.IOSequence, error) {
	if iovcnt < 0 || iovcnt > 1024 {
		return usermem.IOSequence{}, unix.EINVAL
	}
	if iovcnt == 0 {
		return usermem.IOSequence{IO: t.mm}, nil
	}
	buf := make([]byte, 16*iovcnt)
	if _, err := t.CopyInBytes(addr, buf); err != nil {
		return usermem.IOSequence{}, unix.EFAULT
	}
	var ranges []hostarch.AddrRange
	var total uint64
	for i := 0; i < iovcnt; i++ {
		base := hostarch.Addr(le64(buf[16*i:]))
		l := le64(buf[16*i+8:])
		if int64(l) < 0 {
			return usermem.IOSequence{}, unix.EINVAL
		}
		if total+l > maxRWCount {
			l = maxRWCount - total
		}
		total += l
		if l == 0 {
			continue
		}
		end, ok := base.AddLength(l)
		if !ok {
			return usermem.IOSequence{}, unix.EFAULT
		}
		ranges = append(ranges, hostarch.AddrRange{Start: base, End: end})
	}
	return usermem.IOSequence{IO: t.mm, Ranges: ranges}, nil
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// Block waits until ch is ready, the task is interrupted (ErrInterrupted),
// or deadline passes (ErrTimedOut; a zero deadline never passes).
func (t *Task) Block(ch <-chan struct{}, deadline time.Time) error {
	t.proc.blocked.Store(true)
	defer t.offCPU(time.Now())
	var timer <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return ErrTimedOut
		}
		tm := time.NewTimer(d)
		defer tm.Stop()
		timer = tm.C
	}
	for {
		if t.interrupted() {
			return ErrInterrupted
		}
		select {
		case <-ch:
			return nil
		case <-t.interruptCh:
			// Re-check: a wake-up may be stale (the signal that caused it
			// was taken by another thread, or is blocked now).
		case <-timer:
			return ErrTimedOut
		}
	}
}

// offCPU ends a wait that began at start: the time waited is nobody's
// CPU time, so the run loop's mark moves past it (else a task asleep in
// a syscall would show that time as system time).
func (t *Task) offCPU(start time.Time) {
	t.proc.blocked.Store(false)
	t.mark = t.mark.Add(time.Since(start))
}

// Sleep blocks for d (interruptibly).
func (t *Task) Sleep(d time.Duration) error {
	return t.Block(nil, time.Now().Add(d))
}

// wake makes a current or the next Block return ErrInterrupted and stops
// application code if it is running.
func (t *Task) wake() {
	t.pendingWork.Store(true)
	select {
	case t.interruptCh <- struct{}{}:
	default:
	}
}

// interrupt wakes the task wherever it is.
func (t *Task) interrupt() {
	t.wake()
	t.pctx.Interrupt()
}

// interrupted reports whether the task has something more urgent to do
// than block: a deliverable signal, an exit, a stop.
func (t *Task) interrupted() bool {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	return t.exiting || t.tg.exiting || t.tg.stopping || t.k.ctl.frozen || t.hasDeliverableSignalLocked()
}

// Interrupted reports whether a signal, an exit or a stop needs the task:
// sentry loops that may run long (a huge write to a pipe, a read of
// /dev/zero into gigabytes) poll it between steps and end early, as
// Linux's loops check signal_pending. It is cheap while nothing arrived
// since the syscall began.
func (t *Task) Interrupted() bool {
	return t.pendingWork.Load() && t.interrupted()
}

// Start begins running a task that newTask created.
func (t *Task) start() {
	t.k.mu.Lock()
	t.k.nRunning++
	t.k.mu.Unlock()
	go t.run()
}

// run is the task's goroutine: the run loop of DESIGN.md.
func (t *Task) run() {
	// The platform's stub thread is traced by this OS thread; the task
	// keeps it for life.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t.labelGoroutine()
	t.pendingWork.Store(true)
	t.mark = time.Now()
	for {
		if t.needsSlowPath() {
			if t.checkStopAndExit() {
				break
			}
			t.deliverSignals()
			if t.checkStopAndExit() {
				break
			}
		}
		as := t.mm.AddressSpace()
		// One clock read per transition: time since the last one was spent
		// in the sentry for the task, time in Switch in application code.
		before := time.Now()
		t.stime.Add(int64(before.Sub(t.mark)))
		info, _, err := t.pctx.Switch(as, &t.ac)
		t.mark = time.Now()
		t.utime.Add(int64(t.mark.Sub(before)))
		switch {
		case err == nil:
			t.doSyscall()
		case errors.Is(err, platform.ErrContextSignal):
			t.handleFault(info)
		case errors.Is(err, platform.ErrContextInterrupt):
			// Something for the loop's checks.
		default:
			t.k.Log.Printf("task %d: platform failure: %v; ending the sandbox", t.tid, err)
			t.k.killAll()
			t.killGroup(WaitStatus(unix.SIGKILL))
		}
	}
	t.exit()
}

// needsSlowPath reports whether the run loop must look at signals, stops
// and exit before going back to the application. Everything that can
// change the answer sets pendingWork (through wake) first; a syscall that
// returned a restart code, or a temporary signal mask, always need it.
func (t *Task) needsSlowPath() bool {
	if t.pendingWork.Swap(false) || t.haveSavedMask {
		return true
	}
	if t.ac.Regs.Orig_rax != ^uint64(0) {
		if rv := int64(t.ac.Regs.Rax); rv < 0 && linuxerr.IsRestart(unix.Errno(-rv)) {
			return true
		}
	}
	return false
}

// handleFault turns a fault into a page fault for mm, or a signal.
func (t *Task) handleFault(info *arch.SignalInfo) {
	t.proc.faults.Add(1)
	t.proc.lastFault.Store(uint64(info.Addr()))
	if info.Signo == int32(unix.SIGSEGV) || info.Signo == int32(unix.SIGBUS) {
		if info.Signo == int32(unix.SIGSEGV) {
			mapped := info.Code == arch.SEGV_ACCERR
			err := t.mm.HandleFault(info.Addr(), hostarch.NoAccess, mapped)
			if err == nil {
				return
			}
			sig := &arch.SignalInfo{Signo: int32(unix.SIGSEGV), Code: arch.SEGV_ACCERR}
			switch {
			case errors.Is(err, mm.ErrBusError):
				sig.Signo = int32(unix.SIGBUS)
				sig.Code = arch.BUS_ADRERR
			case errors.Is(err, mm.ErrNoVMA):
				sig.Code = arch.SEGV_MAPERR
			}
			sig.SetAddr(info.Addr())
			t.forceSignal(sig)
			return
		}
	}
	// SIGFPE, SIGILL, SIGTRAP, SIGBUS from the host: deliver as is.
	sig := *info
	t.forceSignal(&sig)
}

// doSyscall dispatches the syscall the task stopped at.
func (t *Task) doSyscall() {
	nr := t.ac.SyscallNo()
	args := t.ac.SyscallArgs()
	var rval uintptr
	var err error
	t.proc.syscallStart.Store(t.mark.UnixNano())
	t.proc.syscall.Store(int64(nr) + 1)
	defer t.proc.syscall.Store(0)
	if t.k.Strace != nil {
		start := time.Now()
		line := t.straceEnter(nr, args)
		rval, err = t.k.Syscalls(t, nr, args)
		t.straceExit(line, rval, err, time.Since(start))
	} else {
		rval, err = t.k.Syscalls(t, nr, args)
	}
	if err == errNoReturn {
		return // execve/rt_sigreturn set every register already
	}
	if err == nil {
		t.ac.SetReturn(rval)
		t.proc.io.account(nr, rval)
		return
	}
	if linuxerr.IsRestart(err) {
		t.setRestart(err.(unix.Errno))
		return
	}
	t.ac.SetReturn(uintptr(-int64(linuxerr.ToErrno(err))))
}

// errNoReturn is returned by handlers that replaced the registers (execve,
// rt_sigreturn): the dispatcher must not write a return value.
var errNoReturn = errors.New("kernel: no return value")

// ErrNoReturn is errNoReturn for the syscall table.
var ErrNoReturn = errNoReturn

// setRestart records that the syscall was interrupted with a restart code.
// Whether it restarts or fails with EINTR is decided when the signal (if
// any) is delivered, as Linux does.
func (t *Task) setRestart(code unix.Errno) {
	t.ac.SetReturn(uintptr(-int64(code)))
}

// SetRestartBlock sets the continuation that restart_syscall runs.
func (t *Task) SetRestartBlock(fn func(t *Task) (uintptr, error)) { t.restart = fn }

// RestartSyscall runs the continuation (restart_syscall(2)).
func (t *Task) RestartSyscall() (uintptr, error) {
	fn := t.restart
	t.restart = nil
	if fn == nil {
		return 0, unix.EINTR
	}
	return fn(t)
}

// StraceEnter and StraceResult decode a syscall and its result for
// --strace; the syscall table installs them (it knows the arguments).
var (
	StraceEnter  func(t *Task, nr uintptr, args arch.SyscallArguments) string
	StraceResult func(rval uintptr, err error) string
)

func (t *Task) straceEnter(nr uintptr, args arch.SyscallArguments) string {
	if StraceEnter != nil {
		return fmt.Sprintf("[%d] %s", t.tid, StraceEnter(t, nr, args))
	}
	return fmt.Sprintf("[%d] %s(%#x, %#x, %#x, %#x, %#x, %#x)", t.tid, syscallName(nr),
		args[0].Value, args[1].Value, args[2].Value, args[3].Value, args[4].Value, args[5].Value)
}

func (t *Task) straceExit(line string, rval uintptr, err error, took time.Duration) {
	var res string
	switch {
	case StraceResult != nil:
		res = StraceResult(rval, err)
	case err != nil && err != errNoReturn:
		res = err.Error()
	default:
		res = fmt.Sprintf("%#x", rval)
	}
	fmt.Fprintf(t.k.Strace, "%s = %s <%v>\n", line, res, took)
}

// SyscallName names syscalls for strace; set by the syscall table.
var SyscallName func(nr uintptr) string

func syscallName(nr uintptr) string {
	if SyscallName != nil {
		return SyscallName(nr)
	}
	return fmt.Sprintf("syscall_%d", nr)
}
