//go:build linux

package boot

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Seccomp return actions (include/uapi/linux/seccomp.h).
const (
	seccompRetKillProcess = 0x80000000
	seccompRetErrno       = 0x00050000
	seccompRetLog         = 0x7ffc0000
	seccompRetAllow       = 0x7fff0000

	// auditArchX86_64 is AUDIT_ARCH_X86_64: EM_X86_64 | __AUDIT_ARCH_64BIT |
	// __AUDIT_ARCH_LE.
	auditArchX86_64 = 0xc000003e
	// x32SyscallBit marks x32-ABI syscall numbers, which share the x86-64
	// audit arch; the sentry never makes them.
	x32SyscallBit = 0x40000000

	// Offsets into struct seccomp_data.
	seccompDataNR   = 0
	seccompDataArch = 4
)

// SyscallRule is one allowlist entry: what the filter answers for a
// syscall number.
type SyscallRule struct {
	NR   uintptr
	Name string
	// Errno, when non-zero, makes the filter fail the call with this errno
	// instead of allowing it (for calls such as clone3 whose callers fall
	// back to an older call).
	Errno unix.Errno
}

// action is the seccomp return value for r.
func (r SyscallRule) action() uint32 {
	if r.Errno != 0 {
		return seccompRetErrno | uint32(r.Errno)&0xffff
	}
	return seccompRetAllow
}

// BuildFilter assembles a classic BPF seccomp program that answers each
// rule's syscall with its action and every other call with violation (a
// SECCOMP_RET_* value). A call made under another architecture, or with the
// x32 bit, always gets violation too: its numbers mean different calls.
//
// Each rule becomes "jeq nr ? next : skip-one; ret action", so no jump
// offset ever exceeds one instruction whatever the length of the table
// (classic BPF's conditional jumps reach at most 255 forward).
func BuildFilter(rules []SyscallRule, violation uint32) ([]unix.SockFilter, error) {
	seen := make(map[uintptr]bool, len(rules))
	for _, r := range rules {
		if r.NR >= x32SyscallBit {
			return nil, fmt.Errorf("seccomp: syscall number %d out of range", r.NR)
		}
		if seen[r.NR] {
			return nil, fmt.Errorf("seccomp: syscall %d (%s) listed twice", r.NR, r.Name)
		}
		seen[r.NR] = true
	}
	ld := func(off uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}
	}
	jeq := func(k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k, Jt: jt, Jf: jf}
	}
	jge := func(k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: k, Jt: jt, Jf: jf}
	}
	ret := func(k uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k}
	}
	prog := []unix.SockFilter{
		ld(seccompDataArch),
		jeq(auditArchX86_64, 1, 0),
		ret(violation),
		ld(seccompDataNR),
		jge(x32SyscallBit, 0, 1),
		ret(violation),
	}
	for _, r := range rules {
		prog = append(prog, jeq(uint32(r.NR), 0, 1), ret(r.action()))
	}
	prog = append(prog, ret(violation))
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: program of %d instructions exceeds %d", len(prog), unix.BPF_MAXINSNS)
	}
	return prog, nil
}
