// Package kernel owns the sentry's processes: tasks (application threads)
// run by goroutines, thread groups, the PID namespace, process groups and
// sessions, controlling terminals and job control (tty.go), credentials,
// signals, futexes, timers, rlimits, exit and wait, execve, and the
// per-task run loop that switches into the platform and dispatches
// syscalls.
//
// Lock order: Kernel.mu (the task tree and all signal state) before
// futex bucket locks before mm locks. A task never holds Kernel.mu while
// it blocks or runs application code.
package kernel

import (
	"fmt"
	"io"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/kernel/ipc"
	"github.com/veil-sandbox/veil/sentry/memory"
)

// ThreadID is a task or thread group ID in the sandbox's PID namespace.
type ThreadID int32

// SyscallFunc carries out syscall nr for t. It is the syscall table,
// installed by whoever builds the kernel (the kernel does not know how
// arguments are laid out).
type SyscallFunc func(t *Task, nr uintptr, args arch.SyscallArguments) (uintptr, error)

// Config is what the kernel needs to start.
type Config struct {
	Platform   platform.Platform
	MemoryFile *memory.File
	Syscalls   SyscallFunc
	// Hostname and Release show in uname.
	Hostname string
	// Strace, when set, receives one line per syscall.
	Strace io.Writer
	// Log receives the kernel's own log lines (unimplemented syscalls...).
	Log *log.Logger
	// NumCPU is how many CPUs the sandbox reports.
	NumCPU int
}

// Kernel is one sandbox's kernel.
type Kernel struct {
	Config
	fs kernelFS

	futexes futexManager
	start   time.Time

	// mu protects the task tree, process groups, sessions and all signal
	// state (pending sets, masks, actions, stops).
	mu       sync.Mutex
	tasks    map[ThreadID]*Task
	tgs      map[ThreadID]*ThreadGroup
	lastTID  ThreadID
	initTG   *ThreadGroup
	nRunning int

	// done is closed when the init process has exited and every task is
	// gone; exitStatus is init's wait status then.
	done       chan struct{}
	exitStatus WaitStatus
	hostnameMu sync.Mutex

	totalMemory uint64

	// ctl is the control server's state (control.go), under mu.
	ctl controlState

	// console is what /dev/console opens (tty.go).
	console atomic.Pointer[TTY]

	// ipc is the sandbox's System V IPC namespace (ipc.go).
	ipc *ipc.Namespace
}

// New returns a kernel with no tasks.
func New(cfg Config) *Kernel {
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	if cfg.NumCPU <= 0 {
		cfg.NumCPU = 1
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "veil"
	}
	return &Kernel{
		Config: cfg,
		ipc:    newIPCNamespace(cfg.MemoryFile),
		tasks:  make(map[ThreadID]*Task),
		tgs:    make(map[ThreadID]*ThreadGroup),
		start:  time.Now(),
		done:   make(chan struct{}),

		totalMemory: hostTotalMemory(),
	}
}

// Release is the Linux version the sandbox reports: the sentry's own.
const Release = "6.6.0-veil"

// Version is uname's version field.
const Version = "#1 SMP Veil sentry"

// Hostname returns the UTS hostname.
func (k *Kernel) Hostname() string {
	k.hostnameMu.Lock()
	defer k.hostnameMu.Unlock()
	return k.Config.Hostname
}

// SetHostname sets it.
func (k *Kernel) SetHostname(h string) {
	k.hostnameMu.Lock()
	k.Config.Hostname = h
	k.hostnameMu.Unlock()
}

// Uptime is the time since boot.
func (k *Kernel) Uptime() time.Duration { return time.Since(k.start) }

// allocTID returns a free ID. k.mu is held.
func (k *Kernel) allocTIDLocked() (ThreadID, error) {
	const pidMax = 1 << 22
	for i := 0; i < pidMax; i++ {
		k.lastTID++
		if k.lastTID >= pidMax {
			k.lastTID = 1
		}
		if _, ok := k.tasks[k.lastTID]; ok {
			continue
		}
		if _, ok := k.tgs[k.lastTID]; ok {
			continue // a zombie thread group still holds its ID
		}
		return k.lastTID, nil
	}
	return 0, fmt.Errorf("out of pids")
}

// Wait blocks until the sandbox's init has exited and all tasks are gone,
// and returns init's wait status.
func (k *Kernel) Wait() WaitStatus {
	<-k.done
	return k.exitStatus
}

// Done is closed when the sandbox has ended.
func (k *Kernel) Done() <-chan struct{} { return k.done }

// TaskCount returns how many tasks exist.
func (k *Kernel) TaskCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.tasks)
}

// Init returns the init thread group (nil before the first task).
func (k *Kernel) Init() *ThreadGroup {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.initTG
}

// TaskByID returns a live task.
func (k *Kernel) TaskByID(tid ThreadID) *Task {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tasks[tid]
}

// ThreadGroups returns every thread group that has live tasks.
func (k *Kernel) ThreadGroups() []*ThreadGroup {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []*ThreadGroup
	for _, tg := range k.tgs {
		if len(tg.tasks) > 0 {
			out = append(out, tg)
		}
	}
	return out
}

// rootCreds is the credentials of init unless the caller gives others.
func defaultCreds() *auth.Credentials { return auth.NewRoot() }
