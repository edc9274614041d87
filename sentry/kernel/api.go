package kernel

import (
	"errors"
	"time"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/usermem"
)

// ErrInterrupted is returned by Block when a signal (or exit) needs the
// task; syscall handlers turn it into EINTR or a restart code.
var ErrInterrupted = errors.New("kernel: interrupted")

// ErrTimedOut is returned by Block when its deadline passes.
var ErrTimedOut = errors.New("kernel: timed out")

// Task is one application thread. (Skeleton: filled in by the kernel work.)
type Task struct {
	k     *Kernel
	creds *auth.Credentials
	fs    taskFS
}

// Kernel is the whole sandbox's kernel. (Skeleton.)
type Kernel struct {
	fs kernelFS
}

// Kernel returns the task's kernel.
func (t *Task) Kernel() *Kernel { return t.k }

// Credentials returns the task's credentials; treat them as immutable.
func (t *Task) Credentials() *auth.Credentials { return t.creds }

// CopyInBytes copies from application memory.
func (t *Task) CopyInBytes(addr hostarch.Addr, dst []byte) (int, error) { panic("todo") }

// CopyOutBytes copies to application memory.
func (t *Task) CopyOutBytes(addr hostarch.Addr, src []byte) (int, error) { panic("todo") }

// CopyInString copies a NUL-terminated string of at most maxlen bytes
// (ENAMETOOLONG past that, EFAULT for a bad pointer).
func (t *Task) CopyInString(addr hostarch.Addr, maxlen int) (string, error) { panic("todo") }

// SingleIOSequence is [addr, addr+length) of the task's memory.
func (t *Task) SingleIOSequence(addr hostarch.Addr, length int) (usermem.IOSequence, error) {
	panic("todo")
}

// IovecsIOSequence reads an iovec array (readv/writev).
func (t *Task) IovecsIOSequence(addr hostarch.Addr, iovcnt int) (usermem.IOSequence, error) {
	panic("todo")
}

// Block waits until ch is ready, the task is interrupted (ErrInterrupted),
// or deadline passes (ErrTimedOut; a zero deadline never passes).
func (t *Task) Block(ch <-chan struct{}, deadline time.Time) error { panic("todo") }

// SendSignal queues a signal for the task (SIGPIPE from a pipe write...).
func (t *Task) SendSignal(info *arch.SignalInfo) error { panic("todo") }
