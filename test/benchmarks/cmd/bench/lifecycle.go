package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Container lifecycle rows: their "native" cell is runc, the runtime Veil
// replaces, measured on the same bundle in the same run.
func init() {
	register(40, func(e *benchEnv) []bench {
		n := max(10/e.scale, 2)
		return []bench{
			{
				name: "OCI create+start+wait+delete of busybox true (native: runc)", unit: "ms",
				native: func() result {
					runc, err := exec.LookPath("runc")
					if err != nil {
						return result{err: errors.New("runc not installed")}
					}
					return lifecycle([]string{runc}, n, true)
				},
				sandbox: func(rs []string) result { return lifecycle(rs, n, false) },
			},
			{
				name: "podman run --rm busybox true (native: runc)", unit: "ms",
				native: func() result {
					runc, err := exec.LookPath("runc")
					if err != nil {
						return result{err: errors.New("runc not installed")}
					}
					return podmanRun([]string{runc}, n)
				},
				sandbox: func(rs []string) result { return podmanRun(rs, n) },
			},
		}
	})
}

// busyboxBundle makes a bundle running `true` on a busybox root.
func busyboxBundle(dir string) error {
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("busybox-static not installed: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	for _, a := range []string{"sh", "true"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return err
		}
	}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"root":       map[string]any{"path": "rootfs"},
		"process": map[string]any{"args": []string{"/bin/true"}, "cwd": "/", "env": []string{"PATH=/bin"},
			"user": map[string]any{"uid": 0, "gid": 0}},
		"mounts": []any{map[string]any{"destination": "/proc", "type": "proc", "source": "proc"}},
		"linux": map[string]any{"namespaces": []any{
			map[string]string{"type": "pid"}, map[string]string{"type": "mount"}, map[string]string{"type": "ipc"},
			map[string]string{"type": "uts"}, map[string]string{"type": "network"},
		}},
	}
	b, _ := json.Marshal(spec)
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
}

// lifecycle is the mean time of create, start, wait for exit and delete
// with runtime (argv prefix) and a --root of its own.
func lifecycle(runtime []string, n int, isRunc bool) result {
	dir, err := os.MkdirTemp("", "veil-bench-oci-")
	if err != nil {
		return result{err: err}
	}
	defer os.RemoveAll(dir)
	if err := busyboxBundle(filepath.Join(dir, "bundle")); err != nil {
		return result{err: err}
	}
	rt := append(append([]string(nil), runtime...), "--root", filepath.Join(dir, "state"))
	// Output goes to a file: a created container holds its runtime's
	// stdio, so a pipe would not close until the container ends.
	outf, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		return result{err: err}
	}
	defer outf.Close()
	do := func(args ...string) error {
		argv := append(append([]string(nil), rt...), args...)
		outf.Truncate(0)
		outf.Seek(0, 0)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = outf, outf
		err := cmd.Run()
		if err != nil {
			out, _ := os.ReadFile(outf.Name())
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	var total time.Duration
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("b%d", i)
		start := time.Now()
		if err := do("create", "--bundle", filepath.Join(dir, "bundle"), id); err != nil {
			return result{err: err}
		}
		if err := do("start", id); err != nil {
			do("delete", "--force", id)
			return result{err: err}
		}
		// runc has no wait: poll its state, as its callers do.
		if !isRunc {
			if err := do("wait", id); err != nil {
				do("delete", "--force", id)
				return result{err: err}
			}
		} else {
			for {
				argv := append(append([]string(nil), rt...), "state", id)
				out, err := exec.Command(argv[0], argv[1:]...).Output()
				if err != nil || strings.Contains(string(out), `"stopped"`) {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		if err := do("delete", id); err != nil {
			return result{err: err}
		}
		total += time.Since(start)
	}
	return result{value: float64(total.Milliseconds()) / float64(n)}
}

// podmanRun is the mean time of `podman run --rm IMAGE true` with runtime
// (a wrapper script passes its flags), storage of its own.
func podmanRun(runtime []string, n int) result {
	if _, err := exec.LookPath("podman"); err != nil {
		return result{err: errors.New("podman not installed")}
	}
	dir, err := os.MkdirTemp("", "veil-bench-podman-")
	if err != nil {
		return result{err: err}
	}
	env := append(os.Environ(), "CONTAINERS_STORAGE_CONF="+dir+"/storage.conf", "CONTAINERS_CONF="+dir+"/containers.conf")
	podman := func(args ...string) ([]byte, error) {
		cmd := exec.Command("podman", args...)
		cmd.Env = env
		return cmd.CombinedOutput()
	}
	defer func() {
		podman("system", "reset", "-f")
		os.RemoveAll(dir)
	}()
	os.WriteFile(dir+"/storage.conf", []byte("[storage]\ndriver = \"overlay\"\ngraphroot = \""+dir+"/storage\"\nrunroot = \""+dir+"/run\"\n"), 0o644)
	os.WriteFile(dir+"/containers.conf", []byte("[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\nnetns = \"none\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \""+dir+"/events.log\"\ntmp_dir = \""+dir+"/tmp\"\n"), 0o644)
	wrapper := dir + "/runtime"
	os.WriteFile(wrapper, []byte("#!/bin/sh\nexec "+strings.Join(runtime, " ")+" --root="+dir+"/state \"$@\"\n"), 0o755)
	if err := busyboxBundle(dir + "/img"); err != nil {
		return result{err: err}
	}
	imp := exec.Command("sh", "-c", "tar -C "+dir+"/img/rootfs -c . | podman import -q - localhost/veil-bench:latest")
	imp.Env = env
	if out, err := imp.CombinedOutput(); err != nil {
		return result{err: fmt.Errorf("podman import: %v: %s", err, out)}
	}
	var total time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if out, err := podman("--runtime", wrapper, "run", "--rm", "localhost/veil-bench:latest", "/bin/true"); err != nil {
			msg := strings.TrimSpace(string(out))
			if j := strings.LastIndex(msg, "\n"); j >= 0 {
				msg = msg[j+1:]
			}
			return result{err: fmt.Errorf("podman run: %v: %s", err, msg)}
		}
		total += time.Since(start)
	}
	return result{value: float64(total.Milliseconds()) / float64(n)}
}
