package arch

import (
	"encoding/binary"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// SignalInfo is siginfo_t (128 bytes on x86-64).
type SignalInfo struct {
	Signo  int32
	Errno  int32
	Code   int32
	_      int32
	Fields [112]byte
}

// si_code values.
const (
	SI_USER       = 0
	SI_KERNEL     = 0x80
	SI_QUEUE      = -1
	SI_TIMER      = -2
	SI_TKILL      = -6
	SEGV_MAPERR   = 1
	SEGV_ACCERR   = 2
	BUS_ADRERR    = 2
	CLD_EXITED    = 1
	CLD_KILLED    = 2
	CLD_DUMPED    = 3
	CLD_TRAPPED   = 4
	CLD_STOPPED   = 5
	CLD_CONTINUED = 6
)

// Addr is si_addr of a fault.
func (s *SignalInfo) Addr() hostarch.Addr {
	return hostarch.Addr(binary.LittleEndian.Uint64(s.Fields[0:]))
}

// SetAddr sets si_addr.
func (s *SignalInfo) SetAddr(a hostarch.Addr) { binary.LittleEndian.PutUint64(s.Fields[0:], uint64(a)) }

// PID, UID: si_pid, si_uid of kill-like and SIGCHLD signals.
func (s *SignalInfo) PID() int32      { return int32(binary.LittleEndian.Uint32(s.Fields[0:])) }
func (s *SignalInfo) SetPID(p int32)  { binary.LittleEndian.PutUint32(s.Fields[0:], uint32(p)) }
func (s *SignalInfo) UID() uint32     { return binary.LittleEndian.Uint32(s.Fields[4:]) }
func (s *SignalInfo) SetUID(u uint32) { binary.LittleEndian.PutUint32(s.Fields[4:], u) }

// SIGCHLD fields: si_status, si_utime, si_stime.
func (s *SignalInfo) SetStatus(st int32) { binary.LittleEndian.PutUint32(s.Fields[8:], uint32(st)) }
func (s *SignalInfo) Status() int32      { return int32(binary.LittleEndian.Uint32(s.Fields[8:])) }

// SetValue sets si_value (sigqueue, timers).
func (s *SignalInfo) SetValue(v uint64) { binary.LittleEndian.PutUint64(s.Fields[8:], v) }

// Timer fields: si_timerid, si_overrun.
func (s *SignalInfo) SetTimerID(id int32) { binary.LittleEndian.PutUint32(s.Fields[0:], uint32(id)) }
func (s *SignalInfo) SetOverrun(n int32)  { binary.LittleEndian.PutUint32(s.Fields[4:], uint32(n)) }

// SetCallAddr etc. for SIGSYS are not needed: Veil never raises it.

// SignalStack is stack_t (sigaltstack).
type SignalStack struct {
	Addr  uint64
	Flags uint32
	_     uint32
	Size  uint64
}

// Sigaltstack flags.
const (
	SS_ONSTACK    = 1
	SS_DISABLE    = 2
	SS_AUTODISARM = 1 << 31
)

// Contains reports whether sp is on the stack.
func (s *SignalStack) Contains(sp uint64) bool {
	return s.Flags&SS_DISABLE == 0 && s.Size != 0 && sp > s.Addr && sp <= s.Addr+s.Size
}

// SigAction is struct sigaction as the kernel's rt_sigaction sees it.
type SigAction struct {
	Handler  uint64
	Flags    uint64
	Restorer uint64
	Mask     uint64
}

// sa_flags and special handlers.
const (
	SIG_DFL = 0
	SIG_IGN = 1

	SA_NOCLDSTOP = 0x1
	SA_NOCLDWAIT = 0x2
	SA_SIGINFO   = 0x4
	SA_RESTORER  = 0x04000000
	SA_ONSTACK   = 0x08000000
	SA_RESTART   = 0x10000000
	SA_NODEFER   = 0x40000000
	SA_RESETHAND = 0x80000000
)

// SignalInfoAddr converts a raw pointer argument.
func SignalInfoAddr(p uint64) hostarch.Addr { return hostarch.Addr(p) }
