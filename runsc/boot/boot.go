package boot

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/host"
	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/platform/ptrace"
	"github.com/veil-sandbox/veil/platform/systrap"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/memory"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/syscalls/linux"
)

// forwardedSignals reach the container's init when the sentry gets them
// (runsc forwards them from the user's shell).
var forwardedSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// Run is the sentry: it builds the sandbox's kernel, confines itself with
// confine once nothing more needs the host's file system, runs the init
// process to completion and returns its shell-style status (128+N for a
// death by signal N).
func Run(args *Args, confine func() error) int {
	logger := log.New(io.Discard, "", 0)
	if args.Debug {
		logger = log.New(os.Stderr, "sentry: ", log.LstdFlags|log.Lmicroseconds)
	}
	status, err := run(args, confine, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "veil: %v\n", err)
		return 128
	}
	return status
}

func run(args *Args, confine func() error, logger *log.Logger) (int, error) {
	if len(args.Argv) == 0 {
		return 0, fmt.Errorf("no command to run")
	}
	mf, err := memory.New()
	if err != nil {
		return 0, fmt.Errorf("creating the memory file: %w", err)
	}
	plat, err := newPlatform(args.Platform, mf)
	if err != nil {
		return 0, err
	}
	cfg := kernel.Config{
		Platform:   plat,
		MemoryFile: mf,
		Syscalls:   linux.Dispatch,
		Hostname:   args.Hostname,
		Log:        logger,
		NumCPU:     runtime.NumCPU(),
	}
	if args.Strace {
		cfg.Strace = os.Stderr
	}
	k := kernel.New(cfg)
	ctx := context.Background()
	v, root, err := buildMounts(ctx, args, mf, k)
	if err != nil {
		return 0, err
	}
	// Nothing below touches the host file system by name.
	if err := confine(); err != nil {
		return 0, fmt.Errorf("confining the sentry: %w", err)
	}

	k.SetVFS(v)

	creds := auth.NewUser(auth.KUID(args.UID), auth.KGID(args.GID), toKGIDs(args.ExtraGIDs))
	cwd := root
	if args.Cwd != "" && args.Cwd != "/" {
		vd, err := v.GetDentryAt(ctx, &vfs.PathOperation{Root: root, Start: root, Path: args.Cwd, FollowFinalSymlink: true})
		if err != nil {
			return 0, fmt.Errorf("working directory %q: %w", args.Cwd, err)
		}
		cwd = vd
	}
	fdt := vfs.NewFDTable()
	if err := installStdio(ctx, fdt, args.StdioFDs); err != nil {
		return 0, err
	}
	fs := kernel.NewTaskFS(fdt, vfs.NewFSContext(root, cwd, 0o022))
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	if _, err := k.CreateInit(kernel.InitArgs{
		Argv:  args.Argv,
		Envv:  args.Envv,
		Creds: creds,
		FS:    fs,
		Path:  args.Argv[0],
	}); err != nil {
		return 0, fmt.Errorf("starting %s: %w", args.Argv[0], err)
	}
	for {
		select {
		case s := <-sigs:
			if tg := k.Init(); tg != nil {
				tg.SendSignal(&arch.SignalInfo{Signo: int32(s.(unix.Signal)), Code: arch.SI_USER})
			}
		case <-k.Done():
			st := k.Wait()
			return st.ShellStatus(), nil
		}
	}
}

func toKGIDs(ids []uint32) []auth.KGID {
	out := make([]auth.KGID, len(ids))
	for i, id := range ids {
		out[i] = auth.KGID(id)
	}
	return out
}

func newPlatform(name string, mf *memory.File) (platform.Platform, error) {
	switch name {
	case "", "ptrace":
		p, err := ptrace.New(mf.FD())
		if err != nil {
			return nil, fmt.Errorf("starting the ptrace platform: %w", err)
		}
		return p, nil
	case "systrap":
		p, err := systrap.New(mf.FD())
		if err != nil {
			return nil, fmt.Errorf("starting the systrap platform: %w", err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("platform %q is not available", name)
}

// installStdio makes the donated host FDs the init process's 0, 1 and 2.
func installStdio(ctx context.Context, fdt *vfs.FDTable, fds [3]int) error {
	for i, hfd := range fds {
		if hfd < 0 {
			continue
		}
		file, err := host.NewFD(hfd)
		if err != nil {
			return fmt.Errorf("stdio FD %d: %w", i, err)
		}
		err = fdt.NewFDAt(ctx, int32(i), file, vfs.FDFlags{}, 1024)
		file.DecRef(ctx)
		if err != nil {
			return err
		}
	}
	return nil
}
