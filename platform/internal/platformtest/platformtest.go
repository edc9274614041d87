// Package platformtest holds what the tests of the stub platforms (ptrace,
// systrap) share: making a platform over a fresh memory file, starting an
// application thread in a new address space, and the tests every such
// platform must pass whatever its mechanism. It is imported by tests only.
package platformtest

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// CodeAddr is where Start maps the first page of the memory file.
const CodeAddr = 0x400000

// memSize is the size of the memory file.
const memSize = 1 << 20

// New makes a platform with newP over a fresh memory file and returns it
// with the sentry's mapping of the file.
func New[P platform.Platform](tb testing.TB, newP func(memFD int) (P, error)) (P, []byte) {
	tb.Helper()
	fd, err := unix.MemfdCreate("test-mem", unix.MFD_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Ftruncate(fd, memSize); err != nil {
		tb.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, memSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := newP(fd)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return p, mem
}

// Start makes an address space, released when the test ends, with the
// first page of the memory file mapped read+execute at CodeAddr, and a
// context and a register state that start there. The caller releases the
// context if it wants to (on the OS thread it ran it on).
func Start(tb testing.TB, p platform.Platform) (platform.AddressSpace, platform.Context, *arch.Context) {
	tb.Helper()
	as, err := p.NewAddressSpace()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(as.Release)
	if err := as.MapFile(CodeAddr, 0, hostarch.PageSize, hostarch.AccessType{Read: true, Execute: true}); err != nil {
		tb.Fatalf("MapFile: %v", err)
	}
	ac := &arch.Context{}
	ac.ResetForExec(CodeAddr, 0)
	return as, p.NewContext(), ac
}

// SyscallAndFault: a syscall stops with its number and the IP after it,
// its result reaches the application, a store to an unmapped page is a
// SIGSEGV with its address, and mapping the page lets the store land in
// the memory file.
func SyscallAndFault[P platform.Platform](t *testing.T, newP func(memFD int) (P, error)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := New(t, newP)
	// getpid; then a write to address 0x200000 (unmapped): SIGSEGV.
	code := []byte{
		0xb8, 39, 0, 0, 0, 0x0f, 0x05, // mov eax, 39; syscall
		0x48, 0xc7, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, 0x2a, 0x00, 0x00, 0x00, // mov qword [0x200000], 42
	}
	copy(mem, code)
	as, ctx, ac := Start(t, p)
	info, _, err := ctx.Switch(as, ac)
	if err != nil {
		t.Fatalf("Switch: %v (info %+v)", err, info)
	}
	if ac.SyscallNo() != 39 {
		t.Fatalf("syscall %d, want 39", ac.SyscallNo())
	}
	if ac.Regs.Rip != CodeAddr+7 {
		t.Fatalf("rip %#x", ac.Regs.Rip)
	}
	ac.SetReturn(1234)
	info, _, err = ctx.Switch(as, ac)
	if err != platform.ErrContextSignal {
		t.Fatalf("Switch: %v, want a signal", err)
	}
	if info.Signo != int32(unix.SIGSEGV) || info.Addr() != 0x200000 || info.Code != arch.SEGV_MAPERR {
		t.Fatalf("info %+v addr %#x", info, info.Addr())
	}
	if ac.Regs.Rax != 1234 {
		t.Fatalf("rax %d, want the syscall result 1234", ac.Regs.Rax)
	}
	// Map the page and retry: the store now succeeds and the next
	// instruction (int3 from zeroed memory? no: zero bytes are `add [rax], al`)
	// is whatever follows; check the memory got written.
	if err := as.MapFile(0x200000, 0x10000, hostarch.PageSize, hostarch.ReadWrite); err != nil {
		t.Fatal(err)
	}
	copy(mem[len(code):], []byte{0xb8, 60, 0, 0, 0, 0x0f, 0x05}) // exit syscall (emulated)
	if _, _, err = ctx.Switch(as, ac); err != nil {
		t.Fatalf("Switch: %v", err)
	}
	if ac.SyscallNo() != 60 {
		t.Fatalf("syscall %d, want 60", ac.SyscallNo())
	}
	if mem[0x10000] != 42 {
		t.Fatalf("store did not land in the memory file: %d", mem[0x10000])
	}
}

// Interrupt: Interrupt stops an application in a busy loop.
func Interrupt[P platform.Platform](t *testing.T, newP func(memFD int) (P, error)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := New(t, newP)
	copy(mem, []byte{0xeb, 0xfe}) // jmp .
	as, ctx, ac := Start(t, p)
	go func() { ctx.Interrupt() }()
	if _, _, err := ctx.Switch(as, ac); err != platform.ErrContextInterrupt {
		t.Fatalf("Switch: %v, want interrupt", err)
	}
}

// FPPreserved: FP registers survive syscall stops and a pull and push of
// the FP state through the sentry.
func FPPreserved[P platform.Platform](t *testing.T, newP func(memFD int) (P, error)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := New(t, newP)
	// movq xmm0, rax ; syscall(getpid) ; movq rbx, xmm0 ; syscall
	code := []byte{
		0x66, 0x48, 0x0f, 0x6e, 0xc0, // movq xmm0, rax
		0xb8, 39, 0, 0, 0, 0x0f, 0x05,
		0x66, 0x48, 0x0f, 0x7e, 0xc3, // movq rbx, xmm0
		0xb8, 39, 0, 0, 0, 0x0f, 0x05,
	}
	copy(mem, code)
	as, ctx, ac := Start(t, p)
	ac.Regs.Rax = 0x1122334455667788
	if _, _, err := ctx.Switch(as, ac); err != nil {
		t.Fatal(err)
	}
	// Pull and push the FP state through the sentry, as signal delivery does.
	if err := ctx.PullFullState(as, ac); err != nil {
		t.Fatal(err)
	}
	ac.FPDirty = true
	if _, _, err := ctx.Switch(as, ac); err != nil {
		t.Fatal(err)
	}
	if ac.Regs.Rbx != 0x1122334455667788 {
		t.Fatalf("xmm0 not preserved: rbx=%#x", ac.Regs.Rbx)
	}
}

// BenchmarkSyscallRoundTrip measures a syscall stop and resume of an
// application looping on getpid; setup, if not nil, tunes the platform
// before the address space is made.
func BenchmarkSyscallRoundTrip[P platform.Platform](b *testing.B, newP func(memFD int) (P, error), setup func(P)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := New(b, newP)
	copy(mem, []byte{0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7}) // loop { getpid }
	if setup != nil {
		setup(p)
	}
	as, ctx, ac := Start(b, p)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ctx.Switch(as, ac); err != nil {
			b.Fatal(err)
		}
	}
}
