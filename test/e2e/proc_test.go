package e2e

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procScript runs the tools that read /proc in one sandbox, each section
// introduced by "== name". The sandbox holds a known set of processes: the
// shell (PID 1), a sleep ($S), and a process ($P, a sleep too) whose child
// has exited unreaped, a zombie.
const procScript = `
sleep 30 & S=$!
busybox sh -c 'busybox true & exec busybox sleep 30' & P=$!
busybox sleep 0.5
echo "== ids $S $P"
echo "== bps"; busybox ps -o pid,ppid,stat,comm,args
echo "== ls"; busybox ls /proc
echo "== procps"; [ -x /usr/bin/ps ] && /usr/bin/ps -eo pid=,ppid=,stat=,comm=
echo "== pidof"; busybox pidof sleep
echo "== pgrep"; [ -x /usr/bin/pgrep ] && /usr/bin/pgrep -x sleep
echo "== meminfo"; busybox cat /proc/meminfo
echo "== free"; busybox free
echo "== mounts"; busybox cat /proc/mounts
echo "== mount"; busybox mount
echo "== df"; busybox df
echo "== uptime"; busybox uptime
echo "== top"; busybox top -bn1
echo "== cpus"; busybox nproc; busybox cat /sys/devices/system/cpu/online; busybox grep -c ^processor /proc/cpuinfo
echo "== hostname"; echo veil-proc-test > /proc/sys/kernel/hostname && busybox hostname
echo "== comm"; echo renamed > /proc/$S/comm; echo rc=$?; busybox cat /proc/self/comm
kill $S $P; wait
echo "== end"
`

// sections splits the script's output at its "== name" lines.
func sections(out string) map[string][]string {
	m := map[string][]string{}
	cur := ""
	for _, l := range lines(out) {
		if strings.HasPrefix(l, "== ") {
			f := strings.Fields(l[3:])
			cur = f[0]
			m[cur] = append([]string(nil), f[1:]...)
			continue
		}
		m[cur] = append(m[cur], l)
	}
	return m
}

func pidSet(t *testing.T, what string, ids []string) []int {
	t.Helper()
	var out []int
	for _, s := range ids {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: %q is not a PID", what, s)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestProcTools runs busybox ps, pidof, free, mount, df, uptime and top
// (and procps's ps and pgrep when installed) in a sandbox and checks that
// they agree with what the sandbox holds: exactly its processes (a zombie
// included, with state Z), its memory as /proc/meminfo gives it, its
// mounts, its CPUs as nproc, sysfs and cpuinfo count them.
func TestProcTools(t *testing.T) {
	needSandbox(t)
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("%s missing (Debian package busybox-static; make deps installs it)", busybox)
	}
	r := sandbox(t, 120*time.Second, busybox, "sh", "-c", procScript)
	if r.code != 0 {
		t.Fatalf("script exit status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	sec := sections(r.stdout)
	if _, ok := sec["end"]; !ok {
		t.Fatalf("script did not finish:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	ids := sec["ids"]
	if len(ids) != 2 {
		t.Fatalf("ids line: %q", ids)
	}
	s, _ := strconv.Atoi(ids[0])
	p, _ := strconv.Atoi(ids[1])

	// busybox ps: exactly init, the two sleeps, the zombie and ps itself.
	var psPIDs []int
	zombie, self := 0, 0
	for _, l := range sec["bps"][1:] {
		f := strings.Fields(l)
		if len(f) < 4 {
			t.Fatalf("ps line %q", l)
		}
		pid, _ := strconv.Atoi(f[0])
		ppid, _ := strconv.Atoi(f[1])
		psPIDs = append(psPIDs, pid)
		switch {
		case strings.HasPrefix(f[2], "Z"):
			if ppid != p {
				t.Errorf("zombie %d has parent %d, want %d", pid, ppid, p)
			}
			zombie = pid
		case strings.Contains(l, "ps -o"):
			self = pid
		}
		if pid == s && f[3] != "sleep" {
			t.Errorf("ps: PID %d comm %q, want sleep", s, f[3])
		}
	}
	if zombie == 0 {
		t.Errorf("ps shows no zombie:\n%s", strings.Join(sec["bps"], "\n"))
	}
	sort.Ints(psPIDs)
	want := []int{1, s, p, zombie, self}
	sort.Ints(want)
	if !sameInts(psPIDs, want) {
		t.Errorf("ps lists PIDs %v, want exactly %v (init, sleeps, zombie, ps):\n%s", psPIDs, want, strings.Join(sec["bps"], "\n"))
	}

	// /proc lists the same processes (with ls in place of ps).
	var procPIDs []string
	for _, name := range sec["ls"] {
		if _, err := strconv.Atoi(name); err == nil {
			procPIDs = append(procPIDs, name)
		}
	}
	got := pidSet(t, "ls /proc", procPIDs)
	for _, w := range []int{1, s, p, zombie} {
		if sort.SearchInts(got, w) == len(got) || got[sort.SearchInts(got, w)] != w {
			t.Errorf("/proc does not list %d: %v", w, got)
		}
	}
	if len(got) != 5 {
		t.Errorf("/proc lists %v; want init, the sleeps, the zombie and ls", got)
	}

	if lines := sec["procps"]; len(lines) > 0 {
		n := 0
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == strconv.Itoa(zombie) && !strings.HasPrefix(f[2], "Z") {
				t.Errorf("procps ps: zombie %d has state %q", zombie, f[2])
			}
			n++
		}
		if n != 5 {
			t.Errorf("procps ps lists %d processes, want 5:\n%s", n, strings.Join(lines, "\n"))
		}
	}

	// pidof and pgrep find the processes ps calls sleep.
	var sleeps []int
	for _, l := range sec["bps"][1:] {
		if f := strings.Fields(l); len(f) >= 4 && f[3] == "sleep" && !strings.HasPrefix(f[2], "Z") {
			n, _ := strconv.Atoi(f[0])
			sleeps = append(sleeps, n)
		}
	}
	sort.Ints(sleeps)
	if !contains(strings.Fields(strings.Join(sec["bps"], " ")), strconv.Itoa(s)) || len(sleeps) == 0 {
		t.Errorf("ps does not show sleep %d", s)
	}
	if pids := strings.Fields(strings.Join(sec["pidof"], " ")); !sameInts(pidSet(t, "pidof", pids), sleeps) {
		t.Errorf("pidof sleep = %v, want %v", pids, sleeps)
	}
	if pids := sec["pgrep"]; len(pids) > 0 && !sameInts(pidSet(t, "pgrep", pids), sleeps) {
		t.Errorf("pgrep -x sleep = %v, want %v", pids, sleeps)
	}

	// free's total is /proc/meminfo's MemTotal.
	var memTotal string
	for _, l := range sec["meminfo"] {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			memTotal = f[1]
		}
	}
	freeTotal := ""
	for _, l := range sec["free"] {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Mem:" {
			freeTotal = f[1]
		}
	}
	if memTotal == "" || freeTotal != memTotal {
		t.Errorf("free total %q, /proc/meminfo MemTotal %q", freeTotal, memTotal)
	}

	// mount shows the mounts /proc/mounts lists, which are the sandbox's.
	var points []string
	for _, l := range sec["mounts"] {
		if f := strings.Fields(l); len(f) >= 3 {
			points = append(points, f[1])
		}
	}
	var mountPoints []string
	for _, l := range sec["mount"] {
		if f := strings.Fields(l); len(f) >= 3 && f[1] == "on" {
			mountPoints = append(mountPoints, f[2])
		}
	}
	diffLines(t, "mount vs /proc/mounts", points, mountPoints)
	for _, w := range []string{"/", "/proc", "/dev", "/tmp"} {
		if !contains(points, w) {
			t.Errorf("/proc/mounts lacks %s: %v", w, points)
		}
	}
	dfSeen := 0
	for _, l := range sec["df"][1:] {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		if !contains(points, f[len(f)-1]) {
			t.Errorf("df shows %s, which is not mounted", f[len(f)-1])
		}
		if f[len(f)-1] == "/" || f[len(f)-1] == "/tmp" {
			dfSeen++
		}
	}
	if dfSeen != 2 {
		t.Errorf("df does not show / and /tmp:\n%s", strings.Join(sec["df"], "\n"))
	}

	if up := strings.Join(sec["uptime"], " "); !strings.Contains(up, " up ") || !strings.Contains(up, "load average:") {
		t.Errorf("uptime: %q", up)
	}
	top := strings.Join(sec["top"], "\n")
	if !strings.Contains(top, "Load average:") || !strings.Contains(top, "sleep") {
		t.Errorf("top -bn1:\n%s", top)
	}
	// CPUs: nproc (sched_getaffinity), sysfs and cpuinfo agree.
	if c := sec["cpus"]; len(c) != 3 {
		t.Errorf("cpus section: %q", c)
	} else {
		n, _ := strconv.Atoi(c[0])
		online := "0"
		if n > 1 {
			online = "0-" + strconv.Itoa(n-1)
		}
		if n < 1 || c[1] != online || c[2] != c[0] {
			t.Errorf("nproc %s, /sys/devices/system/cpu/online %s, cpuinfo processors %s", c[0], c[1], c[2])
		}
	}
	if h := sec["hostname"]; len(h) != 1 || h[0] != "veil-proc-test" {
		t.Errorf("hostname after writing /proc/sys/kernel/hostname: %q", h)
	}
	// Another process's comm may not be written; one's own may.
	if c := sec["comm"]; len(c) != 2 || c[0] != "rc=1" {
		t.Errorf("writing another process's comm: %q, want a failure", c)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
