package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// buildGo builds the Go program in testdata/DIR (a module of its own)
// statically into the visible bin directory and returns its path.
func buildGo(t *testing.T, dir, name string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			t.Skip("go toolchain not found")
		}
	}
	out := filepath.Join(visibleDir(t), name)
	tmp := out + ".tmp"
	cmd := exec.Command(gobin, "build", "-o", tmp, ".")
	cmd.Dir = filepath.Join(repoDir, "test", "e2e", "testdata", dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=")
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, o)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGoBinary runs a static Go program (goroutines, time.Sleep on the
// netpoller's eventfd and epoll, timers, a ticker, channels, os/exec, a
// file in /tmp) on each platform and compares its output with the host's.
func TestGoBinary(t *testing.T) {
	needSandbox(t)
	bin := buildGo(t, "gobin", "gobin")
	nat := native(t, 60*time.Second, bin)
	if nat.code != 0 {
		t.Fatalf("native run: exit %d\n%s", nat.code, nat.stderr)
	}
	for _, platform := range []string{"ptrace", "systrap"} {
		t.Run(platform, func(t *testing.T) {
			argv := []string{runscBin, "--root=" + t.TempDir(), "--platform=" + platform, "do", "--", bin}
			sb := runProc(t, 120*time.Second, argv...)
			checkNoLeftovers(t)
			if sb.code != 0 {
				t.Errorf("exit status %d, want 0\n%s", sb.code, tail(sb.stderr, 40))
			}
			diffLines(t, "go program", lines(nat.stdout), lines(sb.stdout))
		})
	}
}
