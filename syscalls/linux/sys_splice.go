package linux

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/pipe"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

func init() {
	reg(unix.SYS_SPLICE, Full, Splice)
	reg(unix.SYS_TEE, Full, Tee)
	reg(unix.SYS_VMSPLICE, Partial, Vmsplice, "copies (SPLICE_F_GIFT pages are not stolen)")
	reg(unix.SYS_COPY_FILE_RANGE, Full, CopyFileRange)
}

const spliceFlagsAll = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MORE | unix.SPLICE_F_GIFT

// maxRW bounds one transfer, as Linux's MAX_RW_COUNT.
const maxRW = 0x7ffff000

// spliceWait is a file and the events that make an operation on it worth
// retrying.
type spliceWait struct {
	f    *vfs.FileDescription
	mask waiter.EventMask
}

// retryBlocking runs op until it stops saying EAGAIN, waiting for any of
// ws between tries, unless nonblock. A signal restarts the call.
func retryBlocking(t *kernel.Task, nonblock bool, ws []spliceWait, op func() (int64, error)) (int64, error) {
	n, err := op()
	if err != unix.EAGAIN || nonblock {
		return n, err
	}
	ch := make(chan struct{}, 1)
	for _, w := range ws {
		e := &waiter.Entry{Mask: w.mask | waiter.AlwaysReported, Ch: ch}
		w.f.EventRegister(e)
		defer w.f.EventUnregister(e)
	}
	for {
		if n, err = op(); err != unix.EAGAIN {
			return n, err
		}
		if err := t.Block(ch, time.Time{}); err != nil {
			return 0, linuxerr.ERESTARTSYS
		}
	}
}

// spliceOffset reads an offset argument of splice or copy_file_range.
func spliceOffset(t *kernel.Task, addr hostarch.Addr) (int64, error) {
	v, err := copyInU64(t, addr)
	if err != nil {
		return 0, unix.EFAULT
	}
	if int64(v) < 0 {
		return 0, unix.EINVAL
	}
	return int64(v), nil
}

// fileIO reads or writes f at off (or at its file offset when off < 0).
func fileRead(t *kernel.Task, f *vfs.FileDescription, b []byte, off int64) (int64, error) {
	if off >= 0 {
		return f.PRead(t, usermem.BytesSequence(b), off)
	}
	return f.Read(t, usermem.BytesSequence(b))
}

func fileWrite(t *kernel.Task, f *vfs.FileDescription, b []byte, off int64) (int64, error) {
	if off >= 0 {
		return f.PWrite(t, usermem.BytesSequence(b), off)
	}
	return f.Write(t, usermem.BytesSequence(b))
}

// Splice is splice(2): one side must be a pipe; bytes move through the
// pipe's buffer without reaching the application.
func Splice(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	inFD, inOffAddr, outFD, outOffAddr := args[0].Int(), args[1].Pointer(), args[2].Int(), args[3].Pointer()
	count, flags := int64(min(uint64(args[4].SizeT()), maxRW)), args[5].Uint()
	if flags&^spliceFlagsAll != 0 {
		return 0, unix.EINVAL
	}
	in, err := getFileNoPath(t, inFD)
	if err != nil {
		return 0, err
	}
	defer in.DecRef(t)
	out, err := getFileNoPath(t, outFD)
	if err != nil {
		return 0, err
	}
	defer out.DecRef(t)
	if !in.IsReadable() || !out.IsWritable() {
		return 0, unix.EBADF
	}
	inPipe, _, _ := pipe.End(in)
	outPipe, _, _ := pipe.End(out)
	if inPipe == nil && outPipe == nil {
		return 0, unix.EINVAL
	}
	if (inPipe != nil && inOffAddr != 0) || (outPipe != nil && outOffAddr != 0) {
		return 0, unix.ESPIPE
	}
	if out.StatusFlags()&unix.O_APPEND != 0 && outPipe == nil {
		return 0, unix.EINVAL
	}
	inOff, outOff := int64(-1), int64(-1)
	if inOffAddr != 0 {
		if in.IsStream() {
			return 0, unix.ESPIPE
		}
		if inOff, err = spliceOffset(t, inOffAddr); err != nil {
			return 0, err
		}
	}
	if outOffAddr != 0 {
		if out.IsStream() {
			return 0, unix.ESPIPE
		}
		if outOff, err = spliceOffset(t, outOffAddr); err != nil {
			return 0, err
		}
	}
	if count == 0 {
		return 0, nil
	}
	nonblock := flags&unix.SPLICE_F_NONBLOCK != 0
	var op func() (int64, error)
	switch {
	case inPipe != nil && outPipe != nil:
		op = func() (int64, error) { return pipe.Transfer(inPipe, outPipe, count, true) }
	case inPipe != nil:
		nonblock = nonblock || out.StatusFlags()&unix.O_NONBLOCK != 0 && out.IsStream()
		op = func() (int64, error) {
			return inPipe.ReadInto(count, func(b []byte) (int64, error) { return fileWrite(t, out, b, outOff) })
		}
	default:
		nonblock = nonblock || in.StatusFlags()&unix.O_NONBLOCK != 0 && in.IsStream()
		op = func() (int64, error) {
			return outPipe.WriteFrom(count, func(b []byte) (int64, error) { return fileRead(t, in, b, inOff) })
		}
	}
	n, err := retryBlocking(t, nonblock, []spliceWait{{in, waiter.ReadableEvents}, {out, waiter.WritableEvents}}, op)
	if err == unix.EPIPE {
		t.SendSignal(sigpipeInfo())
	}
	if n > 0 {
		if inOff >= 0 {
			copyOutU64(t, inOffAddr, uint64(inOff+n))
		}
		if outOff >= 0 {
			copyOutU64(t, outOffAddr, uint64(outOff+n))
		}
		return uintptr(n), nil
	}
	return 0, err
}

// Tee is tee(2): copy from one pipe to another without consuming.
func Tee(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	count, flags := int64(min(uint64(args[2].SizeT()), maxRW)), args[3].Uint()
	if flags&^spliceFlagsAll != 0 {
		return 0, unix.EINVAL
	}
	in, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer in.DecRef(t)
	out, err := getFileNoPath(t, args[1].Int())
	if err != nil {
		return 0, err
	}
	defer out.DecRef(t)
	inPipe, inR, _ := pipe.End(in)
	outPipe, _, outW := pipe.End(out)
	if inPipe == nil || outPipe == nil || !inR || !outW {
		if !in.IsReadable() || !out.IsWritable() {
			return 0, unix.EBADF
		}
		return 0, unix.EINVAL
	}
	if inPipe == outPipe {
		return 0, unix.EINVAL
	}
	if count == 0 {
		return 0, nil
	}
	n, err := retryBlocking(t, flags&unix.SPLICE_F_NONBLOCK != 0, []spliceWait{{in, waiter.ReadableEvents}, {out, waiter.WritableEvents}},
		func() (int64, error) { return pipe.Transfer(inPipe, outPipe, count, false) })
	if err == unix.EPIPE {
		t.SendSignal(sigpipeInfo())
	}
	if n > 0 {
		return uintptr(n), nil
	}
	return 0, err
}

// Vmsplice is vmsplice(2): the application's memory into a pipe's write
// end, or out of its read end, copied.
func Vmsplice(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	flags := args[3].Uint()
	if flags&^spliceFlagsAll != 0 {
		return 0, unix.EINVAL
	}
	f, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	p, r, w := pipe.End(f)
	if p == nil {
		return 0, unix.EBADF
	}
	seq, err := t.IovecsIOSequence(args[1].Pointer(), int(args[2].Uint64()))
	if err != nil {
		return 0, err
	}
	if seq.NumBytes() == 0 {
		return 0, nil
	}
	nonblock := flags&unix.SPLICE_F_NONBLOCK != 0
	var n int64
	switch {
	case w:
		n, err = retryBlocking(t, nonblock, []spliceWait{{f, waiter.WritableEvents}}, func() (int64, error) {
			return p.WriteFrom(seq.NumBytes(), func(b []byte) (int64, error) {
				c, err := seq.CopyIn(b)
				return int64(c), err
			})
		})
		if err == unix.EPIPE {
			t.SendSignal(sigpipeInfo())
		}
	case r:
		n, err = retryBlocking(t, nonblock, []spliceWait{{f, waiter.ReadableEvents}}, func() (int64, error) {
			return p.ReadInto(seq.NumBytes(), func(b []byte) (int64, error) {
				c, err := seq.CopyOut(b)
				return int64(c), err
			})
		})
	default:
		return 0, unix.EBADF
	}
	if n > 0 {
		return uintptr(n), nil
	}
	return 0, err
}

// CopyFileRange is copy_file_range(2) between regular files of one
// filesystem (EXDEV across filesystems, as Linux for filesystems without
// their own copy method; callers fall back to read and write).
func CopyFileRange(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	inOffAddr, outOffAddr := args[1].Pointer(), args[3].Pointer()
	count, flags := int64(min(uint64(args[4].SizeT()), maxRW)), args[5].Uint()
	if flags != 0 {
		return 0, unix.EINVAL
	}
	in, err := getFileNoPath(t, args[0].Int())
	if err != nil {
		return 0, err
	}
	defer in.DecRef(t)
	out, err := getFileNoPath(t, args[2].Int())
	if err != nil {
		return 0, err
	}
	defer out.DecRef(t)
	if !in.IsReadable() || !out.IsWritable() || out.StatusFlags()&unix.O_APPEND != 0 {
		return 0, unix.EBADF
	}
	ist, err := in.Stat(t)
	if err != nil {
		return 0, err
	}
	ost, err := out.Stat(t)
	if err != nil {
		return 0, err
	}
	if ist.Mode&unix.S_IFMT == unix.S_IFDIR || ost.Mode&unix.S_IFMT == unix.S_IFDIR {
		return 0, unix.EISDIR
	}
	if ist.Mode&unix.S_IFMT != unix.S_IFREG || ost.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, unix.EINVAL
	}
	inOff, outOff := int64(-1), int64(-1)
	if inOffAddr != 0 {
		if inOff, err = spliceOffset(t, inOffAddr); err != nil {
			return 0, err
		}
	}
	if outOffAddr != 0 {
		if outOff, err = spliceOffset(t, outOffAddr); err != nil {
			return 0, err
		}
	}
	if in.VirtualDentry().Mount == nil || out.VirtualDentry().Mount == nil ||
		in.VirtualDentry().Mount.Filesystem() != out.VirtualDentry().Mount.Filesystem() {
		return 0, unix.EXDEV
	}
	// The same file: the ranges may not overlap.
	if ist.Ino == ost.Ino {
		ri, ro := inOff, outOff
		if ri < 0 {
			ri = in.Offset()
		}
		if ro < 0 {
			ro = out.Offset()
		}
		if ri+count > ro && ro+count > ri {
			return 0, unix.EINVAL
		}
	}
	var total int64
	buf := make([]byte, min(count, 256<<10))
	for total < count {
		chunk := buf[:min(int64(len(buf)), count-total)]
		ioff, ooff := int64(-1), int64(-1)
		if inOff >= 0 {
			ioff = inOff + total
		}
		if outOff >= 0 {
			ooff = outOff + total
		}
		n, rerr := fileRead(t, in, chunk, ioff)
		if n == 0 {
			if total == 0 && rerr != nil {
				return 0, rerr
			}
			break
		}
		w, werr := fileWrite(t, out, chunk[:n], ooff)
		total += w
		if werr != nil || w < n {
			if total == 0 {
				return 0, werr
			}
			break
		}
	}
	if inOff >= 0 {
		copyOutU64(t, inOffAddr, uint64(inOff+total))
	}
	if outOff >= 0 {
		copyOutU64(t, outOffAddr, uint64(outOff+total))
	}
	return uintptr(total), nil
}
