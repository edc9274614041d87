// Package arch owns the x86-64 view of a task: its registers and FP state,
// signal information and frames, the auxiliary vector and the ABI structs
// the kernel copies to and from application memory.
package arch

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// Registers is user_regs_struct, as ptrace and the signal frame see it.
type Registers = unix.PtraceRegs

// Context is the state of one application thread that the platform runs.
type Context struct {
	Regs Registers
	// FP is the XSAVE area (the layout PTRACE_GETREGSET NT_X86_XSTATE
	// uses). It is valid only when FPValid is set; the platform clears
	// FPValid whenever application code may have changed the state, and
	// the kernel asks the platform to pull it before using it.
	FP      []byte
	FPValid bool
	// FPDirty says the sentry changed FP and the platform must load it
	// into the thread before running it again.
	FPDirty bool
}

// SyscallNo is the number of the syscall the thread stopped at.
func (c *Context) SyscallNo() uintptr { return uintptr(c.Regs.Orig_rax) }

// SyscallArgs returns the argument registers of a syscall stop.
func (c *Context) SyscallArgs() SyscallArguments {
	r := &c.Regs
	return SyscallArguments{{uintptr(r.Rdi)}, {uintptr(r.Rsi)}, {uintptr(r.Rdx)}, {uintptr(r.R10)}, {uintptr(r.R8)}, {uintptr(r.R9)}}
}

// SetReturn stores a syscall result.
func (c *Context) SetReturn(v uintptr) { c.Regs.Rax = uint64(v) }

// IP and Stack are the instruction and stack pointers.
func (c *Context) IP() hostarch.Addr        { return hostarch.Addr(c.Regs.Rip) }
func (c *Context) Stack() hostarch.Addr     { return hostarch.Addr(c.Regs.Rsp) }
func (c *Context) SetIP(a hostarch.Addr)    { c.Regs.Rip = uint64(a) }
func (c *Context) SetStack(a hostarch.Addr) { c.Regs.Rsp = uint64(a) }

// TLS is the FS base.
func (c *Context) TLS() uint64     { return c.Regs.Fs_base }
func (c *Context) SetTLS(v uint64) { c.Regs.Fs_base = v }

// Fork returns a copy for a new thread or process.
func (c *Context) Fork() *Context {
	n := *c
	n.FP = append([]byte(nil), c.FP...)
	n.FPDirty = true
	return &n
}

// User segment selectors of x86-64 Linux.
const (
	UserCS = 0x33
	UserDS = 0x2b
	UserSS = 0x2b
)

// ResetForExec sets the registers of a freshly exec'd thread: entry and
// stack, every general register zero, and a clean FP state.
func (c *Context) ResetForExec(entry, stack hostarch.Addr) {
	c.Regs = Registers{
		Rip: uint64(entry), Rsp: uint64(stack),
		Cs: UserCS, Ss: UserSS, Ds: 0, Es: 0,
		Eflags:   0x202, // IF, and the reserved bit 1.
		Orig_rax: ^uint64(0),
	}
	c.FP = InitialFPState()
	c.FPValid = true
	c.FPDirty = true
}

// XSAVE area layout facts (Intel SDM vol. 1, 13.4).
const (
	fxsaveSize      = 512
	xsaveHeaderSize = 64
	// XSaveAreaMax is how much room we keep for an XSAVE image; the
	// platform trims it to the host's size.
	XSaveAreaMax = 4096
	mxcsrOffset  = 24
	mxcsrDefault = 0x1f80
	fcwOffset    = 0
	fcwDefault   = 0x37f
)

// InitialFPState is the FP state of a new process: FCW and MXCSR at their
// reset values, everything else zero, XSTATE_BV saying x87 and SSE.
func InitialFPState() []byte {
	b := make([]byte, fxsaveSize+xsaveHeaderSize)
	binary.LittleEndian.PutUint16(b[fcwOffset:], fcwDefault)
	binary.LittleEndian.PutUint32(b[mxcsrOffset:], mxcsrDefault)
	binary.LittleEndian.PutUint32(b[mxcsrOffset+4:], 0xffff) // MXCSR_MASK
	binary.LittleEndian.PutUint64(b[fxsaveSize:], 3)
	return b
}
