package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
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
