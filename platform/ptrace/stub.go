package ptrace

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform/internal/stubutil"
)

// The stub is a one-page static ELF that the platform execs once (the
// template) and clones for every address space. It runs no code of ours but
// three instruction sequences, at fixed offsets in its page:
//
//	loopSite:  mov eax, SYS_pause; syscall; jmp loopSite
//	sysSite:   syscall; int3
//	cloneSite: syscall; test rax, rax; jz loopSite; int3
//
// A fresh thread or process parks in the pause loop until the sentry seizes
// it. The sentry injects a host syscall by pointing a stopped thread at
// sysSite (or cloneSite) and letting it run to the int3. A seccomp filter,
// installed in the template and inherited by every stub, kills the stub if
// it makes any syscall other than these, from anywhere else: application
// code only ever runs under PTRACE_SYSEMU, so its syscalls are never
// executed, and if it somehow ran untraced it could not make one.
const (
	// stubBase is where the stub page lives in every address space. It is
	// far below the top of the address space so that exec's stack and
	// mmap randomization of the template cannot collide with it.
	stubBase = 0x7fc000000000
	stubSize = 0x1000

	codeOff      = 0x200
	loopSite     = stubBase + codeOff
	sysSite      = stubBase + codeOff + 0x10
	cloneSite    = stubBase + codeOff + 0x20
	fprogOff     = 0x280
	capHdrOff    = 0x2a0 // struct __user_cap_header_struct
	capDataOff   = 0x2b0 // two zeroed struct __user_cap_data_struct
	filterOff    = 0x300
	maxFilterLen = (stubSize - filterOff) / 8

	// MaxUserAddress is the end of the application's range.
	MaxUserAddress = stubBase
)

// The IPs seccomp sees for the three sites: the address after `syscall`.
const (
	loopSyscallIP  = loopSite + 7
	sysSyscallIP   = sysSite + 2
	cloneSyscallIP = cloneSite + 2
)

func stubCode() []byte {
	code := make([]byte, 0x30)
	for i := range code {
		code[i] = 0xcc
	}
	// loopSite (offset 0x00).
	copy(code[0x00:], []byte{0xb8, unix.SYS_PAUSE, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7})
	// sysSite (0x10).
	copy(code[0x10:], []byte{0x0f, 0x05, 0xcc})
	// cloneSite (0x20): jz back to 0x00 from next-ip 0x27 is -0x27.
	copy(code[0x20:], []byte{0x0f, 0x05, 0x48, 0x85, 0xc0, 0x74, 0xd9, 0xcc})
	return code
}

// stubFilter builds the stub's seccomp program: allow only the syscalls
// the sentry injects, each only from its site.
func stubFilter() []unix.SockFilter {
	var f []unix.SockFilter
	ld := func(off uint32) { f = append(f, stubutil.LoadAbs(off)) }
	ret := func(v uint32) { f = append(f, stubutil.Ret(v)) }
	// jeq emits a compare whose false branch falls through and whose true
	// branch skips `skip` instructions.
	jeq := func(k uint32, skip uint8) { f = append(f, stubutil.JEQ(k, skip, 0)) }
	// Allow-list checks: "if nr == x return allow" for each x, then kill.
	allowNRs := func(nrs ...uint32) {
		ld(stubutil.SeccompDataNR)
		for _, nr := range nrs {
			f = append(f, stubutil.JEQ(nr, 0, 1))
			ret(stubutil.SeccompRetAllow)
		}
		ret(stubutil.SeccompRetKillProcess)
	}

	ld(stubutil.SeccompDataArch)
	jeq(stubutil.AuditArchX86_64, 1)
	ret(stubutil.SeccompRetKillProcess)
	ld(stubutil.SeccompDataIPHigh)
	jeq(uint32(uint64(stubBase)>>32), 1)
	ret(stubutil.SeccompRetKillProcess)
	ld(stubutil.SeccompDataIPLow)
	// Three site checks, each jumping to its own block below. The blocks
	// have fixed sizes, computed here.
	loopBlock := []uint32{unix.SYS_PAUSE}
	sysBlock := []uint32{unix.SYS_MMAP, unix.SYS_MUNMAP, unix.SYS_MPROTECT, unix.SYS_MADVISE, unix.SYS_EXIT}
	cloneBlock := []uint32{unix.SYS_CLONE}
	blockLen := func(n []uint32) int { return 1 + 2*len(n) + 1 }
	// After the three jeqs and the kill: loop block, sys block, clone block.
	lb, sb := blockLen(loopBlock), blockLen(sysBlock)
	f = append(f,
		stubutil.JEQ(uint32(loopSyscallIP&0xffffffff), 3, 0),
		stubutil.JEQ(uint32(sysSyscallIP&0xffffffff), uint8(2+lb), 0),
		stubutil.JEQ(uint32(cloneSyscallIP&0xffffffff), uint8(1+lb+sb), 0),
	)
	ret(stubutil.SeccompRetKillProcess)
	allowNRs(loopBlock...)
	allowNRs(sysBlock...)
	allowNRs(cloneBlock...)
	return f
}

// stubELF returns the template's executable: an ELF64 header and program
// header, the code, and the seccomp program with its sock_fprog, all in
// one page loaded read+execute at stubBase.
func stubELF() []byte {
	b := stubutil.NewELF(stubBase, loopSite, stubSize)
	copy(b[codeOff:], stubCode())
	filter := stubFilter()
	if len(filter) > maxFilterLen {
		panic("ptrace: stub filter too long")
	}
	stubutil.PutFilter(b, stubBase, fprogOff, filterOff, filter)
	stubutil.PutCapHeader(b, capHdrOff)
	return b
}
