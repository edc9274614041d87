package linux

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
)

// futex(2) operations and flags.
const (
	futexWait          = 0
	futexWake          = 1
	futexRequeue       = 3
	futexCmpRequeue    = 4
	futexWakeOp        = 5
	futexLockPI        = 6
	futexUnlockPI      = 7
	futexTrylockPI     = 8
	futexWaitBitset    = 9
	futexWakeBitset    = 10
	futexWaitRequeuePI = 11
	futexCmpRequeuePI  = 12
	futexLockPI2       = 13

	futexPrivateFlag   = 128
	futexClockRealtime = 256
)

func Futex(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	addr := args[0].Pointer()
	op := args[1].Int()
	val := args[2].Uint()
	cmd := op &^ (futexPrivateFlag | futexClockRealtime)
	realtime := op&futexClockRealtime != 0
	switch cmd {
	case futexWait, futexWaitBitset:
		if realtime && cmd == futexWait {
			return 0, unix.ENOSYS
		}
		bitset := ^uint32(0)
		if cmd == futexWaitBitset {
			bitset = args[5].Uint()
		}
		var deadline time.Time
		if p := args[3].Pointer(); p != 0 {
			d, err := copyInTimespec(t, p)
			if err != nil {
				return 0, err
			}
			if cmd == futexWait {
				deadline = time.Now().Add(d) // relative
			} else if realtime {
				deadline = time.Unix(0, int64(d))
			} else {
				deadline = time.Now().Add(d - monotonicNow()) // absolute monotonic
			}
			if !deadline.After(time.Now()) {
				deadline = time.Now()
			}
		}
		return 0, t.FutexWait(addr, val, bitset, deadline)
	case futexWake, futexWakeBitset:
		bitset := ^uint32(0)
		if cmd == futexWakeBitset {
			bitset = args[5].Uint()
		}
		n, err := t.FutexWake(addr, int(int32(val)), bitset)
		return uintptr(n), err
	case futexRequeue, futexCmpRequeue:
		nwake := int(int32(val))
		nreq := int(int32(args[3].Uint()))
		if nwake < 0 || nreq < 0 {
			return 0, unix.EINVAL
		}
		var cmp *uint32
		if cmd == futexCmpRequeue {
			c := args[5].Uint()
			cmp = &c
		}
		n, err := t.FutexRequeue(addr, args[4].Pointer(), nwake, nreq, cmp)
		return uintptr(n), err
	case futexWakeOp:
		n, err := t.FutexWakeOp(addr, args[4].Pointer(), int(int32(val)), int(int32(args[3].Uint())), args[5].Uint())
		return uintptr(n), err
	case futexLockPI, futexUnlockPI, futexTrylockPI, futexWaitRequeuePI, futexCmpRequeuePI, futexLockPI2:
		return 0, unix.ENOSYS
	}
	return 0, unix.ENOSYS
}

func init() {
	reg(unix.SYS_FUTEX, Partial, Futex, "no PI futexes; shared futexes match within one address space")
}
