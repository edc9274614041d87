package gofer

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allowedSyscalls is everything the serving gofer and the Go runtime under
// it call, found by tracing the tests. Anything else means the gofer has
// been subverted.
var allowedSyscalls = []uintptr{
	// Serving requests.
	unix.SYS_OPENAT,
	unix.SYS_CLOSE,
	unix.SYS_NEWFSTATAT,
	unix.SYS_FSTAT,
	unix.SYS_FSTATFS,
	unix.SYS_GETDENTS64,
	unix.SYS_LSEEK,
	unix.SYS_READLINKAT,
	unix.SYS_MKDIRAT,
	unix.SYS_MKNODAT,
	unix.SYS_SYMLINKAT,
	unix.SYS_LINKAT,
	unix.SYS_UNLINKAT,
	unix.SYS_RENAMEAT2,
	unix.SYS_FCHOWNAT,
	unix.SYS_FCHOWN,
	unix.SYS_FCHMOD,
	unix.SYS_FCHMODAT,
	unix.SYS_FTRUNCATE,
	unix.SYS_UTIMENSAT,
	unix.SYS_FSETXATTR,
	unix.SYS_FGETXATTR,
	unix.SYS_FLISTXATTR,
	unix.SYS_FREMOVEXATTR,
	unix.SYS_SENDMSG,
	unix.SYS_RECVMSG,
	unix.SYS_FCNTL,
	unix.SYS_READ,
	unix.SYS_WRITE,
	// The Go runtime.
	unix.SYS_FUTEX,
	unix.SYS_MMAP,
	unix.SYS_MUNMAP,
	unix.SYS_MADVISE,
	unix.SYS_MPROTECT,
	unix.SYS_RT_SIGACTION,
	unix.SYS_RT_SIGPROCMASK,
	unix.SYS_RT_SIGRETURN,
	unix.SYS_SIGALTSTACK,
	unix.SYS_GETTID,
	unix.SYS_GETPID,
	unix.SYS_TGKILL,
	unix.SYS_SCHED_YIELD,
	unix.SYS_SCHED_GETAFFINITY,
	unix.SYS_SCHED_SETAFFINITY, // follow the client's CPU (affinity.go)
	unix.SYS_NANOSLEEP,
	unix.SYS_CLOCK_GETTIME,
	unix.SYS_CLOCK_NANOSLEEP,
	unix.SYS_EPOLL_PWAIT,
	unix.SYS_EPOLL_CTL,
	unix.SYS_EPOLL_CREATE1,
	unix.SYS_EVENTFD2,
	unix.SYS_PIPE2,
	unix.SYS_GETRANDOM,
	unix.SYS_RESTART_SYSCALL,
	unix.SYS_EXIT,
	unix.SYS_EXIT_GROUP,
	unix.SYS_PRLIMIT64,
	unix.SYS_GETRLIMIT,
}

// BPF program layout: seccomp_data is {int nr; u32 arch; u64 ip; u64 args[6]}.
const (
	offNr    = 0
	offArch  = 4
	offArg0  = 16 // low 32 bits on little-endian x86-64
	x32Bit   = 0x40000000
	bpfLdAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeqK  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJgeK  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJsetK = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRetK  = unix.BPF_RET | unix.BPF_K
)

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k, Jt: jt, Jf: jf}
}

// buildFilter compiles the allowlist: anything not x86-64, any x32 call,
// any syscall not listed, and a clone(2) that makes anything but a thread
// of this process get deny.
func buildFilter(allowed []uintptr, deny uint32) []unix.SockFilter {
	const allow = unix.SECCOMP_RET_ALLOW
	n := len(allowed)
	// Layout, by index:
	//  0 ld arch
	//  1 jeq X86_64 ? 2 : deny
	//  2 ld nr
	//  3 jge x32Bit ? deny : 4
	//  4 jeq clone ? cloneCheck : next
	//  5.. one jeq per allowed syscall, true → allowRet
	//  5+n      ret deny (denyRet)
	//  6+n      ld arg0 (cloneCheck)
	//  7+n      jset CLONE_THREAD ? allowRet : denyRet2
	//  8+n      ret deny (denyRet2)
	//  9+n      ret allow (allowRet)
	// Classic BPF jumps only forward, hence the second deny.
	denyRet := 5 + n
	cloneCheck := 6 + n
	allowRet := 9 + n
	rel := func(from, to int) uint8 { return uint8(to - from - 1) }
	prog := []unix.SockFilter{
		stmt(bpfLdAbs, offArch),
		jump(bpfJeqK, unix.AUDIT_ARCH_X86_64, 0, rel(1, denyRet)),
		stmt(bpfLdAbs, offNr),
		jump(bpfJgeK, x32Bit, rel(3, denyRet), 0),
		jump(bpfJeqK, unix.SYS_CLONE, rel(4, cloneCheck), 0),
	}
	for i, nr := range allowed {
		at := 5 + i
		prog = append(prog, jump(bpfJeqK, uint32(nr), rel(at, allowRet), 0))
	}
	prog = append(prog,
		stmt(bpfRetK, deny),
		stmt(bpfLdAbs, offArg0),
		jump(bpfJsetK, unix.CLONE_THREAD, 1, 0),
		stmt(bpfRetK, deny),
		stmt(bpfRetK, allow),
	)
	return prog
}

// installSeccomp installs the filter on every thread of the process.
func installSeccomp(deny uint32) error {
	filter := buildFilter(allowedSyscalls, deny)
	if len(filter) > 250 {
		// Jump offsets are 8 bits; the layout above assumes they fit.
		panic("gofer: seccomp filter too long")
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return e
	}
	if r != 0 {
		// TSYNC names a thread that could not take the filter.
		return fmt.Errorf("thread %d refused the filter", r)
	}
	return nil
}
