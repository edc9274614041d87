// Package testutil holds what Veil's integration tests share: where to put
// files that a sandbox must see at the same absolute path.
package testutil

import (
	"os"
	"path/filepath"
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
