package specutils

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxSymlinks bounds symlink expansion, as Linux's ELOOP limit does.
const maxSymlinks = 40

// DefaultPath is the PATH used when the application's environment has none
// (the value most libcs fall back to).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ErrNotFound is returned by LookPath when no PATH entry holds the file.
var ErrNotFound = errors.New("executable file not found in $PATH")

// ResolveInRoot returns the host path that p (a path inside the container,
// taken relative to "/" of root) names, following symlinks as the container
// would see them: an absolute link target and any ".." stay inside root.
// The last component need not exist; any missing earlier one is an error.
func ResolveInRoot(root, p string) (string, error) {
	// cur is the resolved container path so far, always clean and
	// absolute; rest are the components still to walk.
	cur := "/"
	rest := strings.Split(p, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		host := filepath.Join(root, next)
		fi, err := os.Lstat(host)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && len(rest) == 0 {
				return host, nil
			}
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		links++
		if links > maxSymlinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(root, cur), nil
}

// LookPath finds file the way execvp would inside the container whose
// root directory is root: a name with a slash is returned as is (the
// sentry resolves it against cwd), otherwise each entry of the PATH in env
// is tried in order (an empty or relative entry is taken from cwd) and the
// first regular file with an execute bit wins. The result is a container
// path, not a host path, and never resolves outside root.
func LookPath(root, file string, env []string, cwd string) (string, error) {
	if file == "" {
		return "", errors.New("empty command")
	}
	if strings.Contains(file, "/") {
		return file, nil
	}
	pathEnv, ok := Env(env, "PATH")
	if !ok {
		pathEnv = DefaultPath
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		if !path.IsAbs(dir) {
			dir = path.Join(cwd, dir)
		}
		cand := path.Join(dir, file)
		host, err := ResolveInRoot(root, cand)
		if err != nil {
			continue
		}
		fi, err := os.Stat(host)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		return cand, nil
	}
	return "", fmt.Errorf("%q: %w", file, ErrNotFound)
}
