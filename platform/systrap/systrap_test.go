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
	"github.com/veil-sandbox/veil/platform/internal/platformtest"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
)

func TestSyscallAndFault(t *testing.T) { platformtest.SyscallAndFault(t, New) }

func TestInterrupt(t *testing.T) { platformtest.Interrupt(t, New) }

func TestFPPreserved(t *testing.T) { platformtest.FPPreserved(t, New) }

const codeAddr = platformtest.CodeAddr

func TestStubSeccompKillsOtherSyscalls(t *testing.T) {
	p, _ := platformtest.New(t, New)
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
	platformtest.BenchmarkSyscallRoundTrip(b, New, func(p *Platform) {
		if v := os.Getenv("SPIN"); v != "" {
			var a, c int
			fmt.Sscanf(v, "%d,%d", &a, &c)
			p.stubSpin, p.sentrySpin = uint32(a), time.Duration(c)*time.Nanosecond
		}
	})
}

// TestAppCannotUseInjectionSites: application code that jumps to the
// stub's mmap site gets ENOSYS (SECCOMP_RET_TRACE without a tracer) rather
// than a mapping of the memory file, and the int3 after it is reported.
func TestAppCannotUseInjectionSites(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := platformtest.New(t, New)
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
	as, ctx, ac := platformtest.Start(t, p)
	defer ctx.Release()
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
	p, mem := platformtest.New(t, New)
	code := []byte{
		0xf3, 0x48, 0x0f, 0xae, 0xc3, // rdfsbase rbx
		0xf3, 0x48, 0x0f, 0xae, 0xc9, // rdgsbase rcx
		0xb8, 39, 0, 0, 0, 0x0f, 0x05, // getpid
		0xb8, 39, 0, 0, 0, 0x0f, 0x05, // getpid
	}
	copy(mem, code)
	as, ctx, ac := platformtest.Start(t, p)
	defer ctx.Release()
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
	p, mem := platformtest.New(t, New)
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
	p, mem := platformtest.New(t, New)
	copy(mem, []byte{
		0xb8, 0x4f, 1, 0, 0, 0x0f, 0x05, // mov eax, 335; syscall
		0xb8, 0x50, 1, 0, 0, 0x0f, 0x05, // mov eax, 336; syscall
		0xb8, 39, 0, 0, 0, 0x0f, 0x05, // getpid
	})
	as, ctx, ac := platformtest.Start(t, p)
	defer ctx.Release()
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
