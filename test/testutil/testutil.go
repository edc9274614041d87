// Package testutil holds what Veil's integration tests share: where to put
// files that a sandbox must see at the same absolute path.
package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// SandboxShadowed are the host paths that `runsc do` covers with the
// sandbox's own mounts: a file below them is not visible inside.
var SandboxShadowed = []string{"/tmp", "/proc", "/dev"}

// IsShadowed reports whether host path p is hidden inside a sandbox.
func IsShadowed(p string) bool {
	p = filepath.Clean(p)
	for _, s := range SandboxShadowed {
		if p == s || strings.HasPrefix(p, s+"/") {
			return true
		}
	}
	return false
}

// VisibleDir returns a directory for files that programs in a sandbox must
// see at the same absolute path: preferred (inside the repository) unless
// that is shadowed in the sandbox (a checkout under /tmp), else a fresh
// directory under /var/tmp named after name.
func VisibleDir(preferred, name string) (string, error) {
	if abs, err := filepath.Abs(preferred); err == nil && !IsShadowed(abs) {
		return abs, os.MkdirAll(abs, 0o755)
	}
	return os.MkdirTemp("/var/tmp", "veil-"+name+"-")
}

// RepoRoot finds the repository by walking up from the working directory
// to go.mod, so tests and tools work from any directory go picks.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Runsc returns <repo>/bin/runsc, building it first if it is missing. The
// build goes to a name of this process's own and is renamed into place, so
// test packages that go test runs in parallel never see a half-written
// binary.
func Runsc(repo string) (string, error) {
	bin := filepath.Join(repo, "bin", "runsc")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	cmd := exec.Command(gobin, "build", "-o", tmp, "./runsc")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./runsc: %v\n%s", err, out)
	}
	return bin, os.Rename(tmp, bin)
}
