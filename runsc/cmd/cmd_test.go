package cmd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/veil-sandbox/veil/runsc/container"
	"github.com/veil-sandbox/veil/runsc/specutils"
)

// tinyRoot makes a root with an executable /bin/app and /usr/bin -> /bin.
func tinyRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "app"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/bin", filepath.Join(root, "usr", "bin")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestDoArgs(t *testing.T) {
	root := tinyRoot(t)
	c := &Do{rootDir: root, env: stringList{"PATH=/usr/bin", "A=b=c"}, cwd: "/bin", uid: "1000", gid: "100"}
	opts, err := c.doArgs([]string{"app", "-x"})
	if err != nil {
		t.Fatal(err)
	}
	a := opts.Args
	if !slices.Equal(a.Argv, []string{"/usr/bin/app", "-x"}) {
		t.Errorf("Argv = %q", a.Argv)
	}
	if !slices.Equal(a.Envv, []string{"PATH=/usr/bin", "A=b=c"}) {
		t.Errorf("Envv = %q: --env must replace the caller's environment", a.Envv)
	}
	// The root is writable; --overlay decides whether writes reach the host.
	if a.Cwd != "/bin" || a.UID != 1000 || a.GID != 100 || a.RootReadOnly || opts.RootDir != root {
		t.Errorf("args = %+v", a)
	}
	if len(a.Mounts) != 1 || a.Mounts[0].Destination != "/tmp" || a.Mounts[0].Type != "tmpfs" {
		t.Errorf("Mounts = %+v, want a tmpfs at /tmp", a.Mounts)
	}
	if opts.Stdio != [3]*os.File{os.Stdin, os.Stdout, os.Stderr} {
		t.Error("stdio is not the caller's")
	}
}

func TestDoArgsDefaults(t *testing.T) {
	root := tinyRoot(t)
	t.Setenv("VEIL_DO_TEST", "1")
	t.Setenv("PATH", "/bin")
	opts, err := (&Do{rootDir: root}).doArgs([]string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	a := opts.Args
	if !slices.Contains(a.Envv, "VEIL_DO_TEST=1") {
		t.Error("caller's environment not passed without --env")
	}
	// The test's working directory does not exist inside root.
	if a.Cwd != "/" {
		t.Errorf("Cwd = %q, want /", a.Cwd)
	}
	if a.UID != uint32(os.Getuid()) || a.GID != uint32(os.Getgid()) {
		t.Errorf("UID/GID = %d/%d, want the caller's", a.UID, a.GID)
	}
	if _, err := (&Do{rootDir: root}).doArgs([]string{"missing"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing command: %v", err)
	}
	if _, err := (&Do{rootDir: root, uid: "4294967295"}).doArgs([]string{"app"}); err == nil {
		t.Error("uid -1 accepted")
	}
}

func TestRunArgs(t *testing.T) {
	bundle := t.TempDir()
	root := tinyRoot(t)
	config := `{"ociVersion": "1.0.2", "root": {"path": "` + root + `", "readonly": true}, "hostname": "h1",
	  "process": {"args": ["app", "1"], "cwd": "/", "env": ["PATH=/usr/bin"], "user": {"uid": 5, "gid": 6, "additionalGids": [7, 8]}},
	  "mounts": [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}]}`
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := specutils.ReadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := container.SandboxOptions(spec, "c1", [3]*os.File{os.Stdin, os.Stdout, os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	a := opts.Args
	if !slices.Equal(a.Argv, []string{"/usr/bin/app", "1"}) || a.Hostname != "h1" || a.UID != 5 || a.GID != 6 ||
		!slices.Equal(a.ExtraGIDs, []uint32{7, 8}) || !a.RootReadOnly || opts.RootDir != root {
		t.Errorf("args = %+v", a)
	}
	if len(a.Mounts) != 1 || !a.Mounts[0].ReadOnly {
		t.Errorf("Mounts = %+v, want the read-only tmpfs", a.Mounts)
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "abc-1.2_3+x", strings.Repeat("x", 1024)} {
		if err := ValidateID(id); err != nil {
			t.Errorf("ValidateID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "-a", "a/b", "a b", strings.Repeat("x", 1025)} {
		if err := ValidateID(id); err == nil {
			t.Errorf("ValidateID(%q) accepted", id)
		}
	}
}
