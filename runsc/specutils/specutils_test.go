package specutils

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodSpec = `{
  "ociVersion": "1.0.2",
  "process": {"args": ["sh", "-c", "true"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 1, "gid": 2}},
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "box",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "ro", "size=1m"]},
    {"destination": "/data", "type": "none", "source": "/", "options": ["rbind", "ro"]}
  ],
  "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}
}`

func writeBundle(t *testing.T, config string, mkRoot bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if mkRoot {
		if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadSpec(t *testing.T) {
	dir := writeBundle(t, goodSpec, true)
	spec, err := ReadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Root.Path != filepath.Join(dir, "rootfs") {
		t.Errorf("root path %q not made absolute from the bundle", spec.Root.Path)
	}
	m := Mounts(spec)
	if len(m) != 3 || m[0].Type != "proc" || m[1].Destination != "/tmp" || !m[1].ReadOnly || m[0].ReadOnly ||
		m[2].Type != "bind" || m[2].Source != "/" || !m[2].ReadOnly {
		t.Errorf("Mounts = %+v", m)
	}
	if mp, rp := MaskedPaths(spec), ReadonlyPaths(spec); len(mp) != 1 || mp[0] != "/proc/kcore" || len(rp) != 1 || rp[0] != "/proc/sys" {
		t.Errorf("masked %v, read-only %v", mp, rp)
	}
}

func TestReadSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		mkRoot       bool
		want         string
	}{
		{"malformed", `{"ociVersion": "1.0.2", "process": `, true, "malformed config.json"},
		{"wrong type", `{"ociVersion": 1}`, true, "malformed config.json"},
		{"missing rootfs", goodSpec, false, "root.path"},
		{"no version", `{"root": {"path": "rootfs"}}`, true, "ociVersion is missing"},
		{"version 2", strings.Replace(goodSpec, "1.0.2", "2.0.0", 1), true, "ociVersion \"2.0.0\""},
		{"no process", `{"ociVersion": "1.0.0", "root": {"path": "rootfs"}}`, true, "process is missing"},
		{"no root", `{"ociVersion": "1.0.0", "process": {"args": ["a"], "cwd": "/"}}`, true, "root.path is missing"},
		{"empty args", strings.Replace(goodSpec, `["sh", "-c", "true"]`, `[]`, 1), true, "process.args is empty"},
		{"relative cwd", strings.Replace(goodSpec, `"cwd": "/"`, `"cwd": "x"`, 1), true, "process.cwd \"x\" is not absolute"},
		{"bad env", strings.Replace(goodSpec, `"PATH=/bin"`, `"PATH"`, 1), true, "process.env entry \"PATH\""},
		{"bind relative source", strings.Replace(goodSpec, `"source": "/"`, `"source": "x"`, 1), true, `bind mount source "x" is not an absolute path`},
		{"bind missing source", strings.Replace(goodSpec, `"source": "/"`, `"source": "/nonexistent/veil"`, 1), true, "mounts[2] (/data): bind mount source"},
		{"bind of a device", strings.Replace(goodSpec, `"source": "/"`, `"source": "/dev/null"`, 1), true, "neither a directory nor a regular file"},
		{"odd mount", strings.Replace(goodSpec, `"type": "proc"`, `"type": "nfs"`, 1), true, `mount type "nfs" is not supported`},
		{"mqueue", strings.Replace(goodSpec, `"type": "proc"`, `"type": "mqueue"`, 1), false, ""},
		{"relative masked path", strings.Replace(goodSpec, `["/proc/kcore"]`, `["proc/kcore"]`, 1), true, `linux.maskedPaths[0] "proc/kcore" is not absolute`},
		{"relative dest", strings.Replace(goodSpec, `"destination": "/proc"`, `"destination": "proc"`, 1), true, "mounts[0]: destination"},
		{"join ipc ns", strings.Replace(goodSpec, `"hostname"`, `"linux": {"namespaces": [{"type": "ipc", "path": "/proc/1/ns/ipc"}]}, "hostname"`, 1), true, "joining an existing ipc namespace"},
		{"hooks", strings.Replace(goodSpec, `"hostname"`, `"hooks": {"prestart": [{"path": "true"}]}, "hostname"`, 1), true, "hooks.prestart[0].path \"true\" is not absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSpec(writeBundle(t, tc.config, tc.mkRoot))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
	if _, err := ReadSpec(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no config.json") {
		t.Errorf("empty bundle: %v", err)
	}
}

func TestRootPathNotDir(t *testing.T) {
	dir := writeBundle(t, goodSpec, false)
	os.WriteFile(filepath.Join(dir, "rootfs"), nil, 0o644)
	if _, err := ReadSpec(dir); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("error %v, want 'not a directory'", err)
	}
}

func TestEnv(t *testing.T) {
	env := []string{"A=1", "PATH=/x", "B", "PATH=/y"}
	if v, ok := Env(env, "PATH"); !ok || v != "/y" {
		t.Errorf("Env PATH = %q, %v", v, ok)
	}
	if _, ok := Env(env, "B"); ok {
		t.Error("entry without = matched")
	}
}
