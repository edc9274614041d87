package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const busybox = "/bin/busybox"

// TestBusyboxScript runs testdata/script.sh (pipes, subshells, redirection
// into /tmp, ls -la /, /etc/os-release, sort | uniq -c, find /usr/lib,
// sleep, background jobs and wait, exit 3) with Debian's static busybox on
// the host and in a sandbox. The outputs must match line by line, except
// for the lines of `ls -la /` filtered by lsRootFilter, and both must exit
// 3.
func TestBusyboxScript(t *testing.T) {
	needSandbox(t)
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("%s missing (Debian package busybox-static; make deps installs it)", busybox)
	}
	script := filepath.Join(repoDir, "test", "e2e", "testdata", "script.sh")
	// The sandbox must see the script at the same path: the repository is
	// visible unless the checkout is below a path the sandbox shadows.
	if dir := visibleDir(t); !strings.HasPrefix(dir, repoDir) {
		b, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		script = filepath.Join(dir, "script.sh")
		if err := os.WriteFile(script, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	nat := native(t, 60*time.Second, busybox, "sh", script, tag)
	sb := sandbox(t, 150*time.Second, busybox, "sh", script, tag)

	if nat.code != 3 {
		t.Errorf("native run: exit status %d, want 3; stderr:\n%s", nat.code, nat.stderr)
	}
	if sb.code != 3 {
		t.Errorf("sandbox run: exit status %d, want 3; stderr:\n%s", sb.code, tail(sb.stderr, 40))
	}
	want, got := lsRootFilter(lines(nat.stdout)), lsRootFilter(lines(sb.stdout))
	diffLines(t, "script stdout", want, got)
	if nat.stderr != sb.stderr {
		t.Errorf("script stderr differs:\nnative:\n%s\nsandbox:\n%s", nat.stderr, tail(sb.stderr, 40))
	}
}

// lsRootFilter drops from the "== ls -la /" section of the script's output
// exactly the lines that legitimately differ between the host and a
// sandbox: "total" (the sum of block counts, which includes the entries
// below), and the entries for dev, proc, sys and tmp, which inside the
// sandbox are the sandbox's own mounts (its devices, procfs, sysfs, tmpfs) with
// their own link counts, sizes and times. Everything else must match.
func lsRootFilter(in []string) []string {
	var out []string
	inLs := false
	for _, l := range in {
		if strings.HasPrefix(l, "== ") {
			inLs = l == "== ls -la /"
		}
		if inLs {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == "total" {
				continue
			}
			if len(f) >= 9 {
				switch f[len(f)-1] {
				case "dev", "proc", "sys", "tmp":
					continue
				}
			}
		}
		out = append(out, l)
	}
	return out
}
