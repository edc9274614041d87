package kernel

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// Read-only views of tasks and processes for procfs, and the little state
// only /proc shows (I/O counters, oom_score_adj, a zombie's name).

// taskProcState is per-task state kept for /proc.
type taskProcState struct {
	// blocked is set while the task waits in Block (state S).
	blocked atomic.Bool
	io      ioCounters
	// syscall is the number+1 of the syscall being handled (0: none),
	// syscallStart when it began (UnixNano), stage where the task's
	// goroutine is (stage* in debug.go): for DumpTasks.
	syscall      atomic.Int64
	syscallStart atomic.Int64
	stage        atomic.Int32
	// faults counts faults taken from application code, lastFault is
	// the address of the latest (a task stuck faulting shows there).
	faults    atomic.Uint64
	lastFault atomic.Uint64
}

// ioCounters are /proc/PID/io's character counts, kept by the syscall
// dispatcher for the read and write families.
type ioCounters struct {
	rchar, wchar, syscr, syscw atomic.Uint64
}

// IOStats is /proc/PID/io. The sandbox has no block devices, so bytes
// read from or written to storage are not counted apart from rchar/wchar.
type IOStats struct {
	RChar, WChar, SysCR, SysCW uint64
}

func (s *IOStats) add(o IOStats) {
	s.RChar += o.RChar
	s.WChar += o.WChar
	s.SysCR += o.SysCR
	s.SysCW += o.SysCW
}

// account counts a successful syscall nr that returned rval.
func (c *ioCounters) account(nr, rval uintptr) {
	switch nr {
	case unix.SYS_READ, unix.SYS_READV, unix.SYS_PREAD64, unix.SYS_PREADV, unix.SYS_PREADV2:
		c.syscr.Add(1)
		c.rchar.Add(uint64(rval))
	case unix.SYS_WRITE, unix.SYS_WRITEV, unix.SYS_PWRITE64, unix.SYS_PWRITEV, unix.SYS_PWRITEV2:
		c.syscw.Add(1)
		c.wchar.Add(uint64(rval))
	case unix.SYS_SENDFILE, unix.SYS_COPY_FILE_RANGE, unix.SYS_SPLICE:
		c.rchar.Add(uint64(rval))
		c.wchar.Add(uint64(rval))
	}
}

func (c *ioCounters) load() IOStats {
	return IOStats{RChar: c.rchar.Load(), WChar: c.wchar.Load(), SysCR: c.syscr.Load(), SysCW: c.syscw.Load()}
}

// tgProcState is per-process state kept for /proc. Protected by Kernel.mu.
type tgProcState struct {
	// lastTask is the leader once it has exited (or the last task to go):
	// a zombie's name and credentials come from it.
	lastTask *Task
	// deadIO is the I/O of exited threads.
	deadIO IOStats
	// oomScoreAdj and oomScoreAdjMin are /proc/PID/oom_score_adj and the
	// floor below which only CAP_SYS_RESOURCE may set it (Linux's
	// signal_struct fields of the same names).
	oomScoreAdj, oomScoreAdjMin int32
	// exe is the executable the process runs (/proc/PID/exe).
	exe vfs.VirtualDentry
}

func (p *tgProcState) inherit(parent *tgProcState) {
	p.oomScoreAdj, p.oomScoreAdjMin = parent.oomScoreAdj, parent.oomScoreAdjMin
	p.exe = parent.exe
}

func (t *Task) setExecutableDentry(vd vfs.VirtualDentry) {
	t.k.mu.Lock()
	t.tg.proc.exe = vd
	t.k.mu.Unlock()
}

// Executable returns where the process's executable is in the mount
// tree (zero before the first exec).
func (tg *ThreadGroup) Executable() vfs.VirtualDentry {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.proc.exe
}

// taskExitedLocked records what /proc still needs of an exited task.
func (p *tgProcState) taskExitedLocked(t *Task) {
	p.deadIO.add(t.proc.io.load())
	if t.tid == t.tg.id || len(t.tg.tasks) == 0 {
		p.lastTask = t
	}
}

// ProcessList returns every process of the sandbox, zombies included, in
// PID order.
func (k *Kernel) ProcessList() []*ThreadGroup {
	k.mu.Lock()
	out := make([]*ThreadGroup, 0, len(k.tgs))
	for _, tg := range k.tgs {
		if len(tg.tasks) > 0 || tg.zombie {
			out = append(out, tg)
		}
	}
	k.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Zombie reports whether every task of the process has exited.
func (tg *ThreadGroup) Zombie() bool {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.zombie || len(tg.tasks) == 0
}

// ProcTask returns the task whose name and credentials stand for the
// process: the leader, another live thread if it has exited, or for a
// zombie the task that exited last. Only a zombie's is an exited task,
// whose memory and files are gone.
func (tg *ThreadGroup) ProcTask() *Task {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if t := tg.leaderLocked(); t != nil {
		return t
	}
	return tg.proc.lastTask
}

// ExitStatus returns a zombie's wait status (0 while it runs).
func (tg *ThreadGroup) ExitStatus() WaitStatus {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if !tg.zombie {
		return 0
	}
	return tg.status
}

// Exited reports whether the task has left its thread group.
func (t *Task) Exited() bool {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	for _, ot := range t.tg.tasks {
		if ot == t {
			return false
		}
	}
	return true
}

// ProcState is the task's state letter in /proc/PID/stat: R running
// (application code or a syscall), S waiting, T stopped, Z exited.
func (t *Task) ProcState() byte {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	return t.procStateLocked()
}

func (t *Task) procStateLocked() byte {
	live := false
	for _, ot := range t.tg.tasks {
		if ot == t {
			live = true
			break
		}
	}
	switch {
	case !live:
		return 'Z'
	case t.stopped || t.tg.groupStopped:
		return 'T'
	case t.proc.blocked.Load():
		return 'S'
	}
	return 'R'
}

// ProcState is the process's state: its leader's, as Linux shows it
// (a process whose leader has exited shows Z while other threads run).
func (tg *ThreadGroup) ProcState() byte {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if tg.zombie || len(tg.tasks) == 0 {
		return 'Z'
	}
	for _, t := range tg.tasks {
		if t.tid == tg.id {
			return t.procStateLocked()
		}
	}
	return 'Z'
}

// IOStats returns the task's I/O counts.
func (t *Task) IOStats() IOStats { return t.proc.io.load() }

// IOStats returns the process's I/O counts, exited threads included.
func (tg *ThreadGroup) IOStats() IOStats {
	tg.k.mu.Lock()
	s := tg.proc.deadIO
	tasks := append([]*Task(nil), tg.tasks...)
	tg.k.mu.Unlock()
	for _, t := range tasks {
		s.add(t.proc.io.load())
	}
	return s
}

// OwnPendingSignals returns the signals pending for the task alone
// (SigPnd) and SharedPendingSignals those pending for the whole process
// (ShdPnd), whether blocked or not.
func (t *Task) OwnPendingSignals() SignalSet {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	return t.pending.set
}

func (tg *ThreadGroup) SharedPendingSignals() SignalSet {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.pending.set
}

// SignalDispositions returns the signals the process ignores and those
// it catches with a handler (SigIgn, SigCgt).
func (tg *ThreadGroup) SignalDispositions() (ignored, caught SignalSet) {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if tg.handlers == nil {
		return 0, 0
	}
	for i, a := range tg.handlers.actions {
		switch a.Handler {
		case arch.SIG_DFL:
		case arch.SIG_IGN:
			ignored |= SignalSetOf(i + 1)
		default:
			caught |= SignalSetOf(i + 1)
		}
	}
	return ignored, caught
}

// OOMScoreAdj returns /proc/PID/oom_score_adj.
func (tg *ThreadGroup) OOMScoreAdj() int32 {
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	return tg.proc.oomScoreAdj
}

// SetOOMScoreAdj writes /proc/PID/oom_score_adj for a writer with
// creds: EINVAL outside [-1000, 1000], EACCES below the floor without
// CAP_SYS_RESOURCE; a privileged writer moves the floor, as Linux does.
func (tg *ThreadGroup) SetOOMScoreAdj(creds *auth.Credentials, v int64) error {
	if v < -1000 || v > 1000 {
		return unix.EINVAL
	}
	tg.k.mu.Lock()
	defer tg.k.mu.Unlock()
	if tg.zombie || len(tg.tasks) == 0 {
		return unix.ESRCH
	}
	priv := creds.HasCapability(auth.CAP_SYS_RESOURCE)
	if int32(v) < tg.proc.oomScoreAdjMin && !priv {
		return unix.EACCES
	}
	tg.proc.oomScoreAdj = int32(v)
	if priv {
		tg.proc.oomScoreAdjMin = int32(v)
	}
	return nil
}

// MayReadProcess reports whether caller may look into target's private
// /proc entries (fd/, cwd, root, exe, environ, maps, ...): Linux's
// ptrace_may_access with PTRACE_MODE_READ_FSCREDS. A process may always
// look at itself; otherwise the caller's filesystem IDs must match the
// target's real, effective and saved IDs, or the caller needs
// CAP_SYS_PTRACE.
func MayReadProcess(caller, target *Task) bool {
	if caller == nil {
		return true // the sentry's own work
	}
	if caller.tg == target.tg {
		return true
	}
	c, tc := caller.Credentials(), target.Credentials()
	if c.HasCapability(auth.CAP_SYS_PTRACE) {
		return true
	}
	return c.FSKUID == tc.RealKUID && c.FSKUID == tc.EffectiveKUID && c.FSKUID == tc.SavedKUID &&
		c.FSKGID == tc.RealKGID && c.FSKGID == tc.EffectiveKGID && c.FSKGID == tc.SavedKGID
}

// SchedStats are the kernel-wide counts /proc/loadavg and /proc/stat show.
type SchedStats struct {
	Tasks, Running, Blocked int
	// LastPID is the most recently allocated ID.
	LastPID ThreadID
}

// SchedStats counts the tasks, and those that are runnable (not waiting
// and not stopped).
func (k *Kernel) SchedStats() SchedStats {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := SchedStats{Tasks: len(k.tasks), LastPID: k.lastTID}
	for _, t := range k.tasks {
		switch t.procStateLocked() {
		case 'R':
			s.Running++
		}
	}
	return s
}

// loadAvg is Linux's exponentially damped run-queue average, sampled
// every loadInterval; samples are taken lazily when it is read, the
// current count standing for the time since the last read.
type loadAvg struct {
	mu   sync.Mutex
	last time.Time
	avg  [3]float64
}

const loadInterval = 5 * time.Second

var loadAvgs sync.Map // *Kernel → *loadAvg

// LoadAverage returns the 1, 5 and 15 minute load averages.
func (k *Kernel) LoadAverage() [3]float64 {
	v, _ := loadAvgs.LoadOrStore(k, &loadAvg{last: k.start})
	la := v.(*loadAvg)
	running := float64(k.SchedStats().Running)
	la.mu.Lock()
	defer la.mu.Unlock()
	n := int(time.Since(la.last) / loadInterval)
	if n > 0 {
		la.last = la.last.Add(time.Duration(n) * loadInterval)
		for i, mins := range []float64{1, 5, 15} {
			// After n samples of the same value the average is
			// decay^n * old + (1 - decay^n) * value.
			d := math.Pow(math.Exp(-loadInterval.Seconds()/(60*mins)), float64(n))
			la.avg[i] = la.avg[i]*d + running*(1-d)
		}
	}
	return la.avg
}

// SetTotalMemory sets the memory the sandbox reports as its total (its
// memory limit, when the runtime knows one). Call it before the first
// task starts.
func (k *Kernel) SetTotalMemory(n uint64) {
	if n > 0 {
		k.totalMemory = n
	}
}

// PopCount is the number of signals in s.
func (s SignalSet) PopCount() int { return bits.OnesCount64(uint64(s)) }
