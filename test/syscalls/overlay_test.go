package syscalls

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/veil-sandbox/veil/test/testutil"
)

// fileProgramNames are the programs that work in a directory of their own
// (TEST_TMPDIR) and test file semantics. TestSandboxRootFS runs them there
// on the sandbox's root filesystem rather than its /tmp tmpfs.
var fileProgramNames = []string{"files", "locks", "mmapshared", "openflags", "paths", "perms", "rename", "xattr"}

// rootOverlays are the root media the file programs run on: the default
// overlay (files created in memory over a host directory) and none (every
// change goes through the gofer to the host directory).
var rootOverlays = []string{"memory", "none"}

// TestSandboxRootFS runs the file programs with TEST_TMPDIR in a host
// directory that the sandbox sees at the same path on its root, under each
// --overlay, on the first platform only to keep the suite's time modest.
// Each program first runs natively in such a directory, so a case that the
// host's own file system answers differently is not blamed on Veil.
func TestSandboxRootFS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runsc do needs root (namespaces, chroot); run as root")
	}
	bin := buildPrograms(t)
	rs := runsc(t)
	var progs []string
	for _, p := range programs(t) {
		if slices.Contains(fileProgramNames, p) {
			progs = append(progs, p)
		}
	}
	plat := testPlatforms()[0]
	workDir := func(t *testing.T) string {
		base, err := testutil.VisibleDir(filepath.Join(repoRoot(t), "test", "syscalls", "bin", "work"), "syscalls-work")
		if err != nil {
			t.Fatal(err)
		}
		d, err := os.MkdirTemp(base, "run-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	for _, p := range progs {
		t.Run(p, func(t *testing.T) {
			out, err := run(t, []string{"TEST_TMPDIR=" + workDir(t)}, filepath.Join(bin, p))
			if s, perr := parseSummary(out); err != nil || perr != nil || s.failed != 0 {
				t.Skipf("fails natively on the host's file system (not a sandbox problem):\n%s", out)
			}
			for _, ov := range rootOverlays {
				t.Run("overlay="+ov, func(t *testing.T) {
					argv := []string{rs, "--root=" + t.TempDir(), "--platform=" + plat, "--overlay=" + ov, "do", "--", filepath.Join(bin, p)}
					out, err := run(t, []string{"TEST_TMPDIR=" + workDir(t)}, argv...)
					checkOutput(t, out, err)
				})
			}
		})
	}
}
