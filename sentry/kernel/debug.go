package kernel

import (
	"context"
	"fmt"
	"io"
	"runtime/pprof"
	"sort"
	"strconv"
	"time"
)

// What a stuck sandbox shows someone debugging it: every task's state and
// where it is (DumpTasks), and the goroutine stacks labelled with the task
// each goroutine works for.

// Stages of a task that DumpTasks names; stored in taskProcState.stage.
const (
	stageRunning      int32 = iota // the run loop: application code or a syscall
	stageExitMM                    // exit: robust futexes and clear_child_tid
	stageExitFiles                 // exit: dropping the FD table and FS context
	stageExitPlatform              // exit: releasing the platform context
	stageExitTree                  // exit: leaving the task tree
)

var stageNames = [...]string{"running", "exit: robust list/clear_child_tid", "exit: files", "exit: platform context", "exit: task tree"}

// DumpTasks writes one line per live task (thread group, tid, name, state,
// the syscall it is in and for how long, pending and blocked signals) and
// then the stacks of all goroutines, those of tasks labelled tid=N. It is
// for debugging a sandbox that does not make progress.
func (k *Kernel) DumpTasks(w io.Writer) {
	k.mu.Lock()
	tasks := make([]*Task, 0, len(k.tasks))
	for _, t := range k.tasks {
		tasks = append(tasks, t)
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].tid < tasks[j].tid })
	fmt.Fprintf(w, "veil: %d tasks, %d running goroutines of tasks\n", len(tasks), k.nRunning)
	now := time.Now()
	for _, t := range tasks {
		where := "application or sentry"
		if nr := t.proc.syscall.Load(); nr > 0 {
			where = fmt.Sprintf("in %s for %v", syscallName(uintptr(nr-1)),
				now.Sub(time.Unix(0, t.proc.syscallStart.Load())).Round(time.Millisecond))
		}
		stage := t.proc.stage.Load()
		name := "?"
		if int(stage) < len(stageNames) {
			name = stageNames[stage]
		}
		u, sys := t.CPUTime()
		fmt.Fprintf(w, "  pid %d tid %d %q state %c stage %q %s exiting=%v group-exiting=%v stopped=%v pending=%#x group-pending=%#x mask=%#x user=%v sys=%v faults=%d last-fault=%#x\n",
			t.tg.id, t.tid, t.Name(), t.procStateLocked(), name, where, t.exiting, t.tg.exiting, t.stopped,
			uint64(t.pending.set), uint64(t.tg.pending.set), uint64(t.signalMask),
			u.Round(time.Millisecond), sys.Round(time.Millisecond), t.proc.faults.Load(), t.proc.lastFault.Load())
	}
	k.mu.Unlock()
	fmt.Fprintln(w, "veil: goroutines:")
	pprof.Lookup("goroutine").WriteTo(w, 1)
}

// labelGoroutine tags the calling goroutine (and those it starts) with the
// task's tid, so that goroutine dumps say whose stack is whose.
func (t *Task) labelGoroutine() {
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("tid", strconv.Itoa(int(t.tid)))))
}
