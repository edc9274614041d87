package specutils

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// mkroot builds a small container root:
//
//	/bin/tool        executable
//	/bin/data        not executable
//	/usr/bin -> ../bin (relative link)
//	/sbin -> /bin      (absolute link, must resolve inside the root)
//	/evil -> /../../.. (climbs; must stay at the root)
//	/bin/escape -> <outside>/secret  (absolute link to a host path)
func mkroot(t *testing.T) (root, outside string) {
	t.Helper()
	root = t.TempDir()
	outside = t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin", "tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin", "data"), nil, 0o644))
	must(os.Mkdir(filepath.Join(root, "usr"), 0o755))
	must(os.Symlink("../bin", filepath.Join(root, "usr", "bin")))
	must(os.Symlink("/bin", filepath.Join(root, "sbin")))
	must(os.Symlink("/../../..", filepath.Join(root, "evil")))
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o755))
	must(os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "bin", "escape")))
	must(os.Symlink("loop", filepath.Join(root, "loop")))
	return root, outside
}

func TestResolveInRoot(t *testing.T) {
	root, outside := mkroot(t)
	for _, tc := range []struct{ in, want string }{
		{"/bin/tool", "/bin/tool"},
		{"/usr/bin/tool", "/bin/tool"},
		{"/sbin/tool", "/bin/tool"},
		{"/evil", "/"},
		{"/evil/bin/tool", "/bin/tool"},
		{"/../../bin/./tool", "/bin/tool"},
		{"/bin/missing", "/bin/missing"},
	} {
		got, err := ResolveInRoot(root, tc.in)
		if err != nil {
			t.Errorf("ResolveInRoot(%q): %v", tc.in, err)
			continue
		}
		if want := filepath.Join(root, tc.want); got != want {
			t.Errorf("ResolveInRoot(%q) = %q, want %q", tc.in, got, want)
		}
	}
	// The link's absolute target is taken inside the root, where its
	// directories do not exist: never the host file.
	if got, err := ResolveInRoot(root, "/bin/escape"); err == nil || got == filepath.Join(outside, "secret") {
		t.Errorf("ResolveInRoot(/bin/escape) = %q, %v; want an error", got, err)
	}
	if _, err := ResolveInRoot(root, "/loop"); err == nil {
		t.Error("symlink loop resolved")
	}
	if _, err := ResolveInRoot(root, "/nodir/x"); err == nil {
		t.Error("missing intermediate directory resolved")
	}
}

func TestLookPath(t *testing.T) {
	root, _ := mkroot(t)
	for _, tc := range []struct {
		file, path, want string
	}{
		{"tool", "/nowhere:/usr/bin:/bin", "/usr/bin/tool"},
		{"tool", "/sbin", "/sbin/tool"},
		{"/any/thing", "/bin", "/any/thing"},
		{"./rel", "/bin", "./rel"},
		{"tool", "bin", "/bin/tool"}, // relative entry: from cwd "/"
	} {
		got, err := LookPath(root, tc.file, []string{"PATH=" + tc.path}, "/")
		if err != nil || got != tc.want {
			t.Errorf("LookPath(%q, PATH=%s) = %q, %v; want %q", tc.file, tc.path, got, err, tc.want)
		}
	}
	// Default PATH when the environment has none.
	if got, err := LookPath(root, "tool", nil, "/"); err != nil || got != "/usr/bin/tool" {
		t.Errorf("LookPath with default PATH = %q, %v", got, err)
	}
	for _, tc := range []struct{ file, path string }{
		{"data", "/bin"},   // not executable
		{"bin", "/"},       // a directory
		{"escape", "/bin"}, // only exists outside the root
		{"nope", "/bin"},
	} {
		if got, err := LookPath(root, tc.file, []string{"PATH=" + tc.path}, "/"); !errors.Is(err, ErrNotFound) {
			t.Errorf("LookPath(%q, PATH=%s) = %q, %v; want ErrNotFound", tc.file, tc.path, got, err)
		}
	}
	if _, err := LookPath(root, "", nil, "/"); err == nil {
		t.Error("empty command accepted")
	}
}
