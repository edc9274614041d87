package gofer

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// On a virtual machine, waking a thread that sleeps on another CPU costs
// tens of microseconds (an IPI and a VM exit), ten times a wake-up on the
// same CPU; a gofer round trip would pay it twice. So each session serves
// from its own OS thread and follows the client's CPU, which the sentry
// sends as a hint with each request. It moves only after two requests in
// a row from the same other CPU, so two sentry threads on different CPUs
// do not make it bounce on every request.

// cpuFollower is a session's affinity state.
type cpuFollower struct {
	cur     uint32 // the CPU+1 this thread is bound to (0: none yet)
	pending uint32 // a CPU+1 seen once, not yet moved to
}

// lockThread binds the serving goroutine to one OS thread, so affinity
// set on it stays with the session.
func (f *cpuFollower) lockThread() { runtime.LockOSThread() }

// follow handles the hint of one request: cpu is the client's CPU plus
// one, 0 when not given. A hint naming a CPU this process may not use
// fails in the kernel and is ignored.
func (f *cpuFollower) follow(cpu uint32) {
	if cpu == 0 || cpu == f.cur || cpu > 1024 {
		f.pending = 0
		return
	}
	if f.pending != cpu {
		f.pending = cpu
		return
	}
	var set unix.CPUSet
	set.Set(int(cpu - 1))
	if unix.SchedSetaffinity(0, &set) == nil {
		f.cur = cpu
	}
	f.pending = 0
}
