package linux

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/ipc"
)

func Semget(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id, err := t.Kernel().IPC().SemGet(ipcCaller{t}, args[0].Int(), args[1].Int(), args[2].Int())
	return uintptr(id), err
}

func Semop(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return semop(t, args[0].Int(), args[1].Pointer(), args[2].Uint(), 0)
}

func Semtimedop(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return semop(t, args[0].Int(), args[1].Pointer(), args[2].Uint(), args[3].Pointer())
}

func semop(t *kernel.Task, id int32, sops hostarch.Addr, nsops uint32, timeout hostarch.Addr) (uintptr, error) {
	if nsops < 1 || id < 0 {
		return 0, unix.EINVAL
	}
	if nsops > ipc.SemOPM {
		return 0, unix.E2BIG
	}
	b := make([]byte, int(nsops)*sembufSize)
	if _, err := t.CopyInBytes(sops, b); err != nil {
		return 0, unix.EFAULT
	}
	ops := make([]ipc.SemBuf, nsops)
	le := binary.LittleEndian
	for i := range ops {
		e := b[i*sembufSize:]
		ops[i] = ipc.SemBuf{Num: le.Uint16(e[0:]), Op: int16(le.Uint16(e[2:])), Flg: int16(le.Uint16(e[4:]))}
	}
	var deadline time.Time
	if timeout != 0 {
		d, err := copyInTimespec(t, timeout)
		if err != nil {
			return 0, err
		}
		deadline = time.Now().Add(d)
	}
	return 0, t.Kernel().IPC().SemOp(ipcCaller{t}, id, ops, deadline)
}

func Semctl(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id := args[0].Int()
	num := args[1].Int()
	cmd := args[2].Int()
	arg := args[3].Uint64() // union semun: an int or a pointer
	ptr := hostarch.Addr(arg)
	if id < 0 {
		return 0, unix.EINVAL
	}
	ns := t.Kernel().IPC()
	c := ipcCaller{t}
	le := binary.LittleEndian
	switch cmd {
	case ipc.IPC_INFO, ipc.SEM_INFO:
		si, maxIdx := ns.SemInfo(cmd)
		b := make([]byte, seminfoSize)
		for i, v := range []int32{si.SemMap, si.SemMNI, si.SemMNS, si.SemMNU, si.SemMSL, si.SemOPM, si.SemUME, si.SemUSZ, si.SemVMX, si.SemAEM} {
			le.PutUint32(b[4*i:], uint32(v))
		}
		return uintptr(maxIdx), copyOutBytes(t, ptr, b)
	case ipc.IPC_STAT, ipc.SEM_STAT, ipc.SEM_STAT_ANY:
		ds, ret, err := ns.SemStat(c, id, cmd)
		if err != nil {
			return 0, err
		}
		b := make([]byte, semidDSSize)
		putIPCPerm(b, ds.Perm)
		le.PutUint64(b[48:], uint64(ds.Otime))
		le.PutUint64(b[64:], uint64(ds.Ctime))
		le.PutUint64(b[80:], ds.Nsems)
		return uintptr(ret), copyOutBytes(t, ptr, b)
	case ipc.IPC_SET:
		a, _, err := copyInIPCSet(t, ptr, semidDSSize)
		if err != nil {
			return 0, err
		}
		return 0, ns.SemSet(c, id, a)
	case ipc.IPC_RMID:
		return 0, ns.SemRemove(c, id)
	case ipc.GETVAL, ipc.GETPID, ipc.GETNCNT, ipc.GETZCNT:
		v, err := ns.SemGetOne(c, id, num, cmd)
		return uintptr(v), err
	case ipc.SETVAL:
		return 0, ns.SemSetVal(c, id, num, int32(arg))
	case ipc.GETALL:
		vals, err := ns.SemGetAll(c, id)
		if err != nil {
			return 0, err
		}
		b := make([]byte, len(vals)*semValueSize)
		for i, v := range vals {
			le.PutUint16(b[2*i:], v)
		}
		return 0, copyOutBytes(t, ptr, b)
	case ipc.SETALL:
		n, err := ns.SemNsems(c, id)
		if err != nil {
			return 0, err
		}
		b := make([]byte, n*semValueSize)
		if _, err := t.CopyInBytes(ptr, b); err != nil {
			return 0, unix.EFAULT
		}
		vals := make([]uint16, n)
		for i := range vals {
			vals[i] = le.Uint16(b[2*i:])
		}
		return 0, ns.SemSetAll(c, id, vals)
	}
	return 0, unix.EINVAL
}

func init() {
	reg(unix.SYS_SEMGET, Full, Semget)
	reg(unix.SYS_SEMOP, Partial, Semop, "SEM_UNDO adjustments belong to the process; CLONE_SYSVSEM between processes does not share them")
	reg(unix.SYS_SEMTIMEDOP, Partial, Semtimedop, "as semop")
	reg(unix.SYS_SEMCTL, Full, Semctl)
}
