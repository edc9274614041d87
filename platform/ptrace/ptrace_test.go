package ptrace

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/platform/internal/platformtest"
)

func TestSyscallAndFault(t *testing.T) { platformtest.SyscallAndFault(t, New) }

func TestInterrupt(t *testing.T) { platformtest.Interrupt(t, New) }

func TestFPPreserved(t *testing.T) { platformtest.FPPreserved(t, New) }

func TestStubSeccompKillsOtherSyscalls(t *testing.T) {
	p, _ := platformtest.New(t, New)
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release()
	s := as.(*subprocess)
	// An allowed injection works.
	if _, err := s.inject(unix.SYS_MUNMAP, [6]uintptr{0x10000, 0x1000}); err != nil {
		t.Fatalf("munmap injection: %v", err)
	}
	// Anything else, even from the stub's own syscall site, kills the stub.
	if _, err := s.inject(unix.SYS_GETPID, [6]uintptr{}); err != platform.ErrContextDead {
		t.Fatalf("getpid injection: %v, want the stub killed", err)
	}
}

func BenchmarkSyscallRoundTrip(b *testing.B) { platformtest.BenchmarkSyscallRoundTrip(b, New, nil) }
