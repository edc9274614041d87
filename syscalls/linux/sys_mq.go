package linux

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/mqueue"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

func init() {
	reg(unix.SYS_MQ_OPEN, Full, MqOpen)
	reg(unix.SYS_MQ_UNLINK, Full, MqUnlink)
	reg(unix.SYS_MQ_TIMEDSEND, Full, MqTimedsend)
	reg(unix.SYS_MQ_TIMEDRECEIVE, Full, MqTimedreceive)
	reg(unix.SYS_MQ_NOTIFY, Partial, MqNotify, "SIGEV_THREAD needs a netlink socket, which Veil does not have (ENOTSOCK)")
	reg(unix.SYS_MQ_GETSETATTR, Full, MqGetsetattr)
}

// mqAttrSize is sizeof(struct mq_attr): four longs and four reserved.
const mqAttrSize = 64

func copyInMqAttr(t *kernel.Task, addr hostarch.Addr) (mqueue.Attr, error) {
	var b [mqAttrSize]byte
	if _, err := t.CopyInBytes(addr, b[:]); err != nil {
		return mqueue.Attr{}, unix.EFAULT
	}
	le := binary.LittleEndian
	return mqueue.Attr{Flags: int64(le.Uint64(b[0:])), MaxMsg: int64(le.Uint64(b[8:])),
		MsgSize: int64(le.Uint64(b[16:])), CurMsgs: int64(le.Uint64(b[24:]))}, nil
}

func copyOutMqAttr(t *kernel.Task, addr hostarch.Addr, a mqueue.Attr) error {
	var b [mqAttrSize]byte
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(a.Flags))
	le.PutUint64(b[8:], uint64(a.MaxMsg))
	le.PutUint64(b[16:], uint64(a.MsgSize))
	le.PutUint64(b[24:], uint64(a.CurMsgs))
	if _, err := t.CopyOutBytes(addr, b[:]); err != nil {
		return unix.EFAULT
	}
	return nil
}

// MqOpen is mq_open(2). glibc passes the name without its leading slash.
func MqOpen(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	name, err := t.CopyInString(args[0].Pointer(), vfs.PathMax)
	if err != nil {
		return 0, err
	}
	flags := args[1].Uint()
	perm := args[2].Uint() & 07777 &^ t.FSContext().Umask()
	var attr *mqueue.Attr
	if flags&unix.O_CREAT != 0 && args[3].Pointer() != 0 {
		a, err := copyInMqAttr(t, args[3].Pointer())
		if err != nil {
			return 0, err
		}
		attr = &a
	}
	q, err := mqueue.RegistryOf(t.Kernel()).Open(name, flags, perm, attr, t.Credentials())
	if err != nil {
		return 0, err
	}
	f := mqueue.NewFile(q, flags)
	defer f.DecRef(t)
	fd, err := t.FDTable().NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0}, t.FileLimit())
	return uintptr(fd), err
}

// MqUnlink is mq_unlink(2).
func MqUnlink(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	name, err := t.CopyInString(args[0].Pointer(), vfs.PathMax)
	if err != nil {
		return 0, err
	}
	return 0, mqueue.RegistryOf(t.Kernel()).Unlink(name, t.Credentials())
}

// mqFile returns the queue of descriptor fd: EBADF for another file.
func mqFile(t *kernel.Task, fd int32) (*vfs.FileDescription, *mqueue.Queue, error) {
	f, err := getFile(t, fd)
	if err != nil {
		return nil, nil, err
	}
	q := mqueue.FromFD(f)
	if q == nil || f.IsPath() {
		f.DecRef(t)
		return nil, nil, unix.EBADF
	}
	return f, q, nil
}

// mqDeadline reads an absolute CLOCK_REALTIME timeout (0: none) as a host
// deadline; EINVAL for a malformed one, as Linux checks it up front.
func mqDeadline(t *kernel.Task, addr hostarch.Addr) (time.Time, error) {
	if addr == 0 {
		return time.Time{}, nil
	}
	abs, err := copyInTimespec(t, addr)
	if err != nil {
		return time.Time{}, err
	}
	d := abs - kernel.RealtimeNow()
	if d <= 0 {
		return time.Now().Add(-1), nil // already passed: fail only if it would block
	}
	return time.Now().Add(d), nil
}

// mqWait retries op, waiting for events on q between tries, until it
// does not say EAGAIN; ETIMEDOUT at deadline, a restart for a signal.
func mqWait(t *kernel.Task, f *vfs.FileDescription, q *mqueue.Queue, events waiter.EventMask, deadline time.Time, op func() error) error {
	err := op()
	if err != unix.EAGAIN || f.StatusFlags()&unix.O_NONBLOCK != 0 {
		return err
	}
	e, ch := waiter.NewChannelEntry(events)
	q.EventRegister(e)
	defer q.EventUnregister(e)
	for {
		if err = op(); err != unix.EAGAIN {
			return err
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return unix.ETIMEDOUT
		}
		switch t.Block(ch, deadline) {
		case nil:
		case kernel.ErrTimedOut:
			if err = op(); err != unix.EAGAIN {
				return err
			}
			return unix.ETIMEDOUT
		default:
			return linuxerr.ERESTARTSYS
		}
	}
}

// MqTimedsend is mq_timedsend(2).
func MqTimedsend(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, q, err := mqFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	n, prio := args[2].Uint64(), args[3].Uint()
	if prio >= mqueue.PrioMax {
		return 0, unix.EINVAL
	}
	deadline, err := mqDeadline(t, args[4].Pointer())
	if err != nil {
		return 0, err
	}
	if !f.IsWritable() {
		return 0, unix.EBADF
	}
	if n > uint64(q.Attr().MsgSize) {
		return 0, unix.EMSGSIZE
	}
	data := make([]byte, n)
	if _, err := t.CopyInBytes(args[1].Pointer(), data); err != nil {
		return 0, unix.EFAULT
	}
	creds := t.Credentials()
	return 0, mqWait(t, f, q, waiter.WritableEvents, deadline, func() error {
		return q.Send(data, prio, t.ThreadGroup(), creds.RealKUID)
	})
}

// MqTimedreceive is mq_timedreceive(2).
func MqTimedreceive(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, q, err := mqFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	deadline, err := mqDeadline(t, args[4].Pointer())
	if err != nil {
		return 0, err
	}
	if !f.IsReadable() {
		return 0, unix.EBADF
	}
	bufLen := int64(args[2].Uint64())
	if bufLen < 0 {
		bufLen = 1<<63 - 1
	}
	var data []byte
	var prio uint32
	q.Waiting(1)
	err = mqWait(t, f, q, waiter.ReadableEvents, deadline, func() error {
		var err error
		data, prio, err = q.Receive(bufLen)
		return err
	})
	q.Waiting(-1)
	if err != nil {
		return 0, err
	}
	// Like Linux, the message is gone once taken, even if the copy fails.
	if _, err := t.CopyOutBytes(args[1].Pointer(), data); err != nil {
		return 0, unix.EFAULT
	}
	if p := args[3].Pointer(); p != 0 {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], prio)
		if _, err := t.CopyOutBytes(p, b[:]); err != nil {
			return 0, unix.EFAULT
		}
	}
	return uintptr(len(data)), nil
}

// MqNotify is mq_notify(2).
func MqNotify(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	var ev *mqueue.Sigevent
	if p := args[1].Pointer(); p != 0 {
		// struct sigevent: sigev_value (8), sigev_signo (4), sigev_notify (4), ...
		var b [16]byte
		if _, err := t.CopyInBytes(p, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		e := mqueue.Sigevent{Value: binary.LittleEndian.Uint64(b[0:]), Signo: int32(binary.LittleEndian.Uint32(b[8:])),
			Notify: int32(binary.LittleEndian.Uint32(b[12:]))}
		switch e.Notify {
		case mqueue.SIGEV_NONE:
		case mqueue.SIGEV_SIGNAL:
			if e.Signo <= 0 || e.Signo > 64 {
				return 0, unix.EINVAL
			}
		case mqueue.SIGEV_THREAD:
			// The notification would go to a netlink socket named by
			// sigev_signo; there are none.
			nf, err := getFile(t, e.Signo)
			if err != nil {
				return 0, err
			}
			nf.DecRef(t)
			return 0, unix.ENOTSOCK
		default:
			return 0, unix.EINVAL
		}
		ev = &e
	}
	f, q, err := mqFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	return 0, q.Notify(t.ThreadGroup(), ev)
}

// MqGetsetattr is mq_getsetattr(2): only O_NONBLOCK of mq_flags can change.
func MqGetsetattr(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	var newAttr *mqueue.Attr
	if p := args[1].Pointer(); p != 0 {
		a, err := copyInMqAttr(t, p)
		if err != nil {
			return 0, err
		}
		if a.Flags&^unix.O_NONBLOCK != 0 {
			return 0, unix.EINVAL
		}
		newAttr = &a
	}
	f, q, err := mqFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	old := q.Attr()
	old.Flags = int64(f.StatusFlags() & unix.O_NONBLOCK)
	if p := args[2].Pointer(); p != 0 {
		if err := copyOutMqAttr(t, p, old); err != nil {
			return 0, err
		}
	}
	if newAttr != nil {
		fl := f.StatusFlags() &^ unix.O_NONBLOCK
		f.SetStatusFlags(fl | uint32(newAttr.Flags)&unix.O_NONBLOCK)
	}
	return 0, nil
}
