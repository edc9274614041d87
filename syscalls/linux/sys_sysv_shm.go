package linux

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/kernel/ipc"
	"github.com/veil-sandbox/veil/sentry/memmap"
)

// ipcCaller is a task as the IPC namespace sees it.
type ipcCaller struct{ t *kernel.Task }

func (c ipcCaller) Credentials() *auth.Credentials { return c.t.Credentials() }
func (c ipcCaller) TGID() int32                    { return int32(c.t.ThreadGroup().ID()) }
func (c ipcCaller) Process() any                   { return c.t.ThreadGroup() }

// Block turns the kernel's wait results into the errnos SysV IPC returns:
// msgsnd, msgrcv and semop are never restarted after a signal (EINTR), and
// semtimedop's timeout is EAGAIN.
func (c ipcCaller) Block(ch <-chan struct{}, deadline time.Time) error {
	switch err := c.t.Block(ch, deadline); err {
	case nil:
		return nil
	case kernel.ErrTimedOut:
		return unix.EAGAIN
	default:
		return unix.EINTR
	}
}

// Sizes of the x86-64 ABI structs (the *64_ds layouts; x86-64 has no
// others).
const (
	ipcPermSize  = 48
	shmidDSSize  = 112
	shminfoSize  = 72
	shmInfoSize  = 48
	msqidDSSize  = 120
	msginfoSize  = 32
	semidDSSize  = 104
	seminfoSize  = 40
	sembufSize   = 6
	msgTypeSize  = 8
	semValueSize = 2
)

// putIPCPerm lays out struct ipc64_perm: key, uid, gid, cuid, cgid and a
// 32-bit mode, then a 16-bit sequence, padding and two unused longs.
func putIPCPerm(b []byte, p ipc.Perm) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(p.Key))
	le.PutUint32(b[4:], uint32(p.UID))
	le.PutUint32(b[8:], uint32(p.GID))
	le.PutUint32(b[12:], uint32(p.CUID))
	le.PutUint32(b[16:], uint32(p.CGID))
	le.PutUint32(b[20:], uint32(p.Mode))
	le.PutUint16(b[24:], p.Seq)
}

// copyInIPCSet reads the *id_ds IPC_SET takes (size bytes, all of which
// must be readable as Linux copies the whole struct) and returns its
// ipc_perm's uid, gid and mode.
func copyInIPCSet(t *kernel.Task, addr hostarch.Addr, size int) (ipc.SetArgs, []byte, error) {
	b := make([]byte, size)
	if _, err := t.CopyInBytes(addr, b); err != nil {
		return ipc.SetArgs{}, nil, unix.EFAULT
	}
	le := binary.LittleEndian
	return ipc.SetArgs{
		UID:  auth.KUID(le.Uint32(b[4:])),
		GID:  auth.KGID(le.Uint32(b[8:])),
		Mode: le.Uint32(b[20:]),
	}, b, nil
}

func copyOutBytes(t *kernel.Task, addr hostarch.Addr, b []byte) error {
	if _, err := t.CopyOutBytes(addr, b); err != nil {
		return unix.EFAULT
	}
	return nil
}

func Shmget(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id, err := t.Kernel().IPC().ShmGet(ipcCaller{t}, args[0].Int(), args[1].Uint64(), args[2].Int())
	return uintptr(id), err
}

func Shmat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id := args[0].Int()
	addr := args[1].Pointer()
	flag := args[2].Int()
	if id < 0 {
		return 0, unix.EINVAL
	}
	// SHMLBA is the page size on x86-64.
	if addr != 0 {
		if !addr.IsPageAligned() {
			if flag&ipc.SHM_RND == 0 {
				return 0, unix.EINVAL
			}
			addr = addr.RoundDown()
			if addr == 0 && flag&ipc.SHM_REMAP != 0 {
				return 0, unix.EINVAL
			}
		}
	} else if flag&ipc.SHM_REMAP != 0 {
		return 0, unix.EINVAL
	}
	ns := t.Kernel().IPC()
	seg, done, err := ns.ShmAttach(ipcCaller{t}, id, flag)
	if err != nil {
		return 0, err
	}
	defer done()
	if addr != 0 {
		if _, ok := addr.AddLength(seg.Size()); !ok {
			return 0, unix.EINVAL
		}
	}
	rdonly := flag&ipc.SHM_RDONLY != 0
	opts := memmap.MMapOpts{
		Length:   seg.Size(),
		Addr:     addr,
		Fixed:    addr != 0,
		Unmap:    flag&ipc.SHM_REMAP != 0,
		Perms:    hostarch.AccessType{Read: true, Write: !rdonly, Execute: flag&ipc.SHM_EXEC != 0},
		MaxPerms: hostarch.AccessType{Read: true, Write: !rdonly, Execute: true},
		Mappable: seg,
		Name:     seg.Name(),
		Dev:      unix.Mkdev(0, 1),
		Ino:      uint64(seg.ID()),
	}
	a, err := t.MemoryManager().MMap(opts)
	if err == unix.EEXIST {
		// Something is mapped there and SHM_REMAP was not given.
		err = unix.EINVAL
	}
	if err != nil {
		return 0, err
	}
	return uintptr(a), nil
}

func Shmdt(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	ns := t.Kernel().IPC()
	seg, err := t.MemoryManager().DetachSegment(args[0].Pointer(), ns.IsShm)
	if err != nil {
		return 0, err
	}
	ns.ShmDetached(ipcCaller{t}, seg)
	return 0, nil
}

func Shmctl(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
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
	case ipc.IPC_INFO:
		lim, _, maxIdx := ns.ShmInfo()
		b := make([]byte, shminfoSize)
		le.PutUint64(b[0:], lim.ShmMax)
		le.PutUint64(b[8:], lim.ShmMin)
		le.PutUint64(b[16:], lim.ShmMNI)
		le.PutUint64(b[24:], lim.ShmSeg)
		le.PutUint64(b[32:], lim.ShmAll)
		return uintptr(maxIdx), copyOutBytes(t, buf, b)
	case ipc.SHM_INFO:
		_, use, maxIdx := ns.ShmInfo()
		b := make([]byte, shmInfoSize)
		le.PutUint32(b[0:], uint32(use.UsedIDs))
		le.PutUint64(b[8:], use.ShmTot)
		le.PutUint64(b[16:], use.ShmRSS)
		return uintptr(maxIdx), copyOutBytes(t, buf, b)
	case ipc.IPC_STAT, ipc.SHM_STAT, ipc.SHM_STAT_ANY:
		ds, ret, err := ns.ShmStat(c, id, cmd)
		if err != nil {
			return 0, err
		}
		b := make([]byte, shmidDSSize)
		putIPCPerm(b, ds.Perm)
		le.PutUint64(b[48:], ds.SegSz)
		le.PutUint64(b[56:], uint64(ds.Atime))
		le.PutUint64(b[64:], uint64(ds.Dtime))
		le.PutUint64(b[72:], uint64(ds.Ctime))
		le.PutUint32(b[80:], uint32(ds.Cpid))
		le.PutUint32(b[84:], uint32(ds.Lpid))
		le.PutUint64(b[88:], ds.Nattch)
		return uintptr(ret), copyOutBytes(t, buf, b)
	case ipc.IPC_SET:
		a, _, err := copyInIPCSet(t, buf, shmidDSSize)
		if err != nil {
			return 0, err
		}
		return 0, ns.ShmSet(c, id, a)
	case ipc.IPC_RMID:
		return 0, ns.ShmRemove(c, id)
	case ipc.SHM_LOCK, ipc.SHM_UNLOCK:
		return 0, ns.ShmLock(c, id, cmd == ipc.SHM_LOCK)
	}
	return 0, unix.EINVAL
}

func init() {
	reg(unix.SYS_SHMGET, Full, Shmget)
	reg(unix.SYS_SHMAT, Full, Shmat)
	reg(unix.SYS_SHMDT, Full, Shmdt)
	reg(unix.SYS_SHMCTL, Partial, Shmctl, "SHM_LOCK only marks the segment (memory is never swapped); no RLIMIT_MEMLOCK check")
}
