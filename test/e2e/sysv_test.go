package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPerlSysV runs testdata/sysv.pl, four processes sharing a counter in
// a System V shared memory segment under a SEM_UNDO semaphore and
// reporting on a message queue, with Debian's perl on the host and in a
// sandbox; the outputs must be the same.
func TestPerlSysV(t *testing.T) {
	needSandbox(t)
	perl := needTool(t, "perl")
	script := filepath.Join(repoDir, "test", "e2e", "testdata", "sysv.pl")
	if dir := visibleDir(t); !strings.HasPrefix(dir, repoDir) {
		t.Skipf("the repository is not visible inside the sandbox (%s)", dir)
	}
	nat := native(t, 60*time.Second, perl, script)
	sb := sandbox(t, 120*time.Second, perl, script)
	if nat.code != 0 {
		t.Fatalf("native run: exit status %d; stderr:\n%s", nat.code, nat.stderr)
	}
	if sb.code != 0 {
		t.Errorf("sandbox run: exit status %d; stderr:\n%s", sb.code, tail(sb.stderr, 40))
	}
	diffLines(t, "sysv.pl stdout", lines(nat.stdout), lines(sb.stdout))
	if !strings.Contains(sb.stdout, "counter 200\n") {
		t.Errorf("sandbox run lost updates:\n%s", sb.stdout)
	}
}
