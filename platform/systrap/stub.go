package systrap

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform/internal/stubutil"
)

// The stub is a one-page static ELF, exec'd once as the template and forked
// for every address space. Besides the ELF headers the page holds a
// struct sigaction, the seccomp program and the code of testdata/stub.S,
// assembled by hand below. Its entry points:
//
//	loop:        the pause loop that a fresh leader parks in
//	sysSite:     syscall; int3 — the sentry injects mmap & co here
//	forkSite:    syscall (clone); the child parks in the loop
//	threadSite:  syscall (clone); the child installs its alternate signal
//	             stack (its slot, r12) and executes ud2, which enters
//	             the handler: that is how a new thread reports for duty
//	handler:     the handler of every signal the stub catches
//
// Per-thread state lives in slots: 16 KiB blocks of the platform's context
// memfd, each mapped both in the sentry and, at a fixed address above the
// application's range, in the one stub process whose thread owns it. The
// first page is the control block below; the rest is the thread's
// alternate signal stack, so the signal frame the kernel builds there (the
// registers and the XSAVE image) is in memory the sentry can read and write
// directly. The handler only stores where the frame is, publishes the event
// and waits; when the sentry has rewritten the frame it returns through
// rt_sigreturn into the application.
const (
	stubBase = 0x7fc000000000
	stubSize = 0x1000

	sigactionOff = 0x080 // struct kernel_sigaction
	fprogOff     = 0x0a0 // struct sock_fprog
	capHdrOff    = 0x0b0 // struct __user_cap_header_struct
	capDataOff   = 0x0c0 // two zeroed struct __user_cap_data_struct
	codeOff      = 0x100
	filterOff    = 0x300
	maxFilterLen = (stubSize - filterOff) / 8

	// slotsBase is where slot i is mapped in a stub: slotsBase+i*slotSize.
	// The handler finds its slot by rounding its stack pointer down, so
	// slots are aligned to their size.
	slotsBase = stubBase + 0x10000
	slotSize  = 0x4000
	maxSlots  = 8192
	// altStackOff is where the alternate signal stack starts in a slot.
	altStackOff = 0x1000

	// MaxUserAddress is the end of the application's range.
	MaxUserAddress = stubBase
)

// Offsets of the code's entry points and of the IPs that follow its
// syscall instructions (what seccomp sees), from testdata/stub.S.
const (
	loopSite   = stubBase + codeOff + 0x00
	sysSite    = stubBase + codeOff + 0x10
	forkSite   = stubBase + codeOff + 0x20
	threadSite = stubBase + codeOff + 0x30
	handlerPC  = stubBase + codeOff + 0x50

	loopIP       = codeOff + 0x07
	sysIP        = codeOff + 0x12
	forkIP       = codeOff + 0x22
	threadIP     = codeOff + 0x32
	altStackIP   = codeOff + 0x46
	wakeIP       = codeOff + 0x9c
	waitFutexIP  = codeOff + 0xc8
	sigreturnIP  = codeOff + 0xf2
	threadExitIP = codeOff + 0x102
)

// The control block at the start of a slot. state is the futex word both
// sides wait on; it is also the thread's CLONE_CHILD_CLEARTID word, so the
// kernel zeroes it (slotDead) and wakes the sentry when the thread dies.
const (
	slotState          = 0x00 // uint32
	slotStubSleeping   = 0x04 // uint32: the stub is (about to be) in FUTEX_WAIT
	slotSentrySleeping = 0x08 // uint32: the sentry is (about to be) in FUTEX_WAIT
	slotSpin           = 0x0c // uint32: how long the stub spins before sleeping
	slotUcontext       = 0x10 // uint64: the frame's ucontext, a stub address
	slotSiginfo        = 0x18 // uint64: the frame's siginfo, a stub address
	slotSigno          = 0x20 // uint64
	slotFSBase         = 0x28 // uint64: saved at an event, loaded at resume
	slotGSBase         = 0x30 // uint64
	slotStack          = 0x40 // stack_t for sigaltstack
)

// Slot states.
const (
	stateDead   = 0 // written by the kernel when the thread exits
	stateInit   = 1 // a thread is being made and has not reported yet
	stateEvent  = 2 // the thread is in its handler; the sentry owns the frame
	stateResume = 3 // the sentry has rewritten the frame; go back to it
	stateExit   = 4 // the thread should exit
)

// stubCode is testdata/stub.S.
var stubCode = []byte{
	0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7, 0xcc, 0xcc, 0xcc,
	0xcc, 0xcc, 0xcc, 0xcc, 0x0f, 0x05, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
	0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0x0f, 0x05, 0x48, 0x85,
	0xc0, 0x74, 0xd9, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
	0x0f, 0x05, 0x48, 0x85, 0xc0, 0x74, 0x01, 0xcc, 0x49, 0x8d, 0x7c, 0x24,
	0x40, 0x31, 0xf6, 0xb8, 0x83, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b,
	0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0x48, 0x89, 0xe3, 0x48,
	0x81, 0xe3, 0x00, 0xc0, 0xff, 0xff, 0x48, 0x89, 0x53, 0x10, 0x48, 0x89,
	0x73, 0x18, 0x48, 0x89, 0x7b, 0x20, 0xf3, 0x48, 0x0f, 0xae, 0xc0, 0x48,
	0x89, 0x43, 0x28, 0xf3, 0x48, 0x0f, 0xae, 0xc8, 0x48, 0x89, 0x43, 0x30,
	0x49, 0x89, 0xd4, 0xb8, 0x02, 0x00, 0x00, 0x00, 0x87, 0x03, 0x83, 0x7b,
	0x08, 0x00, 0x74, 0x14, 0x48, 0x89, 0xdf, 0xbe, 0x01, 0x00, 0x00, 0x00,
	0xba, 0x01, 0x00, 0x00, 0x00, 0xb8, 0xca, 0x00, 0x00, 0x00, 0x0f, 0x05,
	0x8b, 0x4b, 0x0c, 0x8b, 0x03, 0x83, 0xf8, 0x02, 0x75, 0x2b, 0xf3, 0x90,
	0xff, 0xc9, 0x7f, 0xf3, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x87, 0x43, 0x04,
	0x48, 0x89, 0xdf, 0x31, 0xf6, 0xba, 0x02, 0x00, 0x00, 0x00, 0x45, 0x31,
	0xd2, 0xb8, 0xca, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc7, 0x43, 0x04, 0x00,
	0x00, 0x00, 0x00, 0xeb, 0xcb, 0x83, 0xf8, 0x03, 0x75, 0x1e, 0x48, 0x8b,
	0x43, 0x28, 0xf3, 0x48, 0x0f, 0xae, 0xd0, 0x48, 0x8b, 0x43, 0x30, 0xf3,
	0x48, 0x0f, 0xae, 0xd8, 0x4c, 0x89, 0xe4, 0xb8, 0x0f, 0x00, 0x00, 0x00,
	0x0f, 0x05, 0x0f, 0x0b, 0x83, 0xf8, 0x04, 0x75, 0xa3, 0x31, 0xff, 0xb8,
	0x3c, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b,
}

// Signals the stub handles. interruptSignal is what Interrupt sends; it is
// blocked while the handler runs so that it never nests in a handler.
var stubSignals = []unix.Signal{unix.SIGSYS, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, interruptSignal}

const interruptSignal = unix.SIGCHLD

// futex(2) operations (linux/futex.h); the stub uses the shared (not
// FUTEX_PRIVATE) forms, because the sentry waits on its own mapping of the
// same memfd page.
const (
	futexWait = 0
	futexWake = 1
)

// stubFilter builds the stub's seccomp program. Syscalls from outside the
// stub's page are the application's: SECCOMP_RET_TRAP turns them into a
// SIGSYS for the handler. From the stub page, each syscall instruction may
// make only its own syscall(s):
//
//   - the handler's futex (wait and wake only), rt_sigreturn and exit, and
//     a new thread's sigaltstack and the leader's pause are allowed. The
//     application can jump to these sites too, but they give it nothing
//     it does not have: it can wait, wake, change its own registers, exit
//     or move its own signal stack.
//   - mmap & co (sysSite) and clone (forkSite, threadSite) get
//     SECCOMP_RET_TRACE: they run only in a thread traced with
//     PTRACE_O_TRACESECCOMP, which only the sentry's injections are; an
//     application thread is never traced, so if it jumps there the
//     kernel fails the call with ENOSYS. Without this the application
//     could map any part of the memory file, which holds every process
//     of the sandbox.
//   - anything else kills the stub.
func stubFilter() ([]unix.SockFilter, error) {
	b := &stubutil.Program{}
	b.LoadAbs(stubutil.SeccompDataArch)
	b.JEQ(stubutil.AuditArchX86_64, "", "kill")
	b.LoadAbs(stubutil.SeccompDataIPHigh)
	b.JEQ(uint32(uint64(stubBase)>>32), "", "trap")
	b.LoadAbs(stubutil.SeccompDataIPLow)
	low := func(off uint64) uint32 { return uint32((stubBase + off) & 0xffffffff) }
	b.JEQ(low(loopIP), "loop", "")
	b.JEQ(low(sysIP), "sys", "")
	b.JEQ(low(forkIP), "clone", "")
	b.JEQ(low(threadIP), "clone", "")
	b.JEQ(low(altStackIP), "altstack", "")
	b.JEQ(low(wakeIP), "futex", "")
	b.JEQ(low(waitFutexIP), "futex", "")
	b.JEQ(low(sigreturnIP), "sigreturn", "")
	b.JEQ(low(threadExitIP), "exit", "kill")
	// Per-site blocks: load the number, compare, else kill.
	site := func(name string, action string, nrs ...uint32) {
		b.Label(name)
		b.LoadAbs(stubutil.SeccompDataNR)
		for _, nr := range nrs {
			b.JEQ(nr, action, "")
		}
		b.Ret(stubutil.SeccompRetKillProcess)
	}
	site("loop", "allow", unix.SYS_PAUSE)
	site("sys", "trace", unix.SYS_MMAP, unix.SYS_MUNMAP, unix.SYS_MPROTECT, unix.SYS_MADVISE)
	site("clone", "trace", unix.SYS_CLONE)
	site("altstack", "allow", unix.SYS_SIGALTSTACK)
	site("sigreturn", "allow", unix.SYS_RT_SIGRETURN)
	site("exit", "allow", unix.SYS_EXIT)
	b.Label("futex")
	b.LoadAbs(stubutil.SeccompDataNR)
	b.JEQ(unix.SYS_FUTEX, "", "kill")
	// Only plain (shared) FUTEX_WAIT and FUTEX_WAKE: the other operations
	// (requeue, wake-op, PI) are kernel surface the stub does not need.
	b.LoadAbs(stubutil.SeccompDataArg1)
	b.JEQ(futexWait, "allow", "")
	b.JEQ(futexWake, "allow", "kill")
	// The verdicts, last: classic BPF jumps only forward.
	b.Label("kill")
	b.Ret(stubutil.SeccompRetKillProcess)
	b.Label("trap")
	b.Ret(stubutil.SeccompRetTrap)
	b.Label("allow")
	b.Ret(stubutil.SeccompRetAllow)
	b.Label("trace")
	b.Ret(stubutil.SeccompRetTrace)
	filter, err := b.Assemble()
	if err != nil {
		return nil, fmt.Errorf("systrap: %w", err)
	}
	return filter, nil
}

// stubELF returns the template's executable: an ELF64 header and program
// header, the sigaction, the code and the seccomp program, all in one page
// loaded read+execute at stubBase.
func stubELF() ([]byte, error) {
	b := stubutil.NewELF(stubBase, loopSite, stubSize)
	le := binary.LittleEndian

	// struct kernel_sigaction: handler, flags, restorer, mask. x86-64
	// insists on SA_RESTORER; the handler never returns through it (it
	// calls rt_sigreturn itself), so it points at a ud2. The interrupt
	// signal is blocked in the handler: sent while the thread waits for
	// the sentry it must stay pending until the application runs again,
	// not nest a second frame.
	const (
		saSiginfo  = 0x4
		saOnstack  = 0x08000000
		saRestorer = 0x04000000
		saNodefer  = 0x40000000
	)
	sa := b[sigactionOff:]
	le.PutUint64(sa[0:], handlerPC)
	le.PutUint64(sa[8:], saSiginfo|saOnstack|saNodefer|saRestorer)
	le.PutUint64(sa[16:], stubBase+sigreturnIP) // the ud2 after rt_sigreturn
	le.PutUint64(sa[24:], 1<<(uint(interruptSignal)-1))

	if len(stubCode) > filterOff-codeOff {
		return nil, fmt.Errorf("systrap: stub code too long")
	}
	copy(b[codeOff:], stubCode)
	filter, err := stubFilter()
	if err != nil {
		return nil, err
	}
	if len(filter) > maxFilterLen {
		return nil, fmt.Errorf("systrap: stub filter too long (%d)", len(filter))
	}
	stubutil.PutFilter(b, stubBase, fprogOff, filterOff, filter)
	stubutil.PutCapHeader(b, capHdrOff)
	return b, nil
}
