package kernel

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
)

func TestStandardSignalsCoalesceRealtimeQueue(t *testing.T) {
	var p pendingSignals
	if !p.enqueue(&arch.SignalInfo{Signo: int32(unix.SIGUSR1)}) {
		t.Fatal("first SIGUSR1 not queued")
	}
	if p.enqueue(&arch.SignalInfo{Signo: int32(unix.SIGUSR1)}) {
		t.Fatal("a second pending SIGUSR1 was queued: standard signals do not queue")
	}
	for i := 0; i < 3; i++ {
		info := &arch.SignalInfo{Signo: SIGRTMIN + 1}
		info.SetValue(uint64(i))
		if !p.enqueue(info) {
			t.Fatalf("real-time signal %d not queued", i)
		}
	}
	// Lowest number first; real-time instances in order.
	if got := p.dequeue(0); got.Signo != int32(unix.SIGUSR1) {
		t.Fatalf("dequeued %d first, want SIGUSR1", got.Signo)
	}
	for i := 0; i < 3; i++ {
		got := p.dequeue(0)
		if got == nil || got.Signo != SIGRTMIN+1 {
			t.Fatalf("dequeue %d: %+v", i, got)
		}
	}
	if p.dequeue(0) != nil || p.set != 0 {
		t.Fatalf("set %#x after draining", p.set)
	}
}

func TestDequeueHonoursMask(t *testing.T) {
	var p pendingSignals
	p.enqueue(&arch.SignalInfo{Signo: int32(unix.SIGINT)})
	p.enqueue(&arch.SignalInfo{Signo: int32(unix.SIGTERM)})
	if got := p.dequeue(SignalSetOf(int(unix.SIGINT))); got == nil || got.Signo != int32(unix.SIGTERM) {
		t.Fatalf("got %+v, want SIGTERM with SIGINT blocked", got)
	}
	if got := p.dequeue(SignalSetOf(int(unix.SIGINT))); got != nil {
		t.Fatalf("got %+v, want nothing (SIGINT blocked)", got)
	}
}

func TestDefaultActions(t *testing.T) {
	cases := map[unix.Signal]defaultAction{
		unix.SIGSEGV: actCore, unix.SIGTERM: actTerm, unix.SIGCHLD: actIgnore,
		unix.SIGWINCH: actIgnore, unix.SIGSTOP: actStop, unix.SIGTSTP: actStop, unix.SIGCONT: actCont,
		unix.SIGKILL: actTerm, unix.SIGQUIT: actCore, unix.SIGPIPE: actTerm,
	}
	for sig, want := range cases {
		if got := defaultActionOf(int(sig)); got != want {
			t.Errorf("%v: %v, want %v", sig, got, want)
		}
	}
}

func TestWaitStatus(t *testing.T) {
	if s := ExitStatus(3); !s.Exited() || s.ExitCode() != 3 || s.ShellStatus() != 3 {
		t.Errorf("exit 3: %#x", s)
	}
	if s := WaitStatus(unix.SIGKILL); !s.Signaled() || s.Signal() != 9 || s.ShellStatus() != 137 {
		t.Errorf("SIGKILL: %#x", s)
	}
	if s := WaitStatus(unix.SIGSEGV) | 0x80; !s.CoreDumped() || s.ShellStatus() != 139 {
		t.Errorf("SIGSEGV with core: %#x", s)
	}
}
