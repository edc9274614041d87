package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Real workloads nobody here wrote — GNU tar with gzip, git, sqlite3,
// python3's compileall, busybox's process and file-system tools — run
// natively and in sandboxes, and must print the same thing.
//
// Each workload is a bash script taking a fresh working directory as $1.
// In a sandbox that directory lies on the root file system (the host's /,
// which `runsc do` serves through the gofer), not on the sandbox's private
// /tmp tmpfs, so that the root's medium is what is exercised: with the
// default --overlay=memory the work lands in the overlay's memory upper
// layer over an empty host directory; with --overlay=none it goes through
// the gofer to that host directory, a scratch directory of the test's own.
// A whole scratch rootfs holding bash, git, python3 and their libraries
// would test nothing more, so the host's root stands in for it.
//
// Every run gets the same small environment (env -i), natively and in the
// sandbox, so that the host's variables cannot make the outputs differ.

// workloadEnv is the environment of every workload run.
var workloadEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C", "LC_ALL=C", "TZ=UTC",
}

// workloadRun is one way of running a workload in a sandbox.
type workloadRun struct {
	platform, overlay string
}

func (r workloadRun) String() string { return r.platform + "/overlay=" + r.overlay }

// workloadRuns are the sandbox configurations every workload runs under:
// the default platform on both root media, and ptrace on the default
// medium (the platform changes how syscalls arrive, not what the file
// systems do, so ptrace on both media would double the time for little).
var workloadRuns = []workloadRun{
	{"systrap", "memory"},
	{"systrap", "none"},
	{"ptrace", "memory"},
}

// workload is a script with its arguments after the working directory.
type workload struct {
	script  string
	args    []string
	timeout time.Duration // per run, in the sandbox
}

// workDir makes a fresh directory that sandboxes see at the same path.
func workDir(t *testing.T, name string) string {
	t.Helper()
	d, err := os.MkdirTemp(visibleDir(t), "wl-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// argv is the command line running w in dir, after `runsc ... do --` in
// a sandbox.
func (w workload) argv(dir string, extraEnv []string) []string {
	a := append([]string{"/usr/bin/env", "-i"}, workloadEnv...)
	a = append(a, extraEnv...)
	a = append(a, "/bin/bash", "-c", w.script, "bash", dir)
	return append(a, w.args...)
}

// runWorkload runs w natively, then in a sandbox for each workloadRun, and
// returns the native result and the sandbox results by run. A run that
// does not exit 0 fails the test here.
func runWorkload(t *testing.T, name string, w workload, extraEnv ...string) (result, map[workloadRun]result) {
	t.Helper()
	needSandbox(t)
	// Natively in a directory of the host's /tmp: nothing shadows it there.
	nat := native(t, w.timeout, w.argv(t.TempDir(), extraEnv)...)
	if nat.code != 0 {
		t.Fatalf("%s natively: exit %d\nstdout:\n%s\nstderr:\n%s", name, nat.code, tail(nat.stdout, 20), tail(nat.stderr, 20))
	}
	out := map[workloadRun]result{}
	for _, r := range workloadRuns {
		dir := workDir(t, name)
		full := []string{runscBin, "--root=" + t.TempDir(), "--platform=" + r.platform, "--overlay=" + r.overlay, "do", "--"}
		full = append(full, w.argv(dir, extraEnv)...)
		start := time.Now()
		sb := runProc(t, w.timeout, full...)
		checkNoLeftovers(t)
		t.Logf("%s %v: exit %d in %v", name, r, sb.code, time.Since(start).Round(time.Millisecond))
		if sb.code != 0 {
			t.Errorf("%s %v: exit %d\nstdout:\n%s\nstderr:\n%s", name, r, sb.code, tail(sb.stdout, 20), tail(sb.stderr, 40))
		}
		if r.overlay == "memory" {
			// The host directory stays as the test made it: empty.
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("%s %v: the memory overlay wrote %d entries to the host directory", name, r, len(ents))
			}
		}
		out[r] = sb
	}
	return nat, out
}

// compareWorkload checks every sandbox run's stdout against the native one
// line by line.
func compareWorkload(t *testing.T, name string, nat result, sbs map[workloadRun]result) {
	t.Helper()
	for _, r := range workloadRuns {
		if sb, ok := sbs[r]; ok && sb.code == 0 {
			diffLines(t, name+" "+r.String(), lines(nat.stdout), lines(sb.stdout))
		}
	}
}

// tarTrees picks the subtrees of /usr/share the tar workload archives.
// The whole of /usr/share (650 MB on a developer machine) takes 30 s just
// to compress natively on the 2-CPU CI machines and minutes in a sandbox,
// so it archives, in this order, those of a few trees that exist and fit
// in tarBudget together: time zones (many symlinks), perl's library (deep
// directories, thousands of small files) and the locale sources (large
// files), with the package documentation to fall back on. Every Debian
// machine has some of them.
func tarTrees(t *testing.T) []string {
	const tarBudget = 48 << 20
	var picked []string
	var total int64
	for _, d := range []string{"zoneinfo", "perl", "i18n", "doc"} {
		var size int64
		err := filepath.Walk(filepath.Join("/usr/share", d), func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				size += fi.Size()
			}
			return err
		})
		if err != nil || size == 0 || total+size > tarBudget {
			continue
		}
		picked = append(picked, d)
		total += size
	}
	if len(picked) == 0 {
		t.Skip("none of /usr/share/{zoneinfo,perl,i18n,doc} exists or fits the budget")
	}
	return picked
}

// tarScript archives the trees of /usr/share named after $1 with tar -czf,
// extracts the archive with tar -xzf, and diffs the copy against the
// original. It prints what must match natively: the archive's verbose
// listing (names, modes, owners, sizes, mtimes, link targets) and the
// extracted tree's metadata (tar restores modes and mtimes, symlinks'
// too; a directory's size is its file system's own and left out), each as
// a hash, and the counts of files and links.
const tarScript = `
set -eo pipefail
cd "$1"; shift
tar -czf share.tgz -C /usr/share "$@"
echo "archived $*"
mkdir x
tar -xzf share.tgz -C x
for d in "$@"; do diff -r --no-dereference "/usr/share/$d" "x/$d"; done
echo "diff -r: clean"
echo "listing $(tar -tzvf share.tgz --full-time | sha256sum | cut -c1-16)"
cd x
echo "metadata $(find . -mindepth 1 \( -type d -printf '%y %m %T@ %p\n' \) -o -printf '%y %m %s %T@ %l %p\n' | sort | sha256sum | cut -c1-16)"
echo "files $(find . -type f | wc -l) links $(find . -type l | wc -l) dirs $(find . -type d | wc -l)"
`

// TestWorkloadTar: tar -czf of /usr/share trees, tar -xzf, diff -r clean.
func TestWorkloadTar(t *testing.T) {
	needTool(t, "tar")
	needTool(t, "gzip")
	trees := tarTrees(t)
	nat, sbs := runWorkload(t, "tar", workload{tarScript, trees, 150 * time.Second})
	if !strings.Contains(nat.stdout, "diff -r: clean\n") {
		t.Fatalf("native tar round trip is not clean:\n%s", nat.stdout)
	}
	compareWorkload(t, "tar", nat, sbs)
}

// gitScript makes a repository of 50 commits (files added, changed and
// moved between directories, with fixed dates so that hashes are the
// same everywhere), then runs git log --stat, git gc (pack-objects with
// threads, repack, prune), git fsck, and a checkout of an old commit.
const gitScript = `
set -eo pipefail
cd "$1"
git init -q -b main repo
cd repo
for i in $(seq 1 50); do
	export GIT_AUTHOR_DATE="@$((1700000000 + i * 3600)) +0000" GIT_COMMITTER_DATE="@$((1700000000 + i * 3600)) +0000"
	echo "line $i" >> log.txt
	mkdir -p "d$((i % 7))"
	seq "$i" > "d$((i % 7))/f$i"
	if [ $((i % 10)) = 0 ]; then git mv -k "d$((i % 7))/f$((i - 1))" "moved-$i" 2>/dev/null || true; fi
	if [ $((i % 9)) = 0 ]; then git rm -q "d$(((i - 1) % 7))/f$((i - 1))"; fi
	git add -A
	git commit -q -m "commit $i"
done
git log --stat
echo "== gc"
git gc -q
git count-objects -v | grep -v '^size'
git fsck --full --strict --no-progress
echo "fsck: ok"
git rev-parse HEAD HEAD~49
git checkout -q HEAD~25
ls -R | sha256sum | cut -c1-16
git status --porcelain
`

// TestWorkloadGit: git init, 50 commits, git log --stat, git gc.
func TestWorkloadGit(t *testing.T) {
	needTool(t, "git")
	env := []string{
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Veil", "GIT_AUTHOR_EMAIL=veil@example.com",
		"GIT_COMMITTER_NAME=Veil", "GIT_COMMITTER_EMAIL=veil@example.com",
	}
	nat, sbs := runWorkload(t, "git", workload{gitScript, nil, 150 * time.Second}, env...)
	if !strings.Contains(nat.stdout, "fsck: ok\n") || strings.Count(nat.stdout, "\ncommit ") < 49 {
		t.Fatalf("native git run did not make 50 commits and pass fsck:\n%s", tail(nat.stdout, 20))
	}
	compareWorkload(t, "git", nat, sbs)
}

// sqliteScript inserts 10,000 rows into one database in WAL mode from two
// sqlite3 processes at once, each its 5,000 rows in transactions of one
// row, waiting for the other's locks (.timeout, a busy_timeout). Both
// processes start, open the database and then get their statements at the
// same moment, from a pipe. That needs POSIX record locks between
// processes (F_SETLK/F_GETLK on the database and on the -shm file) and the
// -shm file mapped MAP_SHARED coherently between the two processes. The
// interleave line (how often the writer changes along the rows) varies
// from run to run and is not compared, only required to be non-zero: the
// two wrote at once.
const sqliteScript = `
set -eo pipefail
cd "$1"
sqlite3 t.db 'PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, n INTEGER, pad TEXT);'
for w in a b; do
	{
		echo '.timeout 60000'
		echo 'PRAGMA synchronous=NORMAL;'
		for ((i = 0; i < 5000; i++)); do echo "INSERT INTO t(who, n, pad) VALUES('$w', $i, hex(randomblob(24)));"; done
	} > $w.sql
done
mkfifo go.a go.b
sqlite3 -bail t.db < go.a > a.out 2>&1 & A=$!
sqlite3 -bail t.db < go.b > b.out 2>&1 & B=$!
exec 3> go.a 4> go.b
sleep 0.2
cat a.sql >&3 & CA=$!
cat b.sql >&4 & CB=$!
wait $CA $CB
exec 3>&- 4>&-
ra=0; rb=0
wait $A || ra=$?
wait $B || rb=$?
echo "writers exit $ra $rb"
cat a.out b.out
sqlite3 t.db 'PRAGMA integrity_check; SELECT count(*) FROM t; SELECT who, count(*), count(DISTINCT n), min(n), max(n) FROM t GROUP BY who; PRAGMA journal_mode;'
echo "interleave $(sqlite3 t.db "SELECT count(*) FROM (SELECT who, lag(who) OVER (ORDER BY id) AS p FROM t) WHERE who != p;")"
`

// TestWorkloadSQLite: two sqlite3 processes insert 10,000 rows in WAL mode
// at once; PRAGMA integrity_check says ok and all rows are there.
func TestWorkloadSQLite(t *testing.T) {
	needTool(t, "sqlite3")
	nat, sbs := runWorkload(t, "sqlite", workload{sqliteScript, nil, 150 * time.Second})
	want := "wal\nwriters exit 0 0\nok\n10000\na|5000|5000|0|4999\nb|5000|5000|0|4999\nwal\n"
	interleave := regexp.MustCompile(`(?m)^interleave (\d+)\n`)
	strip := func(name string, r result) result {
		m := interleave.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Errorf("%s: no interleave line:\n%s", name, r.stdout)
			return r
		}
		n, _ := strconv.Atoi(m[1])
		t.Logf("%s: the writer changed %d times along the rows", name, n)
		if n == 0 {
			t.Errorf("%s: one writer's rows all precede the other's: the two processes did not write at once", name)
		}
		r.stdout = interleave.ReplaceAllString(r.stdout, "")
		return r
	}
	nat = strip("native", nat)
	if nat.stdout != want {
		t.Fatalf("native sqlite3 run printed\n%s\nwant\n%s", nat.stdout, want)
	}
	for r, sb := range sbs {
		if sb.code == 0 {
			sbs[r] = strip(r.String(), sb)
		}
	}
	compareWorkload(t, "sqlite", nat, sbs)
}

// pythonScript copies a package of Python's standard library (modification
// times kept, since a .pyc records its source's) and byte-compiles it with
// python3 -m compileall, twice: the second run finds everything up to date
// by stat. It prints compileall's output, the .pyc files' hashes, and what
// importing the copy gives.
const pythonScript = `
set -eo pipefail
cd "$1"
src=$(python3 -c 'import email, os; print(os.path.dirname(email.__file__))')
cp -a "$src" email
find email -name __pycache__ -prune -exec rm -r {} +
python3 -m compileall email
echo "== again"
python3 -m compileall email
echo "== pyc"
find email -name '*.pyc' | sort | xargs sha256sum
echo "== import"
python3 -c 'import sys; sys.path.insert(0, "."); import os, email.mime.text as m; print(os.path.relpath(m.__cached__), m.MIMEText("hi").get_content_type())'
`

// TestWorkloadCompileall: python3 -m compileall of a copied package makes
// the same .pyc files as natively.
func TestWorkloadCompileall(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("/usr/bin/python3 missing (Debian package python3; make deps installs it)")
	}
	nat, sbs := runWorkload(t, "compileall", workload{pythonScript, nil, 150 * time.Second})
	if strings.Count(nat.stdout, "Compiling ") < 10 || !strings.Contains(nat.stdout, "text/plain") {
		t.Fatalf("native compileall compiled too little:\n%s", nat.stdout)
	}
	compareWorkload(t, "compileall", nat, sbs)
}

// toolsScript runs busybox's ps aux, free, df and mount in a sandbox
// holding a known set of processes (the shell as PID 1 and two sleeps),
// with what they read printed beside them: /proc/meminfo, each mount's
// statfs (stat -f) and /proc/mounts. TestProcTools covers ps -o, pidof,
// top and the default overlay; this covers ps aux and both root media.
const toolsScript = `
busybox sleep 30 & S=$!
busybox sh -c 'exec busybox sleep 31' & P=$!
busybox sleep 0.3
echo "== ids $S $P"
echo "== ps"; busybox ps aux
echo "== free"; busybox free
echo "== meminfo"; busybox grep -E '^(MemTotal|MemFree|Buffers|Cached):' /proc/meminfo
echo "== df"; busybox df -k
echo "== statfs"; for m in $(busybox awk '{print $2}' /proc/mounts); do echo "$m $(busybox stat -f -c '%b %f %a %S' $m)"; done
echo "== mount"; busybox mount
echo "== mounts"; busybox cat /proc/mounts
kill $S $P; wait
echo "== end"
`

// TestWorkloadBusyboxTools: busybox ps aux lists exactly the sandbox's
// processes with their owners and command lines; free agrees with
// /proc/meminfo; df shows the mounts of /proc/mounts with the sizes statfs
// gives (under --overlay=none the root's size is the host file system's);
// mount prints /proc/mounts.
func TestWorkloadBusyboxTools(t *testing.T) {
	needSandbox(t)
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("%s missing (Debian package busybox-static; make deps installs it)", busybox)
	}
	for _, r := range workloadRuns {
		if r.platform != workloadRuns[0].platform {
			continue
		}
		t.Run("overlay="+r.overlay, func(t *testing.T) {
			argv := []string{runscBin, "--root=" + t.TempDir(), "--platform=" + r.platform, "--overlay=" + r.overlay,
				"do", "--", busybox, "sh", "-c", toolsScript}
			res := runProc(t, 60*time.Second, argv...)
			checkNoLeftovers(t)
			sec := sections(res.stdout)
			if _, ok := sec["end"]; !ok || res.code != 0 {
				t.Fatalf("exit %d, script did not finish:\n%s\nstderr:\n%s", res.code, res.stdout, tail(res.stderr, 20))
			}
			checkPsAux(t, sec)
			checkFree(t, sec)
			checkDf(t, sec, r.overlay)
			var mounts, mount []string
			for _, l := range sec["mounts"] {
				if f := strings.Fields(l); len(f) >= 4 {
					mounts = append(mounts, f[1]+" "+f[2]+" "+f[0])
				}
			}
			for _, l := range sec["mount"] {
				if f := strings.Fields(l); len(f) >= 5 && f[1] == "on" && f[3] == "type" {
					mount = append(mount, f[2]+" "+f[4]+" "+f[0])
				}
			}
			diffLines(t, "mount vs /proc/mounts (point, type, source)", mounts, mount)
		})
	}
}

// checkPsAux: exactly init, the two sleeps and ps itself, all root's,
// with their command lines.
func checkPsAux(t *testing.T, sec map[string][]string) {
	t.Helper()
	ids := sec["ids"]
	ps := sec["ps"]
	if len(ids) != 2 || len(ps) == 0 {
		t.Fatalf("ids %q, ps %q", ids, ps)
	}
	if h := strings.Fields(ps[0]); len(h) < 3 || h[0] != "PID" || h[1] != "USER" || h[len(h)-1] != "COMMAND" {
		t.Errorf("ps aux header %q", ps[0])
	}
	want := map[string]string{"1": "sh -c", ids[0]: "sleep 30", ids[1]: "sleep 31"}
	seen := 0
	for _, l := range ps[1:] {
		f := strings.Fields(l)
		if len(f) < 3 {
			t.Errorf("ps aux line %q", l)
			continue
		}
		if f[1] != "root" {
			t.Errorf("ps aux: PID %s belongs to %q, want root", f[0], f[1])
		}
		cmd := strings.Join(f[2:], " ")
		if w, ok := want[f[0]]; ok {
			seen++
			if !strings.Contains(cmd, w) {
				t.Errorf("ps aux: PID %s runs %q, want %q in it", f[0], cmd, w)
			}
		} else if !strings.Contains(cmd, "ps aux") {
			t.Errorf("ps aux lists PID %s (%q), which is not the sandbox's", f[0], cmd)
		}
	}
	if seen != len(want) || len(ps) != 1+len(want)+1 {
		t.Errorf("ps aux lists %d processes, want init, the two sleeps and ps:\n%s", len(ps)-1, strings.Join(ps, "\n"))
	}
}

// checkFree: free's total is MemTotal, and used + free + buff/cache adds
// up to it.
func checkFree(t *testing.T, sec map[string][]string) {
	t.Helper()
	mem := map[string]int64{}
	for _, l := range sec["meminfo"] {
		if f := strings.Fields(l); len(f) >= 2 {
			mem[strings.TrimSuffix(f[0], ":")], _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	for _, l := range sec["free"] {
		f := strings.Fields(l)
		if len(f) < 6 || f[0] != "Mem:" {
			continue
		}
		var n [6]int64
		for i := 1; i < 6; i++ {
			n[i], _ = strconv.ParseInt(f[i], 10, 64)
		}
		if n[1] != mem["MemTotal"] || n[1] == 0 {
			t.Errorf("free total %d, /proc/meminfo MemTotal %d", n[1], mem["MemTotal"])
		}
		if used, free, cache := n[2], n[3], n[5]; used+free+cache != n[1] {
			t.Errorf("free: used %d + free %d + buff/cache %d != total %d", used, free, cache, n[1])
		}
		return
	}
	t.Errorf("free printed no Mem: line:\n%s", strings.Join(sec["free"], "\n"))
}

// checkDf: df lists mounted file systems only, each with the size statfs
// gives its mount point (and, on the sandbox's own tmpfs mounts, which
// nothing else writes to, the same free space); / and /tmp are there. With
// --overlay=none the root is the host's / served by the gofer, so its
// size is the host's.
func checkDf(t *testing.T, sec map[string][]string, overlay string) {
	t.Helper()
	type fsInfo struct{ blocks, bavail, bsize int64 }
	stfs := map[string]fsInfo{}
	for _, l := range sec["statfs"] {
		f := strings.Fields(l)
		if len(f) != 5 {
			continue
		}
		var v [4]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
		}
		stfs[f[0]] = fsInfo{v[0], v[2], v[3]}
	}
	types := map[string]string{}
	for _, l := range sec["mounts"] {
		if f := strings.Fields(l); len(f) >= 3 {
			types[f[1]] = f[2]
		}
	}
	seen := map[string]bool{}
	for _, l := range sec["df"][1:] {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Errorf("df line %q", l)
			continue
		}
		point := f[len(f)-1]
		seen[point] = true
		st, ok := stfs[point]
		if !ok {
			t.Errorf("df shows %s, which /proc/mounts does not list", point)
			continue
		}
		total, _ := strconv.ParseInt(f[1], 10, 64)
		avail, _ := strconv.ParseInt(f[3], 10, 64)
		if want := st.blocks * st.bsize / 1024; total != want {
			t.Errorf("df %s: %d 1K-blocks, statfs says %d", point, total, want)
		}
		if want := st.bavail * st.bsize / 1024; types[point] == "tmpfs" && avail != want {
			t.Errorf("df %s: %d available, statfs says %d", point, avail, want)
		}
	}
	for _, p := range []string{"/", "/tmp"} {
		if !seen[p] {
			t.Errorf("df does not show %s:\n%s", p, strings.Join(sec["df"], "\n"))
		}
	}
	if overlay == "none" {
		var host unix.Statfs_t
		if err := unix.Statfs("/", &host); err != nil {
			t.Fatal(err)
		}
		if st := stfs["/"]; st.blocks*st.bsize != int64(host.Blocks)*host.Bsize {
			t.Errorf("--overlay=none: the root's size is %d bytes, the host's / %d", st.blocks*st.bsize, int64(host.Blocks)*host.Bsize)
		}
	}
}
