package kernel

import (
	"bytes"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/limits"
)

// This file holds what the sandbox's control server (runsc/boot) asks of
// the kernel on behalf of the runsc CLI: processes started from outside
// (runsc exec) and waiting for them, process listings (runsc ps), freezing
// every task (runsc pause/resume), signals to everything (kill --all) and
// usage counters (runsc events --stats). Its state lives in Kernel.ctl
// under Kernel.mu.

// controlState is the kernel's side of the control server.
type controlState struct {
	// exits holds, for processes created by CreateProcess, a channel
	// closed when the process has exited (its status is then final).
	exits map[*ThreadGroup]chan struct{}
	// frozen: every task must park at the top of its run loop until thaw
	// is closed. parked counts the tasks parked.
	frozen bool
	thaw   chan struct{}
	parked int
}

// CreateProcess starts a process in the running sandbox, outside the init
// process's tree (its parent PID is 0, as the process was started from
// outside the sandbox) in a session and process group of its own. Use
// WaitExit to wait for it. args.Limits nil means Linux's defaults.
func (k *Kernel) CreateProcess(args InitArgs) (*ThreadGroup, error) {
	if args.Creds == nil {
		args.Creds = defaultCreds()
	}
	if args.Limits == nil {
		args.Limits = limits.NewDefault()
	}
	k.mu.Lock()
	if k.initTG == nil || k.initTG.exiting || k.initTG.zombie {
		k.mu.Unlock()
		args.FS.release()
		return nil, unix.ESRCH
	}
	tid, err := k.allocTIDLocked()
	if err != nil {
		k.mu.Unlock()
		args.FS.release()
		return nil, unix.EAGAIN
	}
	tg := k.newThreadGroupLocked(tid, nil, &SignalHandlers{}, args.Limits)
	tg.pgid, tg.sid = tid, tid
	tg.exitSignal = int(unix.SIGCHLD)
	if k.ctl.exits == nil {
		k.ctl.exits = make(map[*ThreadGroup]chan struct{})
	}
	k.ctl.exits[tg] = make(chan struct{})
	t := k.newTaskLocked(tid, tg, args.Creds)
	t.fs = args.FS
	args.TTY.attachNewLocked(t)
	// Counted as running from now, not from the goroutine's start: an
	// init exiting meanwhile must not see the sandbox empty and end it
	// while this task is still to run (and exit).
	k.nRunning++
	k.mu.Unlock()

	t.SetName(baseName(args.Path))
	m, err := k.newMM()
	if err == nil {
		t.mm = m
		err = t.loadExecutable(args.Path, args.Argv, args.Envv)
	}
	if err != nil {
		// The task goes through the ordinary exit path, which releases
		// what it holds and retires its ID.
		k.mu.Lock()
		tg.killLocked(ExitStatus(127))
		k.mu.Unlock()
		go t.run()
		return nil, err
	}
	go t.run()
	return tg, nil
}

// notifyExitLocked runs when tg's last task is gone.
func (k *Kernel) notifyExitLocked(tg *ThreadGroup) {
	if ch, ok := k.ctl.exits[tg]; ok {
		close(ch)
		delete(k.ctl.exits, tg)
	}
}

// WaitExit blocks until tg has exited, or cancel is closed (ok false), and
// returns its wait status. For the init process it waits for the whole
// sandbox to end, as init's status is final only then.
func (k *Kernel) WaitExit(tg *ThreadGroup, cancel <-chan struct{}) (ws WaitStatus, ok bool) {
	if tg == k.Init() {
		select {
		case <-k.done:
			return k.exitStatus, true
		case <-cancel:
			return 0, false
		}
	}
	k.mu.Lock()
	ch, watched := k.ctl.exits[tg]
	k.mu.Unlock()
	if watched {
		select {
		case <-ch:
		case <-cancel:
			return 0, false
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return tg.status, true
}

// SignalAll sends sig to every process of the sandbox.
func (k *Kernel) SignalAll(sig int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, tg := range k.tgs {
		if lt := tg.leaderLocked(); lt != nil && !tg.exiting {
			lt.sendSignalLocked(&arch.SignalInfo{Signo: int32(sig), Code: arch.SI_USER}, true)
		}
	}
}

// Pause freezes every task: each parks at the top of its run loop (a task
// blocked in a syscall is interrupted and its call restarted later, as for
// a group stop, but nothing is visible to the application). Pause returns
// once every task has parked, or after a second for tasks stuck in a host
// call (they park as soon as it returns).
func (k *Kernel) Pause() {
	k.mu.Lock()
	if !k.ctl.frozen {
		k.ctl.frozen = true
		k.ctl.thaw = make(chan struct{})
		for _, t := range k.tasks {
			t.interrupt()
		}
	}
	k.mu.Unlock()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		k.mu.Lock()
		done := k.ctl.parked >= len(k.tasks)
		k.mu.Unlock()
		if done {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Resume thaws the tasks Pause froze.
func (k *Kernel) Resume() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctl.frozen {
		k.ctl.frozen = false
		close(k.ctl.thaw)
	}
}

// Paused reports whether the sandbox is frozen.
func (k *Kernel) Paused() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ctl.frozen
}

// parkIfFrozenLocked parks t while the kernel is frozen and reports
// whether it did (the caller re-checks for exit and stops). k.mu is held
// on entry and exit, dropped while parked. An interrupt (a kill) unparks
// the task so that it can exit.
func (t *Task) parkIfFrozenLocked() bool {
	k := t.k
	if !k.ctl.frozen {
		return false
	}
	thaw := k.ctl.thaw
	k.ctl.parked++
	k.mu.Unlock()
	select {
	case <-thaw:
	case <-t.interruptCh:
	}
	k.mu.Lock()
	k.ctl.parked--
	// Time frozen is nobody's CPU time.
	t.mark = time.Now()
	return true
}

// ProcessInfo describes one process for runsc ps.
type ProcessInfo struct {
	PID, PPID ThreadID
	UID       uint32
	Comm      string
	Cmdline   []string
	Start     time.Time
	CPU       time.Duration
	State     string
	Threads   int
}

// Processes lists the live processes, by PID.
func (k *Kernel) Processes() []ProcessInfo {
	var out []ProcessInfo
	for _, tg := range k.ThreadGroups() {
		lt := tg.Leader()
		if lt == nil {
			continue
		}
		u, s := tg.CPUTimes()
		pi := ProcessInfo{
			PID:     tg.ID(),
			PPID:    tg.ParentID(),
			UID:     uint32(lt.Credentials().RealKUID),
			Comm:    lt.Name(),
			Start:   tg.StartTime(),
			CPU:     u + s,
			State:   tg.State(),
			Threads: len(tg.Tasks()),
		}
		if k.Paused() {
			pi.State = "T"
		}
		if m := lt.MemoryManager(); m != nil {
			ar := m.ArgvRange()
			if l := ar.Length(); l > 0 && l <= 1<<16 {
				buf := make([]byte, l)
				n, _ := m.CopyIn(ar.Start, buf)
				for _, a := range bytes.Split(bytes.TrimRight(buf[:n], "\x00"), []byte{0}) {
					pi.Cmdline = append(pi.Cmdline, string(a))
				}
			}
		}
		out = append(out, pi)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].PID < out[j-1].PID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Stats are the sandbox's usage counters.
type Stats struct {
	User, System time.Duration
	MemoryUsage  uint64
	MemoryTotal  uint64
	Tasks        int
}

// Stats returns CPU time of every live process and of the children they
// reaped, application memory in use, and the number of tasks (threads,
// as a pids cgroup counts them).
func (k *Kernel) Stats() Stats {
	var st Stats
	for _, tg := range k.ThreadGroups() {
		u, s := tg.CPUTimes()
		cu, cs := tg.ChildCPUTimes()
		st.User += u + cu
		st.System += s + cs
	}
	st.MemoryUsage = k.MemoryFile.TotalUsage()
	st.MemoryTotal = k.TotalMemory()
	st.Tasks = k.TaskCount()
	return st
}
