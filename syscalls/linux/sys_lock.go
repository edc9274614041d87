package linux

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_FLOCK, Full, Flock)
}

// Flock is flock(2).
func Flock(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	return 0, f.Flock(t, t, int(args[1].Int()))
}

// struct flock on x86-64: l_type, l_whence (short), 4 bytes of padding,
// l_start, l_len (off_t), l_pid (pid_t), padding to 32 bytes.
const flockSize = 32

func copyInFlock(t *kernel.Task, addr hostarch.Addr) (vfs.Flock, error) {
	var b [flockSize]byte
	if _, err := t.CopyInBytes(addr, b[:]); err != nil {
		return vfs.Flock{}, unix.EFAULT
	}
	le := binary.LittleEndian
	return vfs.Flock{
		Type:   int16(le.Uint16(b[0:])),
		Whence: int16(le.Uint16(b[2:])),
		Start:  int64(le.Uint64(b[8:])),
		Len:    int64(le.Uint64(b[16:])),
		PID:    int32(le.Uint32(b[24:])),
	}, nil
}

func copyOutFlock(t *kernel.Task, addr hostarch.Addr, l vfs.Flock) error {
	var b [flockSize]byte
	le := binary.LittleEndian
	le.PutUint16(b[0:], uint16(l.Type))
	le.PutUint16(b[2:], uint16(l.Whence))
	le.PutUint64(b[8:], uint64(l.Start))
	le.PutUint64(b[16:], uint64(l.Len))
	le.PutUint32(b[24:], uint32(l.PID))
	if _, err := t.CopyOutBytes(addr, b[:]); err != nil {
		return unix.EFAULT
	}
	return nil
}

// fcntlLock carries out the record-lock commands of fcntl(2).
func fcntlLock(t *kernel.Task, f *vfs.FileDescription, cmd int32, addr hostarch.Addr) (uintptr, error) {
	if f.IsPath() {
		return 0, unix.EBADF
	}
	l, err := copyInFlock(t, addr)
	if err != nil {
		return 0, err
	}
	ofd := cmd == unix.F_OFD_GETLK || cmd == unix.F_OFD_SETLK || cmd == unix.F_OFD_SETLKW
	switch cmd {
	case unix.F_GETLK, unix.F_OFD_GETLK:
		if err := f.GetRecordLock(t, t.FDTable(), ofd, &l); err != nil {
			return 0, err
		}
		return 0, copyOutFlock(t, addr, l)
	default:
		var b vfs.Blocker
		if cmd == unix.F_SETLKW || cmd == unix.F_OFD_SETLKW {
			b = t
		}
		return 0, f.SetRecordLock(t, b, t.FDTable(), int32(t.ThreadGroup().ID()), ofd, l)
	}
}
