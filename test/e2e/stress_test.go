package e2e

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// stressSeconds is how long the stress program runs: VEIL_E2E_STRESS_SECONDS
// if set, else 30 s, or 10 s with -short.
func stressSeconds(t *testing.T) int {
	if v := os.Getenv("VEIL_E2E_STRESS_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("VEIL_E2E_STRESS_SECONDS=%q: want a positive number of seconds", v)
		}
		return n
	}
	if testing.Short() {
		return 10
	}
	return 30
}

var stressSummary = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed$`)

// TestStress runs test/syscalls/src/stress.c in a sandbox: children making
// random syscalls with random arguments, forked again and again. It is
// sandbox-only: it is never run on the host. The sandbox must survive: the
// program's own checks pass (every child reaped, pipes and fork still
// work), runsc exits 0, and no runsc, sentry, gofer or stub process is left
// (checked by sandbox()).
func TestStress(t *testing.T) {
	needSandbox(t)
	bin := buildC(t, "test/syscalls/src/stress.c", "stress")
	secs := stressSeconds(t)
	r := sandbox(t, time.Duration(secs+90)*time.Second, bin, strconv.Itoa(secs))
	t.Logf("stress output:\n%s", tail(r.stdout, 20))
	if r.code != 0 {
		t.Errorf("runsc do stress %d: exit status %d, want 0", secs, r.code)
	}
	m := stressSummary.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stress printed no summary line")
	}
	if m[2] != "0" {
		t.Errorf("stress: %s checks failed", m[2])
	}
}
