package linux

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// getFile returns the file at fd with a reference the caller drops.
func getFile(t *kernel.Task, fd int32) (*vfs.FileDescription, error) {
	f, _ := t.FDTable().Get(fd)
	if f == nil {
		return nil, unix.EBADF
	}
	return f, nil
}

// getFileNoPath is getFile refusing O_PATH descriptions (EBADF), as every
// call but a few (fstat, fchdir, close, dup, fcntl) does.
func getFileNoPath(t *kernel.Task, fd int32) (*vfs.FileDescription, error) {
	f, err := getFile(t, fd)
	if err == nil && f.IsPath() {
		f.DecRef(t)
		return nil, unix.EBADF
	}
	return f, err
}

// copyInPath reads a path argument: EFAULT, ENAMETOOLONG past PATH_MAX.
func copyInPath(t *kernel.Task, addr hostarch.Addr) (string, error) {
	return t.CopyInString(addr, vfs.PathMax)
}

// pathOp builds the PathOperation for path relative to dirfd.
func pathOp(t *kernel.Task, dirfd int32, path string, follow bool) (*vfs.PathOperation, func(), error) {
	return pathOpFrom(t, dirfd, path, follow, false)
}

// pathOpFrom is pathOp; with scoped set, Start is dirfd's directory even
// for an absolute path (openat2's RESOLVE_BENEATH and RESOLVE_IN_ROOT
// resolve "/" from there).
func pathOpFrom(t *kernel.Task, dirfd int32, path string, follow, scoped bool) (*vfs.PathOperation, func(), error) {
	fsc := t.FSContext()
	pop := &vfs.PathOperation{Root: fsc.Root(), Path: path, FollowFinalSymlink: follow}
	done := func() {}
	switch {
	case len(path) > 0 && path[0] == '/' && !scoped:
		pop.Start = pop.Root
	case dirfd == unix.AT_FDCWD:
		pop.Start = fsc.WorkingDirectory()
	default:
		f, err := getFile(t, dirfd)
		if err != nil {
			return nil, nil, err
		}
		vd := f.VirtualDentry()
		if !vd.Ok() {
			f.DecRef(t)
			return nil, nil, unix.ENOTDIR
		}
		pop.Start = vd
		done = func() { f.DecRef(t) }
	}
	return pop, done, nil
}

// pathArg copies in a path and builds its PathOperation.
func pathArg(t *kernel.Task, dirfd int32, addr hostarch.Addr, follow bool) (*vfs.PathOperation, func(), error) {
	path, err := copyInPath(t, addr)
	if err != nil {
		return nil, nil, err
	}
	return pathOp(t, dirfd, path, follow)
}

// blockingIO runs op until it stops returning EAGAIN, waiting for events
// on file between tries unless the description is non-blocking. A wait
// interrupted by a signal restarts the call (ERESTARTSYS) if nothing was
// transferred yet.
func blockingIO(t *kernel.Task, file *vfs.FileDescription, events waiter.EventMask, op func() (int64, error)) (int64, error) {
	n, err := op()
	if err != unix.EAGAIN || file.StatusFlags()&unix.O_NONBLOCK != 0 {
		return n, err
	}
	e, ch := waiter.NewChannelEntry(events)
	file.EventRegister(e)
	defer file.EventUnregister(e)
	for {
		n, err = op()
		if err != unix.EAGAIN {
			return n, err
		}
		if err := t.Block(ch, time.Time{}); err != nil {
			return 0, linuxerr.ERESTARTSYS
		}
	}
}

// waitingReader is a stream file whose blocking reads follow rules of
// their own that blockingIO cannot express: a terminal's replica, whose
// non-canonical reads wait for VMIN bytes or VTIME tenths of a second and
// whose O_NONBLOCK reads may return fewer than VMIN bytes (fs/devpts).
// ReadWait does the whole read, waiting unless nonblock.
type waitingReader interface {
	ReadWait(t *kernel.Task, dst usermem.IOSequence, nonblock bool) (int64, error)
}

// read is the common path of read(2), readv(2), pread64(2) and friends;
// off < 0 means the file offset.
func read(t *kernel.Task, file *vfs.FileDescription, dst usermemSeq, off int64) (uintptr, error) {
	if wr, ok := file.Impl().(waitingReader); ok && off < 0 {
		n, err := wr.ReadWait(t, dst, file.StatusFlags()&unix.O_NONBLOCK != 0)
		if n > 0 {
			return uintptr(n), nil
		}
		return 0, err
	}
	n, err := blockingIO(t, file, waiter.ReadableEvents, func() (int64, error) {
		if off >= 0 {
			return file.PRead(t, dst, off)
		}
		return file.Read(t, dst)
	})
	if n > 0 {
		return uintptr(n), nil
	}
	return 0, err
}

// write is the common path of the write family. A blocking write keeps
// going until everything is written (pipes take what fits at a time);
// EPIPE raises SIGPIPE.
func write(t *kernel.Task, file *vfs.FileDescription, src usermemSeq, off int64) (uintptr, error) {
	var total int64
	for {
		n, err := blockingIO(t, file, waiter.WritableEvents, func() (int64, error) {
			if off >= 0 {
				return file.PWrite(t, src, off+total)
			}
			return file.Write(t, src)
		})
		total += n
		src = src.DropFirst(n)
		if err == unix.EPIPE {
			t.SendSignal(sigpipeInfo())
		}
		if err != nil {
			// A partial transfer is reported as such, whatever stopped it.
			if total > 0 {
				return uintptr(total), nil
			}
			return 0, err
		}
		if src.NumBytes() == 0 || n == 0 || !file.IsStream() || file.StatusFlags()&unix.O_NONBLOCK != 0 {
			return uintptr(total), nil
		}
		// A signal (SIGKILL above all) ends a long write with what is
		// written so far, as a pipe's write does on Linux.
		if t.Interrupted() {
			return uintptr(total), nil
		}
	}
}

type usermemSeq = usermem.IOSequence

func sigpipeInfo() *arch.SignalInfo {
	return &arch.SignalInfo{Signo: int32(unix.SIGPIPE), Code: arch.SI_USER}
}
