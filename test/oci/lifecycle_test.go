package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLifecycle walks one container through every state and command.
func TestLifecycle(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	b := bundle(t, []string{"sh", "-c", "echo started > /tmp/x; sleep 300"}, func(s map[string]any) {
		s["annotations"] = map[string]string{"org.veil.test": "yes"}
	})
	pidFile := filepath.Join(t.TempDir(), "pid")
	r.must("create", "--bundle", b, "--pid-file", pidFile, "c1")
	st := r.state("c1")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "created" || strconv.Itoa(st.PID) != string(data) || st.PID <= 0 || st.Bundle != b {
		t.Fatalf("after create: state %+v, pid file %q", st, data)
	}
	if res := r.run("exec", "c1", "true"); res.code == 0 || !strings.Contains(res.stderr, "not running") {
		t.Errorf("exec before start: %+v", res)
	}
	r.must("start", "c1")
	r.waitStatus("c1", "running")

	out := r.must("exec", "--env", "A=b", "--cwd", "/tmp", "--user", "1000:1000", "c1", "sh", "-c", `echo "$A $(pwd) $(id -u):$(id -g)"; cat x`)
	if out != "b /tmp 1000:1000\nstarted\n" {
		t.Errorf("exec output %q", out)
	}
	if res := r.run("exec", "c1", "sh", "-c", "exit 7"); res.code != 7 {
		t.Errorf("exec exit status %d, want 7", res.code)
	}
	// A process spec file, as conmon and the runc shim pass it.
	proc := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(proc, []byte(`{"args":["sh","-c","echo $X"],"cwd":"/","env":["X=from-file","PATH=/bin"],"user":{"uid":0,"gid":0}}`), 0o644)
	if out := r.must("exec", "--process", proc, "c1"); out != "from-file\n" {
		t.Errorf("exec --process: %q", out)
	}

	// A detached exec: its stand-in's PID is in --pid-file and carries
	// signals and the exit status.
	epid := filepath.Join(t.TempDir(), "epid")
	r.must("exec", "--detach", "--pid-file", epid, "c1", "sleep", "300")
	data, _ = os.ReadFile(epid)
	waiter, err := strconv.Atoi(string(data))
	if err != nil {
		t.Fatalf("exec pid file %q", data)
	}
	var pids []int
	if err := json.Unmarshal([]byte(r.must("ps", "--format", "json", "c1")), &pids); err != nil || len(pids) != 2 || pids[0] != 1 {
		t.Errorf("ps --format json: %v %v", pids, err)
	}
	if out := r.must("ps", "c1"); !strings.Contains(out, "sleep 300") || !strings.Contains(out, "PID") {
		t.Errorf("ps:\n%s", out)
	}
	syscall.Kill(waiter, syscall.SIGTERM)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(waiter, &ws, 0, nil); err != nil || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("exec stand-in: %v, status %v", err, ws)
	}
	if err := json.Unmarshal([]byte(r.must("ps", "--format", "json", "c1")), &pids); err != nil || len(pids) != 1 {
		t.Errorf("after killing the exec'd process, ps: %v %v", pids, err)
	}

	r.must("pause", "c1")
	if st := r.state("c1"); st.Status != "paused" {
		t.Errorf("after pause: %s", st.Status)
	}
	if res := r.run("start", "c1"); res.code == 0 {
		t.Error("start of a paused container succeeded")
	}
	r.must("resume", "c1")
	if st := r.state("c1"); st.Status != "running" {
		t.Errorf("after resume: %s", st.Status)
	}
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			CPU struct {
				Usage struct {
					Total uint64 `json:"total"`
				} `json:"usage"`
			} `json:"cpu"`
			Memory struct {
				Usage struct {
					Usage uint64 `json:"usage"`
				} `json:"usage"`
			} `json:"memory"`
			Pids struct {
				Current uint64 `json:"current"`
			} `json:"pids"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.must("events", "--stats", "c1")), &ev); err != nil || ev.Type != "stats" || ev.ID != "c1" ||
		ev.Data.CPU.Usage.Total == 0 || ev.Data.Memory.Usage.Usage == 0 || ev.Data.Pids.Current != 1 {
		t.Errorf("events --stats: %+v %v", ev, err)
	}
	var list []ociState
	if err := json.Unmarshal([]byte(r.must("list", "--format", "json")), &list); err != nil || len(list) != 1 || list[0].ID != "c1" || list[0].Status != "running" {
		t.Errorf("list --format json: %+v %v", list, err)
	}
	if out := r.must("list"); !strings.Contains(out, "c1") || !strings.Contains(out, "running") {
		t.Errorf("list:\n%s", out)
	}

	if res := r.run("delete", "c1"); res.code == 0 || !strings.Contains(res.stderr, "running") {
		t.Errorf("delete of a running container: %+v", res)
	}
	r.must("kill", "c1", "TERM")
	if res := r.run("wait", "c1"); res.code != 128+15 || !strings.Contains(res.stdout, `"exitStatus":143`) {
		t.Errorf("wait: %+v", res)
	}
	// Once wait has answered, the container is stopped, even while its
	// sandbox is still tearing down.
	if st := r.state("c1"); st.Status != "stopped" {
		t.Errorf("state right after wait: %s, want stopped", st.Status)
	}
	// The sandbox is the process that carries the container's status.
	var sws syscall.WaitStatus
	if _, err := syscall.Wait4(st.PID, &sws, 0, nil); err == nil && !(sws.Exited() && sws.ExitStatus() == 143) {
		t.Errorf("sandbox process status %v, want exit 143", sws)
	}
	if res := r.run("kill", "c1", "KILL"); res.code == 0 || !strings.Contains(res.stderr, "not running") {
		t.Errorf("kill of a stopped container: %+v", res)
	}
	r.must("delete", "c1")
	checkNoLeftovers(t, r.root)
}

// TestRunExitStatus checks runsc run in the foreground: output, exit code
// and death by signal, and nothing left behind.
func TestRunExitStatus(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	for _, tc := range []struct {
		script string
		want   int
		out    string
	}{
		{"echo hello", 0, "hello\n"},
		{"exit 7", 7, ""},
		{"kill -KILL $$", 128 + 9, ""},
	} {
		b := bundle(t, []string{"sh", "-c", tc.script}, nil)
		res := r.run("run", "--bundle", b, "r1")
		if res.code != tc.want || res.stdout != tc.out {
			t.Errorf("run %q: exit %d stdout %q stderr %q; want %d %q", tc.script, res.code, res.stdout, res.stderr, tc.want, tc.out)
		}
	}
	checkNoLeftovers(t, r.root)
}

// TestWaitThenDelete is the bench's lifecycle row: create, start, wait and
// at once delete without --force, which needs the container stopped the
// moment wait answers (the sandbox used to look running for a while).
func TestWaitThenDelete(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	b := bundle(t, []string{"true"}, nil)
	for i := 0; i < 5; i++ {
		r.must("create", "--bundle", b, "w1")
		r.must("start", "w1")
		if res := r.run("wait", "w1"); res.code != 0 {
			t.Fatalf("wait %d: %+v", i, res)
		}
		if res := r.run("delete", "w1"); res.code != 0 {
			t.Fatalf("delete right after wait %d: %+v", i, res)
		}
	}
	checkNoLeftovers(t, r.root)
}

// TestHooks checks that every hook runs with the OCI state on stdin.
func TestHooks(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	out := t.TempDir()
	hook := func(name string) map[string]any {
		return map[string]any{"path": "/bin/sh", "args": []string{"sh", "-c", "cat > " + filepath.Join(out, name)}}
	}
	b := bundle(t, []string{"true"}, func(s map[string]any) {
		s["hooks"] = map[string]any{
			"createRuntime": []any{hook("createRuntime")}, "createContainer": []any{hook("createContainer")},
			"startContainer": []any{hook("startContainer")}, "poststart": []any{hook("poststart")},
			"poststop": []any{hook("poststop")},
		}
	})
	r.must("create", "--bundle", b, "h1")
	r.must("start", "h1")
	r.must("wait", "h1")
	r.must("delete", "h1")
	for name, status := range map[string]string{"createRuntime": "created", "createContainer": "created", "startContainer": "created", "poststart": "running", "poststop": "stopped"} {
		data, err := os.ReadFile(filepath.Join(out, name))
		var st ociState
		if err != nil || json.Unmarshal(data, &st) != nil || st.ID != "h1" || st.Status != status {
			t.Errorf("%s hook saw %q (%v), want state of h1 %s", name, data, err, status)
		}
	}
	// A failing hook fails create and leaves nothing.
	bad := bundle(t, []string{"true"}, func(s map[string]any) {
		s["hooks"] = map[string]any{"createRuntime": []any{map[string]any{"path": "/bin/false"}}}
	})
	if res := r.run("create", "--bundle", bad, "h2"); res.code == 0 || !strings.Contains(res.stderr, "createRuntime hook") {
		t.Errorf("failing hook: %+v", res)
	}
	checkNoLeftovers(t, r.root)
}

// TestBadInput: each mistake is one line naming the cause, a non-zero
// exit, and nothing left behind.
func TestBadInput(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	good := bundle(t, []string{"sleep", "100"}, nil)
	write := func(content string) string {
		d := t.TempDir()
		os.Symlink(filepath.Join(good, "rootfs"), filepath.Join(d, "rootfs"))
		os.WriteFile(filepath.Join(d, "config.json"), []byte(content), 0o644)
		return d
	}
	full, _ := os.ReadFile(filepath.Join(good, "config.json"))
	noRoot := bundle(t, []string{"true"}, func(s map[string]any) { s["root"] = map[string]any{"path": "missing"} })
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"malformed config", []string{"create", "-b", write("{not json"), "x"}, "malformed config.json"},
		{"truncated config", []string{"create", "-b", write(string(full[:len(full)/2])), "x"}, "malformed config.json"},
		{"unknown field value", []string{"create", "-b", write(strings.Replace(string(full), `"type":"proc"`, `"type":"nosuchfs"`, 1)), "x"}, `mount type "nosuchfs"`},
		{"missing rootfs", []string{"create", "-b", noRoot, "x"}, "root.path"},
		{"no bundle", []string{"create", "-b", t.TempDir(), "x"}, "no config.json"},
		{"bad id", []string{"create", "-b", good, "../x"}, "invalid container ID"},
		{"unknown container", []string{"start", "nosuch"}, "does not exist"},
		{"missing command", []string{"create", "-b", bundle(t, []string{"nosuchcmd"}, nil), "x"}, "nosuchcmd"},
	} {
		res := r.run(tc.args...)
		if res.code == 0 || !strings.Contains(res.stderr, tc.want) || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want one line containing %q", tc.name, res.code, res.stderr, tc.want)
		}
	}
	checkNoLeftovers(t, r.root)

	r.must("create", "-b", good, "dup")
	if res := r.run("create", "-b", good, "dup"); res.code == 0 || !strings.Contains(res.stderr, "already exists") {
		t.Errorf("duplicate ID: %+v", res)
	}
	r.must("start", "dup")
	if res := r.run("start", "dup"); res.code == 0 || !strings.Contains(res.stderr, "not created") {
		t.Errorf("start twice: %+v", res)
	}
	if res := r.run("kill", "dup", "NOSIG"); res.code == 0 || !strings.Contains(res.stderr, `unknown signal "NOSIG"`) {
		t.Errorf("unknown signal: %+v", res)
	}
	if res := r.run("delete", "dup"); res.code == 0 || !strings.Contains(res.stderr, "--force") {
		t.Errorf("delete running: %+v", res)
	}
	r.must("delete", "--force", "dup")
	checkNoLeftovers(t, r.root)
}

// TestCreateKilledHalfway: runsc create SIGKILLed while the sandbox is
// being set up, then delete --force: no process, mount, cgroup or state.
func TestCreateKilledHalfway(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	cg := fmt.Sprintf("/veil-oci-test-%d", os.Getpid())
	b := bundle(t, []string{"sleep", "100"}, func(s map[string]any) {
		s["linux"] = map[string]any{"cgroupsPath": cg, "resources": map[string]any{"pids": map[string]any{"limit": 50}}}
	})
	for _, after := range []string{"sandbox", "gofer"} {
		cmd := execCommand(runscBin, "--root", r.root, "create", "-b", b, "k1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it as soon as state.json names the process.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			data, _ := os.ReadFile(filepath.Join(r.root, "k1", "state.json"))
			var st map[string]any
			if json.Unmarshal(data, &st) == nil {
				if p, ok := st[after].(map[string]any); ok && p["pid"].(float64) > 0 {
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if st := r.state("k1"); st.Status != "stopped" && st.Status != "created" {
			t.Errorf("after killed create: %s", st.Status)
		}
		r.must("delete", "--force", "k1")
		checkNoLeftovers(t, r.root)
		for _, ctl := range []string{"pids", "memory", "unified"} {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctl, cg)); err == nil {
				t.Errorf("cgroup %s left in %s", cg, ctl)
			}
		}
	}
}

// TestCgroup: linux.resources land in the sandbox's host cgroup.
func TestCgroup(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	cg := fmt.Sprintf("/veil-oci-test-%d/c", os.Getpid())
	b := bundle(t, []string{"sleep", "100"}, func(s map[string]any) {
		s["linux"] = map[string]any{"cgroupsPath": cg, "resources": map[string]any{
			"memory": map[string]any{"limit": 64 << 20},
			"pids":   map[string]any{"limit": 77},
			"cpu":    map[string]any{"shares": 512, "quota": 50000, "period": 100000},
		}}
	})
	r.must("create", "-b", b, "cg")
	pid := r.state("cg").PID
	read := func(v1, v2 string) string {
		for _, p := range []string{v1, v2} {
			if data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", p)); err == nil {
				return strings.TrimSpace(string(data))
			}
		}
		return ""
	}
	if got := read("memory"+cg+"/memory.limit_in_bytes", cg+"/memory.max"); got != strconv.Itoa(64<<20) {
		t.Errorf("memory limit %q", got)
	}
	if got := read("pids"+cg+"/pids.max", cg+"/pids.max"); got != "77" {
		t.Errorf("pids.max %q", got)
	}
	if got := read("cpu"+cg+"/cpu.cfs_quota_us", cg+"/cpu.max"); got != "50000" && got != "50000 100000" {
		t.Errorf("cpu quota %q", got)
	}
	if procs := read("memory"+cg+"/cgroup.procs", cg+"/cgroup.procs"); !strings.Contains(procs, strconv.Itoa(pid)) {
		t.Errorf("sandbox %d not in the cgroup (procs %q)", pid, procs)
	}
	r.must("delete", "--force", "cg")
	checkNoLeftovers(t, r.root)
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", filepath.Dir(cg))); err == nil {
		t.Errorf("cgroup left behind")
	}
}
