package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/usermem"
)

func init() {
	reg(unix.SYS_READ, Full, Read)
	reg(unix.SYS_WRITE, Full, Write)
	reg(unix.SYS_PREAD64, Full, Pread64)
	reg(unix.SYS_PWRITE64, Full, Pwrite64)
	reg(unix.SYS_READV, Full, Readv)
	reg(unix.SYS_WRITEV, Full, Writev)
	reg(unix.SYS_PREADV, Full, Preadv)
	reg(unix.SYS_PWRITEV, Full, Pwritev)
	reg(unix.SYS_PREADV2, Partial, Preadv2, "RWF_* flags other than RWF_HIPRI/RWF_DSYNC/RWF_SYNC give EOPNOTSUPP")
	reg(unix.SYS_PWRITEV2, Partial, Pwritev2, "RWF_* flags other than RWF_HIPRI/RWF_DSYNC/RWF_SYNC give EOPNOTSUPP")
	reg(unix.SYS_LSEEK, Full, Lseek)
	reg(unix.SYS_SENDFILE, Full, Sendfile)
}

func readFile(t *kernel.Task, fd int32, dst usermem.IOSequence, off int64) (uintptr, error) {
	f, err := getFileNoPath(t, fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	if !f.IsReadable() {
		return 0, unix.EBADF
	}
	return read(t, f, dst, off)
}

func writeFile(t *kernel.Task, fd int32, src usermem.IOSequence, off int64) (uintptr, error) {
	f, err := getFileNoPath(t, fd)
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	if !f.IsWritable() {
		return 0, unix.EBADF
	}
	return write(t, f, src, off)
}

// Read is read(2).
func Read(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	dst, err := t.SingleIOSequence(args[1].Pointer(), int(args[2].SizeT()))
	if err != nil {
		return 0, err
	}
	return readFile(t, args[0].Int(), dst, -1)
}

// Write is write(2).
func Write(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	src, err := t.SingleIOSequence(args[1].Pointer(), int(args[2].SizeT()))
	if err != nil {
		return 0, err
	}
	return writeFile(t, args[0].Int(), src, -1)
}

// Pread64 is pread64(2).
func Pread64(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if int64(args[2].SizeT()) < 0 || args[3].Int64() < 0 {
		return 0, unix.EINVAL
	}
	dst, err := t.SingleIOSequence(args[1].Pointer(), int(args[2].SizeT()))
	if err != nil {
		return 0, err
	}
	return readFile(t, args[0].Int(), dst, args[3].Int64())
}

// Pwrite64 is pwrite64(2).
func Pwrite64(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if int64(args[2].SizeT()) < 0 || args[3].Int64() < 0 {
		return 0, unix.EINVAL
	}
	src, err := t.SingleIOSequence(args[1].Pointer(), int(args[2].SizeT()))
	if err != nil {
		return 0, err
	}
	return writeFile(t, args[0].Int(), src, args[3].Int64())
}

// Readv is readv(2).
func Readv(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	dst, err := t.IovecsIOSequence(args[1].Pointer(), int(args[2].Int()))
	if err != nil {
		return 0, err
	}
	return readFile(t, args[0].Int(), dst, -1)
}

// Writev is writev(2).
func Writev(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	src, err := t.IovecsIOSequence(args[1].Pointer(), int(args[2].Int()))
	if err != nil {
		return 0, err
	}
	return writeFile(t, args[0].Int(), src, -1)
}

// Preadv is preadv(2); the offset comes split in two registers, of which
// x86-64 uses the first.
func Preadv(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[3].Int64() < 0 {
		return 0, unix.EINVAL
	}
	dst, err := t.IovecsIOSequence(args[1].Pointer(), int(args[2].Int()))
	if err != nil {
		return 0, err
	}
	return readFile(t, args[0].Int(), dst, args[3].Int64())
}

// Pwritev is pwritev(2).
func Pwritev(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	if args[3].Int64() < 0 {
		return 0, unix.EINVAL
	}
	src, err := t.IovecsIOSequence(args[1].Pointer(), int(args[2].Int()))
	if err != nil {
		return 0, err
	}
	return writeFile(t, args[0].Int(), src, args[3].Int64())
}

const rwfSupported = unix.RWF_HIPRI | unix.RWF_DSYNC | unix.RWF_SYNC

// Preadv2 is preadv2(2): offset -1 means the file offset.
func Preadv2(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	off := args[3].Int64()
	if off < -1 {
		return 0, unix.EINVAL
	}
	if args[5].Int()&^rwfSupported != 0 {
		return 0, unix.EOPNOTSUPP
	}
	dst, err := t.IovecsIOSequence(args[1].Pointer(), int(args[2].Int()))
	if err != nil {
		return 0, err
	}
	return readFile(t, args[0].Int(), dst, off)
}

// Pwritev2 is pwritev2(2).
func Pwritev2(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	off := args[3].Int64()
	if off < -1 {
		return 0, unix.EINVAL
	}
	if args[5].Int()&^rwfSupported != 0 {
		return 0, unix.EOPNOTSUPP
	}
	src, err := t.IovecsIOSequence(args[1].Pointer(), int(args[2].Int()))
	if err != nil {
		return 0, err
	}
	return writeFile(t, args[0].Int(), src, off)
}

// Lseek is lseek(2).
func Lseek(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	n, err := f.Seek(t, args[1].Int64(), args[2].Int())
	return uintptr(n), err
}

// Sendfile is sendfile(2): read from in (at *offset if given) and write to
// out, through a sentry buffer.
func Sendfile(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	out, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer out.DecRef(t)
	in, err := getFileNoPath(t, args[1].Int())
	if err != nil {
		return 0, err
	}
	defer in.DecRef(t)
	if !in.IsReadable() || !out.IsWritable() {
		return 0, unix.EBADF
	}
	if out.StatusFlags()&unix.O_APPEND != 0 {
		return 0, unix.EINVAL
	}
	count := int64(args[3].SizeT())
	if count < 0 {
		return 0, unix.EINVAL
	}
	count = min(count, 0x7ffff000)
	offAddr := args[2].Pointer()
	off := int64(-1)
	if offAddr != 0 {
		if in.IsStream() {
			return 0, unix.ESPIPE
		}
		v, err := copyInU64(t, offAddr)
		if err != nil {
			return 0, unix.EFAULT
		}
		if off = int64(v); off < 0 {
			return 0, unix.EINVAL
		}
	}
	var total int64
	buf := make([]byte, min(count, 64<<10))
	for total < count {
		chunk := buf[:min(int64(len(buf)), count-total)]
		var n uintptr
		if off >= 0 {
			n, err = read(t, in, usermem.BytesSequence(chunk), off+total)
		} else {
			n, err = read(t, in, usermem.BytesSequence(chunk), -1)
		}
		if n == 0 {
			break
		}
		w, werr := write(t, out, usermem.BytesSequence(chunk[:n]), -1)
		total += int64(w)
		if werr != nil || w < n {
			if total == 0 {
				err = werr
			}
			break
		}
		if int64(n) < int64(len(chunk)) {
			break
		}
	}
	if offAddr != 0 {
		if cerr := copyOutU64(t, offAddr, uint64(off+total)); cerr != nil && total == 0 {
			return 0, unix.EFAULT
		}
	}
	if total > 0 {
		return uintptr(total), nil
	}
	return 0, err
}
