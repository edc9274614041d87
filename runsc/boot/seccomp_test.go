//go:build linux && amd64

package boot

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// runBPF is a tiny classic-BPF interpreter covering what BuildFilter
// emits (absolute word loads, JEQ/JGE/JA with constants, RET constant),
// run over a struct seccomp_data. Anything else fails the test, so the
// builder cannot silently start emitting instructions nobody checked.
func runBPF(t *testing.T, prog []unix.SockFilter, nr, arch uint32) uint32 {
	t.Helper()
	var data [64]byte // struct seccomp_data: nr, arch, ip, args[6]
	binary.LittleEndian.PutUint32(data[0:], nr)
	binary.LittleEndian.PutUint32(data[4:], arch)
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K+4 > uint32(len(data)) || in.K%4 != 0 {
				t.Fatalf("pc %d: load at bad offset %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += int(pick(acc == in.K, in.Jt, in.Jf))
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			pc += int(pick(acc >= in.K, in.Jt, in.Jf))
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
	}
	t.Fatalf("program fell off its end")
	return 0
}

func pick(c bool, a, b uint8) uint8 {
	if c {
		return a
	}
	return b
}

func TestBuildFilter(t *testing.T) {
	rules := []SyscallRule{
		{NR: unix.SYS_READ, Name: "read"},
		{NR: unix.SYS_WRITE, Name: "write"},
		{NR: unix.SYS_CLONE3, Name: "clone3", Errno: unix.ENOSYS},
	}
	prog, err := BuildFilter(rules, seccompRetKillProcess)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		nr, arch, want uint32
	}{
		{unix.SYS_READ, auditArchX86_64, seccompRetAllow},
		{unix.SYS_WRITE, auditArchX86_64, seccompRetAllow},
		{unix.SYS_CLONE3, auditArchX86_64, seccompRetErrno | uint32(unix.ENOSYS)},
		{unix.SYS_OPENAT, auditArchX86_64, seccompRetKillProcess},
		{unix.SYS_EXECVE, auditArchX86_64, seccompRetKillProcess},
		// read's number under i386 is a different call.
		{unix.SYS_READ, 0x40000003 /* AUDIT_ARCH_I386 */, seccompRetKillProcess},
		// x32 ABI read.
		{x32SyscallBit | unix.SYS_READ, auditArchX86_64, seccompRetKillProcess},
	} {
		if got := runBPF(t, prog, tc.nr, tc.arch); got != tc.want {
			t.Errorf("nr %#x arch %#x: got %#x, want %#x", tc.nr, tc.arch, got, tc.want)
		}
	}
	logProg, _ := BuildFilter(rules, seccompRetLog)
	if got := runBPF(t, logProg, unix.SYS_OPENAT, auditArchX86_64); got != seccompRetLog {
		t.Errorf("log mode: openat got %#x", got)
	}
}

func TestBuildFilterErrors(t *testing.T) {
	if _, err := BuildFilter([]SyscallRule{{NR: 1}, {NR: 1}}, seccompRetKillProcess); err == nil {
		t.Error("duplicate rule accepted")
	}
	if _, err := BuildFilter([]SyscallRule{{NR: x32SyscallBit}}, seccompRetKillProcess); err == nil {
		t.Error("out-of-range number accepted")
	}
}

// TestSentryAllowlist checks the real table: what Go's runtime and the
// sentry need is in, what the sentry must never do is out.
func TestSentryAllowlist(t *testing.T) {
	prog, err := BuildFilter(SentryAllowlist, seccompRetKillProcess)
	if err != nil {
		t.Fatal(err)
	}
	for _, nr := range []uint32{unix.SYS_FUTEX, unix.SYS_MMAP, unix.SYS_RT_SIGRETURN, unix.SYS_TGKILL,
		unix.SYS_PTRACE, unix.SYS_WAIT4, unix.SYS_RECVMSG, unix.SYS_PREAD64, unix.SYS_MEMFD_CREATE,
		unix.SYS_EXIT_GROUP, unix.SYS_EPOLL_PWAIT, unix.SYS_GETRANDOM} {
		if got := runBPF(t, prog, nr, auditArchX86_64); got != seccompRetAllow {
			t.Errorf("syscall %d: %#x, want allow", nr, got)
		}
	}
	for _, nr := range []uint32{unix.SYS_OPEN, unix.SYS_OPENAT, unix.SYS_OPENAT2, unix.SYS_EXECVE,
		unix.SYS_EXECVEAT, unix.SYS_MOUNT, unix.SYS_CHROOT, unix.SYS_PIVOT_ROOT, unix.SYS_SOCKET,
		unix.SYS_CONNECT, unix.SYS_SETUID, unix.SYS_CAPSET, unix.SYS_UNSHARE, unix.SYS_SETNS,
		unix.SYS_BPF, unix.SYS_SECCOMP, unix.SYS_INIT_MODULE, unix.SYS_KEXEC_LOAD} {
		if got := runBPF(t, prog, nr, auditArchX86_64); got != seccompRetKillProcess {
			t.Errorf("syscall %d: %#x, want kill", nr, got)
		}
	}
	for _, r := range SentryAllowlist {
		if r.Name == "" {
			t.Errorf("syscall %d has no name", r.NR)
		}
	}
}

// seccompChildEnv makes the test binary act as a child that installs a
// filter and then makes one call; see TestMain.
const seccompChildEnv = "VEIL_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(seccompChildEnv) {
	case "":
		os.Exit(m.Run())
	case "forbidden", "allowed", "log":
		seccompChild(os.Getenv(seccompChildEnv))
	case "confine":
		confineChild()
	}
	os.Exit(100)
}

func seccompChild(mode string) {
	if err := setNoNewPrivs(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(101)
	}
	violation := uint32(seccompRetKillProcess)
	if mode == "log" {
		violation = seccompRetLog
	}
	if err := InstallSeccomp(SentryAllowlist, violation); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(102)
	}
	switch mode {
	case "forbidden", "log":
		// mkdirat is nowhere in the allowlist: this must kill us (or be
		// logged and carried out, failing on the empty path).
		unix.Syscall(unix.SYS_MKDIRAT, 0, 0, 0)
	case "allowed":
		// Exercise the runtime on other threads under the filter: they got
		// it through TSYNC.
		done := make(chan int)
		for i := 0; i < 4; i++ {
			go func() {
				b := make([]byte, 1<<20)
				done <- len(b)
			}()
		}
		for i := 0; i < 4; i++ {
			<-done
		}
		unix.Getpid()
	}
	os.Exit(7)
}

func runChild(t *testing.T, mode string, attr *syscall.SysProcAttr) (*os.ProcessState, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), seccompChildEnv+"="+mode)
	cmd.SysProcAttr = attr
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState == nil {
		t.Fatalf("child %s did not run", mode)
	}
	return cmd.ProcessState, string(out)
}

// TestInstallSeccomp installs the real allowlist in a child process.
func TestInstallSeccomp(t *testing.T) {
	ps, out := runChild(t, "allowed", nil)
	if ps.ExitCode() != 7 {
		t.Errorf("allowed calls: child ended with %v, want exit 7; output %q", ps, out)
	}
	ps, out = runChild(t, "forbidden", nil)
	ws := ps.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != unix.SIGSYS {
		t.Errorf("forbidden call: child ended with %v, want killed by SIGSYS; output %q", ps, out)
	}
	ps, out = runChild(t, "log", nil)
	if ps.ExitCode() != 7 {
		t.Errorf("log mode: child ended with %v, want exit 7; output %q", ps, out)
	}
}
