package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/runsc/boot"
	"github.com/veil-sandbox/veil/runsc/config"
	"github.com/veil-sandbox/veil/runsc/container"
	"github.com/veil-sandbox/veil/runsc/sandbox"
	"github.com/veil-sandbox/veil/runsc/specutils"
)

// Do implements `runsc do`: run one command in a throwaway sandbox whose
// root is a host directory under the --overlay: by default its writes stay
// in the sandbox's memory and never reach the host; --overlay=none writes
// through to the host directory.
//
// The command is looked up in PATH here, by the CLI, against --root-dir
// (specutils.LookPath, which resolves symlinks inside root-dir and never
// out of it), and the sentry is handed the resolved container path as
// argv[0]. Doing it here keeps "command not found" a clear CLI error
// rather than an ENOENT from inside the sandbox.
type Do struct {
	rootDir string
	env     stringList
	cwd     string
	uid     string
	gid     string
}

func (*Do) Name() string { return "do" }
func (*Do) Synopsis() string {
	return "run a command in a new sandbox with a host directory as root (writes stay in memory unless --overlay=none)"
}
func (*Do) Usage() string {
	return "do [--root-dir DIR] [--env K=V]... [--cwd DIR] [--uid N] [--gid N] -- CMD [ARG...]\n"
}

func (c *Do) SetFlags(f *flag.FlagSet) {
	f.StringVar(&c.rootDir, "root-dir", "/", "host directory to use as the (read-only) root")
	f.Var(&c.env, "env", "K=V to put in the environment (repeatable; replaces the caller's environment)")
	f.StringVar(&c.cwd, "cwd", "", "working directory inside the sandbox (default: the caller's if it exists there, else /)")
	f.StringVar(&c.uid, "uid", "", "user ID to run as (default: the caller's)")
	f.StringVar(&c.gid, "gid", "", "group ID to run as (default: the caller's)")
}

func parseID(name, s string, def int) (uint32, error) {
	if s == "" {
		return uint32(def), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == math.MaxUint32 {
		return 0, fmt.Errorf("--%s=%s: not a valid ID", name, s)
	}
	return uint32(n), nil
}

// doArgs turns the flags and CMD into the sandbox's options.
func (c *Do) doArgs(argv []string) (*sandbox.Options, error) {
	if len(argv) == 0 {
		return nil, errors.New("do: missing command (usage: runsc do [flags] -- CMD [ARG...])")
	}
	root, err := filepath.Abs(c.rootDir)
	if err != nil {
		return nil, fmt.Errorf("--root-dir: %w", err)
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("--root-dir: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("--root-dir %s: not a directory", root)
	}
	env := os.Environ()
	if len(c.env) > 0 {
		env = nil
		for _, e := range c.env {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				return nil, fmt.Errorf("--env %q: want K=V", e)
			}
			env = append(env, e)
		}
	}
	uid, err := parseID("uid", c.uid, os.Getuid())
	if err != nil {
		return nil, err
	}
	gid, err := parseID("gid", c.gid, os.Getgid())
	if err != nil {
		return nil, err
	}
	cwd := c.cwd
	if cwd == "" {
		cwd = defaultCwd(root)
	} else if !filepath.IsAbs(cwd) {
		return nil, fmt.Errorf("--cwd %q: must be an absolute path", cwd)
	}
	exe, err := specutils.LookPath(root, argv[0], env, cwd)
	if err != nil {
		return nil, err
	}
	args := append([]string{exe}, argv[1:]...)
	return &sandbox.Options{
		RootDir: root,
		Stdio:   [3]*os.File{os.Stdin, os.Stdout, os.Stderr},
		Args: boot.Args{
			Argv:     args,
			Envv:     env,
			Cwd:      cwd,
			UID:      uid,
			GID:      gid,
			Hostname: "veil",
			Mounts: []boot.Mount{
				{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=1777"}},
			},
		},
	}, nil
}

// defaultCwd is the caller's working directory when the same path is a
// directory inside root (so `runsc do ls` lists what the caller expects
// with the default root) and not under one of the sandbox's own mounts
// (/tmp, /proc, /dev hide the host's), else "/".
func defaultCwd(root string) string {
	wd, err := os.Getwd()
	if err != nil {
		return "/"
	}
	for _, own := range []string{"/tmp", "/proc", "/dev"} {
		if wd == own || strings.HasPrefix(wd, own+"/") {
			return "/"
		}
	}
	host, err := specutils.ResolveInRoot(root, wd)
	if err != nil {
		return "/"
	}
	if fi, err := os.Stat(host); err != nil || !fi.IsDir() {
		return "/"
	}
	return wd
}

func (c *Do) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	conf := confFrom(args)
	opts, err := c.doArgs(f.Args())
	if err != nil {
		return failf("%v", err)
	}
	if container.IsTerminal(os.Stdin) && container.IsTerminal(os.Stdout) {
		// Run from a terminal: the command gets a terminal of the
		// sandbox's, relayed to this one, as runc's terminal: true.
		console, term, err := container.NewConsole(os.Stdin, os.Stdout, nil)
		if err != nil {
			return failf("%v", err)
		}
		opts.Stdio = [3]*os.File{term, term, term}
		opts.Args.Terminal = true
		s, err := sandbox.Start(conf, opts)
		term.Close()
		status := 0
		if err == nil {
			status, err = s.Wait()
		}
		// The terminal is back to normal before anything is printed.
		console.Close()
		if err != nil {
			return failf("%v", err)
		}
		return subcommands.ExitStatus(status)
	}
	return runSandbox(conf, opts)
}

// runSandbox starts the sandbox, waits for it and returns the container's
// exit status as runsc's.
func runSandbox(conf *config.Config, opts *sandbox.Options) subcommands.ExitStatus {
	s, err := sandbox.Start(conf, opts)
	if err != nil {
		return failf("%v", err)
	}
	status, err := s.Wait()
	if err != nil {
		return failf("%v", err)
	}
	return subcommands.ExitStatus(status)
}
