package linux

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/ipc"
)

func Msgget(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id, err := t.Kernel().IPC().MsgGet(ipcCaller{t}, args[0].Int(), args[1].Int())
	return uintptr(id), err
}

func Msgsnd(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id := args[0].Int()
	msgp := args[1].Pointer()
	size := args[2].Uint64()
	flag := args[3].Int()
	ns := t.Kernel().IPC()
	mtype, err := copyInU64(t, msgp)
	if err != nil {
		return 0, unix.EFAULT
	}
	if size > uint64(ns.Limits().MsgMax) || id < 0 {
		return 0, unix.EINVAL
	}
	if int64(mtype) < 1 {
		return 0, unix.EINVAL
	}
	text := make([]byte, size)
	if _, err := t.CopyInBytes(msgp+msgTypeSize, text); err != nil {
		return 0, unix.EFAULT
	}
	return 0, ns.MsgSnd(ipcCaller{t}, id, int64(mtype), text, flag)
}

func Msgrcv(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id := args[0].Int()
	msgp := args[1].Pointer()
	size := args[2].Int64()
	mtype := args[3].Int64()
	flag := args[4].Int()
	if id < 0 || size < 0 {
		return 0, unix.EINVAL
	}
	if flag&ipc.MSG_COPY != 0 && (flag&ipc.MSG_EXCEPT != 0 || flag&ipc.IPC_NOWAIT == 0) {
		return 0, unix.EINVAL
	}
	typ, text, err := t.Kernel().IPC().MsgRcv(ipcCaller{t}, id, uint64(size), mtype, flag)
	if err != nil {
		return 0, err
	}
	// As Linux, a message taken off the queue is lost if it cannot be
	// stored.
	if err := copyOutU64(t, msgp, uint64(typ)); err != nil {
		return 0, unix.EFAULT
	}
	if err := copyOutBytes(t, msgp+msgTypeSize, text); err != nil {
		return 0, err
	}
	return uintptr(len(text)), nil
}

func Msgctl(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id := args[0].Int()
	cmd := args[1].Int()
	buf := args[2].Pointer()
	if id < 0 || cmd < 0 {
		return 0, unix.EINVAL
	}
	ns := t.Kernel().IPC()
	c := ipcCaller{t}
	le := binary.LittleEndian
	switch cmd {
	case ipc.IPC_INFO, ipc.MSG_INFO:
		mi, maxIdx := ns.MsgInfo(cmd)
		b := make([]byte, msginfoSize)
		for i, v := range []int32{mi.MsgPool, mi.MsgMap, mi.MsgMax, mi.MsgMNB, mi.MsgMNI, mi.MsgSSZ, mi.MsgTQL} {
			le.PutUint32(b[4*i:], uint32(v))
		}
		le.PutUint16(b[28:], mi.MsgSeg)
		return uintptr(maxIdx), copyOutBytes(t, buf, b)
	case ipc.IPC_STAT, ipc.MSG_STAT, ipc.MSG_STAT_ANY:
		ds, ret, err := ns.MsgStat(c, id, cmd)
		if err != nil {
			return 0, err
		}
		b := make([]byte, msqidDSSize)
		putIPCPerm(b, ds.Perm)
		le.PutUint64(b[48:], uint64(ds.Stime))
		le.PutUint64(b[56:], uint64(ds.Rtime))
		le.PutUint64(b[64:], uint64(ds.Ctime))
		le.PutUint64(b[72:], ds.Cbytes)
		le.PutUint64(b[80:], ds.Qnum)
		le.PutUint64(b[88:], ds.Qbytes)
		le.PutUint32(b[96:], uint32(ds.Lspid))
		le.PutUint32(b[100:], uint32(ds.Lrpid))
		return uintptr(ret), copyOutBytes(t, buf, b)
	case ipc.IPC_SET:
		a, b, err := copyInIPCSet(t, buf, msqidDSSize)
		if err != nil {
			return 0, err
		}
		a.QBytes = le.Uint64(b[88:])
		return 0, ns.MsgSet(c, id, a)
	case ipc.IPC_RMID:
		return 0, ns.MsgRemove(c, id)
	}
	return 0, unix.EINVAL
}

func init() {
	reg(unix.SYS_MSGGET, Full, Msgget)
	reg(unix.SYS_MSGSND, Full, Msgsnd)
	reg(unix.SYS_MSGRCV, Full, Msgrcv)
	reg(unix.SYS_MSGCTL, Full, Msgctl)
}
