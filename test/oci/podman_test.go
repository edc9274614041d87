package oci

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// podman drives podman (Debian's, with conmon) with Veil as its runtime,
// storage and configuration of its own, and a local busybox image.
type podman struct {
	t     *testing.T
	dir   string
	env   []string
	root  string // runsc --root
	image string
}

// newPodman sets podman up or skips. podman 4.3 omits --root on its last
// `delete --force`, so the runtime it is given is a two-line wrapper that
// always passes this test's --root (a later --root, when podman gives one,
// is the same).
func newPodman(t *testing.T) *podman {
	needRoot(t)
	for _, tool := range []string{"podman", "conmon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs podman and conmon)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "veil-podman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{t: t, dir: dir, root: filepath.Join(dir, "runsc"), image: "localhost/veil-busybox:test"}
	p.env = append(os.Environ(),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"))
	write := func(name, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("storage.conf", "[storage]\ndriver = \"overlay\"\ngraphroot = \""+dir+"/storage\"\nrunroot = \""+dir+"/run\"\n", 0o644)
	// No CAP_SYS_RESOURCE here: default ulimits podman would raise fail.
	write("containers.conf", `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "`+dir+`/events.log"
tmp_dir = "`+dir+`/tmp"
`, 0o644)
	write("runtime", "#!/bin/sh\nexec "+runscBin+" --root="+p.root+" \"$@\"\n", 0o755)
	t.Cleanup(p.cleanup)
	rootfs := busyboxRoot(t, t.TempDir())
	// Something in the image under /run for --read-only's tmpcopyup.
	_ = os.MkdirAll(filepath.Join(rootfs, "run"), 0o755)
	if err := os.WriteFile(filepath.Join(rootfs, "run", "image-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	imp := exec.Command("sh", "-c", "tar -C "+rootfs+" -c . | podman import -q --change 'CMD [\"/bin/sh\"]' - "+p.image)
	imp.Env = p.env
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	return p
}

// run runs podman with Veil as the runtime.
func (p *podman) run(args ...string) result {
	p.t.Helper()
	argv := append([]string{"podman", "--runtime", filepath.Join(p.dir, "runtime")}, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = p.env
	var res result
	so, se := &strings.Builder{}, &strings.Builder{}
	cmd.Stdout, cmd.Stderr = so, se
	cmd.WaitDelay = 10 * time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		p.t.Errorf("podman %q timed out", args)
	}
	res.code = cmd.ProcessState.ExitCode()
	res.stdout, res.stderr = so.String(), se.String()
	return res
}

// shell is a shell command line running podman with args, then printing
// its exit status as VEIL-EXIT=N on a line of its own (interactiveShell).
func (p *podman) shell(args ...string) string {
	env := ""
	for _, kv := range p.env {
		if strings.HasPrefix(kv, "CONTAINERS_") {
			env += shellQuote(kv) + " "
		}
	}
	return "env " + env + shellLine(append([]string{"podman", "--runtime", filepath.Join(p.dir, "runtime")}, args...)...) + "; st=$?; echo; echo VEIL-EXIT=$st"
}

func (p *podman) must(args ...string) string {
	p.t.Helper()
	res := p.run(args...)
	if res.code != 0 {
		p.t.Fatalf("podman %q: exit %d: %s", args, res.code, res.stderr)
	}
	return res.stdout
}

func (p *podman) cleanup() {
	rm := exec.Command("podman", "rm", "-af", "-t", "0")
	rm.Env = p.env
	rm.Run()
	// Unmounts podman's overlay storage too.
	reset := exec.Command("podman", "system", "reset", "-f")
	reset.Env = p.env
	reset.Run()
	checkNoLeftovers(p.t, p.root)
	// Whatever is still mounted (podman's own storage after a failure)
	// goes, deepest first, so that nothing outlives the test.
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	lines := strings.Split(string(mi), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if f := strings.Fields(lines[i]); len(f) > 4 && strings.HasPrefix(f[4], p.dir) {
			p.t.Errorf("mount left: %s", f[4])
			_ = unix.Unmount(f[4], unix.MNT_DETACH)
		}
	}
	os.RemoveAll(p.dir)
}

func TestPodman(t *testing.T) {
	p := newPodman(t)
	img := p.image
	res := p.run("run", "--rm", img, "echo", "hi")
	if res.code != 0 || res.stdout != "hi\n" {
		t.Fatalf("podman run echo: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res := p.run("run", "--rm", img, "sh", "-c", "exit 7"); res.code != 7 {
		t.Errorf("exit 7: got %d (%s)", res.code, res.stderr)
	}
	t.Run("user-env-workdir", func(t *testing.T) {
		if out := p.must("run", "--rm", "--user", "1000:1000", img, "id"); !strings.HasPrefix(out, "uid=1000") || !strings.Contains(out, "gid=1000") {
			t.Errorf("--user: %q", out)
		}
		if out := p.must("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", img, "sh", "-c", "echo $FOO $(pwd)"); out != "bar /tmp\n" {
			t.Errorf("-e -w: %q", out)
		}
	})
	t.Run("volumes", func(t *testing.T) {
		host := t.TempDir()
		p.must("run", "--rm", "-v", host+":/data", img, "sh", "-c", "echo written > /data/f")
		if data, _ := os.ReadFile(filepath.Join(host, "f")); string(data) != "written\n" {
			t.Errorf("-v: host sees %q", data)
		}
		res := p.run("run", "--rm", "-v", host+":/data:ro", img, "sh", "-c", "echo x > /data/g")
		if res.code == 0 || !strings.Contains(res.stderr, "Read-only file system") {
			t.Errorf("-v :ro: exit %d, stderr %q", res.code, res.stderr)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		res := p.run("run", "--rm", "--read-only", img, "sh", "-c", "echo x > /x")
		if res.code == 0 || !strings.Contains(res.stderr, "Read-only file system") {
			t.Errorf("--read-only: exit %d, stderr %q", res.code, res.stderr)
		}
		// podman mounts tmpfs with tmpcopyup on /run, /tmp, /var/tmp:
		// writable, holding what the image had there.
		if out := p.must("run", "--rm", "--read-only", img, "sh", "-c", "echo w > /tmp/w && cat /tmp/w && ls /run/image-file"); out != "w\n/run/image-file\n" {
			t.Errorf("--read-only tmpfs: %q", out)
		}
	})
	t.Run("detached", func(t *testing.T) {
		id := strings.TrimSpace(p.must("run", "-d", "--memory", "64m", img, "sleep", "300"))
		if out := p.must("exec", id, "sh", "-c", "echo in-exec"); out != "in-exec\n" {
			t.Errorf("exec: %q", out)
		}
		if res := p.run("exec", id, "sh", "-c", "exit 3"); res.code != 3 {
			t.Errorf("exec exit status %d, want 3", res.code)
		}
		// podman's own process reader (psgo) reads the host's /proc in
		// the container's namespaces, where only the sentry is; ps(1)
		// options make podman run ps in the container, which sees the
		// sandbox's processes.
		if out := p.must("top", id, "-ef"); !strings.Contains(out, "sleep 300") {
			t.Errorf("top:\n%s", out)
		}
		t.Run("exec-it", func(t *testing.T) {
			x := newTmux(t, 80, 24, p.shell("exec", "-it", id, "sh"))
			interactiveShell(t, x)
		})
		// --memory lands in the sandbox's host cgroup.
		data, err := os.ReadFile(filepath.Join(p.root, id, "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), `"memory":"`) {
			t.Errorf("no memory cgroup in state: %s", data)
		} else {
			dir := string(data[strings.Index(string(data), `"memory":"`)+10:])
			dir = dir[:strings.IndexByte(dir, '"')]
			lim, _ := os.ReadFile(filepath.Join(dir, "memory.limit_in_bytes"))
			if lim == nil {
				lim, _ = os.ReadFile(filepath.Join(dir, "memory.max"))
			}
			if strings.TrimSpace(string(lim)) != strconv.Itoa(64<<20) {
				t.Errorf("memory limit in %s: %q", dir, lim)
			}
		}
		// sleep ignores nothing: SIGTERM ends it well before the timeout.
		start := time.Now()
		p.must("stop", "-t", "10", id)
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("stop took %v: SIGTERM did not end the container", d)
		}
		p.must("rm", id)
	})
	t.Run("run-it", func(t *testing.T) {
		x := newTmux(t, 80, 24, p.shell("run", "-it", "--rm", img, "sh"))
		interactiveShell(t, x)
	})
	t.Run("stop-escalates", func(t *testing.T) {
		id := strings.TrimSpace(p.must("run", "-d", img, "sh", "-c", "trap '' TERM; touch /tmp/trapped; sleep 300"))
		// SIGTERM must come once the shell ignores it.
		for i := 0; p.run("exec", id, "test", "-e", "/tmp/trapped").code != 0; i++ {
			if i == 100 {
				t.Fatal("the container never set its trap")
			}
			time.Sleep(50 * time.Millisecond)
		}
		start := time.Now()
		p.must("stop", "-t", "2", id)
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("stop took %v: the container ignores SIGTERM, so only SIGKILL after 2s ends it", d)
		}
		p.must("rm", id)
	})
}
