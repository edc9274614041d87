package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestVDSONoTraps shows that the vDSO answers the time calls inside the
// application: a program making 100000 calls each of clock_gettime
// (MONOTONIC and REALTIME), gettimeofday, time and sched_getcpu through
// libc, run under --strace, leaves no trace of any of them. Its one direct
// clock_gettime syscall at the end must show, so the trace is known to be
// watching.
func TestVDSONoTraps(t *testing.T) {
	needSandbox(t)
	bin := buildC(t, "test/e2e/src/clockloop.c", "clockloop")
	const n = "100000"
	calls := regexp.MustCompile(`\] (clock_gettime|gettimeofday|time|getcpu)\(`)
	for _, platform := range []string{"ptrace", "systrap"} {
		t.Run(platform, func(t *testing.T) {
			argv := []string{runscBin, "--root=" + t.TempDir(), "--platform=" + platform, "--strace", "do", "--", bin, n}
			r := runProc(t, 2*time.Minute, argv...)
			checkNoLeftovers(t)
			if r.code != 0 || !strings.Contains(r.stdout, "clock calls x"+n+": back 0, time ok, cpu ok") {
				t.Fatalf("exit %d, stdout %q\nstderr:\n%s", r.code, r.stdout, tail(r.stderr, 20))
			}
			counts := map[string]int{}
			var lines []string
			for _, l := range strings.Split(r.stderr, "\n") {
				if m := calls.FindStringSubmatch(l); m != nil {
					counts[m[1]]++
					lines = append(lines, l)
				}
			}
			if counts["clock_gettime"] != 1 || len(lines) != 1 {
				t.Errorf("want exactly the one direct clock_gettime syscall in the trace, got %v:\n%s",
					counts, tail(strings.Join(lines, "\n"), 10))
			}
		})
	}
}
