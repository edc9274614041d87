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
	reg(unix.SYS_STAT, Full, Stat)
	reg(unix.SYS_LSTAT, Full, Lstat)
	reg(unix.SYS_FSTAT, Full, Fstat)
	reg(unix.SYS_NEWFSTATAT, Full, Newfstatat)
	reg(unix.SYS_STATX, Full, Statx)
}

// statAt stats a path, or dirfd itself for AT_EMPTY_PATH with "".
func statAt(t *kernel.Task, dirfd int32, addr hostarch.Addr, flags int32) (vfs.Statx, error) {
	path, err := copyInPath(t, addr)
	if err != nil {
		return vfs.Statx{}, err
	}
	if path == "" && flags&unix.AT_EMPTY_PATH != 0 {
		if dirfd == unix.AT_FDCWD {
			return t.Kernel().VFS().StatDentry(t, t.FSContext().WorkingDirectory())
		}
		f, err := getFile(t, dirfd)
		if err != nil {
			return vfs.Statx{}, err
		}
		defer f.DecRef(t)
		return f.Stat(t)
	}
	pop, done, err := pathOp(t, dirfd, path, flags&unix.AT_SYMLINK_NOFOLLOW == 0)
	if err != nil {
		return vfs.Statx{}, err
	}
	defer done()
	return t.Kernel().VFS().StatAt(t, pop)
}

// marshalStat lays out struct stat of x86-64 (144 bytes).
func marshalStat(st vfs.Statx) []byte {
	le := binary.LittleEndian
	b := make([]byte, 0, 144)
	b = le.AppendUint64(b, unix.Mkdev(st.DevMajor, st.DevMinor))
	b = le.AppendUint64(b, st.Ino)
	b = le.AppendUint64(b, uint64(st.Nlink))
	b = le.AppendUint32(b, uint32(st.Mode))
	b = le.AppendUint32(b, st.UID)
	b = le.AppendUint32(b, st.GID)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint64(b, unix.Mkdev(st.RdevMajor, st.RdevMinor))
	b = le.AppendUint64(b, st.Size)
	b = le.AppendUint64(b, uint64(st.Blksize))
	b = le.AppendUint64(b, st.Blocks)
	for _, ts := range []vfs.StatxTimestamp{st.Atime, st.Mtime, st.Ctime} {
		b = le.AppendUint64(b, uint64(ts.Sec))
		b = le.AppendUint64(b, uint64(ts.Nsec))
	}
	return append(b, make([]byte, 24)...)
}

// marshalStatx lays out struct statx (256 bytes).
func marshalStatx(st vfs.Statx) []byte {
	le := binary.LittleEndian
	b := make([]byte, 0, 256)
	b = le.AppendUint32(b, st.Mask)
	b = le.AppendUint32(b, st.Blksize)
	b = le.AppendUint64(b, st.Attributes)
	b = le.AppendUint32(b, st.Nlink)
	b = le.AppendUint32(b, st.UID)
	b = le.AppendUint32(b, st.GID)
	b = le.AppendUint16(b, st.Mode)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, st.Ino)
	b = le.AppendUint64(b, st.Size)
	b = le.AppendUint64(b, st.Blocks)
	b = le.AppendUint64(b, 0) // stx_attributes_mask
	for _, ts := range []vfs.StatxTimestamp{st.Atime, st.Btime, st.Ctime, st.Mtime} {
		b = le.AppendUint64(b, uint64(ts.Sec))
		b = le.AppendUint32(b, ts.Nsec)
		b = le.AppendUint32(b, 0)
	}
	b = le.AppendUint32(b, st.RdevMajor)
	b = le.AppendUint32(b, st.RdevMinor)
	b = le.AppendUint32(b, st.DevMajor)
	b = le.AppendUint32(b, st.DevMinor)
	return append(b, make([]byte, 256-len(b))...)
}

func copyOutStat(t *kernel.Task, addr hostarch.Addr, st vfs.Statx, err error) (uintptr, error) {
	if err != nil {
		return 0, err
	}
	if _, err := t.CopyOutBytes(addr, marshalStat(st)); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

// Stat is stat(2).
func Stat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	st, err := statAt(t, unix.AT_FDCWD, args[0].Pointer(), 0)
	return copyOutStat(t, args[1].Pointer(), st, err)
}

// Lstat is lstat(2).
func Lstat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	st, err := statAt(t, unix.AT_FDCWD, args[0].Pointer(), unix.AT_SYMLINK_NOFOLLOW)
	return copyOutStat(t, args[1].Pointer(), st, err)
}

// Fstat is fstat(2).
func Fstat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFile(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	st, err := f.Stat(t)
	return copyOutStat(t, args[1].Pointer(), st, err)
}

// Newfstatat is newfstatat(2) (fstatat).
func Newfstatat(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	flags := args[3].Int()
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH|unix.AT_NO_AUTOMOUNT) != 0 {
		return 0, unix.EINVAL
	}
	st, err := statAt(t, args[0].Int(), args[1].Pointer(), flags)
	return copyOutStat(t, args[2].Pointer(), st, err)
}

// Statx is statx(2). Every basic field plus btime is always filled, which
// Linux allows whatever the requested mask.
func Statx(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	flags, mask := args[2].Int(), args[3].Uint()
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH|unix.AT_NO_AUTOMOUNT|atStatxSyncType) != 0 ||
		flags&atStatxSyncType == atStatxSyncType || mask&unix.STATX__RESERVED != 0 {
		return 0, unix.EINVAL
	}
	st, err := statAt(t, args[0].Int(), args[1].Pointer(), flags)
	if err != nil {
		return 0, err
	}
	if _, err := t.CopyOutBytes(args[4].Pointer(), marshalStatx(st)); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

// atStatxSyncType is AT_STATX_SYNC_TYPE: the two sync-mode bits of statx.
const atStatxSyncType = 0x6000
