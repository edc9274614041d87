package boot

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/runsc/control"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/limits"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// ContainerArgs make `runsc boot` the sandbox of a container made by
// `runsc create`: it serves the control socket, reports when it is ready,
// and runs the init process only when asked to (`runsc start`).
type ContainerArgs struct {
	// ControlFD is the listening control socket (control.Listen).
	ControlFD int
	// ReadyFD is a pipe on which the sentry writes one zero byte (ready)
	// or a one-line error (set-up failed), then closes it.
	ReadyFD int
	// ExitFD, when >= 0, is a regular file that receives the container's
	// shell-style exit status, in decimal, before the sentry exits.
	ExitFD int
	// Detach: runsc create exits once the sandbox is ready, so the sentry
	// must not die with it (it clears its parent-death signal then).
	Detach bool
}

// ProcessCaps are the capability sets of a process (bit N: capability N).
type ProcessCaps struct {
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

// Rlimit is one resource limit of a process.
type Rlimit struct {
	Resource   int
	Soft, Hard uint64
}

// processCreds builds the credentials of a process from outside.
func processCreds(uid, gid uint32, extra []uint32, caps *ProcessCaps, noNewPrivs bool) *auth.Credentials {
	c := auth.NewUser(auth.KUID(uid), auth.KGID(gid), toKGIDs(extra))
	if caps != nil {
		c.BoundingCaps = auth.CapSet(caps.Bounding)
		c.EffectiveCaps = auth.CapSet(caps.Effective)
		c.PermittedCaps = auth.CapSet(caps.Permitted)
		c.InheritableCaps = auth.CapSet(caps.Inheritable)
		c.AmbientCaps = auth.CapSet(caps.Ambient)
	}
	c.NoNewPrivs = noNewPrivs
	return c
}

// processLimits builds a limit set from Linux's defaults and rls. The
// sentry's limits are its own, so raising them needs no host privilege.
func processLimits(rls []Rlimit) (*limits.LimitSet, error) {
	ls := limits.NewDefault()
	for _, r := range rls {
		if _, err := ls.Set(r.Resource, limits.Limit{Cur: r.Soft, Max: r.Hard}, true); err != nil {
			return nil, fmt.Errorf("rlimit %d (%d/%d): %w", r.Resource, r.Soft, r.Hard, err)
		}
	}
	return ls, nil
}

// controlServer answers the CLI on the sandbox's control socket.
type controlServer struct {
	k      *kernel.Kernel
	v      *vfs.VirtualFilesystem
	root   vfs.VirtualDentry
	logger *log.Logger

	// start is called (once) by a start request; it runs the init
	// process. onStarted hears its outcome once the client has.
	start     func() error
	onStarted func(error)

	mu      sync.Mutex
	started bool
	// startErr is what later start requests hear.
	startErr error
	// beforeStart receives signals sent before start.
	beforeStart chan int
	// recorded is closed once init's status is in the exit file; init's
	// waiters are answered only then.
	recorded chan struct{}

	// waiters counts init's waiters still to be answered (under mu), so
	// that the sentry does not exit under them.
	waiters int
}

// serve accepts connections on the listening socket fd until the process
// exits. Each connection carries one request.
func (s *controlServer) serve(fd int) {
	for {
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			s.logger.Printf("control: accept: %v", err)
			return
		}
		go s.handle(control.NewConn(nfd))
	}
}

func (s *controlServer) handle(c *control.Conn) {
	defer c.Close()
	var req control.Request
	fds, err := c.Recv(&req)
	if err != nil {
		s.logger.Printf("control: %v", err)
		return
	}
	// Only Exec takes FDs; it owns them from here.
	if _, ok := req.Op.(*control.Request_Exec); !ok {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	var resp *control.Response
	switch op := req.Op.(type) {
	case *control.Request_Start:
		var first bool
		resp, first = s.doStart()
		// The sentry may exit as soon as the init process does: it learns
		// of the start only once the client has its answer.
		if first {
			defer s.onStarted(s.startErr)
		}
	case *control.Request_Signal:
		resp = s.doSignal(op.Signal)
	case *control.Request_Exec:
		s.doExec(c, op.Exec, fds)
		return
	case *control.Request_Wait:
		if op.Wait.Pid == 0 {
			s.mu.Lock()
			s.waiters++
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				s.waiters--
				s.mu.Unlock()
			}()
		}
		resp = s.doWait(c, op.Wait)
		if resp == nil {
			return
		}
	case *control.Request_Processes:
		resp = s.doProcesses()
	case *control.Request_Pause:
		s.k.Pause()
		resp = &control.Response{}
	case *control.Request_Resume:
		s.k.Resume()
		resp = &control.Response{}
	case *control.Request_Stats:
		st := s.k.Stats()
		resp = &control.Response{Result: &control.Response_Stats{Stats: &control.Stats{
			CpuUserNanos:     uint64(st.User),
			CpuSystemNanos:   uint64(st.System),
			MemoryUsageBytes: st.MemoryUsage,
			MemoryTotalBytes: st.MemoryTotal,
			PidsCurrent:      uint64(st.Tasks),
		}}}
	default:
		resp = errResponse(errors.New("unknown control request"))
	}
	if err := c.Send(resp, nil); err != nil {
		s.logger.Printf("control: sending response: %v", err)
	}
}

func errResponse(err error) *control.Response {
	return &control.Response{Error: err.Error()}
}

// doStart runs start once; first reports whether this call did.
func (s *controlServer) doStart() (resp *control.Response, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errResponse(errors.New("container already started")), false
	}
	s.started = true
	if err := s.start(); err != nil {
		s.startErr = err
		return errResponse(err), true
	}
	return &control.Response{}, true
}

func (s *controlServer) isStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

func (s *controlServer) doSignal(req *control.SignalReq) *control.Response {
	sig := int(req.Signo)
	if sig <= 0 || sig > kernel.NumSignals {
		return errResponse(fmt.Errorf("invalid signal %d", sig))
	}
	if !s.isStarted() {
		// Nothing runs yet; the container can only be ended.
		select {
		case s.beforeStart <- sig:
		default:
		}
		return &control.Response{}
	}
	if req.All {
		s.k.SignalAll(sig)
		return &control.Response{}
	}
	tg := s.k.Init()
	if req.Pid != 0 {
		tg = s.k.ThreadGroupByID(kernel.ThreadID(req.Pid))
	}
	if tg == nil {
		return errResponse(fmt.Errorf("no process %d: %w", req.Pid, unix.ESRCH))
	}
	if err := tg.SendSignal(&arch.SignalInfo{Signo: int32(sig), Code: arch.SI_USER}); err != nil {
		return errResponse(fmt.Errorf("signal %d to process %d: %w", sig, tg.ID(), err))
	}
	return &control.Response{}
}

// doWait answers when the process exits. It returns nil if it already
// answered (or the client left).
func (s *controlServer) doWait(c *control.Conn, req *control.WaitReq) *control.Response {
	var tg *kernel.ThreadGroup
	if req.Pid == 0 {
		// Before start, waiting for init means waiting for the sandbox.
		ws := s.k.Wait()
		if !s.isStarted() {
			return errResponse(errors.New("container was never started"))
		}
		<-s.recorded
		return &control.Response{Result: &control.Response_WaitStatus{WaitStatus: uint32(ws)}}
	}
	tg = s.k.ThreadGroupByID(kernel.ThreadID(req.Pid))
	if tg == nil {
		return errResponse(fmt.Errorf("no process %d: %w", req.Pid, unix.ESRCH))
	}
	ws, ok := s.k.WaitExit(tg, nil)
	if !ok {
		return nil
	}
	return &control.Response{Result: &control.Response_WaitStatus{WaitStatus: uint32(ws)}}
}

func (s *controlServer) doProcesses() *control.Response {
	var list control.ProcessList
	for _, p := range s.k.Processes() {
		list.Processes = append(list.Processes, &control.ProcessInfo{
			Pid:           int32(p.PID),
			Ppid:          int32(p.PPID),
			Uid:           p.UID,
			Comm:          p.Comm,
			Cmdline:       p.Cmdline,
			StartUnixNano: p.Start.UnixNano(),
			CpuNanos:      int64(p.CPU),
			State:         p.State,
			Threads:       int32(p.Threads),
		})
	}
	return &control.Response{Result: &control.Response_Processes{Processes: &list}}
}

// doExec starts a process with the three FDs as its stdio, answers with
// its PID, then with its wait status when it exits. If the client goes
// away first, the process is killed: the client (runsc exec) stands for
// the process on the host, and a process nobody can wait for or signal
// must not outlive it.
func (s *controlServer) doExec(c *control.Conn, req *control.ExecReq, fds []int) {
	send := func(r *control.Response) {
		if err := c.Send(r, nil); err != nil {
			s.logger.Printf("control: exec: %v", err)
		}
	}
	closeFDs := func() {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}
	if !s.isStarted() {
		closeFDs()
		send(errResponse(errors.New("container is not running")))
		return
	}
	if len(fds) < 3 {
		closeFDs()
		send(errResponse(fmt.Errorf("exec needs 3 stdio FDs, got %d", len(fds))))
		return
	}
	p := req.GetProcess()
	tg, err := s.spawn(p, fds, req.GetTerminal())
	if err != nil {
		send(errResponse(err))
		return
	}
	send(&control.Response{Result: &control.Response_Pid{Pid: int32(tg.ID())}})

	// The client sends nothing more: a readable event is its departure.
	gone := make(chan struct{})
	go func() {
		var r control.Request
		if fds, err := c.Recv(&r); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		close(gone)
	}()
	ws, ok := s.k.WaitExit(tg, gone)
	if !ok {
		_ = tg.SendSignal(&arch.SignalInfo{Signo: int32(unix.SIGKILL), Code: arch.SI_KERNEL})
		return
	}
	send(&control.Response{Result: &control.Response_WaitStatus{WaitStatus: uint32(ws)}})
}

// spawn starts the process p describes, with stdio taken from fds (which
// it owns) and fds[3:] as its 3, 4, .... With terminal, fds[0:3] are one
// host terminal that the process reaches through a sandbox terminal.
func (s *controlServer) spawn(p *control.Process, fds []int, terminal bool) (*kernel.ThreadGroup, error) {
	ctx := context.Background()
	fail := func(err error) (*kernel.ThreadGroup, error) {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		return nil, err
	}
	if p == nil || len(p.Argv) == 0 || p.Argv[0] == "" {
		return fail(errors.New("exec: empty argv"))
	}
	cwd := s.root
	if p.Cwd != "" && p.Cwd != "/" {
		vd, err := s.v.GetDentryAt(ctx, &vfs.PathOperation{Root: s.root, Start: s.root, Path: p.Cwd, FollowFinalSymlink: true})
		if err != nil {
			return fail(fmt.Errorf("exec: working directory %q: %w", p.Cwd, err))
		}
		cwd = vd
	}
	var rls []Rlimit
	for _, r := range p.Rlimits {
		rls = append(rls, Rlimit{Resource: int(r.Resource), Soft: r.Soft, Hard: r.Hard})
	}
	ls, err := processLimits(rls)
	if err != nil {
		return fail(fmt.Errorf("exec: %w", err))
	}
	var caps *ProcessCaps
	if p.HasCaps {
		caps = &ProcessCaps{Bounding: p.CapBounding, Effective: p.CapEffective, Permitted: p.CapPermitted, Inheritable: p.CapInheritable, Ambient: p.CapAmbient}
	}
	creds := processCreds(p.Uid, p.Gid, p.ExtraGids, caps, p.NoNewPrivs)
	umask := uint32(0o022)
	if p.HasUmask {
		umask = p.Umask
	}

	// From here each FD is owned by fdt or closed as it is consumed.
	fdt := vfs.NewFDTable()
	var tty *kernel.TTY
	if terminal {
		unix.Close(fds[1])
		unix.Close(fds[2])
		tty, err = installTerminal(ctx, s.v, s.root, fdt, fds[0], creds)
		fds[0], fds[1], fds[2] = -1, -1, -1
	} else {
		err = installFDs(ctx, fdt, 0, fds[:3])
	}
	if err == nil {
		err = installFDs(ctx, fdt, 3, fds[3:])
	}
	if err != nil {
		fdt.DecRef(ctx)
		return nil, fmt.Errorf("exec: %w", err)
	}
	tg, err := s.k.CreateProcess(kernel.InitArgs{
		Argv:   p.Argv,
		Envv:   p.Envv,
		Creds:  creds,
		FS:     kernel.NewTaskFS(fdt, vfs.NewFSContext(s.root, cwd, umask)),
		Limits: ls,
		Path:   p.Argv[0],
		TTY:    tty,
	})
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, errors.New("exec: the container is not running")
		}
		return nil, fmt.Errorf("exec %s: %w", p.Argv[0], err)
	}
	return tg, nil
}

// drainWaiters gives init's waiters a moment to hear the exit status
// before the sentry exits.
func (s *controlServer) drainWaiters() {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		s.mu.Lock()
		n := s.waiters
		s.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
