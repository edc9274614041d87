package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/subcommands"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/runsc/container"
	"github.com/veil-sandbox/veil/runsc/control"
)

// Exec implements `runsc exec`: run another process in a running
// container. The process lives inside the sandbox; on the host it is
// stood for by the runsc exec process, which forwards signals to it and
// exits with its status. With --detach, a child of runsc (`runsc
// exec-wait`) takes that part and its PID goes to --pid-file, so that a
// caller that reaps that PID (conmon, containerd's shim) gets the
// process's exit status, and signals it by signalling that PID.
type Exec struct {
	processPath   string
	cwd           string
	env           stringList
	user          string
	addGIDs       stringList
	caps          stringList
	tty           bool
	consoleSocket string
	detach        bool
	pidFile       string
	preserveFDs   int
	noNewPrivs    bool
	apparmor      string
	processLabel  string
}

func (*Exec) Name() string     { return "exec" }
func (*Exec) Synopsis() string { return "run a process in a running container" }
func (*Exec) Usage() string {
	return "exec [flags] <container-id> [CMD [ARG...]]   (or --process FILE)\n"
}

func (e *Exec) SetFlags(f *flag.FlagSet) {
	f.StringVar(&e.processPath, "process", "", "JSON file with the process (an OCI process object)")
	f.StringVar(&e.processPath, "p", "", "shorthand for --process")
	f.StringVar(&e.cwd, "cwd", "", "working directory inside the container")
	f.Var(&e.env, "env", "K=V to add to the environment (repeatable)")
	f.Var(&e.env, "e", "shorthand for --env")
	f.StringVar(&e.user, "user", "", "UID[:GID] to run as")
	f.StringVar(&e.user, "u", "", "shorthand for --user")
	f.Var(&e.addGIDs, "additional-gids", "extra group ID (repeatable)")
	f.Var(&e.addGIDs, "g", "shorthand for --additional-gids")
	f.Var(&e.caps, "cap", "capability to add (repeatable)")
	f.Var(&e.caps, "c", "shorthand for --cap")
	f.BoolVar(&e.tty, "tty", false, "give the process a terminal")
	f.BoolVar(&e.tty, "t", false, "shorthand for --tty")
	f.StringVar(&e.consoleSocket, "console-socket", "", "unix socket that receives the terminal's master")
	f.BoolVar(&e.detach, "detach", false, "do not wait for the process")
	f.BoolVar(&e.detach, "d", false, "shorthand for --detach")
	f.StringVar(&e.pidFile, "pid-file", "", "file to write the PID of the process standing for it on the host")
	f.IntVar(&e.preserveFDs, "preserve-fds", 0, "pass this many FDs after stdio (3, 4, ...) to the process")
	f.BoolVar(&e.noNewPrivs, "no-new-privs", false, "set no_new_privs for the process")
	f.StringVar(&e.apparmor, "apparmor", "", "accepted for compatibility (host profiles do not apply inside the sandbox)")
	f.StringVar(&e.processLabel, "process-label", "", "accepted for compatibility (host labels do not apply inside the sandbox)")
}

// process builds the OCI process to run from --process or the flags and
// the container's own process (env, cwd, user, capabilities, rlimits).
func (e *Exec) process(c *container.Container, argv []string) (*specs.Process, error) {
	if e.processPath != "" {
		data, err := os.ReadFile(e.processPath)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		var p specs.Process
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("--process %s: malformed: %w", e.processPath, err)
		}
		if len(argv) > 0 {
			return nil, errors.New("--process and a command are mutually exclusive")
		}
		if len(p.Args) == 0 {
			return nil, fmt.Errorf("--process %s: process.args is empty", e.processPath)
		}
		return &p, nil
	}
	if len(argv) == 0 {
		return nil, errors.New("missing command (or --process)")
	}
	p := specs.Process{Cwd: "/"}
	if c.Process != nil {
		p = *c.Process
		p.Env = append([]string(nil), p.Env...)
	}
	p.Args = argv
	p.Terminal = e.tty
	p.ConsoleSize = nil
	for _, kv := range e.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want K=V", kv)
		}
		p.Env = append(p.Env, kv)
	}
	if e.cwd != "" {
		if !strings.HasPrefix(e.cwd, "/") {
			return nil, fmt.Errorf("--cwd %q: must be absolute", e.cwd)
		}
		p.Cwd = e.cwd
	}
	if e.user != "" {
		us, gs, hasG := strings.Cut(e.user, ":")
		uid, err := strconv.ParseUint(us, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %q: want numeric UID[:GID]", e.user)
		}
		p.User = specs.User{UID: uint32(uid)}
		if hasG {
			gid, err := strconv.ParseUint(gs, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--user %q: want numeric UID[:GID]", e.user)
			}
			p.User.GID = uint32(gid)
		}
	}
	for _, g := range e.addGIDs {
		gid, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--additional-gids %q: not a group ID", g)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
	}
	if len(e.caps) > 0 {
		var cs specs.LinuxCapabilities
		if p.Capabilities != nil {
			cs = *p.Capabilities
		}
		cs.Bounding = append(append([]string(nil), cs.Bounding...), e.caps...)
		cs.Effective = append(append([]string(nil), cs.Effective...), e.caps...)
		cs.Permitted = append(append([]string(nil), cs.Permitted...), e.caps...)
		p.Capabilities = &cs
	}
	if e.noNewPrivs {
		p.NoNewPrivileges = true
	}
	return &p, nil
}

func (e *Exec) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if f.NArg() < 1 {
		return usagef("exec: want a container ID")
	}
	if e.preserveFDs < 0 || e.preserveFDs > control.MaxFDs-3 {
		return failf("exec: --preserve-fds=%d: want 0 to %d", e.preserveFDs, control.MaxFDs-3)
	}
	c, err := loadContainer(confFrom(args), f.Arg(0))
	if err != nil {
		return failf("exec: %v", err)
	}
	if st := c.Status(); st != container.Running {
		return failf("exec: container %q is %s, not running", c.ID, st)
	}
	p, err := e.process(c, f.Args()[1:])
	if err != nil {
		return failf("exec: %v", err)
	}
	cp, err := container.ControlProcess(p, c.Rootfs)
	if err != nil {
		return failf("exec: %v", err)
	}
	stdio := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	var console *container.Console
	var term *os.File
	if p.Terminal {
		switch {
		case e.consoleSocket != "":
			term, err = container.SocketConsole(e.consoleSocket, p.ConsoleSize)
		case e.detach:
			return failf("exec: a detached process with a terminal needs --console-socket")
		default:
			// runc's foreground terminal: this process shows it.
			console, term, err = container.NewConsole(os.Stdin, os.Stdout, p.ConsoleSize)
		}
		if err != nil {
			return failf("exec: %v", err)
		}
		defer term.Close()
		stdio = []*os.File{term, term, term}
	} else if e.consoleSocket != "" {
		return failf("exec: --console-socket needs --tty")
	}
	// The failures below are printed on a terminal back to normal.
	fail := func(format string, args ...any) subcommands.ExitStatus {
		if console != nil {
			// Without a replica left the relay ends at once.
			term.Close()
			console.Close()
		}
		return failf(format, args...)
	}
	conn, err := control.Dial(c.ControlPath())
	if err != nil {
		return fail("exec: connecting to the sandbox: %v", err)
	}
	fds := []int{int(stdio[0].Fd()), int(stdio[1].Fd()), int(stdio[2].Fd())}
	// --preserve-fds: this process's 3, 4, ... become the process's.
	for i := 0; i < e.preserveFDs; i++ {
		fds = append(fds, 3+i)
	}
	if err := conn.Send(&control.Request{Op: &control.Request_Exec{Exec: &control.ExecReq{Process: cp, Terminal: p.Terminal}}}, fds); err != nil {
		return fail("exec: %v", err)
	}
	if term != nil {
		// The sandbox has its own copy; a relay ends when it closes it.
		term.Close()
	}
	resp, err := control.RecvResponse(conn)
	if err != nil {
		return fail("exec: %v", err)
	}
	pid := resp.GetPid()
	if !e.detach {
		if e.pidFile != "" {
			if err := os.WriteFile(e.pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
				return fail("exec: --pid-file: %v", err)
			}
		}
		ws, err := waitExec(conn, c.ControlPath(), pid, p.Terminal)
		if err != nil {
			return fail("exec: %v", err)
		}
		if console != nil {
			console.Close()
		}
		return subcommands.ExitStatus(container.ShellStatus(ws))
	}
	// The waiter takes over the connection; the sandbox kills the process
	// when the waiter's end closes.
	connFile := os.NewFile(uintptr(conn.FD()), "control")
	w := exec.Command("/proc/self/exe", "exec-wait", "--conn-fd=3", "--pid="+strconv.Itoa(int(pid)), "--control="+c.ControlPath(), "--tty="+strconv.FormatBool(p.Terminal))
	w.ExtraFiles = []*os.File{connFile}
	w.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := w.Start(); err != nil {
		return failf("exec: starting the waiter: %v", err)
	}
	if e.pidFile != "" {
		if err := os.WriteFile(e.pidFile, []byte(strconv.Itoa(w.Process.Pid)), 0o644); err != nil {
			_ = w.Process.Kill()
			return failf("exec: --pid-file: %v", err)
		}
	}
	_ = w.Process.Release()
	return subcommands.ExitSuccess
}

// execForwarded are the signals the host process standing for an exec'd
// process passes on to it.
var execForwarded = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGTERM,
	unix.SIGALRM, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGWINCH,
}

// waitExec forwards signals to sandbox process pid until the sandbox
// reports its exit on conn, and returns its wait status. A process with
// a terminal gets no SIGWINCH from here: its terminal sends its own
// when the size changes.
func waitExec(conn *control.Conn, controlPath string, pid int32, terminal bool) (uint32, error) {
	sigs := make(chan os.Signal, 16)
	for _, sig := range execForwarded {
		if !(terminal && sig == unix.SIGWINCH) {
			signal.Notify(sigs, sig)
		}
	}
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			_, _ = control.Call(controlPath, &control.Request{Op: &control.Request_Signal{Signal: &control.SignalReq{Pid: pid, Signo: int32(s.(unix.Signal))}}}, nil)
		}
	}()
	resp, err := control.RecvResponse(conn)
	if err != nil {
		return 0, err
	}
	return resp.GetWaitStatus(), nil
}

// ExecWait implements the internal `runsc exec-wait`: the host process
// that stands for a detached exec'd process (see Exec).
type ExecWait struct {
	connFD  int
	pid     int
	control string
	tty     bool
}

func (*ExecWait) Name() string { return "exec-wait" }
func (*ExecWait) Synopsis() string {
	return "(internal) wait for a detached exec'd process; started by runsc exec"
}
func (*ExecWait) Usage() string { return "exec-wait --conn-fd=N --pid=N --control=PATH\n" }

func (w *ExecWait) SetFlags(f *flag.FlagSet) {
	f.IntVar(&w.connFD, "conn-fd", -1, "control connection the process was started on")
	f.IntVar(&w.pid, "pid", 0, "the process's sandbox PID")
	f.StringVar(&w.control, "control", "", "the sandbox's control socket")
	f.BoolVar(&w.tty, "tty", false, "the process has a terminal")
}

func (w *ExecWait) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if w.connFD < 0 || w.pid <= 0 || w.control == "" {
		return usagef("exec-wait is started by runsc exec only")
	}
	ws, err := waitExec(control.NewConn(w.connFD), w.control, int32(w.pid), w.tty)
	if err != nil {
		return failf("exec: %v", err)
	}
	st := syscall.WaitStatus(ws)
	if st.Signaled() {
		// Die the same way, so that whoever reaps this process sees the
		// status the sandbox's process had.
		sig := st.Signal()
		signal.Reset(sig)
		_ = unix.Kill(os.Getpid(), sig)
		time.Sleep(time.Second) // delivery is asynchronous
		return subcommands.ExitStatus(128 + int(sig))
	}
	return subcommands.ExitStatus(st.ExitStatus())
}
