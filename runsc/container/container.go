package container

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/runsc/config"
	"github.com/veil-sandbox/veil/runsc/control"
	"github.com/veil-sandbox/veil/runsc/sandbox"
	"github.com/veil-sandbox/veil/runsc/specutils"
)

// CreateOptions are runsc create's per-command settings.
type CreateOptions struct {
	Bundle string
	// PIDFile receives the sandbox's PID once it is created.
	PIDFile string
	// ConsoleSocket is where the terminal's master is sent when
	// process.terminal is set.
	ConsoleSocket string
	// Stdio of the init process (when not a terminal).
	Stdio [3]*os.File
	// Preserved become the init process's FDs 3, 4, ... (--preserve-fds).
	Preserved []*os.File
	// Detach: the caller exits and leaves the sandbox running.
	Detach bool
}

// Create makes the container id from a bundle and leaves it created: the
// sandbox is up, its init process not yet started. On error nothing is
// left behind. The returned sandbox is the caller's to release (detached)
// or wait for.
func Create(conf *config.Config, id string, opts CreateOptions) (_ *Container, _ *sandbox.Sandbox, err error) {
	if err := ValidateID(id); err != nil {
		return nil, nil, err
	}
	spec, err := specutils.ReadSpec(opts.Bundle)
	if err != nil {
		return nil, nil, err
	}
	bundle, _ := filepath.Abs(opts.Bundle)
	sopts, err := SandboxOptions(spec, id, opts.Stdio)
	if err != nil {
		return nil, nil, err
	}
	sopts.Preserved = opts.Preserved
	if err := os.MkdirAll(conf.RootDir, 0o711); err != nil {
		return nil, nil, fmt.Errorf("--root %s: %w", conf.RootDir, err)
	}
	dir := Dir(conf.RootDir, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, nil, fmt.Errorf("container %q already exists", id)
		}
		return nil, nil, fmt.Errorf("creating the state directory: %w", err)
	}
	c := &Container{dir: dir, State: State{
		ID:          id,
		Bundle:      bundle,
		Rootfs:      spec.Root.Path,
		Annotations: spec.Annotations,
		Status:      Creating,
		Created:     time.Now().UTC(),
		Owner:       owner(),
		Creator:     newProc(os.Getpid()),
		Hooks:       spec.Hooks,
		Process:     spec.Process,
	}}
	var s *sandbox.Sandbox
	defer func() {
		if err != nil {
			if s != nil {
				s.Kill()
			}
			c.destroy()
		}
	}()
	if err := c.Lock(); err != nil {
		return nil, nil, err
	}
	defer c.Unlock()
	if err := c.save(); err != nil {
		return nil, nil, fmt.Errorf("writing state: %w", err)
	}

	if spec.Linux != nil && (spec.Linux.CgroupsPath != "" || spec.Linux.Resources != nil) {
		path := spec.Linux.CgroupsPath
		if path == "" {
			path = filepath.Join("/veil", id)
		}
		cg, err := NewCgroup(path, spec.Linux.Resources)
		if err != nil {
			return nil, nil, err
		}
		c.Cgroup = cg
		if err := c.save(); err != nil {
			return nil, nil, fmt.Errorf("writing state: %w", err)
		}
	}

	lfd, err := control.Listen(c.controlPath())
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(lfd)
	exitf, err := os.OpenFile(filepath.Join(dir, exitFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, err
	}
	defer exitf.Close()

	if spec.Process.Terminal {
		var term *os.File
		switch {
		case opts.ConsoleSocket != "":
			term, err = SocketConsole(opts.ConsoleSocket, spec.Process.ConsoleSize)
		case opts.Detach:
			return nil, nil, errors.New("process.terminal is set but no --console-socket was given (a detached container's terminal goes to one)")
		default:
			// runc's foreground terminal: runsc itself shows it.
			c.console, term, err = NewConsole(opts.Stdio[0], opts.Stdio[1], spec.Process.ConsoleSize)
		}
		if err != nil {
			return nil, nil, err
		}
		if c.console != nil {
			// After term.Close (deferred below): the console's relay
			// ends once no replica is left.
			defer func() {
				if err != nil {
					c.CloseConsole()
				}
			}()
		}
		defer term.Close()
		sopts.Stdio = [3]*os.File{term, term, term}
		sopts.Args.Terminal = true
	} else if opts.ConsoleSocket != "" {
		return nil, nil, errors.New("--console-socket given but process.terminal is false")
	}
	logf := os.Stderr
	if conf.LogFile != "" {
		if f, err := os.OpenFile(conf.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
			defer f.Close()
			logf = f
		}
	} else if opts.Detach {
		logf = nil
	}
	sopts.Container = &sandbox.ContainerOptions{
		ControlFD: lfd,
		ExitFile:  exitf,
		Detach:    opts.Detach,
		NetNS:     netNSPath(spec),
		Log:       logf,
		OnStart: func(component string, pid int) error {
			if c.Cgroup != nil {
				if err := c.Cgroup.Add(pid); err != nil {
					return err
				}
			}
			switch component {
			case "gofer":
				c.Gofer = newProc(pid)
			case "sentry":
				c.Sandbox = newProc(pid)
				if p := spec.Process.OOMScoreAdj; p != nil {
					// Lowering it needs CAP_SYS_RESOURCE, which root
					// may lack here; the sandbox works without it.
					if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(*p)), 0); err != nil {
						slog.Debug("oom_score_adj not applied", "err", err)
					}
				}
			}
			return c.save()
		},
	}
	s, err = sandbox.Start(conf, sopts)
	if err != nil {
		return nil, nil, err
	}
	if err := s.WaitReady(); err != nil {
		return nil, nil, err
	}
	c.State.Status = Created
	st := c.OCI()
	if err := runHooks("prestart", hooksOf(spec.Hooks, "prestart"), st); err != nil {
		return nil, nil, err
	}
	if err := runHooks("createRuntime", hooksOf(spec.Hooks, "createRuntime"), st); err != nil {
		return nil, nil, err
	}
	if err := runHooks("createContainer", hooksOf(spec.Hooks, "createContainer"), st); err != nil {
		return nil, nil, err
	}
	c.Creator = Proc{}
	if err := c.save(); err != nil {
		return nil, nil, fmt.Errorf("writing state: %w", err)
	}
	if opts.PIDFile != "" {
		if err := writeFileAtomic(opts.PIDFile, []byte(strconv.Itoa(s.BootPID())), 0o644); err != nil {
			return nil, nil, fmt.Errorf("--pid-file: %w", err)
		}
	}
	return c, s, nil
}

// CloseConsole restores the caller's terminal after a foreground
// container with a terminal has ended (nothing without one).
func (c *Container) CloseConsole() {
	if c.console != nil {
		c.console.Close()
		c.console = nil
	}
}

// hooksOf returns one kind of hook from a possibly nil set.
func hooksOf(h *specs.Hooks, kind string) []specs.Hook {
	if h == nil {
		return nil
	}
	switch kind {
	case "prestart":
		return h.Prestart
	case "createRuntime":
		return h.CreateRuntime
	case "createContainer":
		return h.CreateContainer
	case "startContainer":
		return h.StartContainer
	case "poststart":
		return h.Poststart
	case "poststop":
		return h.Poststop
	}
	return nil
}

// owner names the calling user from /etc/passwd (not os/user, which
// would link cgo, and the gofer needs a binary without it).
func owner() string {
	uid := strconv.Itoa(os.Getuid())
	data, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[2] == uid {
			return f[0]
		}
	}
	return uid
}

// Start runs the init process of a created container.
func (c *Container) Start() error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	if st := c.Status(); st != Created {
		return fmt.Errorf("container %q is %s, not created", c.ID, st)
	}
	st := c.OCI()
	if err := runHooks("startContainer", hooksOf(c.Hooks, "startContainer"), st); err != nil {
		return err
	}
	if _, err := control.Call(c.controlPath(), &control.Request{Op: &control.Request_Start{Start: &control.StartReq{}}}, nil); err != nil {
		return fmt.Errorf("starting container %q: %w", c.ID, err)
	}
	c.State.Status = Running
	if err := c.save(); err != nil {
		return err
	}
	// A failing poststart hook is only a warning (runtime spec). The
	// state it sees is the one start made, even if init already exited.
	st.Status = Running
	if err := runHooks("poststart", hooksOf(c.Hooks, "poststart"), st); err != nil {
		slog.Warn("poststart hook failed", "err", err)
	}
	return nil
}

// Signal sends sig to the init process, or to every process with all.
func (c *Container) Signal(sig unix.Signal, all bool) error {
	st := c.Status()
	if st == Stopped || st == Creating {
		return fmt.Errorf("container %q is not running", c.ID)
	}
	_, err := control.Call(c.controlPath(), &control.Request{Op: &control.Request_Signal{Signal: &control.SignalReq{Signo: int32(sig), All: all}}}, nil)
	if err != nil && sig == unix.SIGKILL && c.Sandbox.Alive() {
		// The sentry cannot answer (wedged, or frozen by its cgroup):
		// SIGKILL still ends the whole sandbox.
		return unix.Kill(c.Sandbox.PID, unix.SIGKILL)
	}
	return err
}

// SignalProcess sends sig to process pid of the sandbox.
func (c *Container) SignalProcess(pid int32, sig unix.Signal) error {
	_, err := control.Call(c.controlPath(), &control.Request{Op: &control.Request_Signal{Signal: &control.SignalReq{Pid: pid, Signo: int32(sig)}}}, nil)
	return err
}

// Delete removes a container: a running one only with force (its sandbox
// is killed). Processes, cgroup and state directory all go; poststop
// hooks run last.
func (c *Container) Delete(force bool) error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	switch st := c.Status(); st {
	case Running, Paused, Creating:
		if !force {
			return fmt.Errorf("container %q is %s; stop it first or use --force", c.ID, st)
		}
	}
	c.killAll()
	hooksRan := c.State.Status != Creating
	st := c.OCI()
	st.Status = Stopped
	err := c.destroy()
	if hooksRan {
		if herr := runHooks("poststop", hooksOf(c.Hooks, "poststop"), st); herr != nil {
			slog.Warn("poststop hook failed", "err", herr)
		}
	}
	return err
}

// killAll kills the sandbox's processes and waits until they are gone.
// Killing the sentry, the init of the sandbox's PID namespace, takes its
// stub processes with it; the gofer ends when the sentry's sockets close
// but is killed too in case it never got them.
func (c *Container) killAll() {
	procs := []Proc{c.Sandbox, c.Gofer}
	for _, p := range procs {
		if p.Alive() {
			_ = unix.Kill(p.PID, unix.SIGKILL)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range procs {
		for p.Alive() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// destroy removes the cgroup and the state directory.
func (c *Container) destroy() error {
	var errs []error
	if c.Cgroup != nil {
		if err := c.Cgroup.Destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Wait waits for the container's init to exit and returns its
// shell-style status.
func (c *Container) Wait() (int, error) {
	if c.Status() != Stopped {
		resp, err := control.Call(c.controlPath(), &control.Request{Op: &control.Request_Wait{Wait: &control.WaitReq{}}}, nil)
		if err == nil {
			return shellStatus(resp.GetWaitStatus()), nil
		}
		// The sentry exits right after writing the exit file.
		for i := 0; i < 200 && c.Sandbox.Alive(); i++ {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if st, ok := c.ExitStatus(); ok {
		return st, nil
	}
	return 0, fmt.Errorf("container %q: exit status unknown (its sandbox was killed)", c.ID)
}

// shellStatus maps a wait(2) status to 128+N for a signal, else the code.
func shellStatus(ws uint32) int {
	w := syscall.WaitStatus(ws)
	if w.Signaled() {
		return 128 + int(w.Signal())
	}
	return w.ExitStatus()
}

// ShellStatus is shellStatus for other packages.
func ShellStatus(ws uint32) int { return shellStatus(ws) }

// call sends one request to the running sandbox.
func (c *Container) call(req *control.Request) (*control.Response, error) {
	st := c.Status()
	if st != Running && st != Paused && st != Created {
		return nil, fmt.Errorf("container %q is %s", c.ID, st)
	}
	return control.Call(c.controlPath(), req, nil)
}

// Processes lists the sandbox's processes.
func (c *Container) Processes() ([]*control.ProcessInfo, error) {
	resp, err := c.call(&control.Request{Op: &control.Request_Processes{Processes: &control.ProcessesReq{}}})
	if err != nil {
		return nil, err
	}
	return resp.GetProcesses().GetProcesses(), nil
}

// Stats returns the sandbox's usage counters.
func (c *Container) Stats() (*control.Stats, error) {
	resp, err := c.call(&control.Request{Op: &control.Request_Stats{Stats: &control.StatsReq{}}})
	if err != nil {
		return nil, err
	}
	return resp.GetStats(), nil
}

// Pause freezes a running container.
func (c *Container) Pause() error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	if st := c.Status(); st != Running {
		return fmt.Errorf("container %q is %s, not running", c.ID, st)
	}
	if _, err := c.call(&control.Request{Op: &control.Request_Pause{Pause: &control.PauseReq{}}}); err != nil {
		return err
	}
	c.State.Status = Paused
	return c.save()
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	if st := c.Status(); st != Paused {
		return fmt.Errorf("container %q is %s, not paused", c.ID, st)
	}
	if _, err := c.call(&control.Request{Op: &control.Request_Resume{Resume: &control.ResumeReq{}}}); err != nil {
		return err
	}
	c.State.Status = Running
	return c.save()
}

// ControlPath is the sandbox's control socket (for exec).
func (c *Container) ControlPath() string { return c.controlPath() }
