// Package systrap runs application code in stub processes that catch the
// application's syscalls themselves: a seccomp filter in every stub turns
// them into SIGSYS (SECCOMP_RET_TRAP), the stub's signal handler publishes
// the signal frame to the sentry through shared memory and waits there until
// the sentry has rewritten it, then returns into the application with
// rt_sigreturn. Faults and interrupts take the same path. A syscall site
// that keeps trapping is rewritten to enter the stub without a signal
// (patch.go). No ptrace stop is on the path of a syscall or a fault.
//
// It owns: the stub executable (stub.go, testdata/stub.S), the stub
// processes (one per address space, one or two more forked ahead), one stub
// thread per (context, address space), the executor of each stub
// (exec.go), the trampolines of rewritten syscall sites (patch.go), the
// placement of stub threads and their sentry threads on CPUs (spinning on
// two, or pinned to one, whichever the host currently makes faster), and
// the context memfd whose pages are the shared memory of all of these.
//
// ptrace is still used, but only by one "factory" goroutine locked to its
// OS thread, to make stubs: exec'ing and preparing the template, forking a
// stub from it and starting the stub's executor. Mappings and application
// threads are made by each stub's executor, on request through shared
// memory; application threads are never traced.
//
// Lock order: subprocess.trampMu, subprocess.patchMu (then the memory
// manager's locks, through CodeMemory), subprocess.mu, then Platform.poolMu
// and patchState.mu; executor.mu is a leaf. None but patchMu (held for
// reading while a thread is let go) is held across a wait for a stub
// thread.
package systrap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/platform/internal/stubutil"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// FD numbers inside every stub's leader (application threads hold none).
const (
	stubMemFD = 0 // the sentry's memory file
	stubCtxFD = 1 // the platform's context memfd
)

// The context memfd: slots, then executor page pairs, then trampoline
// pages. It is sparse; only pages in use take memory.
const (
	pairsOff    = maxSlots * slotSize
	maxPairs    = 4096
	trampsOff   = pairsOff + maxPairs*0x2000
	maxTramps   = 16384
	ctxFileSize = trampsOff + maxTramps*0x1000
)

func pairOff(i int) int  { return pairsOff + i*0x2000 }
func trampOff(i int) int { return trampsOff + i*0x1000 }

// maxSpinFor bounds any spin: a side expecting to wait longer sleeps.
const maxSpinFor = 50 * time.Microsecond

// ErrUnsupported is what New's error wraps when the host cannot run the
// platform at all (as opposed to a failure starting it).
var ErrUnsupported = errors.New("systrap: not supported on this host")

// Platform is the systrap platform.
type Platform struct {
	// factory traces the template and every leader.
	factory  *stubutil.Factory
	template *thread

	ctxFD  int
	ctxMem []byte // the sentry's mapping of the context memfd

	// pausesPerUS calibrates the stub's spins (PAUSE instructions per
	// microsecond); zero on a single CPU, where spinning only delays the
	// other side, and until measured. execSpin bounds the sentry's spin
	// for an executor.
	pausesPerUS atomic.Uint32
	execSpin    time.Duration
	// inApp counts the threads let go into application code that have
	// not reported back; spinning for the other side pays only while
	// they leave it a CPU.
	inApp atomic.Int32
	ncpu  int32
	// allCPUs is where the sentry may run, and so its stubs.
	allCPUs unix.CPUSet
	// Placement (see place): pinMode says contexts pin rather than
	// spin; cost holds each mode's moving average of the time between
	// two events of a context (nanoseconds), and epochEnd (Unix
	// nanoseconds) and epochs pace the choice.
	pinMode  atomic.Bool
	cost     [2]atomic.Int64
	epochEnd atomic.Int64
	epochs   atomic.Int32
	// neverPin keeps every context spinning (benchmarks of the spin).
	neverPin bool
	// pool hands out stubs forked ahead of need (warm) by fillPool, so
	// that a fork or an exec does not wait for the factory; made counts
	// the address spaces asked for (the pool starts with the second: a
	// sandbox that never forks needs none).
	pool chan poolResult
	made atomic.Int32
	// first is the first address space, made while the sentry builds
	// the rest of the sandbox.
	first chan poolResult

	poolMu    sync.Mutex
	freeSlots []int
	nextSlot  int
	freePairs []int
	nextPair  int
	freeTramp []int
	nextTramp int

	patch patchState
}

// New starts the platform. memFD is the sentry's memory file; the stubs
// map application memory from it. New must run before the sentry confines
// itself: it creates a memfd and execs the template through /proc/self/fd.
func New(memFD int) (*Platform, error) {
	if !haveFSGSBase() {
		return nil, fmt.Errorf("%w: no RDFSBASE/WRFSBASE in user mode (needs Linux 5.9+ on a CPU with FSGSBASE)", ErrUnsupported)
	}
	ctxFD, err := unix.MemfdCreate("veil-systrap-ctx", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("systrap: memfd for slots: %w", err)
	}
	if err := unix.Ftruncate(ctxFD, ctxFileSize); err != nil {
		unix.Close(ctxFD)
		return nil, fmt.Errorf("systrap: sizing the context memfd: %w", err)
	}
	mem, err := unix.Mmap(ctxFD, 0, ctxFileSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		unix.Close(ctxFD)
		return nil, fmt.Errorf("systrap: mapping the context memfd: %w", err)
	}
	p := &Platform{ctxFD: ctxFD, ctxMem: mem, ncpu: int32(runtime.NumCPU())}
	if p.ncpu > 1 {
		go func() { p.pausesPerUS.Store(calibratePause()) }()
		p.execSpin = maxSpinFor
	}
	unix.SchedGetaffinity(0, &p.allCPUs)
	p.patch.init()
	f, err := stubutil.StartFactory(func() (err error) {
		p.template, err = p.startTemplate(memFD)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.factory = f
	p.pool = make(chan poolResult, 1)
	p.first = make(chan poolResult, 1)
	go func() {
		s, err := p.makeAddressSpace()
		p.first <- poolResult{s, err}
	}()
	return p, nil
}

type poolResult struct {
	s   *subprocess
	err error
}

// fillPool keeps one stub waiting in the pool and one ready to follow it,
// for the platform's life.
func (p *Platform) fillPool() {
	for {
		s, err := p.makeAddressSpace()
		p.pool <- poolResult{s, err}
		if err != nil {
			// Out of stub slots, or worse: let the callers see it,
			// without a busy loop.
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// calibratePause measures how many PAUSE instructions take a microsecond
// here (from about 10 to over 100 cycles each, by CPU).
func calibratePause() uint32 {
	best := time.Duration(1 << 62)
	const n = 5000
	for range 3 {
		t := time.Now()
		pauseLoop(n)
		best = min(best, time.Since(t))
	}
	per := uint64(n) * uint64(time.Microsecond) / uint64(max(best, 1))
	return uint32(min(max(per, 1), 1000))
}

// haveFSGSBase reports whether user code may use RDFSBASE and friends
// (AT_HWCAP2 bit 1): the handler saves and restores the application's FS
// and GS bases with them, since a signal frame does not hold them.
func haveFSGSBase() bool {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return false
	}
	const atHWCap2, hwcap2FSGSBase = 26, 1 << 1
	for i := 0; i+16 <= len(b); i += 16 {
		if binary.LittleEndian.Uint64(b[i:]) == atHWCap2 {
			return binary.LittleEndian.Uint64(b[i+8:])&hwcap2FSGSBase != 0
		}
	}
	return false
}

// Name implements platform.Platform.
func (p *Platform) Name() string { return "systrap" }

// MaxUserAddress implements platform.Platform.
func (p *Platform) MaxUserAddress() hostarch.Addr { return MaxUserAddress }

func (p *Platform) startTemplate(memFD int) (*thread, error) {
	image, err := stubELF()
	if err != nil {
		return nil, err
	}
	t, err := tracer.Exec("veil-systrap-stub", image, []uintptr{uintptr(memFD), uintptr(p.ctxFD)})
	if err != nil {
		return nil, err
	}
	pid := int(t.TGID)
	fail := func(err error) (*thread, error) {
		unix.Kill(pid, unix.SIGKILL)
		t.Reap()
		return nil, err
	}
	if _, err := t.Wait(); err != nil {
		return fail(err)
	}
	if err := stubutil.SetOptions(t.TID, ptraceOptions); err != nil {
		return fail(fmt.Errorf("systrap: setting options: %w", err))
	}
	if err := t.GetRegs(&t.InitRegs); err != nil {
		return fail(err)
	}
	type step struct {
		nr   uintptr
		args [6]uintptr
	}
	// Strip the template down to the stub image and the two memfds, give
	// it the signal handlers every stub inherits, then lock it down.
	steps := []step{
		{unix.SYS_CLOSE_RANGE, [6]uintptr{stubCtxFD + 1, ^uintptr(0) >> 32, 0}},
		{unix.SYS_MUNMAP, [6]uintptr{0, stubBase}},
		{unix.SYS_MUNMAP, [6]uintptr{stubBase + stubSize, 0x7ffffffff000 - (stubBase + stubSize)}},
		// No capabilities: a stub needs none, and a sentry that has
		// dropped its own may only trace a process whose permitted set
		// is a subset of its own.
		{unix.SYS_CAPSET, [6]uintptr{stubBase + capHdrOff, stubBase + capDataOff}},
	}
	for _, sig := range stubSignals {
		steps = append(steps, step{unix.SYS_RT_SIGACTION, [6]uintptr{uintptr(sig), stubBase + sigactionOff, 0, 8}})
	}
	steps = append(steps,
		step{unix.SYS_PRCTL, [6]uintptr{unix.PR_SET_NO_NEW_PRIVS, 1}},
		step{unix.SYS_SECCOMP, [6]uintptr{unix.SECCOMP_SET_MODE_FILTER, 0, stubBase + fprogOff}},
	)
	for _, s := range steps {
		r, err := injectAt(t, sysSite, s.nr, s.args)
		if err != nil {
			return fail(fmt.Errorf("systrap: preparing stub (syscall %d): %w", s.nr, err))
		}
		if e := int64(r); e < 0 && e > -4096 {
			if s.nr == unix.SYS_SECCOMP {
				// No seccomp filters, or not the return values
				// the stub relies on.
				return fail(fmt.Errorf("%w: seccomp: %v", ErrUnsupported, unix.Errno(-e)))
			}
			return fail(fmt.Errorf("systrap: preparing stub (syscall %d): %w", s.nr, unix.Errno(-e)))
		}
	}
	return t, nil
}

// PTRACE_O_TRACESECCOMP makes SECCOMP_RET_TRACE stop the traced thread
// (and so let the syscall run) instead of failing it with ENOSYS.
const ptraceOptions = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACESECCOMP

// slot returns the sentry's view of slot i.
func (p *Platform) slot(i int) []byte { return p.ctxMem[i*slotSize : (i+1)*slotSize : (i+1)*slotSize] }

// alloc takes an index from a pool (free list, then never-used ones below
// limit).
func (p *Platform) alloc(free *[]int, next *int, limit int, what string) (int, error) {
	p.poolMu.Lock()
	defer p.poolMu.Unlock()
	if n := len(*free); n > 0 {
		i := (*free)[n-1]
		*free = (*free)[:n-1]
		return i, nil
	}
	if *next == limit {
		return 0, fmt.Errorf("systrap: all %d %s in use", limit, what)
	}
	*next++
	return *next - 1, nil
}

func (p *Platform) release(free *[]int, is ...int) {
	p.poolMu.Lock()
	*free = append(*free, is...)
	p.poolMu.Unlock()
}

// allocSlot takes a slot from the pool, cleared: a slot still holds the
// frames of its last thread, which may have been another process's.
func (p *Platform) allocSlot() (int, error) {
	i, err := p.alloc(&p.freeSlots, &p.nextSlot, maxSlots, "stub thread slots")
	if err == nil {
		clear(p.slot(i))
	}
	return i, err
}

// NewAddressSpace implements platform.Platform: a warm stub, or a new one.
func (p *Platform) NewAddressSpace() (platform.AddressSpace, error) {
	switch n := p.made.Add(1); {
	case n == 1:
		r := <-p.first
		return r.s, r.err
	case n == 2:
		go p.fillPool()
		return p.makeAddressSpace()
	}
	// The pool's next stub is at most one stub's making away.
	r := <-p.pool
	return r.s, r.err
}

// makeAddressSpace forks a stub from the template, maps its executor's
// pages and starts the executor.
func (p *Platform) makeAddressSpace() (*subprocess, error) {
	pair, err := p.alloc(&p.freePairs, &p.nextPair, maxPairs, "stub processes")
	if err != nil {
		return nil, err
	}
	var leader *thread
	p.factory.Do(func() {
		var r uintptr
		r, err = injectAt(p.template, forkSite, unix.SYS_CLONE, [6]uintptr{unix.CLONE_PARENT | uintptr(unix.SIGCHLD)})
		if err != nil {
			return
		}
		if e := int64(r); e < 0 {
			err = fmt.Errorf("systrap: forking stub: %w", unix.Errno(-e))
			return
		}
		leader, err = tracer.Seize(int32(r), int32(r))
		if err != nil {
			return
		}
		leader.InitRegs = p.template.InitRegs
		err = p.startExecutor(leader, pair)
	})
	if err != nil {
		if leader != nil {
			unix.Kill(int(leader.TGID), unix.SIGKILL)
			leader.Reap()
		}
		p.release(&p.freePairs, pair)
		return nil, err
	}
	s := &subprocess{p: p, leader: leader, pair: pair}
	s.exec = newExecutor(p, pair, leader.TGID)
	return s, nil
}

// startExecutor maps a seized leader's executor pages (the request page
// read-only) and lets it run the executor loop. It stays traced, only so
// that it dies with the sentry (PTRACE_O_EXITKILL); it never stops again.
func (p *Platform) startExecutor(leader *thread, pair int) error {
	off := uintptr(pairOff(pair))
	for _, m := range []struct {
		addr, prot, off uintptr
	}{
		{reqAddr, unix.PROT_READ, off},
		{ldrAddr, unix.PROT_READ | unix.PROT_WRITE, off + 0x1000},
	} {
		r, err := injectAt(leader, sysSite, unix.SYS_MMAP, [6]uintptr{m.addr, 0x1000, m.prot, unix.MAP_SHARED | unix.MAP_FIXED, stubCtxFD, m.off})
		if err != nil {
			return err
		}
		if e := int64(r); e < 0 && e > -4096 {
			return fmt.Errorf("systrap: mapping executor pages: %w", unix.Errno(-e))
		}
	}
	p.initPair(pair)
	regs := leader.InitRegs
	regs.Rip = execStart
	if err := leader.SetRegs(&regs); err != nil {
		return err
	}
	return leader.Cont(unix.PTRACE_CONT, 0)
}

// subprocess is one stub process: an address space. Its leader runs the
// executor; its other threads run application code, one per context that
// has run in it.
type subprocess struct {
	p      *Platform
	leader *thread
	pair   int
	exec   *executor

	// patchMu is held for reading while a thread is let go back to the
	// application, and for writing while application code is rewritten
	// (patch.go).
	patchMu sync.RWMutex

	mu   sync.Mutex
	dead bool
	// slots are all slots mapped in this stub; spare are those whose
	// thread was told to exit, reusable here once the kernel has cleared
	// their state word (the thread is gone).
	slots   []int
	spare   []int
	threads map[*stubThread]struct{}
	// tramps maps the trampoline pages mapped in this stub (page address
	// to page in the context memfd); trampMu serializes their making.
	tramps  map[uint64]int
	trampMu sync.Mutex
	// code reads and rewrites the application's code; trapCount counts
	// the traps of sites not rewritten yet (patch.go).
	code      platform.CodeMemory
	trapCount map[uint64]int
}

// minAppAddr is the lowest address the sentry's memory manager ever maps
// (vm.mmap_min_addr's usual value); below it lie the platform's low
// trampolines.
const minAppAddr = 0x10000

// MapFile implements platform.AddressSpace.
func (s *subprocess) MapFile(addr hostarch.Addr, fileOffset, length uint64, at hostarch.AccessType) error {
	end, ok := addr.AddLength(length)
	if !ok || addr < minAppAddr || end > MaxUserAddress {
		return unix.EINVAL
	}
	ops := []execOp{{nr: unix.SYS_MMAP, args: [6]uintptr{uintptr(addr), uintptr(length), uintptr(at.Prot()),
		unix.MAP_SHARED | unix.MAP_FIXED, stubMemFD, uintptr(fileOffset)}}}
	if err := s.exec.run(ops); err != nil {
		return err
	}
	if e := int64(ops[0].res); e < 0 && e > -4096 {
		return unix.Errno(-e)
	}
	return nil
}

// Unmap implements platform.AddressSpace.
func (s *subprocess) Unmap(addr hostarch.Addr, length uint64) {
	end, ok := addr.AddLength(length)
	if !ok || addr < minAppAddr || end > MaxUserAddress {
		return
	}
	s.exec.run([]execOp{{nr: unix.SYS_MUNMAP, args: [6]uintptr{uintptr(addr), uintptr(length)}}})
}

// Release implements platform.AddressSpace: kill the stub, reap it (its
// leader is reported only once every thread is gone), and give its slots
// and pages back.
func (s *subprocess) Release() {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.dead = true
	slots := s.slots
	s.slots, s.spare = nil, nil
	var tramps []int
	for _, t := range s.tramps {
		tramps = append(tramps, t)
	}
	s.tramps = nil
	s.code = nil
	s.mu.Unlock()
	unix.Kill(int(s.leader.TGID), unix.SIGKILL)
	s.exec.close()
	// Only once the stub is reaped are all its threads gone: the
	// caller frees the application's pages when Release returns.
	s.leader.Reap()
	s.p.release(&s.p.freeSlots, slots...)
	s.p.release(&s.p.freePairs, s.pair)
	s.p.release(&s.p.freeTramp, tramps...)
}

// stubThread is an application thread of a stub and its slot.
type stubThread struct {
	s         *subprocess
	slot      int
	mem       []byte // the sentry's view of the slot
	tgid, tid int32
	// fast says the slot's fast-path frame is ready: the thread runs
	// with its GS base at the slot, so rewritten sites enter the fast
	// path (the application's own GS base, when it sets one, disables
	// it for the thread).
	fast bool
	// eventAt and resumeAt time the last handover each way; handling
	// and running are moving averages of the sentry's time on an event
	// and the application's time between events, which size the spins.
	eventAt, resumeAt time.Time
	handling, running time.Duration
	cpu               int // the CPU the thread is pinned to, or -1
}

func (th *stubThread) stubAddr() uint64 { return slotsBase + uint64(th.slot)*slotSize }

func (th *stubThread) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&th.mem[off])) }

// newThread has the executor make an application thread in s and waits
// until it has reported from its handler.
func (s *subprocess) newThread() (*stubThread, error) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return nil, platform.ErrContextDead
	}
	slot, fresh := -1, false
	for i, sl := range s.spare {
		if atomic.LoadUint32((*uint32)(unsafe.Pointer(&s.p.slot(sl)[slotState]))) == stateDead {
			slot = sl
			s.spare = append(s.spare[:i], s.spare[i+1:]...)
			break
		}
	}
	if slot < 0 {
		var err error
		if slot, err = s.p.allocSlot(); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		fresh = true
		s.slots = append(s.slots, slot)
	}
	s.mu.Unlock()

	th := &stubThread{s: s, slot: slot, mem: s.p.slot(slot), tgid: s.leader.TGID, cpu: -1}
	le := binary.LittleEndian
	clear(th.mem[:altStackOff])
	*th.word(slotState) = stateInit
	le.PutUint64(th.mem[slotStack:], th.stubAddr()+altStackOff) // ss_sp
	le.PutUint64(th.mem[slotStack+16:], slotSize-altStackOff)   // ss_size
	var ops []execOp
	if fresh {
		ops = append(ops, execOp{nr: unix.SYS_MMAP, args: [6]uintptr{uintptr(th.stubAddr()), slotSize,
			unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_FIXED, stubCtxFD, uintptr(slot * slotSize)}})
	}
	ops = append(ops, execOp{nr: unix.SYS_CLONE, args: [6]uintptr{threadCloneFlags, 0, 0, uintptr(th.stubAddr() + slotState)}, r12: th.stubAddr()})
	if err := s.exec.run(ops); err != nil {
		return nil, err
	}
	for _, op := range ops {
		if e := int64(op.res); e < 0 && e > -4096 {
			return nil, fmt.Errorf("systrap: making a stub thread (syscall %d): %w", op.nr, unix.Errno(-e))
		}
	}
	th.tid = int32(ops[len(ops)-1].res)
	if s.exec.cpu >= 0 {
		// Made by a leader pinned to its last caller's CPU; placement
		// of application threads is the contexts' (place).
		unix.SchedSetaffinity(int(th.tid), &s.p.allCPUs)
	}
	spin := maxSpinFor
	if s.p.pinMode.Load() {
		spin = 0
	}
	if st := th.wait(stateInit, spin); st != stateEvent {
		return nil, fmt.Errorf("systrap: new stub thread did not report (state %d)", st)
	}
	th.setupFast()
	s.mu.Lock()
	if s.threads == nil {
		s.threads = make(map[*stubThread]struct{})
	}
	s.threads[th] = struct{}{}
	s.mu.Unlock()
	return th, nil
}

// retire tells a parked thread to exit; its slot becomes spare.
func (th *stubThread) retire() {
	s := th.s
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.threads, th)
	if s.dead {
		return // the slot may belong to another stub by now
	}
	th.set(stateExit)
	s.spare = append(s.spare, th.slot)
}

// set publishes a new state to the stub thread, waking it if it sleeps.
// The store is a full barrier (XCHG), so either the stub sees the state
// before it sleeps or we see its sleeping flag.
func (th *stubThread) set(state uint32) {
	atomic.StoreUint32(th.word(slotState), state)
	if atomic.LoadUint32(th.word(slotStubSleeping)) != 0 {
		futex(th.word(slotState), futexWake, 1, nil)
	}
}

// deadCheckInterval is how often a sentry waiting for a stub thread checks
// that the thread still exists: the kernel clears the state word of a dead
// thread only while other threads of its process live.
const deadCheckInterval = 200 * time.Millisecond

// wait waits until the state word is no longer from, spinning first, and
// returns it (stateDead if the thread is gone).
func (th *stubThread) wait(from uint32, spin time.Duration) uint32 {
	w := th.word(slotState)
	if spin > 0 {
		deadline := time.Now().Add(spin)
		for i := 1; ; i++ {
			if st := atomic.LoadUint32(w); st != from {
				return st
			}
			if i%128 == 0 && time.Now().After(deadline) {
				break
			}
		}
	}
	ts := unix.NsecToTimespec(int64(deadCheckInterval))
	for {
		atomic.StoreUint32(th.word(slotSentrySleeping), 1)
		if st := atomic.LoadUint32(w); st != from {
			atomic.StoreUint32(th.word(slotSentrySleeping), 0)
			return st
		}
		err := futex(w, futexWait, from, &ts)
		atomic.StoreUint32(th.word(slotSentrySleeping), 0)
		if st := atomic.LoadUint32(w); st != from {
			return st
		}
		if err == unix.ETIMEDOUT && unix.Tgkill(int(th.tgid), int(th.tid), 0) == unix.ESRCH {
			return stateDead
		}
	}
}

func futex(addr *uint32, op int, val uint32, ts *unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), uintptr(op), uintptr(val), uintptr(unsafe.Pointer(ts)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Signal frame layout (uapi/asm/ucontext.h, sigcontext.h): the handler
// publishes the stub address of the ucontext; the sigcontext is inside it,
// and holds a pointer to the XSAVE image, all on the alternate stack.
const (
	ucMcontext  = 40
	ucSigmask   = 40 + 256
	ucEnd       = ucSigmask + 8
	scRegsEnd   = 18 * 8 // r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags
	scCS        = 144
	scSS        = 150
	scErr       = 152
	scTrapNo    = 160
	scFPState   = 184
	fxswOff     = 464 // struct _fpx_sw_bytes in the FXSAVE area's software bytes
	fxswMagic1  = 0x46505853
	fxswMagic2  = 0x46505845 // after the XSAVE image
	xstateBVOff = 512
)

// frame locates the parked thread's signal frame in the sentry's view of
// the slot. Everything here is written by the stub, so by the application
// as much as by the kernel: it is checked to lie inside the slot, clear of
// the control block.
func (th *stubThread) frame() (sc []byte, info []byte, ok bool) {
	base := th.stubAddr()
	le := binary.LittleEndian
	uc := le.Uint64(th.mem[slotUcontext:]) - base
	si := le.Uint64(th.mem[slotSiginfo:]) - base
	if uc < fastUcontextOff || uc > slotSize-ucEnd || si < fastSiginfoOff || si > slotSize-128 {
		return nil, nil, false
	}
	return th.mem[uc+ucMcontext : uc+ucEnd], th.mem[si : si+128], true
}

// setupFast prepares the slot's fast-path frame from the first frame the
// kernel built for the thread (the report of a new thread): the same
// uc_flags and XSAVE software bytes, so that rt_sigreturn restores the
// full register state from it; the thread's alternate stack, which
// rt_sigreturn reinstalls; and the image's location. If the host's XSAVE
// image does not fit the frame, the thread goes without the fast path.
func (th *stubThread) setupFast() {
	le := binary.LittleEndian
	uc := le.Uint64(th.mem[slotUcontext:]) - th.stubAddr()
	sc, _, ok := th.frame()
	if !ok {
		return
	}
	img, ok := th.fpstate(sc)
	if !ok || len(img) <= xstateBVOff || le.Uint32(img[fxswOff:]) != fxswMagic1 {
		return
	}
	size := len(img)
	if fastFPOff+size+4 > fastFPEnd {
		return
	}
	fuc := th.mem[fastUcontextOff:]
	copy(fuc[:8], th.mem[uc:uc+8]) // uc_flags
	le.PutUint64(fuc[16:], th.stubAddr()+altStackOff)
	le.PutUint64(fuc[32:], slotSize-altStackOff)
	le.PutUint64(fuc[ucMcontext+scFPState:], th.stubAddr()+fastFPOff)
	fp := th.mem[fastFPOff:fastFPEnd]
	copy(fp[fxswOff:xstateBVOff], img[fxswOff:xstateBVOff])
	le.PutUint32(fp[size:], fxswMagic2)
	th.fast = th.s.p.patch.enabled
}

// fpstate locates the frame's XSAVE image and the size the kernel gave it.
func (th *stubThread) fpstate(sc []byte) ([]byte, bool) {
	le := binary.LittleEndian
	fp := le.Uint64(sc[scFPState:]) - th.stubAddr()
	if fp < fastUcontextOff || fp > slotSize-512 {
		return nil, false
	}
	img := th.mem[fp:]
	size := uint64(512)
	if le.Uint32(img[fxswOff:]) == fxswMagic1 {
		size = uint64(le.Uint32(img[fxswOff+16:]))
	}
	if size > uint64(len(img)) {
		return nil, false
	}
	return img[:size], true
}

// readRegs copies the frame's registers into r. The sigcontext holds the
// general registers in an order of its own; the FS and GS bases, which it
// lacks, come from the slot, where the handler saved them.
func (th *stubThread) readRegs(sc []byte, r *arch.Registers) {
	le := binary.LittleEndian
	for i, p := range sigcontextOrder(r) {
		*p = le.Uint64(sc[8*i:])
	}
	r.Cs = uint64(le.Uint16(sc[scCS:]))
	r.Ss = uint64(le.Uint16(sc[scSS:]))
	r.Fs_base = le.Uint64(th.mem[slotFSBase:])
	r.Gs_base = le.Uint64(th.mem[slotGSBase:])
	if r.Gs_base == th.stubAddr() {
		// The platform's, not the application's (see fast).
		r.Gs_base = 0
	}
}

// writeRegs stores r into the frame for rt_sigreturn. The segments are
// forced to the user ones and the signal mask to empty: the application
// may have written anything into its own frame.
func (th *stubThread) writeRegs(sc []byte, r *arch.Registers) {
	le := binary.LittleEndian
	for i, p := range sigcontextOrder(r) {
		le.PutUint64(sc[8*i:], *p)
	}
	le.PutUint16(sc[scCS:], arch.UserCS)
	le.PutUint16(sc[scCS+2:], 0)
	le.PutUint16(sc[scCS+4:], 0)
	le.PutUint16(sc[scSS:], arch.UserSS)
	le.PutUint64(sc[ucSigmask-ucMcontext:], 0)
	le.PutUint64(th.mem[slotFSBase:], r.Fs_base)
	gs := r.Gs_base
	if gs == 0 && th.fast {
		gs = th.stubAddr()
	}
	le.PutUint64(th.mem[slotGSBase:], gs)
}

func sigcontextOrder(r *arch.Registers) [18]*uint64 {
	return [18]*uint64{&r.R8, &r.R9, &r.R10, &r.R11, &r.R12, &r.R13, &r.R14, &r.R15,
		&r.Rdi, &r.Rsi, &r.Rbp, &r.Rbx, &r.Rdx, &r.Rax, &r.Rcx, &r.Rsp, &r.Rip, &r.Eflags}
}

// readFP copies the frame's XSAVE image into ac.FP.
func (th *stubThread) readFP(ac *arch.Context) error {
	sc, _, ok := th.frame()
	if !ok {
		return platform.ErrContextDead
	}
	img, ok := th.fpstate(sc)
	if !ok {
		return platform.ErrContextDead
	}
	if len(ac.FP) != len(img) {
		ac.FP = make([]byte, len(img))
	}
	copy(ac.FP, img)
	ac.FPValid = true
	return nil
}

// writeFP loads fp into the frame's XSAVE image. The kernel's software
// bytes (which say how big the image is and which features it holds) are
// kept, and the header is made one XRSTOR accepts: a bad image would make
// rt_sigreturn fail and kill the stub.
func (th *stubThread) writeFP(sc []byte, fp []byte) error {
	img, ok := th.fpstate(sc)
	if !ok {
		return platform.ErrContextDead
	}
	le := binary.LittleEndian
	copy(img[:fxswOff], fp)
	if len(img) > xstateBVOff && len(fp) > xstateBVOff {
		copy(img[xstateBVOff:], fp[xstateBVOff:])
		xfeatures := le.Uint64(img[fxswOff+8:])
		le.PutUint64(img[xstateBVOff:], le.Uint64(img[xstateBVOff:])&xfeatures)
		clear(img[xstateBVOff+8 : min(len(img), xstateBVOff+64)]) // XCOMP_BV and reserved
	}
	// MXCSR's reserved bits.
	le.PutUint32(img[24:], le.Uint32(img[24:])&0xffff)
	return nil
}

// context runs one application thread.
type context struct {
	p *Platform
	// th is the stub thread of the address space the context ran in
	// last; between Switches it is parked in its handler.
	th          *stubThread
	running     atomic.Pointer[stubThread]
	interrupted atomic.Bool

	// Placement (see place): once placed, the context's OS thread runs
	// on cpu, and its stub thread on cpu too (pinned) or on altCPU
	// (spinning). lastEvent and lastPinned are the time and mode of its
	// last event; warm counts the events after a change of mode that are
	// not measured (the threads are still moving).
	placed, pinned bool
	cpu, altCPU    int
	origAffinity   unix.CPUSet
	lastEvent      time.Time
	lastPinned     bool
	lastSyscall    bool
	warm           int
}

// NewContext implements platform.Platform.
func (p *Platform) NewContext() platform.Context { return &context{p: p} }

// Interrupt implements platform.Context: a signal makes the running stub
// thread enter its handler, which reports it like any other.
func (c *context) Interrupt() {
	c.interrupted.Store(true)
	if th := c.running.Load(); th != nil {
		unix.Tgkill(int(th.tgid), int(th.tid), interruptSignal)
	}
}

// Release implements platform.Context. It runs on the context's OS thread
// and gives that thread back its CPU affinity.
func (c *context) Release() {
	c.unplace()
	if c.th != nil {
		c.th.retire()
		c.th = nil
	}
}

// CPU placement. Spinning makes a handover cost two cache-line transfers,
// but only while each side has a CPU of its own; on a busy host a spinning
// side takes the CPU the other needs, and a futex wake-up across CPUs costs
// an IPI and a remote wake-up, tens of microseconds on a virtual machine.
// Pinning a context's OS thread and stub thread to one CPU (round robin
// over the contexts) makes a handover a direct switch instead: slower than
// a spin that works, much faster than one that does not. (To spin, the
// stub thread is pinned to another CPU than the OS thread, so that the two
// never spin on one.) Which is better
// depends on what else the host runs, so the platform measures: in epochs
// of placeEpoch it runs every context in one mode, keeps each mode's
// average time between two events of a context, and picks the faster,
// briefly trying the other again every few epochs.
const (
	placeEpoch = 20 * time.Millisecond
	// placeExplore: every placeExplore-th epoch runs the other mode,
	// for a tenth of an epoch (thousands of events on a busy context,
	// enough to renew its average).
	placeExplore = 4
	// placeMaxSample: longer gaps (a blocking syscall, computing) say
	// nothing about handovers.
	placeMaxSample = 500 * time.Microsecond
)

var nextCPU atomic.Uint32

func modeIndex(pinned bool) int {
	if pinned {
		return 1
	}
	return 0
}

// place records the gap since the context's last event and applies the
// platform's current mode to the context. Only gaps between two syscalls
// are measured: a fault's handling (the executor's mapping) says less
// about the handover.
func (c *context) place(th *stubThread, now time.Time, syscall bool) {
	p := c.p
	mode := p.pinMode.Load()
	gap := now.Sub(c.lastEvent)
	measured := syscall && c.lastSyscall
	c.lastSyscall = syscall
	switch {
	case c.warm > 0:
		c.warm--
	case measured && !c.lastEvent.IsZero() && c.lastPinned == mode && gap < placeMaxSample:
		// A moving average, each sample clipped to four times it:
		// one preempted handover must not decide the mode.
		cost := &p.cost[modeIndex(mode)]
		if old := cost.Load(); old == 0 {
			cost.Store(int64(gap))
		} else {
			cost.Store((7*old + min(int64(gap), 4*old)) / 8)
		}
	}
	c.lastEvent = now
	if end := p.epochEnd.Load(); now.UnixNano() > end {
		spin, pin := p.cost[0].Load(), p.cost[1].Load()
		next, epoch := pin != 0 && pin < spin, placeEpoch
		switch {
		case spin == 0 || pin == 0:
			// Try the mode not measured yet, briefly.
			next, epoch = spin != 0, placeEpoch/10
		case p.epochs.Add(1)%placeExplore == 0:
			// A short look at the other mode: the host may have
			// changed.
			next, epoch = !next, placeEpoch/10
		}
		if p.epochEnd.CompareAndSwap(end, now.Add(epoch).UnixNano()) {
			p.pinMode.Store(next)
		}
	}
	c.lastPinned = p.pinMode.Load()
	c.placeThread(th, c.lastPinned)
}

// placeThread puts the calling OS thread and th where mode pinned says,
// choosing the context's CPUs first (round robin over contexts).
func (c *context) placeThread(th *stubThread, pinned bool) {
	if c.p.neverPin {
		return
	}
	if !c.placed {
		var orig unix.CPUSet
		if unix.SchedGetaffinity(0, &orig) != nil || orig.Count() < 2 {
			return
		}
		var cpus []int
		for cpu := 0; cpu < len(orig)*64; cpu++ {
			if orig.IsSet(cpu) {
				cpus = append(cpus, cpu)
			}
		}
		n := int(nextCPU.Add(1) - 1)
		cpu := cpus[n%len(cpus)]
		var set unix.CPUSet
		set.Set(cpu)
		if unix.SchedSetaffinity(0, &set) != nil {
			return
		}
		c.placed, c.cpu, c.altCPU, c.origAffinity = true, cpu, cpus[(n+1)%len(cpus)], orig
		c.pinned = !pinned // below, the thread is placed
	}
	want := c.altCPU
	if pinned {
		want = c.cpu
	}
	if c.pinned != pinned {
		c.pinned = pinned
		c.warm = 32
	}
	if th.cpu != want {
		pinThread(th.tid, want)
		th.cpu = want
	}
}

func pinThread(tid int32, cpu int) {
	var set unix.CPUSet
	set.Set(cpu)
	unix.SchedSetaffinity(int(tid), &set)
}

// unplace gives the calling OS thread back the placement it had.
func (c *context) unplace() {
	if c.placed {
		unix.SchedSetaffinity(0, &c.origAffinity)
		c.placed = false
	}
}

// PullFullState implements platform.Context.
func (c *context) PullFullState(as platform.AddressSpace, ac *arch.Context) error {
	if ac.FPValid || c.th == nil {
		return nil
	}
	return c.th.readFP(ac)
}

// moveTo gives the context a thread in s, carrying the FP state over from
// the thread it had.
func (c *context) moveTo(s *subprocess, ac *arch.Context) error {
	if old := c.th; old != nil {
		if !ac.FPValid {
			old.s.mu.Lock()
			err := platform.ErrContextDead
			if !old.s.dead {
				err = old.readFP(ac)
			}
			old.s.mu.Unlock()
			if err != nil {
				return err
			}
		}
		old.retire()
		c.th = nil
	}
	th, err := s.newThread()
	if err != nil {
		return err
	}
	c.th = th
	if len(ac.FP) > 0 {
		ac.FPDirty = true
	}
	return nil
}

// spinFor is how long to spin for the other side, given the moving
// average of how long it usually takes: generously (a wake-up through the
// futex costs tens of microseconds on a virtual machine) while that is
// short, not at all once it is not, so that an application making
// syscalls in a loop pays no futex call on either side and an idle one
// costs no CPU.
func spinFor(avg time.Duration) time.Duration {
	if avg > maxSpinFor {
		return 0
	}
	return min(max(4*avg, minSpinFor), maxSpinFor)
}

// minSpinFor is the least a spinning side spins.
const minSpinFor = 10 * time.Microsecond

func average(avg, sample time.Duration) time.Duration { return (7*avg + sample) / 8 }

// Switch implements platform.Context.
func (c *context) Switch(as platform.AddressSpace, ac *arch.Context) (*arch.SignalInfo, hostarch.AccessType, error) {
	if c.interrupted.Swap(false) {
		return nil, hostarch.NoAccess, platform.ErrContextInterrupt
	}
	s := as.(*subprocess)
	if c.th == nil || c.th.s != s {
		if err := c.moveTo(s, ac); err != nil {
			return nil, hostarch.NoAccess, err
		}
	}
	th := c.th
	sc, _, ok := th.frame()
	if !ok {
		return nil, hostarch.NoAccess, platform.ErrContextDead
	}
	th.writeRegs(sc, &ac.Regs)
	if ac.FPDirty {
		if err := th.writeFP(sc, ac.FP); err != nil {
			return nil, hostarch.NoAccess, err
		}
		ac.FPDirty = false
		ac.FPValid = true
	}
	c.running.Store(th)
	defer c.running.Store(nil)
	if c.interrupted.Swap(false) {
		return nil, hostarch.NoAccess, platform.ErrContextInterrupt
	}
	ac.FPValid = false
	pausesPerUS := c.p.pausesPerUS.Load()
	if c.p.ncpu > 1 {
		c.placeThread(th, c.p.pinMode.Load())
	}
	for {
		now := time.Now()
		if !th.eventAt.IsZero() {
			th.handling = average(th.handling, now.Sub(th.eventAt))
		}
		// Each side spins for the other about as long as it has been
		// taking, and only while no more threads run application code
		// than leave a CPU to the side spun for: otherwise spinning
		// takes the CPU the other side needs.
		inApp := c.p.inApp.Add(1)
		spare := inApp < c.p.ncpu && !(c.placed && c.pinned)
		stubSpin, sentrySpin := time.Duration(0), time.Duration(0)
		if spare {
			stubSpin, sentrySpin = spinFor(th.handling), spinFor(th.running)
		}
		atomic.StoreUint32(th.word(slotSpin), uint32(stubSpin/time.Microsecond)*pausesPerUS)
		th.resumeAt = now
		s.patchMu.RLock()
		th.set(stateResume)
		s.patchMu.RUnlock()
		st := th.wait(stateResume, sentrySpin)
		c.p.inApp.Add(-1)
		if st != stateEvent {
			return nil, hostarch.NoAccess, platform.ErrContextDead
		}
		if c.p.ncpu > 1 && !c.p.neverPin {
			c.place(th, th.eventAt, binary.LittleEndian.Uint64(th.mem[slotSigno:]) == uint64(unix.SIGSYS))
		}
		th.eventAt = time.Now()
		th.running = average(th.running, th.eventAt.Sub(th.resumeAt))
		sc, sinfo, ok := th.frame()
		if !ok {
			return nil, hostarch.NoAccess, platform.ErrContextDead
		}
		th.readRegs(sc, &ac.Regs)
		le := binary.LittleEndian
		switch sig := unix.Signal(le.Uint64(th.mem[slotSigno:])); sig {
		case unix.SIGSYS:
			// SECCOMP_RET_TRAP rolled rax back to the syscall number
			// (and the fast path stored it there); present the stop as
			// ptrace's syscall-entry stop does.
			ac.Regs.Orig_rax = ac.Regs.Rax
			ac.Regs.Rax = ^uint64(unix.ENOSYS) + 1
			if atomic.LoadUint32(th.word(slotFast)) == 0 {
				c.p.patch.trapped(th, &ac.Regs)
			}
			return nil, hostarch.NoAccess, nil
		case interruptSignal:
			ac.Regs.Orig_rax = ^uint64(0)
			if c.interrupted.Swap(false) {
				return nil, hostarch.NoAccess, platform.ErrContextInterrupt
			}
			// Stale: an interrupt already consumed. The frame is the
			// application's state as it was; resume it untouched.
		case unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP:
			ac.Regs.Orig_rax = ^uint64(0)
			info := &arch.SignalInfo{}
			copy((*[128]byte)(unsafe.Pointer(info))[:], sinfo)
			if isProbeSyscall(sig, info, &ac.Regs) {
				ac.Regs.Orig_rax = sysUretprobe
				ac.Regs.Rax = ^uint64(unix.ENOSYS) + 1
				return nil, hostarch.NoAccess, nil
			}
			if c.p.patch.recordFault(th, sig, info, &ac.Regs) {
				// A rewritten site's trampoline, now installed in
				// this stub: go on from it.
				th.writeRegs(sc, &ac.Regs)
				continue
			}
			at := hostarch.NoAccess
			if sig == unix.SIGSEGV && le.Uint64(sc[scTrapNo:]) == 14 {
				// The page fault error code: bit 1 write, bit 4 fetch.
				errCode := le.Uint64(sc[scErr:])
				switch {
				case errCode&0x10 != 0:
					at = hostarch.Execute
				case errCode&0x2 != 0:
					at = hostarch.Write
				default:
					at = hostarch.Read
				}
			}
			return info, at, platform.ErrContextSignal
		default:
			// Nothing else is handled by the stub; resume.
		}
	}
}

// The host runs uretprobe(2) (335, Linux 6.11) and uprobe(2) (336, Linux
// 6.17) without consulting seccomp, so an application's call of either
// never reaches the handler as SIGSYS. uretprobe, called from anywhere but
// the kernel's trampoline, fails with -1 in rax and a SIGILL with si_code
// SI_KERNEL. isProbeSyscall recognizes that trace (rcx equal to rip
// says a syscall instruction just returned) so that the sentry sees a
// syscall stop as under ptrace. uprobe, called from elsewhere, returns
// ENXIO without a signal (the host's only answer the application gets
// directly; the call does nothing else).
const sysUretprobe = 335

func isProbeSyscall(sig unix.Signal, info *arch.SignalInfo, r *arch.Registers) bool {
	return sig == unix.SIGILL && info.Code == arch.SI_KERNEL && r.Rax == ^uint64(0) && r.Rcx == r.Rip
}

// thread is a stub thread under the factory's trace: the template or a
// leader. Only the factory's OS thread uses it (except Reap).
type thread = stubutil.Thread

// tracer traces the template and every leader.
var tracer = &stubutil.Tracer{Name: "systrap", Options: ptraceOptions}

// injectAt runs one host syscall in t at site (see stubutil.Thread.Syscall).
// The filter's SECCOMP_RET_TRACE stop on the way is let through.
func injectAt(t *thread, site uintptr, nr uintptr, args [6]uintptr) (uintptr, error) {
	return t.Syscall(site, nr, args)
}
