package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/runsc/boot"
	"github.com/veil-sandbox/veil/runsc/config"
)

// fakeEnv makes the test binary, re-executed by Start, play the gofer or
// the sentry (see TestMain): the plumbing is tested without either.
const fakeEnv = "VEIL_SANDBOX_FAKE"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "" {
		os.Exit(m.Run())
	}
	switch {
	case os.Getenv(fakeEnv) == "parent":
		fakeParent()
	case slices.Contains(os.Args, "boot"):
		fakeBoot()
	case slices.Contains(os.Args, "gofer"):
		fakeGofer()
	}
	os.Exit(99)
}

func readJSON(fd int, v any) {
	f := os.NewFile(uintptr(fd), "args")
	if err := json.NewDecoder(f).Decode(v); err != nil {
		fmt.Fprintln(os.Stderr, "fake: decoding args:", err)
		os.Exit(98)
	}
	f.Close()
}

// fakeGofer checks its arguments and holds its socket until the peer
// closes it (or it is killed).
func fakeGofer() {
	var ga GoferArgs
	readJSON(GoferArgsFD, &ga)
	if len(ga.Mounts) != 1 || ga.Mounts[0].FD != goferMountFD || !ga.Mounts[0].ReadOnly {
		fmt.Fprintf(os.Stderr, "fake gofer: bad args %+v\n", ga)
		os.Exit(97)
	}
	buf := make([]byte, 16)
	for {
		if n, err := unix.Read(ga.Mounts[0].FD, buf); n <= 0 || err != nil {
			os.Exit(0)
		}
	}
}

// fakeBoot checks that it is a namespace init with its FDs in place, then
// does what Argv[0] says.
func fakeBoot() {
	var a boot.Args
	readJSON(BootArgsFD, &a)
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "fake boot: not PID 1")
		os.Exit(96)
	}
	if len(a.GoferFDs) != 1 || a.StdioFDs != [3]int{4, 5, 6} || a.Platform != "systrap" {
		fmt.Fprintf(os.Stderr, "fake boot: bad args %+v\n", a)
		os.Exit(95)
	}
	// The gofer socket is connected to the (fake) gofer.
	if _, err := unix.Write(a.GoferFDs[0], []byte("ping")); err != nil {
		fmt.Fprintln(os.Stderr, "fake boot: gofer socket:", err)
		os.Exit(94)
	}
	switch a.Argv[0] {
	case "exit":
		n, _ := strconv.Atoi(a.Argv[1])
		os.Exit(n)
	case "echo":
		unix.Write(a.StdioFDs[1], []byte(strings.Join(a.Argv[1:], " ")))
		os.Exit(0)
	case "signal":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, unix.SIGUSR1, unix.SIGTERM)
		unix.Write(a.StdioFDs[1], []byte("ready"))
		sig := <-ch
		os.Exit(128 + int(sig.(syscall.Signal)))
	}
	os.Exit(93)
}

// fakeParent plays runsc: it starts a sandbox whose sentry waits for a
// signal, prints the sentry's and the gofer's PIDs, and blocks until it is
// killed.
func fakeParent() {
	os.Setenv(fakeEnv, "1")
	executable = os.Args[0]
	conf := config.RegisterFlags(newFlagSet())
	devnull, _ := os.Open(os.DevNull)
	s, err := Start(conf, &Options{
		Args:    boot.Args{Argv: []string{"signal"}, RootReadOnly: true},
		RootDir: os.TempDir(),
		Stdio:   [3]*os.File{devnull, devnull, os.Stderr},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(92)
	}
	fmt.Printf("%d %d\n", s.boot.Process.Pid, s.gofer.Process.Pid)
	s.Wait()
	os.Exit(91)
}

func startFake(t *testing.T, argv []string, stdout *os.File) *Sandbox {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to create namespaces")
	}
	executable = os.Args[0]
	t.Setenv(fakeEnv, "1")
	fs := newFlagSet()
	conf := config.RegisterFlags(fs)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	s, err := Start(conf, &Options{
		Args:    boot.Args{Argv: argv, RootReadOnly: true},
		RootDir: t.TempDir(),
		Stdio:   [3]*os.File{devnull, stdout, os.Stderr},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gone reports whether pid has exited: no such process, or a zombie
// waiting for whoever inherited it to reap it.
func gone(pid int) bool {
	if unix.Kill(pid, 0) == unix.ESRCH {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func TestExitStatusPassedThrough(t *testing.T) {
	for _, code := range []int{0, 3, 137} {
		s := startFake(t, []string{"exit", strconv.Itoa(code)}, os.Stdout)
		goferPid := s.gofer.Process.Pid
		got, err := s.Wait()
		if err != nil || got != code {
			t.Errorf("exit %d: Wait = %d, %v", code, got, err)
		}
		if !gone(goferPid) {
			t.Errorf("gofer %d still exists after the sentry exited", goferPid)
		}
	}
}

func TestStdioReachesSentry(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := startFake(t, []string{"echo", "hello", "world"}, w)
	w.Close()
	if got, err := s.Wait(); err != nil || got != 0 {
		t.Fatalf("Wait = %d, %v", got, err)
	}
	out, _ := io.ReadAll(r)
	if string(out) != "hello world" {
		t.Errorf("stdout = %q", out)
	}
}

// TestSignalForwarding sends runsc (this process) a signal and expects the
// sentry to get it.
func TestSignalForwarding(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := startFake(t, []string{"signal"}, w)
	w.Close()
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		st, err := s.Wait()
		done <- result{st, err}
	}()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("fake sentry never got ready: %v", err)
	}
	// Wait registers its handler before it blocks; give it a moment.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			if res.err != nil || res.status != 128+int(unix.SIGUSR1) {
				t.Errorf("Wait = %d, %v; want %d", res.status, res.err, 128+int(unix.SIGUSR1))
			}
			return
		case <-tick.C:
			unix.Kill(os.Getpid(), unix.SIGUSR1)
		case <-deadline:
			s.kill()
			t.Fatal("signal never reached the sentry")
		}
	}
}

func TestStartFailureLeavesNothing(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	executable = "/nonexistent/runsc"
	defer func() { executable = "/proc/self/exe" }()
	conf := config.RegisterFlags(newFlagSet())
	_, err := Start(conf, &Options{RootDir: t.TempDir(), Stdio: [3]*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err == nil || !strings.Contains(err.Error(), "starting gofer") {
		t.Errorf("Start with a missing executable: %v", err)
	}
}

// TestParentDeathKillsSandbox kills a runsc stand-in with SIGKILL and
// expects its sentry and gofer to die with it (PR_SET_PDEATHSIG).
func TestParentDeathKillsSandbox(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to create namespaces")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fakeEnv+"=parent")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var bootPid, goferPid int
	if _, err := fmt.Fscan(out, &bootPid, &goferPid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("reading PIDs: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for !(gone(bootPid) && gone(goferPid)) {
		if time.Now().After(deadline) {
			unix.Kill(bootPid, unix.SIGKILL)
			unix.Kill(goferPid, unix.SIGKILL)
			t.Fatalf("sentry %d or gofer %d outlived their parent", bootPid, goferPid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
