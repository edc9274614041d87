package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"sync"

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
// death by signal N). With args.Container, it is a container's sandbox:
// set-up errors go to the ready pipe, the init process runs when a start
// request arrives on the control socket, and the status is also written
// to the exit file.
func Run(args *Args, confine func() error) int {
	logger := log.New(io.Discard, "", 0)
	if args.Debug {
		logger = log.New(os.Stderr, "sentry: ", log.LstdFlags|log.Lmicroseconds)
	}
	var ready *os.File
	if c := args.Container; c != nil {
		ready = os.NewFile(uintptr(c.ReadyFD), "ready")
	}
	status, err := run(args, confine, logger, ready)
	if err != nil {
		if ready != nil {
			// runsc create reports it; the sentry's own stderr may be a
			// log nobody reads.
			fmt.Fprintf(ready, "%v", err)
			ready.Close()
		}
		fmt.Fprintf(os.Stderr, "veil: %v\n", err)
		status = 128
	}
	recordExit(args, status)
	return status
}

var recordOnce sync.Once

// recordExit writes a container's shell-style status to its exit file,
// once: as soon as init's status is known and before init's waiters hear
// it, so that whoever `runsc wait` answered finds the container stopped.
func recordExit(args *Args, status int) {
	recordOnce.Do(func() {
		if c := args.Container; c != nil && c.ExitFD >= 0 {
			f := os.NewFile(uintptr(c.ExitFD), "exit")
			fmt.Fprintf(f, "%d\n", status)
			f.Close()
		}
	})
}

// run returns an error only while the sandbox is being set up; once ready
// has been closed, failures become the exit status.
func run(args *Args, confine func() error, logger *log.Logger, ready *os.File) (int, error) {
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
	dumpOnSignal(k)
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

	creds := processCreds(args.UID, args.GID, args.ExtraGIDs, args.Caps, args.NoNewPrivs)
	ls, err := processLimits(args.Rlimits)
	if err != nil {
		return 0, err
	}
	cwd := root
	if args.Cwd != "" && args.Cwd != "/" {
		vd, err := v.GetDentryAt(ctx, &vfs.PathOperation{Root: root, Start: root, Path: args.Cwd, FollowFinalSymlink: true})
		if err != nil {
			return 0, fmt.Errorf("working directory %q: %w", args.Cwd, err)
		}
		cwd = vd
	}
	fdt := vfs.NewFDTable()
	var tty *kernel.TTY
	if args.Terminal {
		// The three are copies of one host terminal.
		unix.Close(args.StdioFDs[1])
		unix.Close(args.StdioFDs[2])
		if tty, err = installTerminal(ctx, v, root, fdt, args.StdioFDs[0], creds); err != nil {
			return 0, err
		}
		k.SetConsole(tty)
	} else if err := installStdio(ctx, fdt, args.StdioFDs); err != nil {
		return 0, err
	}
	if err := installFDs(ctx, fdt, 3, args.PreservedFDs); err != nil {
		return 0, fmt.Errorf("preserved FDs: %w", err)
	}
	umask := uint32(0o022)
	if args.Umask != nil {
		umask = *args.Umask & 0o777
	}
	fs := kernel.NewTaskFS(fdt, vfs.NewFSContext(root, cwd, umask))
	sigs := make(chan os.Signal, 16)
	for _, sig := range forwardedSignals {
		// A terminal's own window size changes signal its foreground
		// group; runsc's SIGWINCH is then only its host terminal's.
		if !(args.Terminal && sig == unix.SIGWINCH) {
			signal.Notify(sigs, sig)
		}
	}
	startInit := func() error {
		if _, err := k.CreateInit(kernel.InitArgs{
			Argv:   args.Argv,
			Envv:   args.Envv,
			Creds:  creds,
			FS:     fs,
			Limits: ls,
			Path:   args.Argv[0],
			TTY:    tty,
		}); err != nil {
			return fmt.Errorf("starting %s: %w", args.Argv[0], err)
		}
		return nil
	}
	if args.Container == nil {
		if err := startInit(); err != nil {
			return 0, err
		}
		return waitInit(k, sigs), nil
	}

	// A container: serve the control socket, say we are ready, and wait
	// for start (or for the end before it).
	started := make(chan error, 1)
	srv := &controlServer{
		k: k, v: v, root: root, logger: logger,
		beforeStart: make(chan int, 1),
		recorded:    make(chan struct{}),
		start:       startInit,
		onStarted:   func(err error) { started <- err },
	}
	go srv.serve(args.Container.ControlFD)
	if args.Container.Detach {
		// The setting is per thread, and set on the first one only.
		if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, 0, 0, 0, 0); err != nil {
			return 0, fmt.Errorf("clearing the parent-death signal: %w", err)
		}
	}
	// One zero byte: ready (a crash closes the pipe with nothing).
	ready.Write([]byte{0})
	ready.Close()
	select {
	case err := <-started:
		if err != nil {
			fmt.Fprintf(os.Stderr, "veil: %v\n", err)
			// As a shell reports a command it could not run.
			return 127, nil
		}
	case sig := <-srv.beforeStart:
		return 128 + sig, nil
	case s := <-sigs:
		return 128 + int(s.(unix.Signal)), nil
	}
	status := waitInit(k, sigs)
	recordExit(args, status)
	close(srv.recorded)
	srv.drainWaiters()
	return status, nil
}

// waitInit forwards signals the sentry receives to init until the sandbox
// ends, and returns init's shell-style status.
func waitInit(k *kernel.Kernel, sigs chan os.Signal) int {
	for {
		select {
		case s := <-sigs:
			if tg := k.Init(); tg != nil {
				tg.SendSignal(&arch.SignalInfo{Signo: int32(s.(unix.Signal)), Code: arch.SI_USER})
			}
		case <-k.Done():
			st := k.Wait()
			return st.ShellStatus()
		}
	}
}

// DumpSignal makes the sentry write every task's state and its goroutine
// stacks to its stderr (the debug log under --debug-log): `kill -PWR` of
// the runsc boot process shows where a sandbox that makes no progress is
// stuck. runsc forwards no SIGPWR to the container.
const DumpSignal = unix.SIGPWR

func dumpOnSignal(k *kernel.Kernel) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, DumpSignal)
	go func() {
		for range ch {
			k.DumpTasks(os.Stderr)
		}
	}()
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
	case "", "systrap":
		p, err := systrap.New(mf.FD())
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, systrap.ErrUnsupported) {
			return nil, fmt.Errorf("starting the systrap platform: %w", err)
		}
		fmt.Fprintf(os.Stderr, "veil: %v; using the ptrace platform\n", err)
		fallthrough
	case "ptrace":
		p, err := ptrace.New(mf.FD())
		if err != nil {
			return nil, fmt.Errorf("starting the ptrace platform: %w", err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("platform %q is not available", name)
}

// installStdio makes the donated host FDs the init process's 0, 1 and 2
// (a negative one is skipped).
func installStdio(ctx context.Context, fdt *vfs.FDTable, fds [3]int) error {
	return installFDs(ctx, fdt, 0, fds[:])
}

// installFDs installs host FDs as first, first+1, ... in fdt. Each FD is
// owned by fdt from the call on, or closed if it could not be installed,
// also when an earlier one failed; negative ones are skipped.
func installFDs(ctx context.Context, fdt *vfs.FDTable, first int32, fds []int) error {
	var firstErr error
	type installed struct {
		hfd  int
		file *vfs.FileDescription
	}
	var done []installed
	defer func() {
		for _, d := range done {
			d.file.DecRef(ctx)
		}
	}()
	for i, hfd := range fds {
		if hfd < 0 {
			continue
		}
		if firstErr != nil {
			unix.Close(hfd)
			continue
		}
		var file *vfs.FileDescription
		// Host FDs that are one description (2>&1 onto a file) stay one.
		for _, d := range done {
			if host.SameDescription(d.hfd, hfd) {
				unix.Close(hfd)
				file = d.file
				file.IncRef()
				hfd = d.hfd
				break
			}
		}
		if file == nil {
			var err error
			if file, err = host.NewFD(hfd); err != nil {
				unix.Close(hfd)
				firstErr = fmt.Errorf("FD %d: %w", first+int32(i), err)
				continue
			}
		}
		done = append(done, installed{hfd, file})
		if err := fdt.NewFDAt(ctx, first+int32(i), file, vfs.FDFlags{}, 1024); err != nil {
			firstErr = err
		}
	}
	return firstErr
}
