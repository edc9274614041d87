// Package e2e runs whole programs in Veil sandboxes with `runsc do` and
// checks what a user would see: the same output as on the host, the
// sandbox's own identity (PID 1, kernel release, /tmp), stub confinement,
// survival of hostile programs, and that nothing is left running.
//
// Most tests need root (runsc do creates namespaces and pivots root); they
// skip with that reason otherwise. A test needing a missing tool (gcc,
// python3) skips naming it.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veil-sandbox/veil/test/testutil"
	"golang.org/x/sys/unix"
)

var (
	repoDir  string // the repository root (holds go.mod)
	runscBin string // <repo>/bin/runsc
	setupErr error  // why TestMain could not provide runscBin
)

// TestMain finds the repository, builds bin/runsc if it is missing, and
// makes this process a child subreaper: every process a sandbox leaves
// behind is then re-parented to us instead of to the host's init, so that
// leftovers (see checkNoLeftovers) are found exactly, without confusing
// them with other people's sandboxes on the same machine.
func TestMain(m *testing.M) {
	repoDir, setupErr = testutil.RepoRoot()
	if setupErr == nil {
		runscBin, setupErr = testutil.Runsc(repoDir)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil && setupErr == nil {
		setupErr = fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", err)
	}
	os.Exit(m.Run())
}

// needSandbox skips a test that cannot run a sandbox here and fails one
// whose runsc could not be provided.
func needSandbox(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runsc do creates namespaces and pivots into the root")
	}
	if setupErr != nil {
		t.Fatalf("setup: %v", setupErr)
	}
}

// needTool returns the path of a host tool or skips the test naming it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (make deps installs the test tools)", name)
	}
	return p
}

// result is one finished process.
type result struct {
	stdout, stderr string
	code           int // exit status, 128+N for signal N, -1 if it did not finish
}

// runProc runs argv with a timeout, capturing stdout and stderr (through
// pipes).
func runProc(t *testing.T, timeout time.Duration, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	// Give runsc a chance to tear the sandbox down before WaitDelay's
	// SIGKILL, which would leave its children to checkNoLeftovers.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String(), code: -1}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Errorf("%q did not finish within %v", argv, timeout)
	case err == nil:
		r.code = 0
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			r.code = 128 + int(ws.Signal())
		} else {
			r.code = ws.ExitStatus()
		}
	default:
		t.Fatalf("running %q: %v", argv, err)
	}
	return r
}

// runProcStdout runs argv with stdout going to f and returns its exit
// status.
func runProcStdout(t *testing.T, timeout time.Duration, f *os.File, argv ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = f
	var se bytes.Buffer
	cmd.Stderr = &se
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("%q did not finish within %v", argv, timeout)
	}
	if err != nil {
		t.Logf("%q: %v\n%s", argv, err, tail(se.String(), 20))
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return -1
	}
	return 0
}

// sandbox runs `runsc --root=<fresh dir> do ARGV...` and then checks that
// nothing of the sandbox is left running. Every test runs sandboxes
// through it (or calls checkNoLeftovers itself).
func sandbox(t *testing.T, timeout time.Duration, argv ...string) result {
	t.Helper()
	full := append(runscArgs(t), argv...)
	r := runProc(t, timeout, full...)
	checkNoLeftovers(t)
	if r.code != 0 && r.stderr != "" {
		t.Logf("runsc stderr:\n%s", tail(r.stderr, 40))
	}
	return r
}

// runscArgs is the runsc command line up to and including "do --", with a
// state directory of the test's own.
func runscArgs(t *testing.T) []string {
	return []string{runscBin, "--root=" + t.TempDir(), "do", "--"}
}

// native runs argv on the host.
func native(t *testing.T, timeout time.Duration, argv ...string) result {
	t.Helper()
	return runProc(t, timeout, argv...)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines ...]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// proc is what /proc says about one host process.
type proc struct {
	pid, ppid int
	state     string
	comm, exe string
}

func readProc(pid int) (proc, bool) {
	p := proc{pid: pid}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, false
	}
	for _, l := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			p.comm = v
		case "PPid":
			p.ppid, _ = strconv.Atoi(v)
		case "State":
			p.state, _, _ = strings.Cut(v, " ")
		}
	}
	p.exe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	p.exe = strings.TrimSuffix(p.exe, " (deleted)")
	return p, true
}

func allProcs() map[int]proc {
	ps := map[int]proc{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			ps[pid] = p
		}
	}
	return ps
}

// descendants returns the processes below root in the host's process tree.
func descendants(root int) []proc {
	ps := allProcs()
	var out []proc
	for _, p := range ps {
		for q, n := p, 0; n < 64; n++ {
			if q.ppid == root {
				out = append(out, p)
				break
			}
			next, ok := ps[q.ppid]
			if !ok {
				break
			}
			q = next
		}
	}
	return out
}

// isStub reports whether p is a stub: the ptrace platform execs the stub
// from a memfd named "veil-stub" (systrap: "veil-systrap-stub"), so its
// exe link is "/memfd:veil-stub";
// its comm is the memfd's descriptor number, but "veil-stub" is accepted
// too in case the platform names it.
func isStub(p proc) bool {
	return strings.HasPrefix(p.exe, "/memfd:veil-stub") || strings.HasPrefix(p.exe, "/memfd:veil-systrap-stub") || p.comm == "veil-stub"
}

// isVeil reports whether p is runsc, runsc boot (the sentry), runsc gofer
// or a stub.
func isVeil(p proc) bool {
	return p.exe == runscBin || isStub(p)
}

var reapMu sync.Mutex

// checkNoLeftovers fails the test if a runsc, sentry, gofer or stub process
// started by this test binary is still alive. Because TestMain made us a
// subreaper, such a process stays our descendant even when its parent has
// died, so the search covers exactly our own sandboxes. Zombies re-parented
// to us have exited; they are reaped, not reported. Teardown may lag the
// runsc process's exit a little, so the check waits up to 3 s. Leftovers
// are killed so that they cannot disturb later tests.
func checkNoLeftovers(t *testing.T) {
	t.Helper()
	reapMu.Lock()
	defer reapMu.Unlock()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var live []proc
		for _, p := range descendants(os.Getpid()) {
			if p.state == "Z" {
				if p.ppid == os.Getpid() && isVeilComm(p) {
					var ws unix.WaitStatus
					unix.Wait4(p.pid, &ws, unix.WNOHANG, nil)
				}
				continue
			}
			if isVeil(p) {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range live {
				t.Errorf("left over after the sandbox exited: pid %d ppid %d comm %q exe %q state %s", p.pid, p.ppid, p.comm, p.exe, p.state)
				unix.Kill(p.pid, unix.SIGKILL)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isVeilComm recognises a zombie (whose exe link is gone) as one of ours by
// its name: runsc re-executes itself as "exe", stubs are named by number.
func isVeilComm(p proc) bool {
	if p.comm == "runsc" || p.comm == "exe" || p.comm == "veil-stub" {
		return true
	}
	_, err := strconv.Atoi(p.comm)
	return err == nil
}

// visibleDir returns a directory below test/e2e/bin (or under /var/tmp for
// a checkout under /tmp) that sandboxes see at the same path.
func visibleDir(t *testing.T) string {
	t.Helper()
	d, err := testutil.VisibleDir(filepath.Join(repoDir, "test", "e2e", "bin"), "e2e")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	gccMu    sync.Mutex
	gccBuilt = map[string]error{}
)

// buildC compiles src (relative to the repository) with gcc -static into
// the visible bin directory and returns the binary's path.
func buildC(t *testing.T, src, name string) string {
	t.Helper()
	gcc := needTool(t, "gcc")
	out := filepath.Join(visibleDir(t), name)
	gccMu.Lock()
	defer gccMu.Unlock()
	err, done := gccBuilt[out]
	if !done {
		tmp := out + ".tmp"
		abs := filepath.Join(repoDir, src)
		cmd := exec.Command(gcc, "-static", "-O2", "-pthread", "-Wall", "-o", tmp, abs)
		cmd.Dir = filepath.Dir(abs)
		if o, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("gcc %s: %v\n%s", src, e, o)
		} else {
			err = os.Rename(tmp, out)
		}
		gccBuilt[out] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffLines reports the lines where want and got differ.
func diffLines(t *testing.T, what string, want, got []string) {
	t.Helper()
	n := max(len(want), len(got))
	bad := 0
	for i := 0; i < n; i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			bad++
			if bad <= 20 {
				t.Errorf("%s line %d:\n  native:  %q\n  sandbox: %q", what, i+1, w, g)
			}
		}
	}
	if bad > 20 {
		t.Errorf("%s: %d more differing lines", what, bad-20)
	}
	if len(want) != len(got) {
		t.Errorf("%s: native printed %d lines, sandbox %d", what, len(want), len(got))
	}
}

func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}
