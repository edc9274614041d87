package systrap

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform/internal/stubutil"
)

// The stub is a two-page static ELF, exec'd once as the template and
// forked for every address space. Its first page holds the ELF headers, a
// struct sigaction, the two seccomp programs and the capset arguments; its
// second the code of testdata/stub.S, assembled by hand below. Its entry
// points:
//
//	loop:        the pause loop that a fresh leader parks in
//	sysSite:     syscall; int3 — the sentry injects with ptrace here
//	forkSite:    syscall (clone); the child parks in the loop
//	execStart:   the executor loop that a leader runs for the stub's life
//	handler:     the handler of every signal the stub catches
//	fastEntry:   where rewritten syscall sites enter (see patch.go)
//
// Per-thread state lives in slots: 16 KiB blocks of the platform's context
// memfd, each mapped both in the sentry and, at a fixed address above the
// application's range, in the one stub process whose thread owns it. The
// first page is the control block below; the second the fast path's
// signal frame; the rest the thread's alternate signal stack, so the
// signal frame the kernel builds there (the registers and the XSAVE image)
// is in memory the sentry can read and write directly. The handler only
// stores where the frame is, publishes the event and waits; when the
// sentry has rewritten the frame it returns through rt_sigreturn into the
// application.
//
// Every stub has, besides, a pair of executor pages (exec.go): a request
// page the sentry writes and the stub maps read-only, and a page of the
// leader's own.
const (
	stubBase = 0x7fc000000000
	stubSize = 0x2000
	codeBase = stubBase + 0x1000

	sigactionOff = 0x080 // struct kernel_sigaction
	fprogOff     = 0x0a0 // struct sock_fprog of the stub filter
	capHdrOff    = 0x0b0 // struct __user_cap_header_struct
	capDataOff   = 0x0c0 // two zeroed struct __user_cap_data_struct
	fprogAppOff  = 0x0e0 // struct sock_fprog of the application threads' filter
	filterOff    = 0x100
	maxFilterLen = (0x1000 - filterOff) / 8

	// reqAddr and ldrAddr are where a stub maps its executor pages.
	reqAddr = stubBase + 0x4000
	ldrAddr = stubBase + 0x5000

	// The trampoline records of rewritten syscall sites above the
	// application's range (patch.go).
	trampHighBase = stubBase + 0x100000
	trampHighSize = 64 << 20

	// slotsBase is where slot i is mapped in a stub: slotsBase+i*slotSize.
	// The handler finds its slot by rounding its stack pointer down, so
	// slots are aligned to their size; the fast path checks that its GS
	// base is a slot by the bits above slotsRegionBits.
	slotsBase       = stubBase + 0x8000000
	slotsRegionBits = 27
	slotSize        = 0x4000
	maxSlots        = 8192
	// Within a slot: the fast path's frame (its ucontext, siginfo, XSAVE
	// image) and the alternate signal stack.
	fastUcontextOff = 0x1000
	fastSiginfoOff  = 0xf00
	fastFPOff       = 0x1140
	fastFPEnd       = 0x2000
	altStackOff     = 0x2000

	// MaxUserAddress is the end of the application's range.
	MaxUserAddress = stubBase
)

// Offsets in the code page of the entry points and of the IPs that follow
// its syscall instructions (what seccomp sees), from testdata/stub.S.
const (
	loopOff         = 0x000
	loopIPOff       = 0x007
	sysSiteOff      = 0x010
	sysIPOff        = 0x012
	forkSiteOff     = 0x020
	forkIPOff       = 0x022
	execStartOff    = 0x030
	execWaitIPOff   = 0x075
	execIPOff       = 0x0ba
	cloneIPOff      = 0x0ca
	closeRangeIPOff = 0x0df
	seccompIPOff    = 0x105
	altStackIPOff   = 0x0ed
	pwriteIPOff     = 0x124
	execWakeIPOff   = 0x146
	handlerOff      = 0x150
	fastEntryOff    = 0x1dc
	wakeIPOff       = 0x30f
	waitFutexIPOff  = 0x343
	sigreturnIPOff  = 0x36d
	exitIPOff       = 0x37d
)

// Addresses in a stub of the sites above.
const (
	loopSite  = codeBase + loopOff
	sysSite   = codeBase + sysSiteOff
	forkSite  = codeBase + forkSiteOff
	execStart = codeBase + execStartOff
	handlerPC = codeBase + handlerOff
	fastEntry = codeBase + fastEntryOff
)

// The control block at the start of a slot. state is the futex word both
// sides wait on; it is also the thread's CLONE_CHILD_CLEARTID word, so the
// kernel zeroes it (slotDead) and wakes the sentry when the thread dies.
const (
	slotState          = 0x00 // uint32
	slotStubSleeping   = 0x04 // uint32: the stub is (about to be) in FUTEX_WAIT
	slotSentrySleeping = 0x08 // uint32: the sentry is (about to be) in FUTEX_WAIT
	slotSpin           = 0x0c // uint32: how long the stub spins before sleeping; 0 stops a spin
	slotUcontext       = 0x10 // uint64: the frame's ucontext, a stub address
	slotSiginfo        = 0x18 // uint64: the frame's siginfo, a stub address
	slotSigno          = 0x20 // uint64
	slotFSBase         = 0x28 // uint64: saved at an event, loaded at resume
	slotGSBase         = 0x30 // uint64
	slotFast           = 0x38 // uint32: the event came through the fast path
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
	0x48, 0xbb, 0x00, 0x40, 0x00, 0x00, 0xc0, 0x7f, 0x00, 0x00, 0x48, 0xbd,
	0x00, 0x50, 0x00, 0x00, 0xc0, 0x7f, 0x00, 0x00, 0x45, 0x31, 0xff, 0x8b,
	0x4b, 0x10, 0x8b, 0x03, 0x44, 0x39, 0xf8, 0x75, 0x2d, 0x85, 0xc9, 0x7e,
	0x06, 0xf3, 0x90, 0xff, 0xc9, 0xeb, 0xef, 0xb8, 0x01, 0x00, 0x00, 0x00,
	0x87, 0x45, 0x00, 0x48, 0x8d, 0x3b, 0x31, 0xf6, 0x44, 0x89, 0xfa, 0x45,
	0x31, 0xd2, 0xb8, 0xca, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc7, 0x45, 0x00,
	0x00, 0x00, 0x00, 0x00, 0xeb, 0xc9, 0x41, 0x89, 0xc7, 0x45, 0x31, 0xed,
	0x4c, 0x8d, 0x73, 0x40, 0x41, 0x83, 0xfd, 0x3f, 0x73, 0x79, 0x44, 0x3b,
	0x6b, 0x0c, 0x73, 0x73, 0x49, 0x8b, 0x06, 0x49, 0x8b, 0x7e, 0x08, 0x49,
	0x8b, 0x76, 0x10, 0x49, 0x8b, 0x56, 0x18, 0x4d, 0x8b, 0x56, 0x20, 0x4d,
	0x8b, 0x46, 0x28, 0x4d, 0x8b, 0x4e, 0x30, 0x4d, 0x8b, 0x66, 0x38, 0x83,
	0xf8, 0x38, 0x74, 0x10, 0x0f, 0x05, 0x4a, 0x89, 0x44, 0xed, 0x40, 0x41,
	0xff, 0xc5, 0x49, 0x83, 0xc6, 0x40, 0xeb, 0xc0, 0x0f, 0x05, 0x48, 0x85,
	0xc0, 0x75, 0xeb, 0x31, 0xff, 0xbe, 0xff, 0xff, 0xff, 0xff, 0x31, 0xd2,
	0xb8, 0xb4, 0x01, 0x00, 0x00, 0x0f, 0x05, 0x49, 0x8d, 0x7c, 0x24, 0x40,
	0x31, 0xf6, 0xb8, 0x83, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xbf, 0x01, 0x00,
	0x00, 0x00, 0x31, 0xf6, 0x48, 0xba, 0xe0, 0x00, 0x00, 0x00, 0xc0, 0x7f,
	0x00, 0x00, 0xb8, 0x3d, 0x01, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b, 0x44,
	0x89, 0x7d, 0x08, 0xbf, 0x01, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x75, 0x08,
	0xba, 0x04, 0x00, 0x00, 0x00, 0x4c, 0x8b, 0x53, 0x18, 0xb8, 0x12, 0x00,
	0x00, 0x00, 0x0f, 0x05, 0x0f, 0xae, 0xf0, 0x83, 0x7b, 0x04, 0x00, 0x0f,
	0x84, 0x16, 0xff, 0xff, 0xff, 0x48, 0x8d, 0x7b, 0x08, 0xbe, 0x01, 0x00,
	0x00, 0x00, 0xba, 0x01, 0x00, 0x00, 0x00, 0xb8, 0xca, 0x00, 0x00, 0x00,
	0x0f, 0x05, 0xe9, 0xfc, 0xfe, 0xff, 0xff, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
	0x48, 0x89, 0xe3, 0x48, 0x81, 0xe3, 0x00, 0xc0, 0xff, 0xff, 0x83, 0xff,
	0x11, 0x75, 0x3d, 0x48, 0x8b, 0x82, 0xa8, 0x00, 0x00, 0x00, 0x48, 0xb9,
	0xc9, 0x11, 0x00, 0x00, 0xc0, 0x7f, 0x00, 0x00, 0x48, 0x29, 0xc8, 0x48,
	0x3d, 0x88, 0x01, 0x00, 0x00, 0x72, 0x19, 0x48, 0x3d, 0xa6, 0x01, 0x00,
	0x00, 0x73, 0x19, 0x4c, 0x8b, 0x62, 0x48, 0x4c, 0x89, 0x63, 0x10, 0x48,
	0x89, 0x7b, 0x20, 0xe9, 0x5a, 0x01, 0x00, 0x00, 0x48, 0x89, 0xd4, 0xe9,
	0xca, 0x01, 0x00, 0x00, 0x48, 0x89, 0x53, 0x10, 0x48, 0x89, 0x73, 0x18,
	0x48, 0x89, 0x7b, 0x20, 0xc7, 0x43, 0x38, 0x00, 0x00, 0x00, 0x00, 0xf3,
	0x48, 0x0f, 0xae, 0xc0, 0x48, 0x89, 0x43, 0x28, 0xf3, 0x48, 0x0f, 0xae,
	0xc8, 0x48, 0x89, 0x43, 0x30, 0x49, 0x89, 0xd4, 0xe9, 0x25, 0x01, 0x00,
	0x00, 0x44, 0x89, 0xd8, 0x41, 0xc1, 0xeb, 0x10, 0x04, 0x7f, 0x9e, 0x44,
	0x89, 0xd8, 0x48, 0x8d, 0x49, 0xfe, 0xff, 0xe1, 0x9f, 0x0f, 0x90, 0xc0,
	0x41, 0xc1, 0xe3, 0x10, 0x66, 0x41, 0x89, 0xc3, 0xf3, 0x48, 0x0f, 0xae,
	0xc8, 0x48, 0xc1, 0xe8, 0x1b, 0x3d, 0x01, 0xf8, 0x0f, 0x00, 0x75, 0xd1,
	0xf3, 0x48, 0x0f, 0xae, 0xc8, 0x4c, 0x89, 0x80, 0x28, 0x10, 0x00, 0x00,
	0x4c, 0x89, 0x88, 0x30, 0x10, 0x00, 0x00, 0x4c, 0x89, 0x90, 0x38, 0x10,
	0x00, 0x00, 0x4c, 0x89, 0xa0, 0x48, 0x10, 0x00, 0x00, 0x4c, 0x89, 0xa8,
	0x50, 0x10, 0x00, 0x00, 0x4c, 0x89, 0xb0, 0x58, 0x10, 0x00, 0x00, 0x4c,
	0x89, 0xb8, 0x60, 0x10, 0x00, 0x00, 0x48, 0x89, 0xb8, 0x68, 0x10, 0x00,
	0x00, 0x48, 0x89, 0xb0, 0x70, 0x10, 0x00, 0x00, 0x48, 0x89, 0xa8, 0x78,
	0x10, 0x00, 0x00, 0x48, 0x89, 0x98, 0x80, 0x10, 0x00, 0x00, 0x48, 0x89,
	0x90, 0x88, 0x10, 0x00, 0x00, 0x48, 0x89, 0x88, 0x98, 0x10, 0x00, 0x00,
	0x48, 0x89, 0xa0, 0xa0, 0x10, 0x00, 0x00, 0x48, 0x89, 0x88, 0xa8, 0x10,
	0x00, 0x00, 0x48, 0x89, 0xc3, 0x48, 0x8d, 0xa3, 0x00, 0x0e, 0x00, 0x00,
	0x9c, 0x5a, 0x81, 0xe2, 0x2a, 0xf7, 0xff, 0xff, 0x44, 0x89, 0xd9, 0xc1,
	0xe9, 0x08, 0x81, 0xe1, 0xd5, 0x00, 0x00, 0x00, 0x09, 0xca, 0x45, 0x84,
	0xdb, 0x74, 0x06, 0x81, 0xca, 0x00, 0x08, 0x00, 0x00, 0x48, 0x89, 0x93,
	0xb0, 0x10, 0x00, 0x00, 0x48, 0x89, 0x93, 0x40, 0x10, 0x00, 0x00, 0x41,
	0xc1, 0xeb, 0x10, 0x4c, 0x89, 0x9b, 0x90, 0x10, 0x00, 0x00, 0xf3, 0x48,
	0x0f, 0xae, 0xc1, 0x48, 0x89, 0x4b, 0x28, 0x48, 0x89, 0x5b, 0x30, 0xb8,
	0xff, 0xff, 0xff, 0xff, 0xba, 0xff, 0xff, 0xff, 0xff, 0x48, 0x0f, 0xae,
	0xa3, 0x40, 0x11, 0x00, 0x00, 0x4c, 0x8d, 0xa3, 0x00, 0x10, 0x00, 0x00,
	0x4c, 0x89, 0x63, 0x10, 0x48, 0x8d, 0x8b, 0x00, 0x0f, 0x00, 0x00, 0x48,
	0x89, 0x4b, 0x18, 0x48, 0xc7, 0x43, 0x20, 0x1f, 0x00, 0x00, 0x00, 0xc7,
	0x43, 0x38, 0x01, 0x00, 0x00, 0x00, 0xb8, 0x02, 0x00, 0x00, 0x00, 0x87,
	0x03, 0x83, 0x7b, 0x08, 0x00, 0x74, 0x14, 0x48, 0x89, 0xdf, 0xbe, 0x01,
	0x00, 0x00, 0x00, 0xba, 0x01, 0x00, 0x00, 0x00, 0xb8, 0xca, 0x00, 0x00,
	0x00, 0x0f, 0x05, 0x8b, 0x4b, 0x0c, 0x8b, 0x03, 0x83, 0xf8, 0x02, 0x75,
	0x33, 0x85, 0xc9, 0x7e, 0x0a, 0xf3, 0x90, 0xff, 0xc9, 0x83, 0x7b, 0x0c,
	0x00, 0x75, 0xeb, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x87, 0x43, 0x04, 0x48,
	0x89, 0xdf, 0x31, 0xf6, 0xba, 0x02, 0x00, 0x00, 0x00, 0x45, 0x31, 0xd2,
	0xb8, 0xca, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc7, 0x43, 0x04, 0x00, 0x00,
	0x00, 0x00, 0xeb, 0xc3, 0x83, 0xf8, 0x03, 0x75, 0x1e, 0x48, 0x8b, 0x43,
	0x28, 0xf3, 0x48, 0x0f, 0xae, 0xd0, 0x48, 0x8b, 0x43, 0x30, 0xf3, 0x48,
	0x0f, 0xae, 0xd8, 0x4c, 0x89, 0xe4, 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f,
	0x05, 0x0f, 0x0b, 0x83, 0xf8, 0x04, 0x75, 0x9b, 0x31, 0xff, 0xb8, 0x3c,
	0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b,
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

// threadCloneFlags are the flags the executor makes application threads
// with: sharing the address space and the signal handlers but not the FD
// table (a thread empties its copy before it runs anything), untraced, and
// with the kernel zeroing the slot's state word when the thread dies.
const threadCloneFlags = unix.CLONE_VM | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM |
	unix.CLONE_UNTRACED | unix.CLONE_CHILD_CLEARTID

// stubFilter builds the filter every stub thread runs under. Syscalls from
// outside the stub's image are the application's: SECCOMP_RET_TRAP turns
// them into a SIGSYS for the handler. From the image, each syscall
// instruction may make only its own syscall(s), with its own arguments
// where they matter; anything else kills the stub:
//
//   - the injection site (sysSite) and the template's fork site return
//     SECCOMP_RET_TRACE: they run only in a thread traced with
//     PTRACE_O_TRACESECCOMP, which only the sentry's injections are.
//   - the executor's sites allow mmap, munmap and mprotect, clone with
//     threadCloneFlags, pwrite64 on the context memfd, and futex. Only a
//     leader may make them: application threads also run appFilter,
//     which turns every call from the image but futex, rt_sigreturn and
//     exit into SIGSYS for the sentry (an application that jumps to these
//     sites makes an ordinary, emulated syscall), and they hold no file
//     descriptors at all, so even the executor's mmap site could not name
//     the memory file for them.
//   - a new thread's close_range, seccomp (exactly appFilter, no flags)
//     and sigaltstack, and the handler's and fast path's futex (wait and
//     wake only), rt_sigreturn and exit. An application that jumps to
//     these gains nothing it does not have: it can add the filter it
//     already has, wait, wake, set its own registers and signal mask (as
//     any signal handler can), exit, or move its own signal stack.
func stubFilter() ([]unix.SockFilter, error) {
	b := &stubutil.Program{}
	b.LoadAbs(stubutil.SeccompDataArch)
	b.JEQ(stubutil.AuditArchX86_64, "", "kill")
	b.LoadAbs(stubutil.SeccompDataIPHigh)
	b.JEQ(uint32(uint64(stubBase)>>32), "", "trap")
	b.LoadAbs(stubutil.SeccompDataIPLow)
	low := func(off uint64) uint32 { return uint32((codeBase + off) & 0xffffffff) }
	b.JEQ(low(loopIPOff), "loop", "")
	b.JEQ(low(sysIPOff), "sys", "")
	b.JEQ(low(forkIPOff), "fork", "")
	b.JEQ(low(execIPOff), "exec", "")
	b.JEQ(low(cloneIPOff), "clone", "")
	b.JEQ(low(closeRangeIPOff), "closerange", "")
	b.JEQ(low(seccompIPOff), "seccomp", "")
	b.JEQ(low(altStackIPOff), "altstack", "")
	b.JEQ(low(pwriteIPOff), "pwrite", "")
	b.JEQ(low(execWaitIPOff), "futex", "")
	b.JEQ(low(execWakeIPOff), "futex", "")
	b.JEQ(low(wakeIPOff), "futex", "")
	b.JEQ(low(waitFutexIPOff), "futex", "")
	b.JEQ(low(sigreturnIPOff), "sigreturn", "")
	b.JEQ(low(exitIPOff), "exit", "kill")
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
	site("fork", "trace", unix.SYS_CLONE)
	site("exec", "allow", unix.SYS_MMAP, unix.SYS_MUNMAP, unix.SYS_MPROTECT)
	site("closerange", "allow", unix.SYS_CLOSE_RANGE)
	site("altstack", "allow", unix.SYS_SIGALTSTACK)
	site("sigreturn", "allow", unix.SYS_RT_SIGRETURN)
	site("exit", "allow", unix.SYS_EXIT)
	// Sites whose arguments are checked too.
	arg := func(i int, v uint64, fail string) {
		b.LoadAbs(stubutil.SeccompDataArgLow(i))
		b.JEQ(uint32(v), "", fail)
		b.LoadAbs(stubutil.SeccompDataArgHigh(i))
		b.JEQ(uint32(v>>32), "", fail)
	}
	b.Label("clone")
	b.LoadAbs(stubutil.SeccompDataNR)
	b.JEQ(unix.SYS_CLONE, "", "kill")
	arg(0, threadCloneFlags, "kill")
	b.Ret(stubutil.SeccompRetAllow)
	b.Label("seccomp")
	b.LoadAbs(stubutil.SeccompDataNR)
	b.JEQ(unix.SYS_SECCOMP, "", "kill")
	arg(0, unix.SECCOMP_SET_MODE_FILTER, "kill")
	arg(1, 0, "kill")
	arg(2, stubBase+fprogAppOff, "kill")
	b.Ret(stubutil.SeccompRetAllow)
	b.Label("pwrite")
	b.LoadAbs(stubutil.SeccompDataNR)
	b.JEQ(unix.SYS_PWRITE64, "", "kill")
	arg(0, stubCtxFD, "kill")
	b.Ret(stubutil.SeccompRetAllow)
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

// appFilter is the filter an application thread adds to stubFilter before
// it runs application code (seccomp takes the strictest verdict of all a
// thread's filters). Of the calls the stub's image may make, it leaves the
// thread only futex, rt_sigreturn and exit; the rest, should the
// application jump to their sites, become SIGSYS like any other of its
// syscalls.
func appFilter() ([]unix.SockFilter, error) {
	b := &stubutil.Program{}
	b.LoadAbs(stubutil.SeccompDataIPHigh)
	b.JEQ(uint32(uint64(stubBase)>>32), "", "allow")
	b.LoadAbs(stubutil.SeccompDataIPLow)
	b.JGE(uint32((stubBase+stubSize)&0xffffffff), "allow", "")
	b.LoadAbs(stubutil.SeccompDataNR)
	b.JEQ(unix.SYS_FUTEX, "allow", "")
	b.JEQ(unix.SYS_RT_SIGRETURN, "allow", "")
	b.JEQ(unix.SYS_EXIT, "allow", "")
	b.Ret(stubutil.SeccompRetTrap)
	b.Label("allow")
	b.Ret(stubutil.SeccompRetAllow)
	filter, err := b.Assemble()
	if err != nil {
		return nil, fmt.Errorf("systrap: %w", err)
	}
	return filter, nil
}

// stubELF returns the template's executable: an ELF64 header and program
// header, the sigaction, the seccomp programs and the code, in two pages
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
	le.PutUint64(sa[16:], codeBase+sigreturnIPOff) // the ud2 after rt_sigreturn
	le.PutUint64(sa[24:], 1<<(uint(interruptSignal)-1))

	if len(stubCode) > stubSize-0x1000 {
		return nil, fmt.Errorf("systrap: stub code too long")
	}
	copy(b[codeBase-stubBase:], stubCode)
	filter, err := stubFilter()
	if err != nil {
		return nil, err
	}
	app, err := appFilter()
	if err != nil {
		return nil, err
	}
	if len(filter)+len(app) > maxFilterLen {
		return nil, fmt.Errorf("systrap: stub filters too long (%d+%d)", len(filter), len(app))
	}
	stubutil.PutFilter(b, stubBase, fprogOff, filterOff, filter)
	stubutil.PutFilter(b, stubBase, fprogAppOff, filterOff+8*len(filter), app)
	stubutil.PutCapHeader(b, capHdrOff)
	return b, nil
}
