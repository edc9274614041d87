package systrap

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
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
	// An executor operation works.
	ops := []execOp{{nr: unix.SYS_MUNMAP, args: [6]uintptr{0x10000, 0x1000}}}
	if err := s.exec.run(ops); err != nil || ops[0].res != 0 {
		t.Fatalf("munmap by the executor: %v %#x", err, ops[0].res)
	}
	// Anything else, even from the executor's own syscall site, kills the
	// stub.
	if err := s.exec.run([]execOp{{nr: unix.SYS_GETPID}}); err != platform.ErrContextDead {
		t.Fatalf("getpid by the executor: %v, want the stub killed", err)
	}
}

func BenchmarkSyscallRoundTrip(b *testing.B) {
	platformtest.BenchmarkSyscallRoundTrip(b, New, func(p *Platform) {})
}

// BenchmarkSyscallRoundTripSpinning never pins: the round trip with both
// sides spinning, which is what an idle host gives.
func BenchmarkSyscallRoundTripSpinning(b *testing.B) {
	platformtest.BenchmarkSyscallRoundTrip(b, New, func(p *Platform) { p.neverPin = true })
}

// TestAppCannotUseStubSites: application code that jumps to the stub's
// syscall sites (the ptrace injection site, the executor's) with their own
// syscall numbers and the memory file's FD does not get them made: each is
// the application's call, a syscall stop for the sentry to emulate.
func TestAppCannotUseStubSites(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, tc := range []struct {
		site uint64
		nr   byte
		rdi  uint64
	}{
		{sysSite, unix.SYS_MMAP, 0x10000000},
		{codeBase + execIPOff - 2, unix.SYS_MMAP, 0x10000000},
		{codeBase + cloneIPOff - 2, unix.SYS_CLONE, threadCloneFlags},
		{codeBase + pwriteIPOff - 2, unix.SYS_PWRITE64, stubCtxFD},
	} {
		p, mem := platformtest.New(t, New)
		code := []byte{
			0xb8, tc.nr, 0, 0, 0, // mov eax, nr
			0x48, 0xbf, 0, 0, 0, 0, 0, 0, 0, 0, // mov rdi, rdi
			0xbe, 0, 0x10, 0, 0, // mov esi, 0x1000
			0xba, 3, 0, 0, 0, // mov edx, PROT_READ|PROT_WRITE
			0x41, 0xba, 0x11, 0, 0, 0, // mov r10d, MAP_SHARED|MAP_FIXED
			0x45, 0x31, 0xc0, // xor r8d, r8d (the memory file)
			0x45, 0x31, 0xc9, // xor r9d, r9d
			0x48, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, // mov rcx, site
			0xff, 0xe1, // jmp rcx
		}
		for i := 0; i < 8; i++ {
			code[7+i] = byte(tc.rdi >> (8 * i))
			code[len(code)-10+i] = byte(tc.site >> (8 * i))
		}
		copy(mem, code)
		as, ctx, ac := platformtest.Start(t, p)
		info, _, err := ctx.Switch(as, ac)
		if err != nil {
			t.Fatalf("site %#x: Switch: %v %+v, want a syscall stop", tc.site, err, info)
		}
		if ac.SyscallNo() != uintptr(tc.nr) || ac.Regs.Rip != tc.site+2 {
			t.Fatalf("site %#x: stop at %#x for syscall %d, want %d at the site", tc.site, ac.Regs.Rip, ac.SyscallNo(), tc.nr)
		}
		ctx.Release()
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
// stubCode, and its labels with the offsets stub.go names, when the GNU
// assembler is installed.
func TestStubCodeMatchesSource(t *testing.T) {
	as, err := exec.LookPath("as")
	if err != nil {
		t.Skip("no assembler (as) installed")
	}
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		t.Skip("no objcopy installed")
	}
	nm, err := exec.LookPath("nm")
	if err != nil {
		t.Skip("no nm installed")
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
	out, err := exec.Command(nm, obj).Output()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]uint64{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && (f[1] == "t" || f[1] == "T") {
			v, _ := strconv.ParseUint(f[0], 16, 64)
			labels[f[2]] = v
		}
	}
	for name, want := range map[string]uint64{
		"loop": loopOff, "loop_ip": loopIPOff, "sys_site": sysSiteOff, "sys_ip": sysIPOff,
		"fork_site": forkSiteOff, "fork_ip": forkIPOff, "exec_start": execStartOff,
		"exec_wait_ip": execWaitIPOff, "exec_ip": execIPOff, "clone_ip": cloneIPOff,
		"closerange_ip": closeRangeIPOff, "seccomp_ip": seccompIPOff, "altstack_ip": altStackIPOff,
		"pwrite_ip": pwriteIPOff, "exec_wake_ip": execWakeIPOff, "handler": handlerOff,
		"fast_entry": fastEntryOff, "wake_ip": wakeIPOff, "waitfutex_ip": waitFutexIPOff,
		"sigreturn_ip": sigreturnIPOff, "exit_ip": exitIPOff,
	} {
		if got, ok := labels[name]; !ok || got != want {
			t.Errorf("label %s at %#x in stub.S, %#x in stub.go", name, got, want)
		}
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

// fakeCode is a platform.CodeMemory over the memory file page that
// platformtest.Start maps at CodeAddr (shared, so a patch shows at once).
type fakeCode struct {
	mem     []byte
	patches int
}

func (f *fakeCode) ReadCode(addr hostarch.Addr, dst []byte) error {
	off := uint64(addr) - codeAddr
	if off+uint64(len(dst)) > hostarch.PageSize {
		return unix.EFAULT
	}
	copy(dst, f.mem[off:])
	return nil
}

func (f *fakeCode) PatchCode(addr hostarch.Addr, old, new []byte) error {
	off := uint64(addr) - codeAddr
	if !bytes.Equal(f.mem[off:off+uint64(len(old))], old) {
		return unix.EAGAIN
	}
	copy(f.mem[off:], new)
	f.patches++
	return nil
}

// TestSiteRewriting: a syscall site that keeps trapping is rewritten to
// jump to a trampoline record; from then on its syscalls come through the
// fast path with every register, the flags and the vector registers as the
// application left them, and results and register changes made by the
// sentry reach the application.
func TestSiteRewriting(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := platformtest.New(t, New)
	code := []byte{
		0x48, 0xff, 0xc5, // 0: inc rbp
		0x66, 0x48, 0x0f, 0x6e, 0xc5, // 3: movq xmm0, rbp
		0xc5, 0xfd, 0x6f, 0xc8, // 8: vmovdqa ymm1, ymm0
		0x48, 0x39, 0xed, // 12: cmp rbp, rbp (ZF=1)
		0xb8, 39, 0, 0, 0, // 15: mov eax, 39
		0x0f, 0x05, // 20: syscall
		0x66, 0x48, 0x0f, 0x7e, 0xce, // 22: movq rsi, xmm1
		0xeb, 0xe3, // 27: jmp 0
	}
	const site = codeAddr + 15
	copy(mem, code)
	as, ctx, ac := platformtest.Start(t, p)
	defer ctx.Release()
	fc := &fakeCode{mem: mem}
	as.(platform.CodePatcher).SetCodeMemory(fc)
	ac.Regs.Rbp = 100
	ac.Regs.Rbx, ac.Regs.R12, ac.Regs.R15, ac.Regs.Rdi = 0xb1, 0x12, 0x15, 0xd1
	fastSeen := false
	for i := 0; i < 10; i++ {
		if _, _, err := ctx.Switch(as, ac); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		th := ctx.(*context).th
		fast := atomic.LoadUint32(th.word(slotFast)) != 0
		fastSeen = fastSeen || fast
		if ac.SyscallNo() != 39 || ac.Regs.Rip != site+7 || ac.Regs.Rcx != site+7 {
			t.Fatalf("round %d (fast %v): nr %d rip %#x rcx %#x", i, fast, ac.SyscallNo(), ac.Regs.Rip, ac.Regs.Rcx)
		}
		if ac.Regs.Rbp != uint64(101+i) || ac.Regs.Rbx != 0xb1 || ac.Regs.R12 != 0x12 || ac.Regs.R15 != 0x15 || ac.Regs.Rdi != 0xd1 {
			t.Fatalf("round %d (fast %v): registers %+v", i, fast, ac.Regs)
		}
		if ac.Regs.Eflags&0x40 == 0 || ac.Regs.R11 != ac.Regs.Eflags {
			t.Fatalf("round %d (fast %v): flags %#x r11 %#x", i, fast, ac.Regs.Eflags, ac.Regs.R11)
		}
		if i > 0 && ac.Regs.Rsi != uint64(100+i) {
			t.Fatalf("round %d (fast %v): ymm1 %d, want %d", i, fast, ac.Regs.Rsi, 100+i)
		}
		if err := ctx.PullFullState(as, ac); err != nil {
			t.Fatal(err)
		}
		// xmm0 is at offset 160 of the FXSAVE image.
		if got := binary.LittleEndian.Uint64(ac.FP[160:]); got != ac.Regs.Rbp {
			t.Fatalf("round %d (fast %v): xmm0 %d in the FP state, want %d", i, fast, got, ac.Regs.Rbp)
		}
		ac.SetReturn(uintptr(i))
		ac.Regs.Rdi = 0xd1
	}
	if fc.patches != 1 || mem[15] != 0xe9 || !fastSeen {
		t.Fatalf("site not rewritten (%d patches, byte %#x, fast path seen %v)", fc.patches, mem[15], fastSeen)
	}
}

// BenchmarkSyscallRoundTripRewritten is BenchmarkSyscallRoundTrip once the
// getpid site has been rewritten (the fast path).
func BenchmarkSyscallRoundTripRewritten(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := platformtest.New(b, New)
	copy(mem, []byte{0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7}) // loop { getpid }
	p.neverPin = os.Getenv("VEIL_SYSTRAP_NEVERPIN") != ""
	as, ctx, ac := platformtest.Start(b, p)
	defer ctx.Release()
	as.(platform.CodePatcher).SetCodeMemory(&fakeCode{mem: mem})
	for i := 0; i < patchAfter+1; i++ {
		if _, _, err := ctx.Switch(as, ac); err != nil {
			b.Fatal(err)
		}
	}
	if mem[0] != 0xe9 {
		b.Fatal("site not rewritten")
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ctx.Switch(as, ac); err != nil {
			b.Fatal(err)
		}
	}
}

// TestInterruptFastPath: interrupts that land anywhere in a rewritten
// site's round trip (entering the stub, waiting, returning) are neither
// lost nor harmful: every Switch after an Interrupt reports it or a
// syscall stop, the registers survive, and the loop goes on.
func TestInterruptFastPath(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := platformtest.New(t, New)
	code := []byte{
		0x48, 0xff, 0xc3, // inc rbx
		0xb8, 39, 0, 0, 0, // mov eax, 39
		0x0f, 0x05, // syscall
		0xb9, 0x00, 0x01, 0, 0, // mov ecx, 256
		0xff, 0xc9, // 1: dec ecx
		0x75, 0xfc, // jnz 1b
		0xeb, 0xeb, // jmp 0
	}
	copy(mem, code)
	as, ctx, ac := platformtest.Start(t, p)
	defer ctx.Release()
	fc := &fakeCode{mem: mem}
	as.(platform.CodePatcher).SetCodeMemory(fc)
	stop := make(chan struct{})
	var sent atomic.Int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx.Interrupt()
			sent.Add(1)
			for t0 := time.Now(); time.Since(t0) < time.Duration(i%13)*time.Microsecond; {
			}
		}
	}()
	defer close(stop)
	syscalls, interrupts := 0, 0
	want := uint64(0)
	for syscalls < 3000 {
		_, _, err := ctx.Switch(as, ac)
		switch err {
		case nil:
			syscalls++
			want++
			if ac.SyscallNo() != 39 || ac.Regs.Rip != codeAddr+10 || ac.Regs.Rbx != want {
				t.Fatalf("stop %d: nr %d rip %#x rbx %d (want %d)", syscalls, ac.SyscallNo(), ac.Regs.Rip, ac.Regs.Rbx, want)
			}
		case platform.ErrContextInterrupt:
			interrupts++
		default:
			t.Fatalf("Switch: %v", err)
		}
	}
	if fc.patches != 1 || interrupts == 0 {
		t.Fatalf("%d patches, %d interrupts seen of %d sent", fc.patches, interrupts, sent.Load())
	}
	t.Logf("%d syscalls, %d interrupts seen of %d sent", syscalls, interrupts, sent.Load())
}

// TestSiteRewritingSyscall3: glibc's syscall(3) site (mov 8(%rsp), %r9;
// syscall, the number in rax) is rewritten too; its record does the load
// and passes whatever number rax holds, even one no syscall has.
func TestSiteRewritingSyscall3(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := platformtest.New(t, New)
	code := []byte{
		0x48, 0xff, 0xc0, // 0: inc rax
		0x4c, 0x8b, 0x4c, 0x24, 0x08, // 3: mov r9, [rsp+8]
		0x0f, 0x05, // 8: syscall
		0xeb, 0xf4, // 10: jmp 0
	}
	const site = codeAddr + 3
	copy(mem, code)
	binary.LittleEndian.PutUint64(mem[0x10008:], 0x5a5a5a5a)
	as, ctx, ac := platformtest.Start(t, p)
	defer ctx.Release()
	if err := as.MapFile(0x200000, 0x10000, hostarch.PageSize, hostarch.ReadWrite); err != nil {
		t.Fatal(err)
	}
	fc := &fakeCode{mem: mem}
	as.(platform.CodePatcher).SetCodeMemory(fc)
	ac.Regs.Rsp = 0x200000
	nr := uint64(1 << 40) // no such syscall: the number must pass whole
	ac.Regs.Rax = nr - 1
	for i := 0; i < 8; i++ {
		if _, _, err := ctx.Switch(as, ac); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if uint64(ac.SyscallNo()) != nr || ac.Regs.Rip != site+7 || ac.Regs.R9 != 0x5a5a5a5a {
			t.Fatalf("round %d: nr %#x (want %#x) rip %#x r9 %#x", i, ac.SyscallNo(), nr, ac.Regs.Rip, ac.Regs.R9)
		}
		nr++
		ac.SetReturn(uintptr(nr - 1)) // the next inc makes it nr
	}
	if fc.patches != 1 || mem[3] != 0xe9 {
		t.Fatalf("site not rewritten (%d patches, byte %#x)", fc.patches, mem[3])
	}
	if atomic.LoadUint32(ctx.(*context).th.word(slotFast)) == 0 {
		t.Fatal("the last syscall did not come through the fast path")
	}
}

// TestSiteRewritingRead: glibc's single-threaded read (cmpb $0, X(%rip);
// je L; xor %eax,%eax; syscall) is rewritten at its cmpb; the record
// keeps both ways of the je: with X non-zero the read comes through the
// fast path as syscall 0, with X zero the code at L runs.
func TestSiteRewritingRead(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := platformtest.New(t, New)
	code := []byte{
		0x48, 0xff, 0xc3, // 0: inc rbx
		0x80, 0x3d, 0x1a, 0, 0, 0, 0, // 3: cmpb [rip+0x1a], 0 (the byte at 0x24)
		0x74, 0x06, // 10: je 18
		0x31, 0xc0, // 12: xor eax, eax
		0x0f, 0x05, // 14: syscall
		0xeb, 0xee, // 16: jmp 0
		0xbd, 0x77, 0, 0, 0, // 18: mov ebp, 0x77
		0x0f, 0x0b, // 23: ud2
	}
	const flag = 0x24
	copy(mem, code)
	mem[flag] = 1
	as, ctx, ac := platformtest.Start(t, p)
	defer ctx.Release()
	fc := &fakeCode{mem: mem}
	as.(platform.CodePatcher).SetCodeMemory(fc)
	ac.Regs.Rbx = 0
	for i := 0; i < 8; i++ {
		ac.Regs.Rax = 0x1234 // xor must clear it again
		if _, _, err := ctx.Switch(as, ac); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if ac.SyscallNo() != 0 || ac.Regs.Rip != codeAddr+16 || ac.Regs.Rcx != codeAddr+16 || ac.Regs.Rbx != uint64(i+1) {
			t.Fatalf("round %d: nr %d rip %#x rcx %#x rbx %d", i, ac.SyscallNo(), ac.Regs.Rip, ac.Regs.Rcx, ac.Regs.Rbx)
		}
		// The flags at the syscall are those xor left: ZF and PF set.
		if ac.Regs.Eflags&0x44 != 0x44 || ac.Regs.Eflags&0x801 != 0 {
			t.Fatalf("round %d: flags %#x", i, ac.Regs.Eflags)
		}
		ac.SetReturn(1)
	}
	if fc.patches != 1 || mem[3] != 0xe9 || mem[8] != 0xcc || mem[10] != 0x74 {
		t.Fatalf("site not rewritten (%d patches, bytes % x)", fc.patches, mem[:16])
	}
	if atomic.LoadUint32(ctx.(*context).th.word(slotFast)) == 0 {
		t.Fatal("the last read did not come through the fast path")
	}
	// X zero: the record's je goes to L, which faults with ud2.
	mem[flag] = 0
	if _, _, err := ctx.Switch(as, ac); err != platform.ErrContextSignal {
		t.Fatalf("Switch with the je taken: %v, want a fault (rip %#x)", err, ac.Regs.Rip)
	}
	if ac.Regs.Rip != codeAddr+23 || ac.Regs.Rbp != 0x77 {
		t.Fatalf("je taken: rip %#x rbp %#x, want rip %#x rbp 0x77", ac.Regs.Rip, ac.Regs.Rbp, codeAddr+23)
	}
}

// TestSiteRewritingReadFault: when the byte a read record's cmpb reads is
// not mapped, the fault is the application's, reported at the cmpb's own
// address (where it would have been taken), not taken for a record that
// is not installed (which would retry forever).
func TestSiteRewritingReadFault(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, mem := platformtest.New(t, New)
	const flagAddr = 0x200000
	code := []byte{
		0x80, 0x3d, 0, 0, 0, 0, 0, // 0: cmpb [rip+X], 0
		0x74, 0x06, // 7: je 15
		0x31, 0xc0, // 9: xor eax, eax
		0x0f, 0x05, // 11: syscall
		0xeb, 0xf1, // 13: jmp 0
		0x0f, 0x0b, // 15: ud2
	}
	disp := int64(flagAddr) - int64(codeAddr+7)
	binary.LittleEndian.PutUint32(code[2:], uint32(int32(disp)))
	copy(mem, code)
	mem[0x10000] = 1
	as, ctx, ac := platformtest.Start(t, p)
	defer ctx.Release()
	if err := as.MapFile(flagAddr, 0x10000, hostarch.PageSize, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	fc := &fakeCode{mem: mem}
	as.(platform.CodePatcher).SetCodeMemory(fc)
	for i := 0; i < patchAfter+2; i++ {
		if _, _, err := ctx.Switch(as, ac); err != nil || ac.SyscallNo() != 0 {
			t.Fatalf("round %d: %v, nr %d", i, err, ac.SyscallNo())
		}
	}
	if fc.patches != 1 || atomic.LoadUint32(ctx.(*context).th.word(slotFast)) == 0 {
		t.Fatalf("%d patches; the last read did not come through the fast path", fc.patches)
	}
	as.Unmap(flagAddr, hostarch.PageSize)
	info, at, err := ctx.Switch(as, ac)
	if err != platform.ErrContextSignal || info == nil || uint64(info.Addr()) != flagAddr || at != hostarch.Read {
		t.Fatalf("Switch with the flag unmapped: %v, info %+v, access %v", err, info, at)
	}
	if ac.Regs.Rip != codeAddr {
		t.Fatalf("fault reported at %#x, want the cmpb at %#x", ac.Regs.Rip, codeAddr)
	}
	// Mapped again, the application goes on through the record.
	if err := as.MapFile(flagAddr, 0x10000, hostarch.PageSize, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ctx.Switch(as, ac); err != nil || ac.SyscallNo() != 0 || ac.Regs.Rip != codeAddr+13 {
		t.Fatalf("after the fault: %v, nr %d, rip %#x", err, ac.SyscallNo(), ac.Regs.Rip)
	}
}
