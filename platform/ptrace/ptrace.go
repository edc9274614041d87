// Package ptrace runs application code in stub processes under
// PTRACE_SYSEMU: the host kernel stops the stub at every syscall the
// application makes without executing it, and the sentry carries it out.
//
// Processes: one template stub is exec'd when the platform starts; every
// address space is a stub process forked from it (the fork injected into
// the template). Each stub process has a leader thread that only ever parks
// and is cloned; every sentry OS thread that needs a stub thread in an
// address space (to run application code, or to inject mmap/munmap) gets its
// own, cloned from the leader and then seized by that OS thread. All
// leaders and the template are traced by one "factory" goroutine locked to
// its OS thread for the platform's life: ptrace requests must come from the
// tracing thread, and PTRACE_O_EXITKILL on every stub means the stubs die
// with the sentry.
//
// Lock order: subprocess.mu before thread injection (a thread is only used
// by its own tracer OS thread, so threads need no lock of their own).
package ptrace

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/platform/internal/stubutil"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// stubMemFD is the FD number of the memory file inside every stub.
const stubMemFD = 0

// Platform is the ptrace platform.
type Platform struct {
	// factory traces the template and every leader.
	factory  *stubutil.Factory
	template *thread
	xsaveLen int
}

// New starts the platform. memFD is the sentry's memory file; the stubs
// map application memory from it. New must run before the sentry confines
// itself: it execs the template through /proc/self/fd.
func New(memFD int) (*Platform, error) {
	quietStops()
	p := &Platform{}
	f, err := stubutil.StartFactory(func() (err error) {
		p.template, err = p.startTemplate(memFD)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.factory = f
	return p, nil
}

// Name implements platform.Platform.
func (p *Platform) Name() string { return "ptrace" }

// MaxUserAddress implements platform.Platform.
func (p *Platform) MaxUserAddress() hostarch.Addr { return MaxUserAddress }

func (p *Platform) startTemplate(memFD int) (*thread, error) {
	st, err := tracer.Exec("veil-stub", stubELF(), []uintptr{uintptr(memFD)})
	if err != nil {
		return nil, err
	}
	pid := int(st.TGID)
	t := &thread{Thread: st}
	if _, err := t.Wait(); err != nil {
		return nil, err
	}
	if err := stubutil.SetOptions(t.TID, ptraceOptions); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return nil, fmt.Errorf("ptrace: setting options: %w", err)
	}
	if err := t.GetRegs(&t.InitRegs); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return nil, err
	}
	// Learn the host's XSAVE size: SETREGSET wants exactly that many bytes.
	buf := make([]byte, 16384)
	n, err := stubutil.GetXState(t.TID, buf)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return nil, fmt.Errorf("ptrace: reading xstate: %w", err)
	}
	p.xsaveLen = n
	// Strip the template down to the stub page and the memory file, then
	// lock it down.
	steps := []struct {
		nr   uintptr
		args [6]uintptr
	}{
		{unix.SYS_CLOSE_RANGE, [6]uintptr{stubMemFD + 1, ^uintptr(0) >> 32, 0}},
		{unix.SYS_MUNMAP, [6]uintptr{0, stubBase}},
		{unix.SYS_MUNMAP, [6]uintptr{stubBase + stubSize, 0x7ffffffff000 - (stubBase + stubSize)}},
		// A stub holds no capabilities: it needs none, and a sentry that
		// has dropped its own may only trace processes whose permitted
		// set is a subset of its own.
		{unix.SYS_CAPSET, [6]uintptr{stubBase + capHdrOff, stubBase + capDataOff}},
		{unix.SYS_PRCTL, [6]uintptr{unix.PR_SET_NO_NEW_PRIVS, 1}},
		{unix.SYS_SECCOMP, [6]uintptr{unix.SECCOMP_SET_MODE_FILTER, 0, stubBase + fprogOff}},
	}
	for _, s := range steps {
		if r, err := t.Syscall(sysSite, s.nr, s.args); err != nil || int64(r) < 0 && int64(r) > -4096 {
			unix.Kill(pid, unix.SIGKILL)
			return nil, fmt.Errorf("ptrace: preparing stub (syscall %d): %v %v", s.nr, err, unix.Errno(-int64(r)))
		}
	}
	return t, nil
}

const ptraceOptions = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_EXITKILL

// NewAddressSpace implements platform.Platform: fork a stub from the
// template.
func (p *Platform) NewAddressSpace() (platform.AddressSpace, error) {
	var leader *thread
	var err error
	p.factory.Do(func() {
		var r uintptr
		r, err = p.template.Syscall(cloneSite, unix.SYS_CLONE, [6]uintptr{unix.CLONE_PARENT | uintptr(unix.SIGCHLD)})
		if err != nil {
			return
		}
		if e := int64(r); e < 0 {
			err = fmt.Errorf("ptrace: forking stub: %w", unix.Errno(-e))
			return
		}
		leader, err = seize(int32(r), int32(r))
		if err == nil {
			leader.InitRegs = p.template.InitRegs
		}
	})
	if err != nil {
		return nil, err
	}
	return &subprocess{p: p, leader: leader, threads: make(map[int32]*thread)}, nil
}

// subprocess is one stub process: an address space.
type subprocess struct {
	p      *Platform
	leader *thread

	mu      sync.Mutex
	threads map[int32]*thread // by tracer OS thread ID
	dead    bool
}

// current returns the stub thread traced by the calling OS thread, making
// one if needed. The caller has locked its goroutine to its OS thread.
func (s *subprocess) current() (*thread, error) {
	me := int32(unix.Gettid())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil, platform.ErrContextDead
	}
	if t := s.threads[me]; t != nil {
		return t, nil
	}
	var tid int32
	var err error
	s.p.factory.Do(func() {
		var r uintptr
		r, err = s.leader.Syscall(cloneSite, unix.SYS_CLONE, [6]uintptr{
			unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
				unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_UNTRACED})
		if err == nil && int64(r) < 0 {
			err = fmt.Errorf("ptrace: cloning stub thread: %w", unix.Errno(-int64(r)))
		}
		tid = int32(r)
	})
	if err != nil {
		return nil, err
	}
	t, err := seize(s.leader.TGID, tid)
	if err != nil {
		return nil, err
	}
	t.InitRegs = s.leader.InitRegs
	s.threads[me] = t
	return t, nil
}

// inject runs one host syscall in the calling OS thread's stub thread.
func (s *subprocess) inject(nr uintptr, args [6]uintptr) (uintptr, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t, err := s.current()
	if err != nil {
		return 0, err
	}
	r, err := t.Syscall(sysSite, nr, args)
	if err != nil {
		return 0, err
	}
	if e := int64(r); e < 0 && e > -4096 {
		return 0, unix.Errno(-e)
	}
	return r, nil
}

// MapFile implements platform.AddressSpace.
func (s *subprocess) MapFile(addr hostarch.Addr, fileOffset, length uint64, at hostarch.AccessType) error {
	_, err := s.inject(unix.SYS_MMAP, [6]uintptr{uintptr(addr), uintptr(length), uintptr(at.Prot()),
		unix.MAP_SHARED | unix.MAP_FIXED, stubMemFD, uintptr(fileOffset)})
	return err
}

// Unmap implements platform.AddressSpace.
func (s *subprocess) Unmap(addr hostarch.Addr, length uint64) {
	s.inject(unix.SYS_MUNMAP, [6]uintptr{uintptr(addr), uintptr(length)})
}

// Release implements platform.AddressSpace: kill the stub and reap every
// thread of it (any sentry thread may wait for a tracee of another).
func (s *subprocess) Release() {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.dead = true
	threads := s.threads
	s.threads = nil
	s.mu.Unlock()
	unix.Kill(int(s.leader.TGID), unix.SIGKILL)
	for _, t := range threads {
		t.Reap()
	}
	s.leader.Reap()
}

// thread is one stub thread and what the platform knows of it.
type thread struct {
	*stubutil.Thread
	// cpu is the CPU the thread is pinned to (-1: not pinned).
	cpu int32
}

// tracer traces every stub thread of the platform.
var tracer = &stubutil.Tracer{Name: "ptrace", Options: ptraceOptions}

// seize attaches the calling OS thread to a parked stub thread and stops
// it.
func seize(tgid, tid int32) (*thread, error) {
	t, err := tracer.Seize(tgid, tid)
	if err != nil {
		return nil, err
	}
	return &thread{Thread: t, cpu: -1}, nil
}

// context runs one application thread.
type context struct {
	p *Platform
	// running is the tid of the stub thread while application code runs,
	// else 0; interrupted is set by Interrupt.
	running     atomic.Int32
	tgid        atomic.Int32
	interrupted atomic.Bool
	regs        unix.PtraceRegs
	// stopped is what GETREGS read at stoppedThread's last syscall stop,
	// valid while that thread has not run since (an injected syscall runs
	// it too): stoppedRuns is its Runs count then.
	stopped       unix.PtraceRegs
	stoppedThread *thread
	stoppedRuns   uint64
	// lastAS and lastThread cache the stub thread of the address space
	// the context ran in last (the task's goroutine keeps its OS thread).
	lastAS     *subprocess
	lastThread *thread
	// cpu is where the context runs (-1: not chosen yet, -2: unpinned);
	// origAffinity is restored on Release.
	cpu          int32
	origAffinity unix.CPUSet
}

// NewContext implements platform.Platform.
func (p *Platform) NewContext() platform.Context { return &context{p: p, cpu: -1} }

// interruptSignal is sent to a running stub thread to make it stop; the
// stop is reported to its tracer and the signal discarded.
const interruptSignal = unix.SIGCHLD

// Interrupt implements platform.Context.
func (c *context) Interrupt() {
	c.interrupted.Store(true)
	if tid := c.running.Load(); tid != 0 {
		unix.Tgkill(int(c.tgid.Load()), int(tid), interruptSignal)
	}
}

// Release implements platform.Context. It runs on the context's OS thread
// and gives that thread back its CPU affinity before it returns to Go's pool.
func (c *context) Release() {
	if c.cpu >= 0 {
		unix.SchedSetaffinity(0, &c.origAffinity)
		c.cpu = -1
	}
}

// fitFP sizes an FP image to the host's XSAVE length.
func (c *context) fitFP(ac *arch.Context) {
	if len(ac.FP) != c.p.xsaveLen {
		fp := make([]byte, c.p.xsaveLen)
		copy(fp, ac.FP)
		ac.FP = fp
	}
}

// PullFullState implements platform.Context.
func (c *context) PullFullState(as platform.AddressSpace, ac *arch.Context) error {
	if ac.FPValid {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t, err := as.(*subprocess).current()
	if err != nil {
		return err
	}
	c.fitFP(ac)
	if _, err := stubutil.GetXState(t.TID, ac.FP); err != nil {
		return fmt.Errorf("ptrace: reading FP state: %w", err)
	}
	ac.FPValid = true
	return nil
}

// Switch implements platform.Context. The caller's goroutine is locked to
// its OS thread (it is the tracer of the stub thread used).
func (c *context) Switch(as platform.AddressSpace, ac *arch.Context) (*arch.SignalInfo, hostarch.AccessType, error) {
	if c.interrupted.Swap(false) {
		return nil, hostarch.NoAccess, platform.ErrContextInterrupt
	}
	c.bind()
	s := as.(*subprocess)
	t := c.lastThread
	if c.lastAS != s {
		var err error
		if t, err = s.current(); err != nil {
			return nil, hostarch.NoAccess, err
		}
		c.lastAS, c.lastThread = s, t
	}
	if ac.FPDirty {
		c.fitFP(ac)
		if err := stubutil.SetXState(t.TID, ac.FP); err != nil {
			return nil, hostarch.NoAccess, fmt.Errorf("ptrace: writing FP state: %w", err)
		}
		ac.FPDirty = false
		ac.FPValid = true
	}
	c.bindThread(t)
	if err := c.setRegs(t, &ac.Regs); err != nil {
		return nil, hostarch.NoAccess, err
	}
	c.tgid.Store(t.TGID)
	c.running.Store(t.TID)
	defer c.running.Store(0)
	if c.interrupted.Swap(false) {
		return nil, hostarch.NoAccess, platform.ErrContextInterrupt
	}
	ac.FPValid = false
	for {
		if err := t.Cont(unix.PTRACE_SYSEMU, 0); err != nil {
			return nil, hostarch.NoAccess, platform.ErrContextDead
		}
		status, err := t.Wait()
		if err != nil {
			return nil, hostarch.NoAccess, platform.ErrContextDead
		}
		if !status.Stopped() {
			continue
		}
		sig := status.StopSignal()
		if sig == unix.SIGTRAP|0x80 {
			if err := t.GetRegs(&ac.Regs); err != nil {
				return nil, hostarch.NoAccess, err
			}
			c.stopped, c.stoppedThread, c.stoppedRuns = ac.Regs, t, t.Runs
			return nil, hostarch.NoAccess, nil
		}
		if status.TrapCause() > 0 {
			// A ptrace event stop (PTRACE_INTERRUPT leftovers): resume.
			continue
		}
		switch sig {
		case interruptSignal:
			if c.interrupted.Swap(false) {
				if err := t.GetRegs(&ac.Regs); err != nil {
					return nil, hostarch.NoAccess, err
				}
				return nil, hostarch.NoAccess, platform.ErrContextInterrupt
			}
			// Stale: the interrupt was consumed already.
			continue
		case unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP:
			info := &arch.SignalInfo{}
			if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(t.TID), 0, uintptr(unsafe.Pointer(info)), 0, 0); e != 0 {
				return nil, hostarch.NoAccess, fmt.Errorf("ptrace: GETSIGINFO: %w", e)
			}
			if err := t.GetRegs(&ac.Regs); err != nil {
				return nil, hostarch.NoAccess, err
			}
			at := hostarch.NoAccess
			if sig == unix.SIGSEGV && hostarch.Addr(ac.Regs.Rip) == info.Addr() {
				at = hostarch.Execute
			}
			return info, at, platform.ErrContextSignal
		default:
			// Signals from outside (the host cannot reach a stub but from
			// the sentry's namespace): ignore them.
			continue
		}
	}
}

// setRegs loads regs into stub thread t before it resumes. After most
// syscalls only the result changed since the stop: then one POKEUSER of
// rax does instead of a full SETREGS, which the kernel validates field by
// field. orig_rax keeps the syscall number in that case, harmless because
// the result is never one of the -ERESTART* codes the host would act on
// (the sentry resolves restarts itself); the full path sets it to -1.
func (c *context) setRegs(t *thread, regs *unix.PtraceRegs) error {
	st := c.stoppedThread
	c.stoppedThread = nil
	if st == t && t.Runs == c.stoppedRuns && !hostRestartCode(regs.Rax) {
		r := *regs
		r.Rax, r.Orig_rax = c.stopped.Rax, c.stopped.Orig_rax
		if r == c.stopped {
			return t.PokeUser(unsafe.Offsetof(regs.Rax), regs.Rax)
		}
	}
	c.regs = *regs
	c.regs.Orig_rax = ^uint64(0) // never let the host restart anything
	return t.SetRegs(&c.regs)
}

// hostRestartCode reports whether rax holds -ERESTARTSYS ..
// -ERESTART_RESTARTBLOCK (-512 .. -516), which the host's signal code
// would act on if orig_rax named a syscall.
func hostRestartCode(rax uint64) bool {
	v := int64(rax)
	return v >= -516 && v <= -512
}

// CPU placement. A ptrace stop and resume wakes the other side; when tracer
// and stub share a CPU that is a direct switch, across CPUs an IPI and a
// remote wake-up that cost several times more on virtual machines. So each
// context picks a CPU (round robin, so that threads of one program spread
// out), and pins its tracer OS thread and every stub thread it runs to it.
var nextCPU atomic.Uint32

// bind pins the calling OS thread to the context's CPU, choosing one first.
func (c *context) bind() {
	if c.cpu >= 0 {
		return
	}
	var orig unix.CPUSet
	if unix.SchedGetaffinity(0, &orig) != nil || orig.Count() == 0 {
		c.cpu = -2 // cannot pin: leave placement to the host
		return
	}
	// The n-th allowed CPU, round robin.
	n := int(nextCPU.Add(1)-1) % orig.Count()
	for cpu := 0; cpu < len(orig)*64; cpu++ {
		if orig.IsSet(cpu) {
			if n == 0 {
				var set unix.CPUSet
				set.Set(cpu)
				if unix.SchedSetaffinity(0, &set) != nil {
					c.cpu = -2
					return
				}
				c.cpu, c.origAffinity = int32(cpu), orig
				return
			}
			n--
		}
	}
	c.cpu = -2
}

// bindThread pins a stub thread to the context's CPU.
func (c *context) bindThread(t *thread) {
	if c.cpu < 0 || t.cpu == c.cpu {
		return
	}
	var set unix.CPUSet
	set.Set(int(c.cpu))
	if unix.SchedSetaffinity(int(t.TID), &set) == nil {
		t.cpu = c.cpu
	}
}

// sigaction is the kernel's struct sigaction on x86-64.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const saNoCldStop = 1

// quietStops adds SA_NOCLDSTOP to the sentry's SIGCHLD action. Every
// ptrace stop of a stub otherwise raises SIGCHLD in the sentry, and Go's
// runtime handler runs for each one: that alone costs about as much as
// the stop. wait4 is still woken (the kernel wakes waiters with or
// without the signal), and stub exits still signal.
func quietStops() {
	var act sigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), 0, uintptr(unsafe.Pointer(&act)), 8, 0, 0); e != 0 {
		return
	}
	if act.flags&saNoCldStop != 0 {
		return
	}
	act.flags |= saNoCldStop
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
}
