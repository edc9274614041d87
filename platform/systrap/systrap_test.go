package systrap

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
)

func newTestPlatform(t *testing.T) (*Platform, int, []byte) {
	t.Helper()
	fd, err := unix.MemfdCreate("test-mem", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, 1<<20); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(fd)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, fd, mem
}

const codeAddr = 0x400000

func TestSyscallAndFault(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, _, mem := newTestPlatform(t)
	// getpid; then a write to address 0x1000 (unmapped): SIGSEGV.
	code := []byte{
		0xb8, 39, 0, 0, 0, 0x0f, 0x05, // mov eax, 39; syscall
		0x48, 0xc7, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, // mov qword [0x1000], 42
	}
	copy(mem, code)
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release()
	if err := as.MapFile(codeAddr, 0, hostarch.PageSize, hostarch.AccessType{Read: true, Execute: true}); err != nil {
		t.Fatalf("MapFile: %v", err)
	}
	ctx := p.NewContext()
	ac := &arch.Context{}
	ac.ResetForExec(codeAddr, 0)
	info, _, err := ctx.Switch(as, ac)
	if err != nil {
		t.Fatalf("Switch: %v (info %+v)", err, info)
	}
	if ac.SyscallNo() != 39 {
		t.Fatalf("syscall %d, want 39", ac.SyscallNo())
	}
	if ac.Regs.Rip != codeAddr+7 {
		t.Fatalf("rip %#x", ac.Regs.Rip)
	}
	ac.SetReturn(1234)
	info, _, err = ctx.Switch(as, ac)
	if err != platform.ErrContextSignal {
		t.Fatalf("Switch: %v, want a signal", err)
	}
	if info.Signo != int32(unix.SIGSEGV) || info.Addr() != 0x1000 || info.Code != arch.SEGV_MAPERR {
		t.Fatalf("info %+v addr %#x", info, info.Addr())
	}
	if ac.Regs.Rax != 1234 {
		t.Fatalf("rax %d, want the syscall result 1234", ac.Regs.Rax)
	}
	// Map the page and retry: the store now succeeds and the next
	// instruction (int3 from zeroed memory? no: zero bytes are `add [rax], al`)
	// is whatever follows; check the memory got written.
	if err := as.MapFile(0x1000, 0x10000, hostarch.PageSize, hostarch.ReadWrite); err != nil {
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

func TestInterrupt(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, _, mem := newTestPlatform(t)
	copy(mem, []byte{0xeb, 0xfe}) // jmp .
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release()
	if err := as.MapFile(codeAddr, 0, hostarch.PageSize, hostarch.AccessType{Read: true, Execute: true}); err != nil {
		t.Fatal(err)
	}
	ctx := p.NewContext()
	ac := &arch.Context{}
	ac.ResetForExec(codeAddr, 0)
	go func() { ctx.Interrupt() }()
	if _, _, err := ctx.Switch(as, ac); err != platform.ErrContextInterrupt {
		t.Fatalf("Switch: %v, want interrupt", err)
	}
}

func TestFPPreserved(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, _, mem := newTestPlatform(t)
	// movq xmm0, rax ; syscall(getpid) ; movq rbx, xmm0 ; syscall
	code := []byte{
		0x66, 0x48, 0x0f, 0x6e, 0xc0, // movq xmm0, rax
		0xb8, 39, 0, 0, 0, 0x0f, 0x05,
		0x66, 0x48, 0x0f, 0x7e, 0xc3, // movq rbx, xmm0
		0xb8, 39, 0, 0, 0, 0x0f, 0x05,
	}
	copy(mem, code)
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release()
	as.MapFile(codeAddr, 0, hostarch.PageSize, hostarch.AccessType{Read: true, Execute: true})
	ctx := p.NewContext()
	ac := &arch.Context{}
	ac.ResetForExec(codeAddr, 0)
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

func TestStubSeccompKillsOtherSyscalls(t *testing.T) {
	p, _, _ := newTestPlatform(t)
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release()
	s := as.(*subprocess)
	// An allowed injection works.
	if _, err := s.inject(unix.SYS_MUNMAP, [6]uintptr{0x10000, 0x1000}, 0); err != nil {
		t.Fatalf("munmap injection: %v", err)
	}
	// Anything else, even from the stub's own syscall site, kills the stub.
	if _, err := s.inject(unix.SYS_GETPID, [6]uintptr{}, 0); err != platform.ErrContextDead {
		t.Fatalf("getpid injection: %v, want the stub killed", err)
	}
}

func BenchmarkSyscallRoundTrip(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fd, _ := unix.MemfdCreate("bench-mem", unix.MFD_CLOEXEC)
	unix.Ftruncate(fd, 1<<20)
	mem, _ := unix.Mmap(fd, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	copy(mem, []byte{0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7}) // loop { getpid }
	p, err := New(fd)
	if err != nil {
		b.Fatal(err)
	}
	if v := os.Getenv("SPIN"); v != "" {
		var a, c int
		fmt.Sscanf(v, "%d,%d", &a, &c)
		p.stubSpin, p.sentrySpin = uint32(a), time.Duration(c)*time.Nanosecond
	}
	as, _ := p.NewAddressSpace()
	defer as.Release()
	as.MapFile(codeAddr, 0, hostarch.PageSize, hostarch.AccessType{Read: true, Execute: true})
	ctx := p.NewContext()
	ac := &arch.Context{}
	ac.ResetForExec(codeAddr, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ctx.Switch(as, ac); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppCannotUseInjectionSites: application code that jumps to the
// stub's mmap site gets ENOSYS (SECCOMP_RET_TRACE without a tracer) rather
// than a mapping of the memory file, and the int3 after it is reported.
func TestAppCannotUseInjectionSites(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, _, mem := newTestPlatform(t)
	code := []byte{
		0xb8, 9, 0, 0, 0, // mov eax, SYS_mmap
		0x48, 0xbf, 0, 0, 0, 0x10, 0, 0, 0, 0, // mov rdi, 0x10000000
		0xbe, 0, 0x10, 0, 0, // mov esi, 0x1000
		0xba, 3, 0, 0, 0, // mov edx, PROT_READ|PROT_WRITE
		0x41, 0xba, 0x11, 0, 0, 0, // mov r10d, MAP_SHARED|MAP_FIXED
		0x45, 0x31, 0xc0, // xor r8d, r8d (the memory file)
		0x45, 0x31, 0xc9, // xor r9d, r9d
		0x48, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, // mov rcx, sysSite
		0xff, 0xe1, // jmp rcx
	}
	for i := 0; i < 8; i++ {
		code[len(code)-10+i] = byte(uint64(sysSite) >> (8 * i))
	}
	copy(mem, code)
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release()
	as.MapFile(codeAddr, 0, hostarch.PageSize, hostarch.AccessType{Read: true, Execute: true})
	ctx := p.NewContext()
	defer ctx.Release()
	ac := &arch.Context{}
	ac.ResetForExec(codeAddr, 0)
	info, _, err := ctx.Switch(as, ac)
	if err != platform.ErrContextSignal || info.Signo != int32(unix.SIGTRAP) {
		t.Fatalf("Switch: %v %+v, want the int3 after the site", err, info)
	}
	if int64(ac.Regs.Rax) != -int64(unix.ENOSYS) {
		t.Fatalf("mmap from the application returned %#x, want -ENOSYS", ac.Regs.Rax)
	}
}

// TestTLSAndRegisters: the FS and GS bases the sentry sets are the ones
// the application sees, and every general register survives a round trip.
func TestTLSAndRegisters(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, _, mem := newTestPlatform(t)
	code := []byte{
		0xf3, 0x48, 0x0f, 0xae, 0xc3, // rdfsbase rbx
		0xf3, 0x48, 0x0f, 0xae, 0xc9, // rdgsbase rcx
		0xb8, 39, 0, 0, 0, 0x0f, 0x05, // getpid
		0xb8, 39, 0, 0, 0, 0x0f, 0x05, // getpid
	}
	copy(mem, code)
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release()
	as.MapFile(codeAddr, 0, hostarch.PageSize, hostarch.AccessType{Read: true, Execute: true})
	ctx := p.NewContext()
	defer ctx.Release()
	ac := &arch.Context{}
	ac.ResetForExec(codeAddr, 0)
	ac.Regs.Fs_base = 0x12345000
	ac.Regs.Gs_base = 0x6789a000
	if _, _, err := ctx.Switch(as, ac); err != nil {
		t.Fatal(err)
	}
	if ac.Regs.Rbx != 0x12345000 || ac.Regs.Rcx == 0x6789a000 {
		// rcx is clobbered by the syscall instruction; rbx is not.
		t.Fatalf("rbx %#x rcx %#x", ac.Regs.Rbx, ac.Regs.Rcx)
	}
	if ac.Regs.Fs_base != 0x12345000 || ac.Regs.Gs_base != 0x6789a000 {
		t.Fatalf("bases %#x %#x", ac.Regs.Fs_base, ac.Regs.Gs_base)
	}
	want := ac.Regs
	want.R8, want.R9, want.R10, want.R12, want.R13, want.R14, want.R15 = 8, 9, 10, 12, 13, 14, 15
	want.Rdi, want.Rsi, want.Rbp, want.Rdx, want.Rsp = 0xd1, 0x51, 0xb9, 0xd8, 0x5000
	want.Rbx = 0xbb
	ac.Regs = want
	ac.SetReturn(77)
	if _, _, err := ctx.Switch(as, ac); err != nil {
		t.Fatal(err)
	}
	got := ac.Regs
	if got.Rip != codeAddr+uint64(len(code)) || got.Orig_rax != 39 {
		t.Fatalf("rip %#x nr %d", got.Rip, got.Orig_rax)
	}
	// rcx and r11 are the syscall instruction's; rax is the next number.
	want.Rip, want.Rcx, want.R11, want.Rax, want.Orig_rax, want.Eflags = got.Rip, got.Rcx, got.R11, got.Rax, got.Orig_rax, got.Eflags
	if got != want {
		t.Fatalf("registers changed:\n got %+v\nwant %+v", got, want)
	}
	if got.Rcx != got.Rip || got.R11&0xff != want.Eflags&0xff {
		t.Fatalf("rcx %#x r11 %#x", got.Rcx, got.R11)
	}
}

// TestManyThreadsAndAddressSpaces: contexts move between address spaces,
// threads are made and retired, released stubs give their slots back.
func TestManyThreadsAndAddressSpaces(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, _, mem := newTestPlatform(t)
	copy(mem, []byte{0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7})
	for round := 0; round < 3; round++ {
		var spaces []platform.AddressSpace
		for i := 0; i < 3; i++ {
			as, err := p.NewAddressSpace()
			if err != nil {
				t.Fatal(err)
			}
			as.MapFile(codeAddr, 0, hostarch.PageSize, hostarch.AccessType{Read: true, Execute: true})
			spaces = append(spaces, as)
		}
		for i := 0; i < 4; i++ {
			ctx := p.NewContext()
			ac := &arch.Context{}
			ac.ResetForExec(codeAddr, 0)
			for _, as := range spaces {
				for j := 0; j < 3; j++ {
					if _, _, err := ctx.Switch(as, ac); err != nil || ac.SyscallNo() != 39 {
						t.Fatalf("Switch: %v nr %d", err, ac.SyscallNo())
					}
				}
			}
			ctx.Release()
		}
		for _, as := range spaces {
			as.Release()
		}
	}
	if p.nextSlot > 3*4 {
		t.Errorf("%d slots used for at most 12 live threads", p.nextSlot)
	}
}

// TestStubCodeMatchesSource assembles testdata/stub.S and compares it with
// stubCode, when the GNU assembler is installed.
func TestStubCodeMatchesSource(t *testing.T) {
	as, err := exec.LookPath("as")
	if err != nil {
		t.Skip("no assembler")
	}
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		t.Skip("no objcopy")
	}
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "stub.o"), filepath.Join(dir, "stub.bin")
	if out, err := exec.Command(as, "-o", obj, "testdata/stub.S").CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	if out, err := exec.Command(objcopy, "-O", "binary", "-j", ".text", obj, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, stubCode) {
		t.Fatalf("stubCode differs from testdata/stub.S:\n%x\n%x", stubCode, b)
	}
}

// TestProbeSyscalls: uretprobe and uprobe bypass seccomp on the host. An
// application's uretprobe still makes a syscall stop; its uprobe the host
// answers itself (ENXIO, without SIGILL), which the platform cannot see.
func TestProbeSyscalls(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, _, mem := newTestPlatform(t)
	copy(mem, []byte{
		0xb8, 0x4f, 1, 0, 0, 0x0f, 0x05, // mov eax, 335; syscall
		0xb8, 0x50, 1, 0, 0, 0x0f, 0x05, // mov eax, 336; syscall
		0xb8, 39, 0, 0, 0, 0x0f, 0x05, // getpid
	})
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release()
	as.MapFile(codeAddr, 0, hostarch.PageSize, hostarch.AccessType{Read: true, Execute: true})
	ctx := p.NewContext()
	defer ctx.Release()
	ac := &arch.Context{}
	ac.ResetForExec(codeAddr, 0)
	for i, wantIP := range []uint64{codeAddr + 7, codeAddr + 21} {
		info, _, err := ctx.Switch(as, ac)
		if err != nil {
			t.Fatalf("call %d: %v %+v", i, err, info)
		}
		if ac.Regs.Rip != wantIP {
			t.Fatalf("call %d: rip %#x, want %#x", i, ac.Regs.Rip, wantIP)
		}
		ac.SetReturn(^uintptr(unix.ENOSYS) + 1)
	}
	if ac.SyscallNo() != 39 {
		t.Fatalf("last stop: syscall %d", ac.SyscallNo())
	}
}
