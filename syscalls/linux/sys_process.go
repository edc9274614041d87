package linux

import (
	"crypto/rand"
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/limits"
)

func Clone(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	// x86-64 order: flags, newsp, parent_tid, child_tid, tls.
	flags := args[0].Uint64()
	tid, err := t.Clone(kernel.CloneOptions{
		Flags:      flags &^ 0xff,
		ExitSignal: int(flags & 0xff),
		Stack:      args[1].Pointer(),
		ParentTID:  args[2].Pointer(),
		ChildTID:   args[3].Pointer(),
		TLS:        args[4].Uint64(),
	})
	return uintptr(tid), err
}

func Fork(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	tid, err := t.Clone(kernel.CloneOptions{ExitSignal: int(unix.SIGCHLD)})
	return uintptr(tid), err
}

func Vfork(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	tid, err := t.Clone(kernel.CloneOptions{Flags: unix.CLONE_VM | unix.CLONE_VFORK, ExitSignal: int(unix.SIGCHLD)})
	return uintptr(tid), err
}

// Clone3 tells glibc to fall back to clone(2), which it does on ENOSYS.
func Clone3(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, unix.ENOSYS
}

const maxArgBytes = 2 << 20

func Execve(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return execve(t, unix.AT_FDCWD, args[0].Pointer(), args[1].Pointer(), args[2].Pointer(), 0)
}

func Execveat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return execve(t, args[0].Int(), args[1].Pointer(), args[2].Pointer(), args[3].Pointer(), args[4].Int())
}

func execve(t *kernel.Task, dirfd int32, pathAddr, argvAddr, envvAddr hostarch.Addr, flags int32) (uintptr, error) {
	if flags&^(unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW) != 0 {
		return 0, unix.EINVAL
	}
	path, err := t.CopyInString(pathAddr, unix.PathMax)
	if err != nil {
		return 0, err
	}
	if dirfd != unix.AT_FDCWD && (len(path) == 0 || path[0] != '/') {
		// Relative to a directory FD: resolved by the VFS helper.
		p, err := execPathAt(t, dirfd, path, flags)
		if err != nil {
			return 0, err
		}
		path = p
	}
	if path == "" {
		return 0, unix.ENOENT
	}
	argv, err := t.CopyInStringVec(argvAddr, maxArgBytes)
	if err != nil {
		return 0, err
	}
	envv, err := t.CopyInStringVec(envvAddr, maxArgBytes)
	if err != nil {
		return 0, err
	}
	return 0, t.Execve(path, argv, envv)
}

func Exit(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	t.Exit(int(args[0].Int()))
	return 0, kernel.ErrNoReturn
}

func ExitGroup(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	t.ExitGroup(int(args[0].Int()))
	return 0, kernel.ErrNoReturn
}

func waitOptions(pid int32, options int32) (kernel.WaitOptions, error) {
	const wNoThread = 0x20000000
	const wAll = 0x40000000
	const wClone = 0x80000000
	if options&^(unix.WNOHANG|unix.WUNTRACED|unix.WCONTINUED|wNoThread|wAll|int32(-0x80000000)) != 0 {
		return kernel.WaitOptions{}, unix.EINVAL
	}
	return kernel.WaitOptions{
		PID: kernel.ThreadID(pid), Exited: true,
		Stopped: options&unix.WUNTRACED != 0, Continued: options&unix.WCONTINUED != 0,
		NoHang: options&unix.WNOHANG != 0,
		All:    options&wAll != 0, Clone: uint32(options)&wClone != 0,
	}, nil
}

func Wait4(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	pid := args[0].Int()
	if pid == -2147483648 {
		return 0, unix.ESRCH
	}
	opts, err := waitOptions(pid, args[2].Int())
	if err != nil {
		return 0, err
	}
	r, err := t.Wait(opts)
	if err != nil {
		return 0, err
	}
	if r == nil {
		return 0, nil
	}
	if p := args[1].Pointer(); p != 0 {
		if err := copyOutU32(t, p, uint32(r.Status)); err != nil {
			return 0, unix.EFAULT
		}
	}
	if p := args[3].Pointer(); p != 0 {
		b := make([]byte, 144)
		binary.LittleEndian.PutUint64(b[0:], uint64(r.Utime/time.Second))
		binary.LittleEndian.PutUint64(b[8:], uint64((r.Utime%time.Second)/time.Microsecond))
		binary.LittleEndian.PutUint64(b[16:], uint64(r.Stime/time.Second))
		binary.LittleEndian.PutUint64(b[24:], uint64((r.Stime%time.Second)/time.Microsecond))
		if _, err := t.CopyOutBytes(p, b); err != nil {
			return 0, unix.EFAULT
		}
	}
	return uintptr(r.PID), nil
}

func Waitid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	idtype, id, options := args[0].Int(), args[1].Int(), args[3].Int()
	const wExited, wStopped, wNoWait = 4, 2, 0x1000000
	var pid int32
	switch idtype {
	case unix.P_ALL:
		pid = -1
	case unix.P_PID:
		if id <= 0 {
			return 0, unix.EINVAL
		}
		pid = id
	case unix.P_PGID:
		if id < 0 {
			return 0, unix.EINVAL
		}
		pid = -id
		if id == 0 {
			pid = 0
		}
	case 3: // P_PIDFD
		return 0, unix.EINVAL
	default:
		return 0, unix.EINVAL
	}
	if options&(wExited|wStopped|unix.WCONTINUED) == 0 {
		return 0, unix.EINVAL
	}
	if options&^(unix.WNOHANG|wExited|wStopped|unix.WCONTINUED|wNoWait|0x20000000|0x40000000|int32(-0x80000000)) != 0 {
		return 0, unix.EINVAL
	}
	opts := kernel.WaitOptions{
		PID: kernel.ThreadID(pid), Exited: options&wExited != 0, Stopped: options&wStopped != 0,
		Continued: options&unix.WCONTINUED != 0, NoHang: options&unix.WNOHANG != 0,
		NoWait: options&wNoWait != 0, All: options&0x40000000 != 0, Clone: uint32(options)&0x80000000 != 0,
	}
	r, err := t.Wait(opts)
	if err != nil {
		return 0, err
	}
	if p := args[2].Pointer(); p != 0 {
		info := &arch.SignalInfo{}
		if r != nil {
			info.Signo = int32(unix.SIGCHLD)
			info.Code = r.Code
			info.SetPID(int32(r.PID))
			info.SetUID(r.UID)
			info.SetStatus(r.SiStatus)
		}
		if _, err := t.CopyOutBytes(p, arch.SignalInfoBytes(info)); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func Getpid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.ThreadGroup().ID()), nil
}

func Gettid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.ThreadID()), nil
}

func Getppid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.ThreadGroup().ParentID()), nil
}

func SetTidAddress(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	t.SetClearChildTID(args[0].Pointer())
	return uintptr(t.ThreadID()), nil
}

func SetRobustList(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[1].SizeT() != 24 {
		return 0, unix.EINVAL
	}
	t.SetRobustList(args[0].Pointer())
	return 0, nil
}

func GetRobustList(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	target := t
	if pid := args[0].Int(); pid != 0 {
		target = t.Kernel().TaskByID(kernel.ThreadID(pid))
		if target == nil {
			return 0, unix.ESRCH
		}
	}
	if err := copyOutU64(t, args[1].Pointer(), uint64(target.RobustList())); err != nil {
		return 0, unix.EFAULT
	}
	return 0, copyOutU64(t, args[2].Pointer(), 24)
}

func ArchPrctl(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	const (
		archSetGS = 0x1001
		archSetFS = 0x1002
		archGetFS = 0x1003
		archGetGS = 0x1004
	)
	regs := &t.Arch().Regs
	switch args[0].Int() {
	case archSetFS:
		if args[1].Uint64() >= 1<<47 {
			return 0, unix.EPERM
		}
		regs.Fs_base = args[1].Uint64()
	case archSetGS:
		if args[1].Uint64() >= 1<<47 {
			return 0, unix.EPERM
		}
		regs.Gs_base = args[1].Uint64()
	case archGetFS:
		return 0, copyOutU64(t, args[1].Pointer(), regs.Fs_base)
	case archGetGS:
		return 0, copyOutU64(t, args[1].Pointer(), regs.Gs_base)
	default:
		return 0, unix.EINVAL
	}
	return 0, nil
}

func utsField(s string) []byte {
	b := make([]byte, 65)
	copy(b[:64], s)
	return b
}

func Uname(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	var b []byte
	b = append(b, utsField("Linux")...)
	b = append(b, utsField(t.Kernel().Hostname())...)
	b = append(b, utsField(kernel.Release)...)
	b = append(b, utsField(kernel.Version)...)
	b = append(b, utsField("x86_64")...)
	b = append(b, utsField("(none)")...)
	_, err := t.CopyOutBytes(args[0].Pointer(), b)
	return 0, err
}

func Sethostname(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if !t.Credentials().HasCapability(auth.CAP_SYS_ADMIN) {
		return 0, unix.EPERM
	}
	n := args[1].Int()
	if n < 0 || n > 64 {
		return 0, unix.EINVAL
	}
	b := make([]byte, n)
	if _, err := t.CopyInBytes(args[0].Pointer(), b); err != nil {
		return 0, unix.EFAULT
	}
	t.Kernel().SetHostname(string(b))
	return 0, nil
}

func Setdomainname(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if !t.Credentials().HasCapability(auth.CAP_SYS_ADMIN) {
		return 0, unix.EPERM
	}
	if n := args[1].Int(); n < 0 || n > 64 {
		return 0, unix.EINVAL
	}
	return 0, nil
}

func Getrandom(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[2].Uint()&^(unix.GRND_NONBLOCK|unix.GRND_RANDOM|0x4) != 0 {
		return 0, unix.EINVAL
	}
	n := int(args[1].SizeT())
	if n > 32<<20 {
		n = 32 << 20
	}
	if n < 0 {
		return 0, unix.EINVAL
	}
	buf := make([]byte, n)
	rand.Read(buf)
	c, err := t.CopyOutBytes(args[0].Pointer(), buf)
	if c == 0 && err != nil {
		return 0, unix.EFAULT
	}
	return uintptr(c), nil
}

func Sysinfo(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	k := t.Kernel()
	total := uint64(k.TotalMemory())
	used := k.MemoryFile.TotalUsage()
	free := uint64(0)
	if total > used {
		free = total - used
	}
	b := make([]byte, 112)
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(k.Uptime()/time.Second))
	// Load averages in 1/65536ths (SI_LOAD_SHIFT), as /proc/loadavg.
	for i, l := range k.LoadAverage() {
		le.PutUint64(b[8+8*i:], uint64(l*65536))
	}
	le.PutUint64(b[32:], total)
	le.PutUint64(b[40:], free)
	le.PutUint16(b[80:], uint16(k.TaskCount()))
	le.PutUint32(b[104:], 1) // mem_unit
	_, err := t.CopyOutBytes(args[0].Pointer(), b)
	return 0, err
}

func SchedGetaffinity(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	size := args[1].SizeT()
	if size == 0 || size%8 != 0 {
		return 0, unix.EINVAL
	}
	n := t.Kernel().NumCPU
	if size*8 < uint(n) {
		return 0, unix.EINVAL
	}
	mask := make([]byte, (n+63)/64*8)
	for i := 0; i < n; i++ {
		mask[i/8] |= 1 << uint(i%8)
	}
	if _, err := t.CopyOutBytes(args[2].Pointer(), mask); err != nil {
		return 0, unix.EFAULT
	}
	return uintptr(len(mask)), nil
}

func SchedSetaffinity(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	size := args[1].SizeT()
	if size == 0 {
		return 0, unix.EINVAL
	}
	if size > 1024 {
		size = 1024
	}
	b := make([]byte, size)
	if _, err := t.CopyInBytes(args[2].Pointer(), b); err != nil {
		return 0, unix.EFAULT
	}
	n := t.Kernel().NumCPU
	for i := 0; i < n && i/8 < len(b); i++ {
		if b[i/8]&(1<<uint(i%8)) != 0 {
			return 0, nil
		}
	}
	return 0, unix.EINVAL
}

func SchedYield(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, nil
}

func SchedGetscheduler(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[0].Int() < 0 {
		return 0, unix.EINVAL
	}
	return 0, nil // SCHED_OTHER
}

func SchedGetparam(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[0].Int() < 0 || args[1].Pointer() == 0 {
		return 0, unix.EINVAL
	}
	return 0, copyOutU32(t, args[1].Pointer(), 0)
}

func SchedSetscheduler(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[1].Int() != 0 && args[1].Int() != 3 && args[1].Int() != 5 { // OTHER, BATCH, IDLE
		return 0, unix.EPERM
	}
	return 0, nil
}

func SchedGetPriorityMax(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	switch args[0].Int() {
	case 1, 2:
		return 99, nil
	case 0, 3, 5:
		return 0, nil
	}
	return 0, unix.EINVAL
}

func SchedGetPriorityMin(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	switch args[0].Int() {
	case 1, 2:
		return 1, nil
	case 0, 3, 5:
		return 0, nil
	}
	return 0, unix.EINVAL
}

func Getpriority(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[0].Int() < 0 || args[0].Int() > 2 {
		return 0, unix.EINVAL
	}
	return 20, nil // nice 0, as the raw syscall reports it (20 - nice)
}

func Setpriority(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[0].Int() < 0 || args[0].Int() > 2 {
		return 0, unix.EINVAL
	}
	if args[2].Int() < 0 && !t.Credentials().HasCapability(auth.CAP_SYS_NICE) {
		return 0, unix.EACCES
	}
	return 0, nil
}

func Getcpu(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if p := args[0].Pointer(); p != 0 {
		if err := copyOutU32(t, p, 0); err != nil {
			return 0, unix.EFAULT
		}
	}
	if p := args[1].Pointer(); p != 0 {
		if err := copyOutU32(t, p, 0); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func Personality(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[0].Uint() == 0xffffffff || args[0].Uint() == 0 {
		return 0, nil
	}
	return 0, unix.EINVAL
}

func rlimitResource(r int32) (int, error) {
	if r < 0 || r >= limits.NumResources {
		return 0, unix.EINVAL
	}
	return int(r), nil
}

func prlimit(t *kernel.Task, target *kernel.Task, res int32, newAddr, oldAddr hostarch.Addr) error {
	r, err := rlimitResource(res)
	if err != nil {
		return err
	}
	ls := target.ThreadGroup().Limits()
	if oldAddr != 0 {
		l := ls.Get(r)
		if err := copyOutLE(t, oldAddr, l.Cur, l.Max); err != nil {
			return unix.EFAULT
		}
	}
	if newAddr != 0 {
		var b [16]byte
		if _, err := t.CopyInBytes(newAddr, b[:]); err != nil {
			return unix.EFAULT
		}
		nl := limits.Limit{Cur: binary.LittleEndian.Uint64(b[0:]), Max: binary.LittleEndian.Uint64(b[8:])}
		if _, err := ls.Set(r, nl, t.Credentials().HasCapability(auth.CAP_SYS_RESOURCE)); err != nil {
			return err
		}
		if r == limits.Stack {
			target.MemoryManager().SetStackLimit(nl.Cur)
		}
	}
	return nil
}

func Getrlimit(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	r, err := rlimitResource(args[0].Int())
	if err != nil {
		return 0, err
	}
	l := t.ThreadGroup().Limits().Get(r)
	if err := copyOutLE(t, args[1].Pointer(), l.Cur, l.Max); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

func Setrlimit(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[1].Pointer() == 0 {
		return 0, unix.EFAULT
	}
	return 0, prlimit(t, t, args[0].Int(), args[1].Pointer(), 0)
}

func Prlimit64(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	target := t
	if pid := args[0].Int(); pid != 0 {
		target = t.Kernel().TaskByID(kernel.ThreadID(pid))
		if target == nil {
			return 0, unix.ESRCH
		}
	}
	return 0, prlimit(t, target, args[1].Int(), args[2].Pointer(), args[3].Pointer())
}

func Prctl(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	switch args[0].Int() {
	case unix.PR_SET_NAME:
		name, err := t.CopyInString(args[1].Pointer(), 16)
		if err != nil && err != unix.ENAMETOOLONG {
			return 0, err
		}
		if err == unix.ENAMETOOLONG {
			b := make([]byte, 15)
			t.CopyInBytes(args[1].Pointer(), b)
			name = string(b)
		}
		t.SetName(name)
		return 0, nil
	case unix.PR_GET_NAME:
		b := make([]byte, 16)
		copy(b, t.Name())
		_, err := t.CopyOutBytes(args[1].Pointer(), b)
		return 0, err
	case unix.PR_SET_PDEATHSIG:
		sig := args[1].Int()
		if sig < 0 || sig > kernel.NumSignals {
			return 0, unix.EINVAL
		}
		t.SetParentDeathSignal(int(sig))
		return 0, nil
	case unix.PR_GET_PDEATHSIG:
		return 0, copyOutU32(t, args[1].Pointer(), uint32(t.ParentDeathSignal()))
	case unix.PR_GET_DUMPABLE:
		return 1, nil
	case unix.PR_SET_DUMPABLE:
		if args[1].Int() != 0 && args[1].Int() != 1 {
			return 0, unix.EINVAL
		}
		return 0, nil
	case unix.PR_SET_NO_NEW_PRIVS:
		if args[1].Int() != 1 || args[2].Value != 0 || args[3].Value != 0 || args[4].Value != 0 {
			return 0, unix.EINVAL
		}
		c := t.Credentials().Fork()
		c.NoNewPrivs = true
		t.SetCredentials(c)
		return 0, nil
	case unix.PR_GET_NO_NEW_PRIVS:
		if t.Credentials().NoNewPrivs {
			return 1, nil
		}
		return 0, nil
	case unix.PR_SET_CHILD_SUBREAPER:
		t.ThreadGroup().SetSubreaper(args[1].Int() != 0)
		return 0, nil
	case unix.PR_GET_CHILD_SUBREAPER:
		v := uint32(0)
		if t.ThreadGroup().Subreaper() {
			v = 1
		}
		return 0, copyOutU32(t, args[1].Pointer(), v)
	case unix.PR_GET_KEEPCAPS:
		if t.Credentials().KeepCaps {
			return 1, nil
		}
		return 0, nil
	case unix.PR_SET_KEEPCAPS:
		if args[1].Int() != 0 && args[1].Int() != 1 {
			return 0, unix.EINVAL
		}
		c := t.Credentials().Fork()
		c.KeepCaps = args[1].Int() == 1
		t.SetCredentials(c)
		return 0, nil
	case unix.PR_CAPBSET_READ:
		cp := args[1].Int()
		if cp < 0 || cp > auth.CAP_LAST_CAP {
			return 0, unix.EINVAL
		}
		if t.Credentials().BoundingCaps.Has(int(cp)) {
			return 1, nil
		}
		return 0, nil
	case unix.PR_CAPBSET_DROP:
		if !t.Credentials().HasCapability(auth.CAP_SETPCAP) {
			return 0, unix.EPERM
		}
		cp := args[1].Int()
		if cp < 0 || cp > auth.CAP_LAST_CAP {
			return 0, unix.EINVAL
		}
		c := t.Credentials().Fork()
		c.BoundingCaps &^= 1 << uint(cp)
		t.SetCredentials(c)
		return 0, nil
	case unix.PR_SET_SECCOMP, unix.PR_GET_SECCOMP:
		return 0, unix.EINVAL
	case unix.PR_GET_TIMERSLACK:
		return 50000, nil
	case unix.PR_SET_TIMERSLACK, unix.PR_SET_MM, unix.PR_SET_VMA, unix.PR_SET_THP_DISABLE:
		return 0, nil
	case unix.PR_GET_THP_DISABLE:
		return 0, nil
	case unix.PR_CAP_AMBIENT:
		if args[1].Int() == unix.PR_CAP_AMBIENT_IS_SET {
			return 0, nil
		}
		if args[1].Int() == unix.PR_CAP_AMBIENT_CLEAR_ALL {
			return 0, nil
		}
		return 0, unix.EPERM
	}
	return 0, unix.EINVAL
}

func Membarrier(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	switch args[0].Int() {
	case 0: // MEMBARRIER_CMD_QUERY
		return 0, nil
	}
	return 0, unix.EINVAL
}

func init() {
	reg(unix.SYS_CLONE, Full, Clone)
	reg(unix.SYS_CLONE3, Unimplemented, Clone3, "ENOSYS: glibc falls back to clone")
	reg(unix.SYS_FORK, Full, Fork)
	reg(unix.SYS_VFORK, Full, Vfork)
	reg(unix.SYS_EXECVE, Full, Execve)
	reg(unix.SYS_EXECVEAT, Partial, Execveat, "AT_EMPTY_PATH needs a path-backed FD")
	reg(unix.SYS_EXIT, Full, Exit)
	reg(unix.SYS_EXIT_GROUP, Full, ExitGroup)
	reg(unix.SYS_WAIT4, Full, Wait4)
	reg(unix.SYS_WAITID, Partial, Waitid, "no P_PIDFD")
	reg(unix.SYS_GETPID, Full, Getpid)
	reg(unix.SYS_GETTID, Full, Gettid)
	reg(unix.SYS_GETPPID, Full, Getppid)
	reg(unix.SYS_SET_TID_ADDRESS, Full, SetTidAddress)
	reg(unix.SYS_SET_ROBUST_LIST, Full, SetRobustList)
	reg(unix.SYS_GET_ROBUST_LIST, Full, GetRobustList)
	reg(unix.SYS_ARCH_PRCTL, Partial, ArchPrctl, "ARCH_SET/GET_FS/GS")
	reg(unix.SYS_UNAME, Full, Uname)
	reg(unix.SYS_SETHOSTNAME, Full, Sethostname)
	reg(unix.SYS_SETDOMAINNAME, Partial, Setdomainname, "accepted, not stored")
	reg(unix.SYS_GETRANDOM, Full, Getrandom)
	reg(unix.SYS_SYSINFO, Partial, Sysinfo, "uptime, memory, procs")
	reg(unix.SYS_SCHED_GETAFFINITY, Full, SchedGetaffinity)
	reg(unix.SYS_SCHED_SETAFFINITY, Partial, SchedSetaffinity, "accepted, not enforced")
	reg(unix.SYS_SCHED_YIELD, Full, SchedYield)
	reg(unix.SYS_SCHED_GETSCHEDULER, Partial, SchedGetscheduler, "always SCHED_OTHER")
	reg(unix.SYS_SCHED_GETPARAM, Partial, SchedGetparam)
	reg(unix.SYS_SCHED_SETSCHEDULER, Partial, SchedSetscheduler, "non-realtime policies accepted")
	reg(unix.SYS_SCHED_GET_PRIORITY_MAX, Full, SchedGetPriorityMax)
	reg(unix.SYS_SCHED_GET_PRIORITY_MIN, Full, SchedGetPriorityMin)
	reg(unix.SYS_GETPRIORITY, Partial, Getpriority, "always nice 0")
	reg(unix.SYS_SETPRIORITY, Partial, Setpriority, "accepted, not enforced")
	reg(unix.SYS_GETCPU, Partial, Getcpu, "always CPU 0")
	reg(unix.SYS_PERSONALITY, Partial, Personality, "PER_LINUX only")
	reg(unix.SYS_GETRLIMIT, Full, Getrlimit)
	reg(unix.SYS_SETRLIMIT, Full, Setrlimit)
	reg(unix.SYS_PRLIMIT64, Full, Prlimit64)
	reg(unix.SYS_PRCTL, Partial, Prctl, "common options; no seccomp")
	reg(unix.SYS_MEMBARRIER, Partial, Membarrier, "QUERY only")
	reg(unix.SYS_RSEQ, Unimplemented, nil, "ENOSYS: glibc works without it")
}

// execPathAt turns (dirfd, path) into a path execve can resolve: the
// directory's path in the task's root joined with path, or the FD's own path
// with AT_EMPTY_PATH.
func execPathAt(t *kernel.Task, dirfd int32, path string, flags int32) (string, error) {
	file, _ := t.FDTable().Get(dirfd)
	if file == nil {
		return "", unix.EBADF
	}
	defer file.DecRef(t)
	p, ok := t.Kernel().VFS().PathnameWithin(t.FSContext().Root(), file.VirtualDentry())
	if !ok {
		return "", unix.ENOENT
	}
	if path == "" {
		if flags&unix.AT_EMPTY_PATH == 0 {
			return "", unix.ENOENT
		}
		return p, nil
	}
	if p == "/" {
		return "/" + path, nil
	}
	return p + "/" + path, nil
}
