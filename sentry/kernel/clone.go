package kernel

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/limits"
	"github.com/veil-sandbox/veil/sentry/mm"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// InitArgs describe the sandbox's first process.
type InitArgs struct {
	Argv, Envv []string
	Creds      *auth.Credentials
	// FS is the init process's file system state (root, cwd, FD table
	// with stdio installed).
	FS taskFS
	// Limits; nil means Linux's defaults.
	Limits *limits.LimitSet
	// Path is the executable (absolute, inside the sandbox).
	Path string
	// TTY, if set, is the controlling terminal of the new session the
	// process leads, with the process in the foreground, from before its
	// first instruction (a runtime's setsid+TIOCSCTTY). It is ignored if
	// it already controls a session.
	TTY *TTY
}

// NewTaskFS makes file system state for InitArgs from an FD table and an
// FSContext, whose references pass to it.
func NewTaskFS(fdt *vfs.FDTable, fsc *vfs.FSContext) taskFS { return newTaskFS(fdt, fsc) }

// CreateInit builds and starts the init process (PID 1).
func (k *Kernel) CreateInit(args InitArgs) (*Task, error) {
	if args.Creds == nil {
		args.Creds = defaultCreds()
	}
	if args.Limits == nil {
		args.Limits = limits.NewDefault()
	}
	k.mu.Lock()
	tid, err := k.allocTIDLocked()
	if err != nil {
		k.mu.Unlock()
		return nil, err
	}
	tg := k.newThreadGroupLocked(tid, nil, &SignalHandlers{}, args.Limits)
	tg.pgid, tg.sid = tid, tid
	tg.exitSignal = int(unix.SIGCHLD)
	k.initTG = tg
	t := k.newTaskLocked(tid, tg, args.Creds)
	t.fs = args.FS
	args.TTY.attachNewLocked(t)
	k.mu.Unlock()

	t.SetName(baseName(args.Path))
	m, err := k.newMM()
	if err != nil {
		return nil, err
	}
	t.mm = m
	if err := t.loadExecutable(args.Path, args.Argv, args.Envv); err != nil {
		m.DecUsers()
		k.mu.Lock()
		delete(k.tasks, tid)
		delete(k.tgs, tid)
		k.initTG = nil
		k.mu.Unlock()
		return nil, err
	}
	t.start()
	return t, nil
}

func (k *Kernel) newMM() (*mm.MemoryManager, error) {
	as, err := k.Platform.NewAddressSpace()
	if err != nil {
		return nil, err
	}
	m := mm.NewMemoryManager(k.MemoryFile, k.Platform.MaxUserAddress())
	m.SetAddressSpace(as)
	return m, nil
}

func (k *Kernel) newThreadGroupLocked(id ThreadID, parent *ThreadGroup, h *SignalHandlers, ls *limits.LimitSet) *ThreadGroup {
	tg := &ThreadGroup{
		k: k, id: id, handlers: h, parent: parent, limits: ls,
		children:   make(map[*ThreadGroup]struct{}),
		childEvent: make(chan struct{}),
		startTime:  time.Now(),
	}
	if parent != nil {
		parent.children[tg] = struct{}{}
		tg.proc.inherit(&parent.proc)
	}
	k.tgs[id] = tg
	return tg
}

func (k *Kernel) newTaskLocked(tid ThreadID, tg *ThreadGroup, creds *auth.Credentials) *Task {
	t := &Task{
		k: k, tg: tg, tid: tid,
		pctx:        k.Platform.NewContext(),
		interruptCh: make(chan struct{}, 1),
		startTime:   time.Now(),
		altStack:    arch.SignalStack{Flags: arch.SS_DISABLE},
	}
	t.creds.Store(creds)
	tg.tasks = append(tg.tasks, t)
	k.tasks[tid] = t
	return t
}

// CloneOptions are clone(2)'s arguments.
type CloneOptions struct {
	Flags      uint64
	ExitSignal int
	Stack      hostarch.Addr
	ParentTID  hostarch.Addr
	ChildTID   hostarch.Addr
	TLS        uint64
}

const cloneFlagsAllowed = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
	unix.CLONE_PTRACE | unix.CLONE_VFORK | unix.CLONE_PARENT | unix.CLONE_THREAD |
	unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID |
	unix.CLONE_CHILD_CLEARTID | unix.CLONE_DETACHED | unix.CLONE_UNTRACED |
	unix.CLONE_CHILD_SETTID | unix.CLONE_IO

// Clone is clone(2), fork(2) and vfork(2).
func (t *Task) Clone(opts CloneOptions) (ThreadID, error) {
	f := opts.Flags
	if f&^uint64(cloneFlagsAllowed) != 0 {
		// Namespaces and other features Veil does not offer.
		if f&(unix.CLONE_NEWNS|unix.CLONE_NEWUTS|unix.CLONE_NEWIPC|unix.CLONE_NEWPID|
			unix.CLONE_NEWNET|unix.CLONE_NEWUSER|unix.CLONE_NEWCGROUP) != 0 {
			return 0, unix.EPERM
		}
		return 0, unix.EINVAL
	}
	// The consistency rules of clone(2).
	if f&unix.CLONE_THREAD != 0 && f&unix.CLONE_SIGHAND == 0 {
		return 0, unix.EINVAL
	}
	if f&unix.CLONE_SIGHAND != 0 && f&unix.CLONE_VM == 0 {
		return 0, unix.EINVAL
	}
	if f&unix.CLONE_THREAD != 0 && opts.ExitSignal != 0 {
		opts.ExitSignal = 0
	}
	if opts.ExitSignal < 0 || opts.ExitSignal > NumSignals {
		return 0, unix.EINVAL
	}
	k := t.k
	// Address space.
	var newMM *mm.MemoryManager
	if f&unix.CLONE_VM != 0 {
		t.mm.IncUsers()
		newMM = t.mm
	} else {
		as, err := k.Platform.NewAddressSpace()
		if err != nil {
			return 0, unix.ENOMEM
		}
		m, err := t.mm.Fork()
		if err != nil {
			as.Release()
			return 0, err
		}
		m.SetAddressSpace(as)
		newMM = m
	}
	// The child starts with the parent's registers, FP state included.
	if err := t.pctx.PullFullState(t.mm.AddressSpace(), &t.ac); err != nil {
		newMM.DecUsers()
		return 0, unix.ENOMEM
	}
	fs := t.fs.fork(f&unix.CLONE_FILES != 0, f&unix.CLONE_FS != 0)

	k.mu.Lock()
	if t.tg.exiting || t.exiting {
		k.mu.Unlock()
		fs.release()
		newMM.DecUsers()
		return 0, unix.EINTR
	}
	tid, err := k.allocTIDLocked()
	if err != nil {
		k.mu.Unlock()
		fs.release()
		newMM.DecUsers()
		return 0, unix.EAGAIN
	}
	var tg *ThreadGroup
	if f&unix.CLONE_THREAD != 0 {
		tg = t.tg
	} else {
		parent := t.tg
		if f&unix.CLONE_PARENT != 0 && t.tg.parent != nil {
			parent = t.tg.parent
		}
		h := t.tg.handlers
		if f&unix.CLONE_SIGHAND == 0 {
			h = h.fork()
		}
		tg = k.newThreadGroupLocked(tid, parent, h, t.tg.limits.Copy())
		tg.pgid, tg.sid, tg.tty = t.tg.pgid, t.tg.sid, t.tg.tty
		tg.exitSignal = opts.ExitSignal
	}
	nt := k.newTaskLocked(tid, tg, t.Credentials())
	nt.fs = fs
	nt.mm = newMM
	nt.ac = *t.ac.Fork()
	nt.signalMask = t.signalMask
	nt.name.Store(t.Name())
	nt.exitSignal = opts.ExitSignal
	// A new process keeps the alternate signal stack; a thread sharing
	// the address space starts without one (clone(2)).
	if f&unix.CLONE_VM == 0 {
		nt.altStack = t.altStack
	}
	// The child returns 0 from clone, on its new stack and TLS if given.
	nt.ac.Regs.Rax = 0
	if opts.Stack != 0 {
		nt.ac.Regs.Rsp = uint64(opts.Stack)
	}
	if f&unix.CLONE_SETTLS != 0 {
		nt.ac.Regs.Fs_base = opts.TLS
	}
	if f&unix.CLONE_CHILD_CLEARTID != 0 {
		nt.clearChildTID = opts.ChildTID
	}
	var vforkDone chan struct{}
	if f&unix.CLONE_VFORK != 0 {
		vforkDone = make(chan struct{})
		nt.vforkDone = vforkDone
	}
	k.mu.Unlock()

	var tidBytes [4]byte
	tidBytes[0], tidBytes[1], tidBytes[2], tidBytes[3] = byte(tid), byte(tid>>8), byte(tid>>16), byte(tid>>24)
	if f&unix.CLONE_PARENT_SETTID != 0 {
		t.CopyOutBytes(opts.ParentTID, tidBytes[:])
	}
	if f&unix.CLONE_CHILD_SETTID != 0 {
		newMM.CopyOut(opts.ChildTID, tidBytes[:])
	}
	nt.start()
	if vforkDone != nil {
		// The parent sleeps until the child execs or exits; signals wait
		// too, but not a kill (Linux's killable wait): a SIGKILLed parent
		// of a stopped or stuck child must still die.
		for waiting := true; waiting; {
			select {
			case <-vforkDone:
				waiting = false
			case <-t.interruptCh:
				t.k.mu.Lock()
				killed := t.killedLocked()
				t.k.mu.Unlock()
				if killed {
					waiting = false
				}
			}
		}
	}
	return tid, nil
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
