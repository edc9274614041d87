package oci

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ociImage writes an OCI image-layout tarball of rootfs named ref: one
// uncompressed layer, a config with cmd, a manifest and an index.
func ociImage(t *testing.T, rootfs, ref, out string) {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == rootfs {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(rootfs, p)
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err != nil || tw.Close() != nil {
		t.Fatalf("layer: %v", err)
	}
	blobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := hex.EncodeToString(sum[:])
		blobs[d] = b
		return "sha256:" + d, len(b)
	}
	ld, ls := add(layer.Bytes())
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/bin/sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{ld}},
	})
	cd, cs := add(cfg)
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}},
	})
	md, ms := add(man)
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
		"annotations": map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref[strings.LastIndex(ref, ":")+1:]},
	}}})
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ow := tar.NewWriter(f)
	put := func(name string, b []byte) {
		ow.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		ow.Write(b)
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put("index.json", index)
	for d, b := range blobs {
		put("blobs/sha256/"+d, b)
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
}

// containerd is a containerd of the test's own (root, state, socket).
type containerd struct {
	t        *testing.T
	dir      string
	cmd      *exec.Cmd
	runcRoot string
}

func startContainerd(t *testing.T) *containerd {
	needRoot(t)
	for _, tool := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs containerd)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "veil-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &containerd{t: t, dir: dir, runcRoot: filepath.Join(dir, "runsc-root")}
	conf := fmt.Sprintf(`version = 2
root = "%[1]s/root"
state = "%[1]s/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "%[1]s/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	for i := 0; ; i++ {
		if exec.Command("ctr", "--address", c.sock(), "version").Run() == nil {
			break
		}
		if i > 200 {
			log, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Fatalf("containerd did not come up:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	img := filepath.Join(dir, "busybox.tar")
	ociImage(t, busyboxRoot(t, t.TempDir()), "localhost/veil-busybox:test", img)
	if out, err := exec.Command("ctr", "--address", c.sock(), "image", "import", img).CombinedOutput(); err != nil {
		t.Fatalf("ctr image import: %v\n%s", err, out)
	}
	return c
}

func (c *containerd) sock() string { return filepath.Join(c.dir, "containerd.sock") }

// ctr runs ctr against this containerd.
func (c *containerd) ctr(timeout time.Duration, args ...string) result {
	c.t.Helper()
	return runCmd(c.t, timeout, append([]string{"ctr", "--address", c.sock()}, args...)...)
}

// run is `ctr run` through the runc shim with Veil as its BinaryName.
func (c *containerd) run(args ...string) result {
	c.t.Helper()
	base := []string{"run", "--runc-binary", runscBin, "--runc-root", c.runcRoot, "--fifo-dir", filepath.Join(c.dir, "fifo")}
	return c.ctr(60*time.Second, append(base, args...)...)
}

// stop removes every task and container left (a failed test's), stops
// containerd and unmounts whatever is still mounted under its root.
func (c *containerd) stop() {
	for _, id := range strings.Fields(c.ctr(10*time.Second, "container", "ls", "-q").stdout) {
		c.ctr(10*time.Second, "task", "kill", "-a", "-s", "KILL", id)
		for i := 0; i < 50; i++ {
			if c.ctr(10*time.Second, "task", "delete", id).code != 0 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			break
		}
		c.ctr(10*time.Second, "container", "delete", id)
	}
	c.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	checkNoLeftovers(c.t, filepath.Join(c.runcRoot, "default"))
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], c.dir) {
			exec.Command("umount", "-l", f[4]).Run()
			c.t.Errorf("mount left: %s", f[4])
		}
	}
	os.RemoveAll(c.dir)
}

func TestContainerdRuncShim(t *testing.T) {
	c := startContainerd(t)
	img := "localhost/veil-busybox:test"
	res := c.run("--rm", img, "ct-echo", "echo", "hello")
	if res.code != 0 || res.stdout != "hello\n" {
		t.Fatalf("ctr run echo: exit %d stdout %q stderr %q", res.code, res.stdout, res.stderr)
	}
	if res := c.run("--rm", img, "ct-exit", "sh", "-c", "exit 7"); res.code != 7 {
		t.Errorf("ctr run exit 7: got %d (%s)", res.code, res.stderr)
	}
	// process.terminal: the shim hands runsc a console socket.
	runTTY := exec.Command("ctr", "--address", c.sock(), "run", "--tty", "--rm", "--runc-binary", runscBin, "--runc-root", c.runcRoot,
		"--fifo-dir", filepath.Join(c.dir, "fifo"), img, "ct-tty", "sh", "-c", "sleep 0.5; tty; stty size; exit 3")
	if out, code := ptyCommand(t, 60*time.Second, runTTY); code != 3 || !regexp.MustCompile(`/dev/pts/\d+\r+\n24 80\r+\n`).MatchString(out) {
		t.Errorf("ctr run --tty: exit %d, terminal showed %q; want exit 3, the sandbox's /dev/pts/N and ctr's size 24x80", code, out)
	}
	if res := c.run("-d", img, "ct-d", "sleep", "300"); res.code != 0 {
		t.Fatalf("ctr run -d: %+v", res)
	}
	if res := c.ctr(60*time.Second, "task", "exec", "--exec-id", "e1", "ct-d", "sh", "-c", "echo from-exec; exit 4"); res.code != 4 || res.stdout != "from-exec\n" {
		t.Errorf("ctr task exec: %+v", res)
	}
	// --tty: the shim makes the process's terminal with runsc exec -t
	// and a console socket; ctr relays it to its own terminal (whose
	// output processing may add a \r of its own).
	ctrExec := exec.Command("ctr", "--address", c.sock(), "task", "exec", "--tty", "--exec-id", "e2", "ct-d", "sh", "-c", "sleep 0.5; tty; stty size; exit 5")
	out, code := ptyCommand(t, 60*time.Second, ctrExec)
	if code != 5 || !regexp.MustCompile(`/dev/pts/\d+\r+\n24 80\r+\n`).MatchString(out) {
		t.Errorf("ctr task exec --tty: exit %d, terminal showed %q; want exit 5, the sandbox's /dev/pts/N and ctr's size 24x80", code, out)
	}
	if res := c.ctr(30*time.Second, "task", "kill", "ct-d"); res.code != 0 {
		t.Errorf("ctr task kill: %+v", res)
	}
	stopped := false
	for i := 0; i < 200 && !stopped; i++ {
		out := c.ctr(10*time.Second, "task", "ls").stdout
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "ct-d" && f[2] == "STOPPED" {
				stopped = true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !stopped {
		t.Errorf("task not stopped after ctr task kill: %s", c.ctr(10*time.Second, "task", "ls").stdout)
	}
	c.ctr(30*time.Second, "task", "delete", "ct-d")
	c.ctr(30*time.Second, "container", "delete", "ct-d")
}
