package stubutil

import (
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
)

// Tracer says how a platform traces its stub threads.
type Tracer struct {
	// Name starts every error message ("ptrace", "systrap").
	Name string
	// Options are the PTRACE_O_* flags every seized thread gets.
	Options int
}

// Thread is one stub thread traced by one OS thread of the sentry: all
// requests but Reap must come from that OS thread.
type Thread struct {
	TGID, TID int32
	// InitRegs are registers valid for running stub code (segments,
	// flags); injections start from a copy.
	InitRegs unix.PtraceRegs
	// Runs counts the times the thread was resumed, so a tracer can
	// tell that registers it read are still the thread's.
	Runs uint64

	name string
}

// Traced returns the Thread for a stub thread already traced by the
// calling OS thread (a process it started with PTRACE_TRACEME).
func (tr *Tracer) Traced(tgid, tid int32) *Thread {
	return &Thread{TGID: tgid, TID: tid, name: tr.Name}
}

// Seize attaches the calling OS thread to a parked stub thread and stops
// it.
func (tr *Tracer) Seize(tgid, tid int32) (*Thread, error) {
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(tid), 0, uintptr(tr.Options), 0, 0); e != 0 {
		return nil, fmt.Errorf("%s: seizing stub thread %d: %w", tr.Name, tid, e)
	}
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_INTERRUPT, uintptr(tid), 0, 0, 0, 0); e != 0 {
		return nil, fmt.Errorf("%s: interrupting stub thread %d: %w", tr.Name, tid, e)
	}
	t := tr.Traced(tgid, tid)
	if _, err := t.Wait(); err != nil {
		return nil, err
	}
	return t, nil
}

// Wait waits for the thread's next stop and returns its status;
// platform.ErrContextDead if the thread exited or was killed.
func (t *Thread) Wait() (unix.WaitStatus, error) {
	var status unix.WaitStatus
	for {
		_, err := unix.Wait4(int(t.TID), &status, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return status, fmt.Errorf("%s: waiting for stub thread %d: %w", t.name, t.TID, err)
		}
		if status.Exited() || status.Signaled() {
			return status, platform.ErrContextDead
		}
		return status, nil
	}
}

// Reap collects a killed thread's exit. Any thread of the sentry may wait
// for a tracee of another.
func (t *Thread) Reap() {
	var status unix.WaitStatus
	for {
		_, err := unix.Wait4(int(t.TID), &status, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || status.Exited() || status.Signaled() {
			return
		}
	}
}

// GetRegs reads the stopped thread's general registers.
func (t *Thread) GetRegs(r *unix.PtraceRegs) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGS, uintptr(t.TID), 0, uintptr(unsafe.Pointer(r)), 0, 0); e != 0 {
		return fmt.Errorf("%s: GETREGS %d: %w", t.name, t.TID, e)
	}
	return nil
}

// SetRegs writes the stopped thread's general registers.
func (t *Thread) SetRegs(r *unix.PtraceRegs) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGS, uintptr(t.TID), 0, uintptr(unsafe.Pointer(r)), 0, 0); e != 0 {
		return fmt.Errorf("%s: SETREGS %d: %w", t.name, t.TID, e)
	}
	return nil
}

// PokeUser writes one word of the stopped thread's user area (a register,
// at its offset in unix.PtraceRegs).
func (t *Thread) PokeUser(off uintptr, v uint64) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_POKEUSR, uintptr(t.TID), off, uintptr(v), 0, 0); e != 0 {
		return fmt.Errorf("%s: POKEUSER %d: %w", t.name, t.TID, e)
	}
	return nil
}

// Cont resumes the stopped thread with ptrace request req (PTRACE_CONT,
// PTRACE_SYSEMU), delivering sig.
func (t *Thread) Cont(req int, sig int) error {
	t.Runs++
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(t.TID), 0, uintptr(sig), 0, 0); e != 0 {
		return fmt.Errorf("%s: resuming %d: %w", t.name, t.TID, e)
	}
	return nil
}

// Syscall runs one host syscall in the stopped thread by pointing it at
// site, a syscall instruction followed by int3, and letting it run to the
// trap; it returns the raw result (rax). The registers start from
// InitRegs.
func (t *Thread) Syscall(site, nr uintptr, args [6]uintptr) (uintptr, error) {
	return t.SyscallFrom(t.InitRegs, site, nr, args)
}

// SyscallFrom is Syscall with the registers other than the syscall's
// starting from regs (for a site that reads more of them). Stops before
// the trap that are not it (a stale interrupt signal, a seccomp or other
// ptrace event) are let go.
func (t *Thread) SyscallFrom(regs unix.PtraceRegs, site, nr uintptr, args [6]uintptr) (uintptr, error) {
	regs.Rip = uint64(site)
	regs.Rax = uint64(nr)
	regs.Orig_rax = ^uint64(0)
	regs.Rdi, regs.Rsi, regs.Rdx = uint64(args[0]), uint64(args[1]), uint64(args[2])
	regs.R10, regs.R8, regs.R9 = uint64(args[3]), uint64(args[4]), uint64(args[5])
	if err := t.SetRegs(&regs); err != nil {
		return 0, err
	}
	for {
		if err := t.Cont(unix.PTRACE_CONT, 0); err != nil {
			return 0, err
		}
		status, err := t.Wait()
		if err != nil {
			return 0, err
		}
		if status.Stopped() && status.StopSignal() == unix.SIGTRAP && status.TrapCause() <= 0 {
			break
		}
	}
	if err := t.GetRegs(&regs); err != nil {
		return 0, err
	}
	return uintptr(regs.Rax), nil
}

// SetOptions sets the PTRACE_O_* options of a traced thread; the error is
// the bare errno.
func SetOptions(tid int32, opts int) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_SETOPTIONS, uintptr(tid), 0, uintptr(opts), 0, 0); e != 0 {
		return e
	}
	return nil
}

const ntX86XState = 0x202

// GetXState reads a stopped thread's XSAVE image into buf and returns its
// length; the error is the bare errno.
func GetXState(tid int32, buf []byte) (int, error) {
	iov := unix.Iovec{Base: &buf[0], Len: uint64(len(buf))}
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(tid), ntX86XState, uintptr(unsafe.Pointer(&iov)), 0, 0); e != 0 {
		return 0, e
	}
	return int(iov.Len), nil
}

// SetXState loads buf, which must be the host's XSAVE size, as a stopped
// thread's XSAVE image; the error is the bare errno.
func SetXState(tid int32, buf []byte) error {
	iov := unix.Iovec{Base: &buf[0], Len: uint64(len(buf))}
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGSET, uintptr(tid), ntX86XState, uintptr(unsafe.Pointer(&iov)), 0, 0); e != 0 {
		return e
	}
	return nil
}

// Exec starts image, a stub executable, as a new process traced by the
// calling OS thread (PTRACE_TRACEME), with files as its first FDs and
// nothing else: no arguments but its name, no environment. The image is
// exec'd from a memfd called memfdName through /proc/self/fd. The caller
// waits for the thread's first stop.
func (tr *Tracer) Exec(memfdName string, image []byte, files []uintptr) (*Thread, error) {
	elf, err := unix.MemfdCreate(memfdName, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%s: memfd for stub: %w", tr.Name, err)
	}
	defer unix.Close(elf)
	if _, err := unix.Write(elf, image); err != nil {
		return nil, fmt.Errorf("%s: writing stub: %w", tr.Name, err)
	}
	path := fmt.Sprintf("/proc/self/fd/%d", elf)
	pid, err := syscall.ForkExec(path, []string{"veil-stub"}, &syscall.ProcAttr{
		Env:   []string{},
		Files: files,
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: starting stub: %w", tr.Name, err)
	}
	return tr.Traced(int32(pid), int32(pid)), nil
}

// Factory is a goroutine locked to its OS thread for the sentry's life:
// ptrace requests must come from the tracing thread, so the stubs that
// live as long as their platform (the template, the leaders) are traced
// by it and every request for them runs on it.
type Factory struct {
	requests chan func()
}

// StartFactory starts a factory and runs start on it first. If start
// fails the factory ends and its error is returned.
func StartFactory(start func() error) (*Factory, error) {
	f := &Factory{requests: make(chan func())}
	errc := make(chan error, 1)
	go f.run(start, errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	return f, nil
}

// run never returns once started, so its OS thread (the tracer of the
// factory's stubs) lives as long as the sentry.
func (f *Factory) run(start func() error, errc chan<- error) {
	runtime.LockOSThread()
	if err := start(); err != nil {
		errc <- err
		return
	}
	errc <- nil
	for fn := range f.requests {
		fn()
	}
}

// Do runs fn on the factory's OS thread.
func (f *Factory) Do(fn func()) {
	done := make(chan struct{})
	f.requests <- func() { fn(); close(done) }
	<-done
}
