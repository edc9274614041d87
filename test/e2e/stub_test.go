package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// How these tests show that the stubs make no host syscalls on the
// application's behalf.
//
// strace cannot be used: a process has one tracer, and the sentry is the
// tracer of every stub. The kernel has no per-process syscall counter
// either. Two sound methods remain, and both are used:
//
//  1. TestStubSeccomp: every stub carries a seccomp filter (strict filter
//     mode 2, exactly one filter, no new privileges) that kills the stub
//     for any syscall other than mmap/munmap/mprotect/madvise/exit from the
//     stub page's syscall site, clone from its clone site and pause from
//     its park loop (platform/ptrace/stub.go). /proc/<pid>/status shows the
//     mode and filter count of each stub of a running sandbox. A
//     syscall-heavy program (1000 echo builtins redirected to /dev/null,
//     each an open, dup2, write and close) then completes normally: had any
//     of those calls been executed by the host kernel in the stub, the
//     filter would have killed it (application code never runs from the
//     stub page). This relies on the filter being what stub.go says it is.
//
//  2. TestStubHostSyscalls measures directly, with the kernel's own
//     raw_syscalls:sys_enter tracepoint in a private ftrace instance. The
//     tracepoint fires for every syscall the host kernel executes, whoever
//     the tracer; a syscall stopped by PTRACE_SYSEMU returns to the tracer
//     before it (and before seccomp), so it is not counted. The instance
//     traces the stubs of a sandbox (and, through event-fork, any stub
//     cloned from them afterwards); the application, after a pause that
//     lets the test set this up, faults in fresh pages and calls getpid
//     100000 times. Every syscall the trace attributes to a stub must be
//     one of the calls above, and there must be no getpid at all. Every
//     stub seen during the run must have been traced, the trace must not
//     have overrun, and it must contain the mmaps the sentry injects for
//     the page faults, so that an empty result cannot come from a trace
//     that saw nothing.

// stubProcs returns the stub processes below pid.
func stubProcs(pid int) []proc {
	var out []proc
	for _, p := range descendants(pid) {
		if isStub(p) && p.state != "Z" {
			out = append(out, p)
		}
	}
	return out
}

// waitStubs polls for up to d for at least min stubs below pid.
func waitStubs(pid, min int, d time.Duration) []proc {
	deadline := time.Now().Add(d)
	for {
		s := stubProcs(pid)
		if len(s) >= min || time.Now().After(deadline) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statusFields(pid int) map[string]string {
	m := map[string]string{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// startSandbox starts runsc do ARGV in the background.
func startSandbox(t *testing.T, argv ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	// These tests are about the ptrace platform's stubs.
	full := append([]string{runscBin, "--root=" + t.TempDir(), "--platform=ptrace", "do", "--"}, argv...)
	cmd := exec.Command(full[0], full[1:]...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &so, &se
}

// finish waits for a sandbox started by startSandbox (killing it after
// timeout) and returns its exit status.
func finish(t *testing.T, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		t.Errorf("sandbox did not finish within %v", timeout)
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			err = <-done
		}
	}
	defer checkNoLeftovers(t)
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	t.Errorf("waiting for runsc: %v", err)
	return -1
}

func TestStubSeccomp(t *testing.T) {
	needSandbox(t)
	needBusybox(t)
	script := `sleep 1; i=0; while [ $i -lt 1000 ]; do echo $i > /dev/null; i=$((i+1)); done; echo "$i echoes"`
	cmd, so, se := startSandbox(t, busybox, "sh", "-c", script)
	stubs := waitStubs(cmd.Process.Pid, 2, 900*time.Millisecond)
	if len(stubs) == 0 {
		t.Errorf("found no stub process below runsc (pid %d)", cmd.Process.Pid)
	}
	checked := 0
	for _, s := range stubs {
		st := statusFields(s.pid)
		if len(st) == 0 {
			continue // exited since the scan (a short-lived address space)
		}
		parent, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.ppid))
		if !bytes.Contains(parent, []byte("\x00boot\x00")) {
			t.Errorf("stub %d: parent %d is %q, want the sentry (runsc boot)", s.pid, s.ppid, bytes.ReplaceAll(parent, []byte{0}, []byte{' '}))
		}
		t.Logf("stub pid %d comm %q exe %q: Seccomp %s, Seccomp_filters %s, NoNewPrivs %s, CapEff %s",
			s.pid, s.comm, s.exe, st["Seccomp"], st["Seccomp_filters"], st["NoNewPrivs"], st["CapEff"])
		if st["Seccomp"] != "2" || st["Seccomp_filters"] != "1" {
			t.Errorf("stub %d: Seccomp %q, Seccomp_filters %q; want 2 and 1", s.pid, st["Seccomp"], st["Seccomp_filters"])
		}
		checked++
		if st["NoNewPrivs"] != "1" || strings.Trim(st["CapEff"], "0") != "" {
			t.Errorf("stub %d: NoNewPrivs %q, CapEff %q; want 1 and none", s.pid, st["NoNewPrivs"], st["CapEff"])
		}
	}
	if checked == 0 {
		t.Errorf("no stub of the running sandbox could be inspected")
	}
	code := finish(t, cmd, 60*time.Second)
	if code != 0 || so.String() != "1000 echoes\n" {
		t.Errorf("syscall loop: status %d, stdout %q; want 0, %q\nstderr:\n%s", code, so.String(), "1000 echoes\n", tail(se.String(), 30))
	}
}

// allowedStubSyscalls are the host syscalls a stub may make once it is
// locked down (x86-64 numbers; see stub.go).
var allowedStubSyscalls = map[int]string{
	unix.SYS_MMAP: "mmap", unix.SYS_MPROTECT: "mprotect", unix.SYS_MUNMAP: "munmap",
	unix.SYS_MADVISE: "madvise", unix.SYS_PAUSE: "pause", unix.SYS_CLONE: "clone", unix.SYS_EXIT: "exit",
}

var traceLine = regexp.MustCompile(`^.*-(\d+)\s+\[\d+\].*\ssys_enter: NR (\d+) `)

func TestStubHostSyscalls(t *testing.T) {
	needSandbox(t)
	needBusybox(t)
	getpid := buildC(t, "test/e2e/src/getpid.c", "getpid")
	inst := traceInstance(t)
	write := func(file, v string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(inst, file), []byte(v), 0o644); err != nil {
			t.Fatalf("tracefs %s: %v", file, err)
		}
	}
	write("buffer_size_kb", "8192")

	const n = 100000
	// The program sleeps first, which leaves time to point the trace at
	// the sandbox's stubs: the template and the program's own.
	cmd, so, se := startSandbox(t, getpid, strconv.Itoa(n), "2000")
	stubs := waitStubs(cmd.Process.Pid, 2, 1500*time.Millisecond)
	if len(stubs) < 2 {
		finish(t, cmd, 60*time.Second)
		t.Fatalf("found %d stub processes below runsc (pid %d), want the template and the program's", len(stubs), cmd.Process.Pid)
	}
	var pids []string
	for _, s := range stubs {
		pids = append(pids, strconv.Itoa(s.pid))
	}
	write("set_event_pid", strings.Join(pids, " "))
	write("options/event-fork", "1")
	write("events/raw_syscalls/sys_enter/enable", "1")
	// Every stub alive while the program runs must be in the trace's PID
	// list (event-fork adds the stubs cloned from traced ones and drops
	// those that exit, so the list is checked while they live).
	untraced := map[int]bool{}
	done := make(chan int)
	go func() { done <- finish(t, cmd, 120*time.Second) }()
	var code int
poll:
	for {
		select {
		case code = <-done:
			break poll
		case <-time.After(50 * time.Millisecond):
			live := stubProcs(cmd.Process.Pid)
			b, _ := os.ReadFile(filepath.Join(inst, "set_event_pid"))
			traced := map[int]bool{}
			for _, f := range strings.Fields(string(b)) {
				p, _ := strconv.Atoi(f)
				traced[p] = true
			}
			for _, s := range live {
				if p, ok := readProc(s.pid); !traced[s.pid] && ok && p.state != "Z" {
					untraced[s.pid] = true
				}
			}
		}
	}
	write("events/raw_syscalls/sys_enter/enable", "0")

	if want := fmt.Sprintf("getpid x%d = 1\n", n); code != 0 || so.String() != want {
		t.Errorf("getpid program: status %d, stdout %q; want 0, %q\nstderr:\n%s", code, so.String(), want, tail(se.String(), 30))
	}
	for p := range untraced {
		t.Errorf("stub %d ran but was not traced: the trace started too late (initial stubs %v)", p, pids)
	}
	checkNoOverrun(t, inst)

	f, err := os.Open(filepath.Join(inst, "trace"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[int]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := traceLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		nr, _ := strconv.Atoi(m[2])
		counts[nr]++
		if _, ok := allowedStubSyscalls[nr]; !ok && counts[nr] <= 5 {
			t.Errorf("stub %d made host syscall %d: %s", pid, nr, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("host syscalls made by stubs while the application called getpid %d times: %v", n, named(counts))
	if counts[unix.SYS_GETPID] != 0 {
		t.Errorf("stubs made %d host getpid calls; want 0", counts[unix.SYS_GETPID])
	}
	if counts[unix.SYS_MMAP] == 0 {
		t.Errorf("the trace holds no mmap although the program faulted in fresh pages after tracing began: it saw nothing, so it proves nothing")
	}
}

func named(counts map[int]int) string {
	var parts []string
	for nr, c := range counts {
		name := allowedStubSyscalls[nr]
		if name == "" {
			name = "NR " + strconv.Itoa(nr)
		}
		parts = append(parts, fmt.Sprintf("%s=%d", name, c))
	}
	return strings.Join(parts, " ")
}

// checkNoOverrun fails the test if the ring buffer of any CPU lost events.
func checkNoOverrun(t *testing.T, inst string) {
	t.Helper()
	stats, _ := filepath.Glob(filepath.Join(inst, "per_cpu", "cpu*", "stats"))
	if len(stats) == 0 {
		t.Fatalf("no per-CPU trace stats in %s", inst)
	}
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && (k == "overrun" || k == "dropped events") && strings.TrimSpace(v) != "0" {
				t.Errorf("%s: %s: the trace lost events", s, l)
			}
		}
	}
}

// traceInstance makes a private ftrace instance (so that nobody else's
// tracing is touched) and removes it when the test ends. If tracefs is not
// mounted, it is mounted on a fresh directory for the test's duration.
func traceInstance(t *testing.T) string {
	t.Helper()
	root := "/sys/kernel/tracing"
	if _, err := os.Stat(filepath.Join(root, "instances")); err != nil {
		dir := t.TempDir()
		if err := unix.Mount("nodev", dir, "tracefs", 0, ""); err != nil {
			t.Skipf("tracefs is neither mounted nor mountable (%v): the kernel's syscall tracepoint is needed to count the stubs' host syscalls", err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
		root = dir
	}
	if _, err := os.Stat(filepath.Join(root, "events", "raw_syscalls", "sys_enter")); err != nil {
		t.Skipf("kernel lacks the raw_syscalls:sys_enter tracepoint (CONFIG_FTRACE_SYSCALLS): %v", err)
	}
	inst := filepath.Join(root, "instances", fmt.Sprintf("veil-e2e-%d", os.Getpid()))
	if err := os.Mkdir(inst, 0o755); err != nil {
		t.Skipf("cannot create an ftrace instance: %v", err)
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(inst, "events", "raw_syscalls", "sys_enter", "enable"), []byte("0"), 0o644)
		if err := unix.Rmdir(inst); err != nil {
			t.Errorf("removing ftrace instance %s: %v", inst, err)
		}
	})
	return inst
}
