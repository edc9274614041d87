// Package oci tests Veil as an OCI runtime: the runsc lifecycle commands
// driven directly (create/start/state/exec/ps/pause/resume/kill/wait/
// delete, bad input, a create killed half-way), and through the real
// clients that use it, podman (with conmon) and containerd's runc shim.
//
// Tests need root (sandboxes create namespaces); those needing podman or
// containerd skip naming the missing package. Each test uses its own
// --root; this process is a child subreaper, so anything a sandbox leaves
// running is re-parented here and found by checkNoLeftovers.
package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/test/testutil"
)

var (
	repoDir  string
	runscBin string
	setupErr error
)

func TestMain(m *testing.M) {
	repoDir, setupErr = testutil.RepoRoot()
	if setupErr == nil {
		runscBin, setupErr = testutil.Runsc(repoDir)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil && setupErr == nil {
		setupErr = fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", err)
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a sandbox creates namespaces")
	}
	if setupErr != nil {
		t.Fatalf("setup: %v", setupErr)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static not installed (make deps installs it)")
	}
}

// busyboxRoot makes a root file system of busybox and its applets.
func busyboxRoot(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "dev", "data", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			_ = os.Symlink("busybox", filepath.Join(root, "bin", a))
		}
	}
	_ = os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	_ = os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\n"), 0o644)
	_ = os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	return root
}

// bundle writes a bundle running args on a busybox root; edit may change
// the spec (a JSON object) before it is written.
func bundle(t *testing.T, args []string, edit func(spec map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	busyboxRoot(t, dir)
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"root":       map[string]any{"path": "rootfs"},
		"hostname":   "veil-oci",
		"process": map[string]any{
			"args": args, "cwd": "/", "env": []string{"PATH=/bin"},
			"user": map[string]any{"uid": 0, "gid": 0},
		},
		"mounts": []any{map[string]any{"destination": "/proc", "type": "proc", "source": "proc"}},
	}
	if edit != nil {
		edit(spec)
	}
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rt is a runsc with its own --root.
type rt struct {
	t    *testing.T
	root string
}

func newRT(t *testing.T) *rt {
	return &rt{t: t, root: t.TempDir()}
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs runsc with args. Output goes through files, not pipes: a
// created container keeps runsc create's stdio, and waiting for pipes to
// close would wait for the container.
func (r *rt) run(args ...string) result {
	r.t.Helper()
	return runCmd(r.t, 60*time.Second, append([]string{runscBin, "--root", r.root}, args...)...)
}

func runCmd(t *testing.T, timeout time.Duration, argv ...string) result {
	t.Helper()
	so, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	se, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	defer se.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = so, se
	err = cmd.Run()
	res := result{code: -1}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Errorf("%q did not finish within %v", argv, timeout)
	case err == nil:
		res.code = 0
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		res.code = ws.ExitStatus()
		if ws.Signaled() {
			res.code = 128 + int(ws.Signal())
		}
	default:
		t.Fatalf("running %q: %v", argv, err)
	}
	o, _ := os.ReadFile(so.Name())
	e, _ := os.ReadFile(se.Name())
	res.stdout, res.stderr = string(o), string(e)
	return res
}

// must runs runsc and fails the test unless it exits 0.
func (r *rt) must(args ...string) string {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 {
		r.t.Fatalf("runsc %q: exit %d: %s", args, res.code, res.stderr)
	}
	return res.stdout
}

type ociState struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	PID    int    `json:"pid"`
	Bundle string `json:"bundle"`
}

func (r *rt) state(id string) ociState {
	r.t.Helper()
	var st ociState
	if err := json.Unmarshal([]byte(r.must("state", id)), &st); err != nil {
		r.t.Fatalf("runsc state: %v", err)
	}
	return st
}

// waitStatus polls until id has status want.
func (r *rt) waitStatus(id, want string) {
	r.t.Helper()
	for i := 0; i < 500; i++ {
		if r.state(id).Status == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("container %s never became %s (is %s)", id, want, r.state(id).Status)
}

// reapChildren reaps what was re-parented to this subreaper and returns
// the PIDs of children still alive.
func reapChildren(t *testing.T) []int {
	t.Helper()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			break
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", os.Getpid(), os.Getpid()))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// checkNoLeftovers fails if a process, a mount or state is left behind.
func checkNoLeftovers(t *testing.T, root string) {
	t.Helper()
	var left []int
	for i := 0; i < 200; i++ {
		if left = reapChildren(t); len(left) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, pid := range left {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		t.Errorf("process %d left running: %q", pid, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), root) {
		t.Errorf("mounts left under %s", root)
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		t.Errorf("state left behind: %s", filepath.Join(root, e.Name()))
	}
}

// execCommand is a command with no stdio (so nothing waits on pipes the
// sandbox inherits).
func execCommand(argv ...string) *exec.Cmd {
	return exec.Command(argv[0], argv[1:]...)
}
