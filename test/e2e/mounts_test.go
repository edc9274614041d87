package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bundle is an OCI bundle whose rootfs holds Debian's static busybox as
// /bin/busybox, with its applets linked in /bin.
type bundle struct {
	dir, rootfs string
	spec        map[string]any
}

func newBundle(t *testing.T, script string) *bundle {
	t.Helper()
	needSandbox(t)
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("%s missing (Debian package busybox-static; make deps installs it)", busybox)
	}
	dir := t.TempDir()
	b := &bundle{dir: dir, rootfs: filepath.Join(dir, "rootfs")}
	for _, d := range []string{"bin", "etc", "proc", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(b.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, busybox, filepath.Join(b.rootfs, "bin", "busybox"), 0o755)
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			os.Symlink("busybox", filepath.Join(b.rootfs, "bin", applet))
		}
	}
	b.spec = map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"args": []string{"/bin/busybox", "sh", "-c", script},
			"cwd":  "/",
			"env":  []string{"PATH=/bin"},
			"user": map[string]any{"uid": 0, "gid": 0},
		},
		"root":   map[string]any{"path": "rootfs"},
		"mounts": []any{map[string]any{"destination": "/proc", "type": "proc", "source": "proc"}},
	}
	return b
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}

// mount adds a mount to the spec.
func (b *bundle) mount(dest, typ, source string, options ...string) {
	b.spec["mounts"] = append(b.spec["mounts"].([]any), map[string]any{
		"destination": dest, "type": typ, "source": source, "options": options,
	})
}

// run runs the bundle with `runsc run` and extra global flags, and checks
// that nothing is left running.
func (b *bundle) run(t *testing.T, timeout time.Duration, flags ...string) result {
	t.Helper()
	data, err := json.Marshal(b.spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{runscBin, "--root=" + t.TempDir()}, flags...)
	argv = append(argv, "run", "--bundle", b.dir, fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano()))
	r := runProc(t, timeout, argv...)
	checkNoLeftovers(t)
	return r
}

func wantLines(t *testing.T, r result, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.stdout, w+"\n") {
			t.Errorf("output lacks %q:\n%s\nstderr:\n%s", w, r.stdout, tail(r.stderr, 20))
		}
	}
}

// TestBindMounts: a read-write bind mount writes through to the host
// directory, a read-only one refuses with EROFS (and its host directory is
// unchanged), and a bind-mounted file is that file.
func TestBindMounts(t *testing.T) {
	b := newBundle(t, `
echo from-sandbox > /data/new && echo write=ok
cat /data/host
echo x > /ro/new 2>/dev/null; echo ro-create=$?
rm /ro/host 2>/dev/null; echo ro-rm=$?
cat /etc/one
echo changed > /etc/one && echo file-write=ok
touch /data/sub/deep && echo deep=ok
`)
	host := t.TempDir()
	ro := t.TempDir()
	os.WriteFile(filepath.Join(host, "host"), []byte("host-data\n"), 0o644)
	os.Mkdir(filepath.Join(host, "sub"), 0o755)
	os.WriteFile(filepath.Join(ro, "host"), []byte("ro-data\n"), 0o644)
	one := filepath.Join(t.TempDir(), "one")
	os.WriteFile(one, []byte("single-file\n"), 0o644)
	b.mount("/data", "bind", host, "rbind", "rw")
	b.mount("/ro", "bind", ro, "rbind", "ro")
	b.mount("/etc/one", "bind", one, "bind")
	r := b.run(t, 60*time.Second)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	wantLines(t, r, "write=ok", "host-data", "ro-create=1", "ro-rm=1", "single-file", "file-write=ok", "deep=ok")
	if got, _ := os.ReadFile(filepath.Join(host, "new")); string(got) != "from-sandbox\n" {
		t.Errorf("host sees %q in the rw mount", got)
	}
	if _, err := os.Stat(filepath.Join(host, "sub", "deep")); err != nil {
		t.Errorf("deep file: %v", err)
	}
	if ents, _ := os.ReadDir(ro); len(ents) != 1 {
		t.Errorf("read-only host directory changed: %v", ents)
	}
	if got, _ := os.ReadFile(one); string(got) != "changed\n" {
		t.Errorf("bind-mounted file reads %q on the host", got)
	}
}

// TestSpecMounts: tmpfs size and mode, a cgroup2 mount, masked and
// read-only paths, root.readonly, and a mount type Veil does not provide.
func TestSpecMounts(t *testing.T) {
	b := newBundle(t, `
stat -c '%a' /scratch
head -c 200000 /dev/zero > /scratch/a 2>/dev/null; echo small=$?
head -c 2000000 /dev/zero > /scratch/b 2>/dev/null; echo big=$?
cat /etc/secret; echo masked-file=$?
echo x > /etc/secret; echo masked-write=$?
echo hidden=$(ls /etc/hidden | wc -l)
touch /etc/hidden/x 2>/dev/null; echo masked-dir-write=$?
cat /etc/frozen/f
touch /etc/frozen/g 2>/dev/null; echo frozen-write=$?
touch /rootfile 2>/dev/null; echo root-write=$?
echo ok > /tmp/t && echo tmp=ok
echo cg=$(cat /sys/fs/cgroup/pids.max) cgtype=$(stat -f -c %t /sys/fs/cgroup)
echo shm=$(stat -c %a /dev/shm) null=$(stat -c %t,%T /dev/null)
touch /sys/fs/cgroup/x 2>/dev/null; echo cg-write=$?
`)
	os.WriteFile(filepath.Join(b.rootfs, "etc", "secret"), []byte("TOPSECRET\n"), 0o644)
	os.MkdirAll(filepath.Join(b.rootfs, "etc", "hidden"), 0o755)
	os.WriteFile(filepath.Join(b.rootfs, "etc", "hidden", "h"), nil, 0o644)
	os.MkdirAll(filepath.Join(b.rootfs, "etc", "frozen"), 0o755)
	os.WriteFile(filepath.Join(b.rootfs, "etc", "frozen", "f"), []byte("frozen\n"), 0o644)
	b.mount("/scratch", "tmpfs", "tmpfs", "size=1m", "mode=750")
	// Both below a default mount (/sys, /dev) that must come first.
	b.mount("/sys/fs/cgroup", "cgroup2", "cgroup", "nosuid", "noexec", "nodev", "ro")
	b.mount("/dev/shm", "tmpfs", "shm", "mode=700")
	b.spec["root"] = map[string]any{"path": "rootfs", "readonly": true}
	b.spec["linux"] = map[string]any{
		"maskedPaths":   []string{"/etc/secret", "/etc/hidden", "/does/not/exist"},
		"readonlyPaths": []string{"/etc/frozen"},
	}
	r := b.run(t, 60*time.Second)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "TOPSECRET") {
		t.Errorf("masked file readable:\n%s", r.stdout)
	}
	wantLines(t, r, "750", "small=0", "big=1", "masked-file=0", "masked-write=0", "hidden=0", "masked-dir-write=1",
		"frozen", "frozen-write=1", "root-write=1", "tmp=ok", "cg=max cgtype=63677270", "shm=700 null=1,3", "cg-write=1")

	// mqueue, which podman and containerd always ask for, is mounted (the
	// same checks pass with it); a type Veil does not provide is refused,
	// naming it.
	b.mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev")
	if r = b.run(t, 60*time.Second); r.code != 0 {
		t.Errorf("with an mqueue mount: exit %d, stderr %q", r.code, r.stderr)
	}
	b.mount("/mnt", "9p", "none")
	r = b.run(t, 30*time.Second)
	if r.code == 0 || !strings.Contains(r.stderr, `"9p"`) {
		t.Errorf("9p mount: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestGoferKilled kills the gofer under a workload writing files through
// it: the application's file calls fail with EIO, the sentry says why in
// one line and ends the sandbox, and nothing is left running.
func TestGoferKilled(t *testing.T) {
	b := newBundle(t, `
i=0
while echo $i > /data/f$i; do i=$((i+1)); done
echo write-failed
n=0; while [ $n -lt 5000000 ]; do n=$((n+1)); done
echo still-running
`)
	b.mount("/data", "bind", t.TempDir(), "rbind", "rw")
	done := make(chan result, 1)
	start := time.Now()
	go func() { done <- b.run(t, 60*time.Second) }()
	// The gofer is the runsc process of this test running "gofer".
	var gofer int
	for gofer == 0 && time.Since(start) < 20*time.Second {
		time.Sleep(200 * time.Millisecond)
		for _, p := range descendants(os.Getpid()) {
			if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid)); p.exe == runscBin && strings.Contains(string(cmd), "\x00gofer\x00") {
				gofer = p.pid
			}
		}
	}
	if gofer == 0 {
		t.Fatal("no gofer process found")
	}
	time.Sleep(500 * time.Millisecond) // let the workload run
	if err := unix.Kill(gofer, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if took := time.Since(start); took > 25*time.Second {
		t.Errorf("the sandbox took %v to end after the gofer died", took)
	}
	if !strings.Contains(r.stderr, "Input/output error") {
		t.Errorf("the application saw no EIO:\n%s", tail(r.stderr, 20))
	}
	if !strings.Contains(r.stderr, "the gofer is gone") {
		t.Errorf("no log line saying the gofer is gone:\n%s", tail(r.stderr, 20))
	}
	if strings.Contains(r.stdout, "still-running") {
		t.Errorf("the sandbox kept running without its gofer:\n%s", r.stdout)
	}
}
