package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// raceSeconds is how long the rename race runs: 5 s by default, the
// issue's 30 s with VEIL_ESCAPE_RACE_SECS=30.
func raceSeconds() int {
	if n, err := strconv.Atoi(os.Getenv("VEIL_ESCAPE_RACE_SECS")); err == nil && n > 0 {
		return n
	}
	return 5
}

// canary is a host file outside every mount of the sandbox. Its atime is
// set before its mtime, so any read of it moves the atime (relatime).
type canary struct {
	path, secret string
	before       unix.Stat_t
	atimeWorks   bool
}

func newCanary(t *testing.T, path string) *canary {
	t.Helper()
	c := &canary{path: path, secret: "CANARY-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	if err := os.WriteFile(path, []byte(c.secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, past, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Whether this file system records reads (not noatime), tried on a
	// twin of the canary.
	probe := path + ".probe"
	os.WriteFile(probe, []byte("x"), 0o644)
	os.Chtimes(probe, past, time.Now())
	var a, b unix.Stat_t
	unix.Stat(probe, &a)
	os.ReadFile(probe)
	unix.Stat(probe, &b)
	c.atimeWorks = b.Atim != a.Atim
	os.Remove(probe)
	if err := unix.Stat(path, &c.before); err != nil {
		t.Fatal(err)
	}
	return c
}

// check fails the test if the canary was read, written or its secret
// reached the sandbox's output.
func (c *canary) check(t *testing.T, r result) {
	t.Helper()
	if strings.Contains(r.stdout+r.stderr, c.secret) {
		t.Errorf("the sandbox read the host canary %s:\n%s", c.path, r.stdout)
	}
	var now unix.Stat_t
	if err := unix.Stat(c.path, &now); err != nil {
		t.Fatalf("canary: %v", err)
	}
	if now.Mtim != c.before.Mtim || now.Size != c.before.Size || now.Ctim != c.before.Ctim {
		t.Errorf("the host canary %s was changed", c.path)
	}
	if c.atimeWorks && now.Atim != c.before.Atim {
		t.Errorf("the host canary %s was read (atime moved)", c.path)
	}
	if got, _ := os.ReadFile(c.path); string(got) != c.secret+"\n" {
		t.Errorf("canary content now %q", got)
	}
}

// TestEscapes tries, from inside a sandbox, to reach host files outside
// the container's mounts: symlinks in the rootfs to absolute host paths and
// up through "..", ".." chains above the root, /proc/self/root/..,
// /proc/1/cwd, O_PATH descriptors reopened through /proc/self/fd, hard
// links out of a bind mount, and a rename race swapping a directory for a
// symlink under a reader. Each runs with the memory overlay and with
// writes through to the host rootfs. None may reach the host canaries.
func TestEscapes(t *testing.T) {
	esc := buildC(t, "test/e2e/src/escape.c", "escape")
	for _, overlay := range []string{"memory", "none"} {
		t.Run(overlay, func(t *testing.T) {
			secs := raceSeconds()
			b := newBundle(t, "") // script set below, once paths are known
			base := b.dir
			outer := newCanary(t, filepath.Join(base, "canary"))
			os.Mkdir(filepath.Join(base, "canarydir"), 0o755)
			inner := newCanary(t, filepath.Join(base, "canarydir", "canary"))
			copyFile(t, esc, filepath.Join(b.rootfs, "bin", "escape"), 0o755)
			for name, target := range map[string]string{
				"abs":    outer.path,
				"shadow": "/../../etc/shadow",
				"up":     "../../../../../../../.." + outer.path,
				"updir":  "..",
				"upcan":  "../canary",
			} {
				if err := os.Symlink(target, filepath.Join(b.rootfs, name)); err != nil {
					t.Fatal(err)
				}
			}
			data := filepath.Join(base, "data")
			os.MkdirAll(filepath.Join(data, "d"), 0o755)
			os.WriteFile(filepath.Join(data, "d", "canary"), []byte("decoy\n"), 0o644)
			os.Symlink("../canarydir", filepath.Join(data, "s"))
			os.Symlink(filepath.Join(base, "canarydir"), filepath.Join(data, "abs"))
			b.mount("/data", "bind", data, "rbind", "rw")

			script := strings.NewReplacer("BASE", base, "SECS", strconv.Itoa(secs)).Replace(`
cat /abs /shadow /up /updir/canary /upcan /../../../../canary BASE/canary
cat /proc/self/root/../../../canary /proc/self/root/BASE/canary
cat /proc/1/cwd/../../../../canary /proc/1/root/../canary
cd /../../.. && ls && cat canary
cat /data/s/canary /data/abs/canary /data/../canary /data/../canarydir/canary
escape read /data/../../canary /proc/self/cwd/../../canary
escape opath /abs /up /updir /upcan /shadow /proc/self/root/.. /data/s /data/abs /data/..
ln /data/d/canary /hardlink 2>&1; echo ln-out=$?
ln /bin/busybox /data/busybox-link 2>&1; echo ln-in=$?
ln -s BASE/canary /data/newlink && cat /data/newlink
escape race /data SECS
echo done
`)
			b.spec["process"].(map[string]any)["args"] = []string{"/bin/busybox", "sh", "-c", script}
			b.spec["process"].(map[string]any)["env"] = []string{"PATH=/bin"}
			r := b.run(t, time.Duration(secs+60)*time.Second, "--overlay="+overlay)
			if r.code != 0 || !strings.Contains(r.stdout, "done\n") || !strings.Contains(r.stdout, "race: ") {
				t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, tail(r.stderr, 30))
			}
			outer.check(t, r)
			inner.check(t, r)
			if strings.Contains(r.stdout, "LEAK") {
				t.Errorf("rename race reached outside /data:\n%s", r.stdout)
			}
			wantLines(t, r, "ln-out=1", "ln-in=1")
			if _, err := os.Lstat(filepath.Join(data, "busybox-link")); err == nil {
				t.Errorf("a hard link into the bind mount from outside it appeared on the host")
			}
			if shadow, err := os.ReadFile("/etc/shadow"); err == nil {
				if first, _, _ := strings.Cut(string(shadow), "\n"); first != "" && strings.Contains(r.stdout, first) {
					t.Errorf("host /etc/shadow reached the sandbox")
				}
			}
			t.Logf("%s", lastLine(r.stdout, "race: "))
			if os.Getenv("VEIL_ESCAPE_VERBOSE") != "" {
				t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
}

func lastLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
