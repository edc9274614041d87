package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
)

func init() {
	reg(unix.SYS_FALLOCATE, Partial, Fallocate, "modes 0, KEEP_SIZE, and PUNCH_HOLE with KEEP_SIZE (tmpfs); others EOPNOTSUPP")
	reg(unix.SYS_SYNC_FILE_RANGE, Full, SyncFileRange)
	reg(unix.SYS_FADVISE64, Partial, Fadvise64, "advice checked and accepted; Veil does no readahead to tune")
	reg(unix.SYS_READAHEAD, Partial, Readahead, "checked and accepted; nothing to prefetch into")
}

// Fallocate is fallocate(2).
func Fallocate(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	return 0, f.Allocate(t, args[1].Uint(), args[2].Int64(), args[3].Int64())
}

// SyncFileRange is sync_file_range(2): a range write-back request, which
// Veil satisfies by syncing the whole file.
func SyncFileRange(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	off, n, flags := args[1].Int64(), args[2].Int64(), args[3].Uint()
	if flags&^(unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER) != 0 {
		return 0, unix.EINVAL
	}
	if off < 0 || n < 0 || off+n < off {
		return 0, unix.EINVAL
	}
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	st, err := f.Stat(t)
	if err != nil {
		return 0, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR, unix.S_IFBLK, unix.S_IFLNK:
	default:
		return 0, unix.ESPIPE
	}
	if flags&unix.SYNC_FILE_RANGE_WRITE == 0 {
		return 0, nil
	}
	return 0, f.Sync(t)
}

// Fadvise64 is fadvise64(2).
func Fadvise64(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	if f.IsStream() {
		return 0, unix.ESPIPE
	}
	if args[2].Int64() < 0 {
		return 0, unix.EINVAL
	}
	switch args[3].Int() {
	case unix.FADV_NORMAL, unix.FADV_RANDOM, unix.FADV_SEQUENTIAL, unix.FADV_WILLNEED, unix.FADV_DONTNEED, unix.FADV_NOREUSE:
		return 0, nil
	}
	return 0, unix.EINVAL
}

// Readahead is readahead(2): EINVAL for files that are not regular.
func Readahead(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	if !f.IsReadable() {
		return 0, unix.EBADF
	}
	if args[1].Int64() < 0 {
		return 0, unix.EINVAL
	}
	st, err := f.Stat(t)
	if err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, unix.EINVAL
	}
	return 0, nil
}
