package syscalls

import (
	"github.com/veil-sandbox/veil/test/testutil"

	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// platforms are the Veil platforms every program runs under. VEIL_PLATFORMS
// (comma separated) overrides the list, e.g. VEIL_PLATFORMS=systrap.
var platforms = []string{"ptrace", "systrap"}

// sandboxOnly names the programs that must never run natively, with the
// arguments they get inside the sandbox.
var sandboxOnly = map[string][]string{
	"badinput": nil,
	"stress":   {"5"},
}

// knownFailures maps "program/platform" to the reason a sandbox run is
// expected to fail for now. Each entry is reported with t.Skip so nothing
// fails silently; remove an entry as soon as the program passes.
var knownFailures = map[string]string{}

// progTimeout bounds one run, so that a hang fails the test instead of
// stalling the suite.
const progTimeout = 60 * time.Second

var summaryRE = regexp.MustCompile(`^(\d+) passed, (\d+) failed$`)

// summary is what a conformance program reports on its last line.
type summary struct {
	passed, failed int
	failures       []string // the "FAIL: ..." lines, in order
}

// parseSummary reads a program's output. The last non-empty line must be
// the summary; an output without one means the program died early.
func parseSummary(out string) (summary, error) {
	var s summary
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "FAIL: ") {
			s.failures = append(s.failures, strings.TrimPrefix(l, "FAIL: "))
		}
	}
	last := ""
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			last = strings.TrimSpace(lines[i])
			break
		}
	}
	m := summaryRE.FindStringSubmatch(last)
	if m == nil {
		return s, fmt.Errorf("no summary line; last line is %q", last)
	}
	s.passed, _ = strconv.Atoi(m[1])
	s.failed, _ = strconv.Atoi(m[2])
	return s, nil
}

// repoRoot is the repository (testutil.RepoRoot), or a fatal error.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// programs lists the conformance programs by name (the .c files).
func programs(t testing.TB) []string {
	t.Helper()
	srcs, err := filepath.Glob(filepath.Join(repoRoot(t), "test", "syscalls", "src", "*.c"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range srcs {
		names = append(names, strings.TrimSuffix(filepath.Base(s), ".c"))
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatal("no conformance programs found")
	}
	return names
}

// nativePrograms are the programs safe to run on the host.
func nativePrograms(t testing.TB) []string {
	var out []string
	for _, p := range programs(t) {
		if _, only := sandboxOnly[p]; !only {
			out = append(out, p)
		}
	}
	return out
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// buildPrograms compiles every program once per test binary. The output
// goes inside the repository (test/syscalls/bin, git-ignored) rather than
// a temp dir: inside the sandbox / is a read-only view of the host's /,
// but /tmp is the sandbox's own tmpfs, so only binaries outside /tmp are
// visible at the same absolute path.
func buildPrograms(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			buildErr = errSkip("gcc not installed (run make deps)")
			return
		}
		src := filepath.Join(repoRoot(t), "test", "syscalls", "src")
		binDir, buildErr = testutil.VisibleDir(filepath.Join(repoRoot(t), "test", "syscalls", "bin"), "syscalls")
		if buildErr != nil {
			return
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []string
		sem := make(chan struct{}, runtime.NumCPU())
		for _, p := range programs(t) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				// Build to a temp name and rename, so a concurrent
				// test binary never runs a half-written file.
				tmp := filepath.Join(binDir, "."+p+".tmp")
				// Compile from src/ by relative name so that the
				// file names in FAIL lines are short.
				cmd := exec.Command("gcc", "-static", "-O2", "-pthread", "-Wall", "-o", tmp, p+".c")
				cmd.Dir = src
				out, err := cmd.CombinedOutput()
				if err == nil {
					err = os.Rename(tmp, filepath.Join(binDir, p))
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %v\n%s", p, err, out))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			buildErr = errors.New(strings.Join(errs, "\n"))
		}
	})
	var skip errSkip
	if errors.As(buildErr, &skip) {
		t.Skip(string(skip))
	}
	if buildErr != nil {
		t.Fatalf("building conformance programs: %v", buildErr)
	}
	return binDir
}

type errSkip string

func (e errSkip) Error() string { return string(e) }

// run executes argv with a timeout, in its own process group so that a
// timeout kills everything it started, and returns combined output.
func run(t *testing.T, env []string, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), progTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return out.String(), fmt.Errorf("timed out after %v", progTimeout)
	}
	return out.String(), err
}

// checkOutput fails t unless the program exited 0 with a clean summary.
func checkOutput(t *testing.T, out string, runErr error) {
	t.Helper()
	s, perr := parseSummary(out)
	if runErr != nil || perr != nil || s.failed != 0 || len(s.failures) != 0 || s.passed == 0 {
		t.Errorf("run error: %v; summary: %v; %d passed, %d failed", runErr, perr, s.passed, s.failed)
		for _, f := range s.failures {
			t.Errorf("FAIL: %s", f)
		}
		t.Logf("output:\n%s", out)
		return
	}
	t.Logf("%d passed", s.passed)
}

func TestNative(t *testing.T) {
	bin := buildPrograms(t)
	for _, p := range nativePrograms(t) {
		t.Run(p, func(t *testing.T) {
			out, err := run(t, []string{"TEST_TMPDIR=" + t.TempDir()}, filepath.Join(bin, p))
			checkOutput(t, out, err)
		})
	}
}

var (
	runscOnce sync.Once
	runscPath string
	runscErr  error
)

// runsc returns bin/runsc, building it if it is missing.
func runsc(t *testing.T) string {
	t.Helper()
	runscOnce.Do(func() {
		runscPath, runscErr = testutil.Runsc(repoRoot(t))
	})
	if runscErr != nil {
		t.Fatal(runscErr)
	}
	return runscPath
}

func testPlatforms() []string {
	if v := os.Getenv("VEIL_PLATFORMS"); v != "" {
		return strings.Split(v, ",")
	}
	return platforms
}

func TestSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runsc do needs root (namespaces, chroot); run as root")
	}
	bin := buildPrograms(t)
	rs := runsc(t)
	for _, plat := range testPlatforms() {
		t.Run(plat, func(t *testing.T) {
			for _, p := range programs(t) {
				t.Run(p, func(t *testing.T) {
					if reason, ok := knownFailures[p+"/"+plat]; ok {
						t.Skip("known failure: " + reason)
					}
					argv := []string{rs, "--root=" + t.TempDir(), "--platform=" + plat, "do", "--", filepath.Join(bin, p)}
					argv = append(argv, sandboxOnly[p]...)
					out, err := run(t, nil, argv...)
					checkOutput(t, out, err)
				})
			}
		})
	}
}

func TestParseSummary(t *testing.T) {
	for _, tc := range []struct {
		out            string
		ok             bool
		passed, failed int
		failures       int
	}{
		{"12 passed, 0 failed\n", true, 12, 0, 0},
		{"FAIL: a (x.c:1)\nFAIL: b (x.c:2)\n3 passed, 2 failed\n\n", true, 3, 2, 2},
		{"3 passed, 0 failed\nextra trailing line\n", false, 0, 0, 0},
		{"", false, 0, 0, 0},
		{"Segmentation fault\n", false, 0, 0, 0},
	} {
		s, err := parseSummary(tc.out)
		if (err == nil) != tc.ok {
			t.Errorf("parseSummary(%q) error = %v, want ok=%v", tc.out, err, tc.ok)
			continue
		}
		if tc.ok && (s.passed != tc.passed || s.failed != tc.failed || len(s.failures) != tc.failures) {
			t.Errorf("parseSummary(%q) = %+v", tc.out, s)
		}
	}
}

// TestSandboxOnlyNeverNative guards the rule that the garbage-feeding
// programs never reach the host kernel.
func TestSandboxOnlyNeverNative(t *testing.T) {
	all := programs(t)
	for name := range sandboxOnly {
		found := false
		for _, p := range all {
			found = found || p == name
		}
		if !found {
			t.Errorf("sandbox-only program %q has no source file", name)
		}
	}
	for _, p := range nativePrograms(t) {
		if _, only := sandboxOnly[p]; only {
			t.Errorf("sandbox-only program %q is in the native list", p)
		}
	}
}
