// Package sandbox owns the processes of one sandbox as seen from the runsc
// CLI: it starts the gofer and the sentry (`runsc gofer`, `runsc boot`, both
// re-executions of runsc itself), hands them their sockets, stdio and
// arguments, forwards signals to the sentry, waits for it, and makes sure
// nothing outlives it.
//
// The sentry is started in new mount, PID, IPC, UTS and network
// namespaces, in its own session (so a terminal's job-control signals reach
// only runsc, which forwards them), with PR_SET_PDEATHSIG so that it dies
// with runsc. Its arguments travel as JSON on an inherited pipe (see
// EncodeArgs), which keeps the application's argv and environment out of
// the host's process listing and free of argv size limits.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer"
	"github.com/veil-sandbox/veil/runsc/boot"
	"github.com/veil-sandbox/veil/runsc/config"
)

// Inherited FD numbers in `runsc boot`: exec.Cmd.ExtraFiles start at 3.
const (
	// BootArgsFD carries the JSON-encoded boot.Args, then EOF.
	BootArgsFD = 3
	// bootStdioFD is the first of the application's stdin, stdout, stderr.
	bootStdioFD = 4
	// bootGoferFD is the first gofer socket (the root's).
	bootGoferFD = 7
)

// Inherited FD numbers in `runsc gofer`.
const (
	// GoferArgsFD carries the JSON-encoded GoferArgs, then EOF.
	GoferArgsFD = 3
	// goferMountFD is the first mount socket.
	goferMountFD = 4
)

// GoferMount is one directory the gofer serves on one socket.
type GoferMount struct {
	// Source is the host directory (for the root: the rootfs).
	Source string
	// ReadOnly makes the gofer refuse every change with EROFS.
	ReadOnly bool
	// FD is the socket's FD number in the gofer.
	FD int
}

// GoferArgs is what `runsc gofer` reads from GoferArgsFD.
type GoferArgs struct {
	Mounts []GoferMount
}

// Options describe the sandbox to start.
type Options struct {
	// Args is the sentry's configuration; runsc fills in the FD fields,
	// Platform, Strace, Debug and Overlay itself.
	Args boot.Args
	// RootDir is the host directory served as the container's root.
	RootDir string
	// Stdio are the application's stdin, stdout and stderr.
	Stdio [3]*os.File
	// Preserved become the init process's FDs 3, 4, ... (--preserve-fds).
	Preserved []*os.File
	// ID names the sandbox in log file names ("" for runsc do).
	ID string
	// Container, when set, starts the sandbox of a container (runsc
	// create): see ContainerOptions.
	Container *ContainerOptions
}

// ContainerOptions are the parts of a container's sandbox that runsc do
// does without.
type ContainerOptions struct {
	// ControlFD is the listening control socket; the sentry gets a copy.
	ControlFD int
	// ExitFile receives the exit status from the sentry (may be nil).
	ExitFile *os.File
	// Detach: the caller exits once the sandbox is ready, leaving it
	// running (runsc create). The sentry then outlives its parent (it
	// clears its parent-death signal when ready) and the gofer never had
	// one: it ends when the sentry's end of its sockets closes.
	Detach bool
	// NetNS, when set, is a network namespace (a path) the sentry joins
	// instead of getting a new one.
	NetNS string
	// OnStart is called with each child's PID as soon as it is started
	// ("gofer", "sentry"), so that a caller killed half-way has recorded
	// what to clean up.
	OnStart func(component string, pid int) error
	// Log is the stderr of the children (nil: /dev/null), unless
	// --debug-log names a directory.
	Log *os.File
}

// Sandbox is a started sandbox. Its methods are safe for one goroutine.
type Sandbox struct {
	conf  *config.Config
	ctr   *ContainerOptions
	gofer *exec.Cmd
	boot  *exec.Cmd
	// ready is the read end of the sentry's ready pipe (containers).
	ready *os.File
}

// BootPID and GoferPID are the host PIDs of the sentry and the gofer.
func (s *Sandbox) BootPID() int  { return s.boot.Process.Pid }
func (s *Sandbox) GoferPID() int { return s.gofer.Process.Pid }

// executable is what runsc re-executes as gofer and sentry. Tests point it
// at a test binary.
var executable = "/proc/self/exe"

// Start starts the gofer and the sentry. On error nothing is left running.
func Start(conf *config.Config, opts *Options) (_ *Sandbox, err error) {
	s := &Sandbox{conf: conf, ctr: opts.Container}
	defer func() {
		if err != nil {
			s.kill()
		}
	}()

	// One socket pair per gofer-served mount.
	args := opts.Args
	gmounts := goferMounts(opts.RootDir, conf.Overlay, &args)
	var sentryEnds, goferEnds []*os.File
	defer func() {
		// The children hold their own copies once started.
		for _, f := range append(sentryEnds, goferEnds...) {
			f.Close()
		}
	}()
	for i := range gmounts {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("creating gofer socket: %w", err)
		}
		sentryEnds = append(sentryEnds, os.NewFile(uintptr(fds[0]), "gofer-sentry-end"))
		goferEnds = append(goferEnds, os.NewFile(uintptr(fds[1]), "gofer-gofer-end"))
		gmounts[i].FD = goferMountFD + i
	}

	if err := s.startGofer(&GoferArgs{Mounts: gmounts}, goferEnds); err != nil {
		return nil, err
	}

	args.Platform = conf.Platform
	args.Strace = conf.Strace
	args.Overlay = conf.Overlay
	// Debug output of the sentry goes only to --debug-log; without it,
	// errors still reach runsc's stderr but debug chatter is dropped.
	args.Debug = conf.Debug && conf.DebugLogDir != ""
	args.StdioFDs = [3]int{bootStdioFD, bootStdioFD + 1, bootStdioFD + 2}
	args.GoferFDs = nil
	for i := range sentryEnds {
		args.GoferFDs = append(args.GoferFDs, bootGoferFD+i)
	}
	files := []*os.File{nil /* args pipe */}
	for _, f := range opts.Stdio {
		if f == nil {
			return nil, errors.New("sandbox: missing stdio file")
		}
		files = append(files, f)
	}
	files = append(files, sentryEnds...)
	if c := opts.Container; c != nil {
		rd, wr, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("starting sentry: %w", err)
		}
		s.ready = rd
		defer wr.Close()
		ctl := os.NewFile(uintptr(c.ControlFD), "control")
		ca := &boot.ContainerArgs{ControlFD: bootStdioFD + 3 + len(sentryEnds), ReadyFD: bootStdioFD + 4 + len(sentryEnds), ExitFD: -1, Detach: c.Detach}
		files = append(files, ctl, wr)
		if c.ExitFile != nil {
			ca.ExitFD = bootStdioFD + 5 + len(sentryEnds)
			files = append(files, c.ExitFile)
		}
		args.Container = ca
	}
	args.PreservedFDs = nil
	for _, f := range opts.Preserved {
		args.PreservedFDs = append(args.PreservedFDs, bootStdioFD-1+len(files))
		files = append(files, f)
	}
	if err := s.startBoot(&args, files); err != nil {
		return nil, err
	}
	return s, nil
}

// WaitReady waits until the sentry of a container reports that it is
// ready to start, or why it failed.
func (s *Sandbox) WaitReady() error {
	msg, err := io.ReadAll(s.ready)
	s.ready.Close()
	if err != nil {
		return fmt.Errorf("waiting for the sandbox: %w", err)
	}
	if len(msg) == 1 && msg[0] == 0 {
		return nil
	}
	if len(msg) > 0 {
		return errors.New(string(msg))
	}
	// The sentry died before saying anything.
	_ = s.boot.Wait()
	return fmt.Errorf("the sandbox exited during set-up (status %d); see --debug-log", ExitStatus(s.boot.ProcessState.Sys().(syscall.WaitStatus)))
}

// Release forgets the children without waiting for them (runsc create
// exits leaving them running; whoever inherits them reaps them).
func (s *Sandbox) Release() {
	_ = s.boot.Process.Release()
	_ = s.gofer.Process.Release()
}

// Kill ends the sandbox: what Start left running after an error of the
// caller's.
func (s *Sandbox) Kill() { s.kill() }

// childFlags are the global flags passed on to a re-executed runsc. The
// children log to their stderr, not to runsc's --log, and log debug output
// only when it has somewhere of its own to go (--debug-log).
func (s *Sandbox) childFlags() []string {
	c := *s.conf
	c.LogFile = ""
	if c.DebugLogDir == "" {
		c.Debug = false
	}
	return c.Flags()
}

// logFile opens the stderr of a child: a file in --debug-log (renamed to
// carry the child's PID once it is known, see nameLog), else runsc's own
// stderr.
func (s *Sandbox) logFile(component string) (*os.File, error) {
	if s.conf.DebugLogDir == "" {
		if s.ctr != nil {
			// A container's stderr belongs to the container.
			if s.ctr.Log != nil {
				return s.ctr.Log, nil
			}
			return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		}
		return os.Stderr, nil
	}
	if err := os.MkdirAll(s.conf.DebugLogDir, 0o755); err != nil {
		return nil, fmt.Errorf("--debug-log: %w", err)
	}
	name := filepath.Join(s.conf.DebugLogDir, fmt.Sprintf("runsc.%s.starting.%d.%d.log", component, os.Getpid(), time.Now().UnixNano()))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--debug-log: %w", err)
	}
	return f, nil
}

// nameLog gives a started child's log its final name: one file per
// component and PID.
func (s *Sandbox) nameLog(f *os.File, component string, pid int) {
	if s.conf.DebugLogDir == "" {
		if f != os.Stderr && (s.ctr == nil || f != s.ctr.Log) {
			f.Close()
		}
		return
	}
	final := filepath.Join(s.conf.DebugLogDir, fmt.Sprintf("runsc.%s.%d.log", component, pid))
	_ = os.Rename(f.Name(), final)
	f.Close()
}

func (s *Sandbox) startGofer(ga *GoferArgs, socks []*os.File) error {
	rd, wr, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting gofer: %w", err)
	}
	defer rd.Close()
	logf, err := s.logFile("gofer")
	if err != nil {
		wr.Close()
		return err
	}
	cmd := exec.Command(executable)
	cmd.Args = append(append([]string{"runsc"}, s.childFlags()...), "gofer", "--args-fd="+strconv.Itoa(GoferArgsFD))
	cmd.Env = childEnv()
	if s.conf.DebugSeccompLog {
		cmd.Env = append(cmd.Env, gofer.SeccompLogEnv+"=1")
	}
	cmd.ExtraFiles = append([]*os.File{rd}, socks...)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// gofer.Confine needs a mount namespace of its own.
		Cloneflags: gofer.CloneFlags,
		Setsid:     true,
		Pdeathsig:  syscall.SIGKILL,
	}
	if s.ctr != nil && s.ctr.Detach {
		cmd.SysProcAttr.Pdeathsig = 0
	}
	if err := cmd.Start(); err != nil {
		wr.Close()
		s.dropLog(logf)
		return startError("gofer", err)
	}
	s.gofer = cmd
	s.nameLog(logf, "gofer", cmd.Process.Pid)
	if err := s.onStart("gofer", cmd.Process.Pid); err != nil {
		wr.Close()
		return err
	}
	return sendJSON(wr, ga, "gofer")
}

func (s *Sandbox) startBoot(args *boot.Args, files []*os.File) error {
	rd, wr, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting sentry: %w", err)
	}
	defer rd.Close()
	files[0] = rd
	logf, err := s.logFile("boot")
	if err != nil {
		wr.Close()
		return err
	}
	cmd := exec.Command(executable)
	cmd.Args = append(append([]string{"runsc"}, s.childFlags()...), "boot", "--args-fd="+strconv.Itoa(BootArgsFD))
	cmd.Env = childEnv()
	cmd.ExtraFiles = files
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWNET,
		// A session of its own: terminal-generated signals go to runsc
		// only (which forwards them once), and the host TTY is not the
		// sentry's controlling terminal, so reading it never stops it.
		Setsid:    true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := s.startInNetNS(cmd); err != nil {
		wr.Close()
		s.dropLog(logf)
		return startError("sentry", err)
	}
	s.boot = cmd
	s.nameLog(logf, "boot", cmd.Process.Pid)
	if err := s.onStart("sentry", cmd.Process.Pid); err != nil {
		wr.Close()
		return err
	}
	return sendJSON(wr, args, "sentry")
}

func (s *Sandbox) onStart(component string, pid int) error {
	if s.ctr == nil || s.ctr.OnStart == nil {
		return nil
	}
	return s.ctr.OnStart(component, pid)
}

// dropLog removes the log of a child that did not start.
func (s *Sandbox) dropLog(f *os.File) {
	if f == os.Stderr || (s.ctr != nil && f == s.ctr.Log) {
		return
	}
	if s.conf.DebugLogDir != "" {
		os.Remove(f.Name())
	}
	f.Close()
}

// startInNetNS starts cmd, in the network namespace s.ctr.NetNS if one is
// set: the calling thread joins it for the fork (a child inherits its
// creator thread's namespaces) and returns to its own at once.
func (s *Sandbox) startInNetNS(cmd *exec.Cmd) error {
	if s.ctr == nil || s.ctr.NetNS == "" {
		return cmd.Start()
	}
	cmd.SysProcAttr.Cloneflags &^= syscall.CLONE_NEWNET
	target, err := os.Open(s.ctr.NetNS)
	if err != nil {
		return fmt.Errorf("linux.namespaces: network namespace %s: %w", s.ctr.NetNS, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("linux.namespaces: joining network namespace %s: %w", s.ctr.NetNS, err)
	}
	startErr := cmd.Start()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread must not go back to the scheduler in the wrong
		// namespace; it ends with the goroutine (LockOSThread without
		// Unlock), which would also fire the sentry's parent-death
		// signal, so the sandbox is abandoned.
		runtime.LockOSThread()
		if startErr == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return fmt.Errorf("returning to the host network namespace: %w", err)
	}
	return startErr
}

// childEnv is the environment of the gofer and the sentry: runsc's own
// (the application's is in boot.Args), with the Go runtime's periodic
// GOMAXPROCS re-evaluation off, as it would read cgroup files and make
// calls the confined processes have no business making.
func childEnv() []string {
	return append(os.Environ(), "GODEBUG="+godebug())
}

func godebug() string {
	if v := os.Getenv("GODEBUG"); v != "" {
		return v + ",updatemaxprocs=0"
	}
	return "updatemaxprocs=0"
}

func startError(what string, err error) error {
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("starting %s: %w (creating namespaces needs root)", what, err)
	}
	return fmt.Errorf("starting %s: %w", what, err)
}

// sendJSON writes v to w and closes it. A child that died before reading
// shows up as EPIPE here and, more usefully, in its exit status.
func sendJSON(w io.WriteCloser, v any, who string) error {
	err := json.NewEncoder(w).Encode(v)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sending arguments to the %s: %w", who, err)
	}
	return nil
}

// ForwardedSignals are the signals runsc passes on to the sentry, which
// delivers them to the container's init.
var ForwardedSignals = []os.Signal{
	unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH,
}

// Wait forwards ForwardedSignals to the sentry until it exits, then kills
// and reaps the gofer. It returns the container's exit status: the
// sentry's exit code (the sentry exits with 128+N itself when the
// application died of signal N), or 128+N if the sentry itself was killed
// by signal N.
func (s *Sandbox) Wait() (int, error) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, ForwardedSignals...)
	defer signal.Stop(sigs)

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case sig := <-sigs:
				// ESRCH just means the sentry is already gone.
				_ = s.boot.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()

	err := s.boot.Wait()
	close(done)
	wg.Wait()
	s.stopGofer()

	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return 1, fmt.Errorf("waiting for the sentry: %w", err)
		}
	}
	return ExitStatus(s.boot.ProcessState.Sys().(syscall.WaitStatus)), nil
}

// Signal sends sig to the sentry.
func (s *Sandbox) Signal(sig os.Signal) error {
	return s.boot.Process.Signal(sig)
}

// stopGofer kills and reaps the gofer. Killing rather than asking is safe:
// the sentry, its only client, is gone.
func (s *Sandbox) stopGofer() {
	if s.gofer == nil {
		return
	}
	_ = s.gofer.Process.Kill()
	_ = s.gofer.Wait()
	s.gofer = nil
}

// kill ends whatever part of the sandbox was started.
func (s *Sandbox) kill() {
	if s.boot != nil {
		_ = s.boot.Process.Kill()
		_ = s.boot.Wait()
		s.boot = nil
	}
	s.stopGofer()
}

// ExitStatus maps a wait status to the shell's convention: the exit code,
// or 128+N for death by signal N.
func ExitStatus(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 1
}
