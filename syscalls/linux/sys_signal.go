package linux

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
)

const sigsetSize = 8

func RtSigaction(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[3].SizeT() != sigsetSize {
		return 0, unix.EINVAL
	}
	sig := int(args[0].Int())
	var act *arch.SigAction
	if p := args[1].Pointer(); p != 0 {
		var b [32]byte
		if _, err := t.CopyInBytes(p, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		le := binary.LittleEndian
		act = &arch.SigAction{Handler: le.Uint64(b[0:]), Flags: le.Uint64(b[8:]), Restorer: le.Uint64(b[16:]), Mask: le.Uint64(b[24:])}
	}
	old, err := t.SigAction(sig, act)
	if err != nil {
		return 0, err
	}
	if p := args[2].Pointer(); p != 0 {
		if err := copyOutLE(t, p, old.Handler, old.Flags, old.Restorer, old.Mask); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func RtSigprocmask(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[3].SizeT() != sigsetSize {
		return 0, unix.EINVAL
	}
	old := t.SignalMask()
	if p := args[1].Pointer(); p != 0 {
		v, err := copyInU64(t, p)
		if err != nil {
			return 0, unix.EFAULT
		}
		set := kernel.SignalSet(v)
		switch args[0].Int() {
		case unix.SIG_BLOCK:
			t.SetSignalMask(old | set)
		case unix.SIG_UNBLOCK:
			t.SetSignalMask(old &^ set)
		case unix.SIG_SETMASK:
			t.SetSignalMask(set)
		default:
			return 0, unix.EINVAL
		}
	}
	if p := args[2].Pointer(); p != 0 {
		if err := copyOutU64(t, p, uint64(old)); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func RtSigpending(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[1].SizeT() != sigsetSize {
		return 0, unix.EINVAL
	}
	return 0, copyOutU64(t, args[0].Pointer(), uint64(t.PendingSignals()))
}

func RtSigsuspend(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[1].SizeT() != sigsetSize {
		return 0, unix.EINVAL
	}
	v, err := copyInU64(t, args[0].Pointer())
	if err != nil {
		return 0, unix.EFAULT
	}
	return 0, t.SigSuspend(kernel.SignalSet(v))
}

func Pause(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.SigSuspend(t.SignalMask())
}

func RtSigtimedwait(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[3].SizeT() != sigsetSize {
		return 0, unix.EINVAL
	}
	v, err := copyInU64(t, args[0].Pointer())
	if err != nil {
		return 0, unix.EFAULT
	}
	var deadline time.Time
	if p := args[2].Pointer(); p != 0 {
		d, err := copyInTimespec(t, p)
		if err != nil {
			return 0, err
		}
		deadline = time.Now().Add(d)
		if d == 0 {
			deadline = time.Now()
		}
	}
	info, err := t.SigTimedWait(kernel.SignalSet(v), deadline)
	if err != nil {
		return 0, err
	}
	if p := args[1].Pointer(); p != 0 {
		if _, err := t.CopyOutBytes(p, arch.SignalInfoBytes(info)); err != nil {
			return 0, unix.EFAULT
		}
	}
	return uintptr(info.Signo), nil
}

func RtSigreturn(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.SignalReturn()
}

func Sigaltstack(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	old := t.SignalStack()
	if p := args[0].Pointer(); p != 0 {
		var b [24]byte
		if _, err := t.CopyInBytes(p, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		if t.OnSignalStack() {
			return 0, unix.EPERM
		}
		le := binary.LittleEndian
		s := arch.SignalStack{Addr: le.Uint64(b[0:]), Flags: le.Uint32(b[8:]), Size: le.Uint64(b[16:])}
		mode := s.Flags &^ arch.SS_AUTODISARM
		switch mode {
		case arch.SS_DISABLE:
			s = arch.SignalStack{Flags: arch.SS_DISABLE}
		case 0, arch.SS_ONSTACK:
			if s.Size < 2048 { // MINSIGSTKSZ
				return 0, unix.ENOMEM
			}
			s.Flags &= arch.SS_AUTODISARM
		default:
			return 0, unix.EINVAL
		}
		t.SetSignalStack(s)
	}
	if p := args[1].Pointer(); p != 0 {
		if err := copyOutLE(t, p, old.Addr, old.Flags, uint32(0), old.Size); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

// mayKill says whether t may signal target (kill(2)'s permission rule).
func mayKill(t *kernel.Task, target *kernel.Task, sig int) bool {
	c, tc := t.Credentials(), target.Credentials()
	if c.HasCapability(auth.CAP_KILL) {
		return true
	}
	if c.EffectiveKUID == tc.RealKUID || c.EffectiveKUID == tc.SavedKUID ||
		c.RealKUID == tc.RealKUID || c.RealKUID == tc.SavedKUID {
		return true
	}
	return sig == int(unix.SIGCONT) && t.ThreadGroup().SessionID() == target.ThreadGroup().SessionID()
}

func userSignal(t *kernel.Task, sig int, code int32) *arch.SignalInfo {
	info := &arch.SignalInfo{Signo: int32(sig), Code: code}
	info.SetPID(int32(t.ThreadGroup().ID()))
	info.SetUID(uint32(t.Credentials().RealKUID))
	return info
}

func Kill(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	pid := args[0].Int()
	sig := int(args[1].Int())
	if sig < 0 || sig > kernel.NumSignals {
		return 0, unix.EINVAL
	}
	k := t.Kernel()
	send := func(tg *kernel.ThreadGroup) error {
		leader := tg.Leader()
		if leader == nil {
			return unix.ESRCH
		}
		if !mayKill(t, leader, sig) {
			return unix.EPERM
		}
		if sig == 0 {
			return nil
		}
		return tg.SendSignal(userSignal(t, sig, arch.SI_USER))
	}
	switch {
	case pid > 0:
		tg := k.ThreadGroupByID(kernel.ThreadID(pid))
		if tg == nil {
			return 0, unix.ESRCH
		}
		return 0, send(tg)
	case pid == -1:
		// Every process but init and the caller.
		found := false
		var lastErr error = unix.ESRCH
		for _, tg := range k.ThreadGroups() {
			if tg == k.Init() || tg == t.ThreadGroup() {
				continue
			}
			found = true
			if err := send(tg); err == nil {
				lastErr = nil
			} else if lastErr != nil {
				lastErr = err
			}
		}
		if !found {
			return 0, unix.ESRCH
		}
		return 0, lastErr
	default:
		pgid := kernel.ThreadID(-pid)
		if pid == 0 {
			pgid = t.ThreadGroup().ProcessGroupID()
		}
		found := false
		var lastErr error = unix.EPERM
		for _, tg := range k.ThreadGroups() {
			if tg.ProcessGroupID() != pgid {
				continue
			}
			found = true
			if err := send(tg); err == nil {
				lastErr = nil
			}
		}
		if !found {
			return 0, unix.ESRCH
		}
		return 0, lastErr
	}
}

func tkill(t *kernel.Task, tgid, tid int32, sig int) error {
	if sig < 0 || sig > kernel.NumSignals {
		return unix.EINVAL
	}
	if tid <= 0 || (tgid != -1 && tgid <= 0) {
		return unix.EINVAL
	}
	target := t.Kernel().TaskByID(kernel.ThreadID(tid))
	if target == nil || (tgid != -1 && target.ThreadGroup().ID() != kernel.ThreadID(tgid)) {
		return unix.ESRCH
	}
	if !mayKill(t, target, sig) {
		return unix.EPERM
	}
	if sig == 0 {
		return nil
	}
	return target.SendSignal(userSignal(t, sig, arch.SI_TKILL))
}

func Tkill(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, tkill(t, -1, args[0].Int(), int(args[1].Int()))
}

func Tgkill(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, tkill(t, args[0].Int(), args[1].Int(), int(args[2].Int()))
}

func sigqueueInfo(t *kernel.Task, sig int, p uint64) (*arch.SignalInfo, error) {
	b := make([]byte, 128)
	if _, err := t.CopyInBytes(arch.SignalInfoAddr(p), b); err != nil {
		return nil, unix.EFAULT
	}
	info := arch.SignalInfoFromBytes(b)
	info.Signo = int32(sig)
	// Only the kernel may claim to be the kernel (or use SI_TKILL).
	if (info.Code >= 0 || info.Code == arch.SI_TKILL) && !t.Credentials().HasCapability(auth.CAP_KILL) {
		return nil, unix.EPERM
	}
	return info, nil
}

func RtSigqueueinfo(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	sig := int(args[1].Int())
	if sig < 1 || sig > kernel.NumSignals {
		return 0, unix.EINVAL
	}
	info, err := sigqueueInfo(t, sig, args[2].Uint64())
	if err != nil {
		return 0, err
	}
	tg := t.Kernel().ThreadGroupByID(kernel.ThreadID(args[0].Int()))
	if tg == nil {
		return 0, unix.ESRCH
	}
	return 0, tg.SendSignal(info)
}

func RtTgsigqueueinfo(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	sig := int(args[2].Int())
	if sig < 1 || sig > kernel.NumSignals {
		return 0, unix.EINVAL
	}
	info, err := sigqueueInfo(t, sig, args[3].Uint64())
	if err != nil {
		return 0, err
	}
	target := t.Kernel().TaskByID(kernel.ThreadID(args[1].Int()))
	if target == nil || target.ThreadGroup().ID() != kernel.ThreadID(args[0].Int()) {
		return 0, unix.ESRCH
	}
	return 0, target.SendSignal(info)
}

func init() {
	reg(unix.SYS_RT_SIGACTION, Full, RtSigaction)
	reg(unix.SYS_RT_SIGPROCMASK, Full, RtSigprocmask)
	reg(unix.SYS_RT_SIGPENDING, Full, RtSigpending)
	reg(unix.SYS_RT_SIGSUSPEND, Full, RtSigsuspend)
	reg(unix.SYS_PAUSE, Full, Pause)
	reg(unix.SYS_RT_SIGTIMEDWAIT, Full, RtSigtimedwait)
	reg(unix.SYS_RT_SIGRETURN, Full, RtSigreturn)
	reg(unix.SYS_SIGALTSTACK, Full, Sigaltstack)
	reg(unix.SYS_KILL, Full, Kill)
	reg(unix.SYS_TKILL, Full, Tkill)
	reg(unix.SYS_TGKILL, Full, Tgkill)
	reg(unix.SYS_RT_SIGQUEUEINFO, Full, RtSigqueueinfo)
	reg(unix.SYS_RT_TGSIGQUEUEINFO, Full, RtTgsigqueueinfo)
}
