// Package pipe owns pipes: a bounded byte buffer between readers and
// writers with Linux's semantics — 64 KiB default capacity adjustable by
// F_SETPIPE_SZ, atomic writes of up to PIPE_BUF bytes, end of file when no
// writer is left, EPIPE when no reader is, and readiness events for poll,
// select and epoll. Operations never block: they return EAGAIN and the
// syscall layer waits on the pipe's queue.
package pipe

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

const (
	// PipeBuf is PIPE_BUF: writes up to this size are atomic.
	PipeBuf = 4096
	// DefaultSize is the default capacity.
	DefaultSize = 65536
	// MaxSize is /proc/sys/fs/pipe-max-size: unprivileged callers may not
	// grow a pipe past it.
	MaxSize = 1 << 20
	// PIPEFS_MAGIC is statfs's f_type for pipes.
	PIPEFS_MAGIC = 0x50495045
)

var nextIno atomic.Uint64

// Pipe is the shared buffer of a pipe or FIFO.
type Pipe struct {
	// q carries EventIn to readers and EventOut to writers.
	q   waiter.Queue
	ino uint64

	// mu protects everything below. It is not held while notifying q.
	mu      sync.Mutex
	buf     []byte
	max     int
	readers int
	writers int
	// rOpens and wOpens count every open of a read or write end, so a
	// FIFO open waiting for the other side sees one that came and went.
	rOpens, wOpens uint64
}

// New returns a pipe with no ends open.
func New() *Pipe {
	return &Pipe{max: DefaultSize, ino: nextIno.Add(1)}
}

// NewConnectedPipe returns the two ends of pipe(2): a read end and a write
// end. flags may hold O_NONBLOCK (O_CLOEXEC is an FD flag, the caller's).
func NewConnectedPipe(flags uint32) (r, w *vfs.FileDescription) {
	p := New()
	return p.Open(unix.O_RDONLY | flags&unix.O_NONBLOCK), p.Open(unix.O_WRONLY | flags&unix.O_NONBLOCK)
}

// Open returns a new end of p for the access mode in flags.
func (p *Pipe) Open(flags uint32) *vfs.FileDescription {
	return vfs.NewFileDescription(p.OpenImpl(flags), flags, vfs.VirtualDentry{})
}

// OpenImpl returns the description implementation of a new end, for
// named pipes opened through a filesystem.
func (p *Pipe) OpenImpl(flags uint32) vfs.FileDescriptionImpl {
	fd := &pipeFD{p: p}
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		fd.reader = true
	case unix.O_WRONLY:
		fd.writer = true
	default:
		fd.reader, fd.writer = true, true
	}
	p.mu.Lock()
	if fd.reader {
		p.readers++
		p.rOpens++
	}
	if fd.writer {
		p.writers++
		p.wOpens++
	}
	p.mu.Unlock()
	p.q.Notify(waiter.EventIn | waiter.EventOut)
	return fd
}

// OpenFIFO opens an end of p as a named pipe, with open(2)'s rules: a
// read-only open waits for a writer unless O_NONBLOCK; a write-only open
// waits for a reader, or fails with ENXIO under O_NONBLOCK; O_RDWR never
// waits. ctx must be a vfs.Blocker (the task) for the waits, which a
// signal interrupts (ERESTARTSYS). fstat of the end reports ino's
// attributes.
func (p *Pipe) OpenFIFO(ctx context.Context, ino vfs.Inode, flags uint32) (vfs.FileDescriptionImpl, error) {
	nonblock := flags&unix.O_NONBLOCK != 0
	acc := flags & unix.O_ACCMODE
	if acc == unix.O_WRONLY && nonblock {
		p.mu.Lock()
		r := p.readers
		p.mu.Unlock()
		if r == 0 {
			return nil, unix.ENXIO
		}
	}
	impl := p.OpenImpl(flags)
	impl.(*pipeFD).inode = ino
	if acc == unix.O_RDWR || (acc == unix.O_RDONLY && nonblock) {
		return impl, nil
	}
	// Wait until the other side has been opened at least once since.
	p.mu.Lock()
	other := func() uint64 {
		if acc == unix.O_RDONLY {
			return p.wOpens
		}
		return p.rOpens
	}
	start := other()
	present := (acc == unix.O_RDONLY && p.writers > 0) || (acc == unix.O_WRONLY && p.readers > 0)
	p.mu.Unlock()
	if present {
		return impl, nil
	}
	b, ok := ctx.(vfs.Blocker)
	if !ok {
		impl.Release(ctx)
		return nil, unix.EAGAIN
	}
	e, ch := waiter.NewChannelEntry(waiter.EventIn | waiter.EventOut)
	p.q.EventRegister(e)
	defer p.q.EventUnregister(e)
	for {
		p.mu.Lock()
		moved := other() != start
		p.mu.Unlock()
		if moved {
			return impl, nil
		}
		if err := b.Block(ch, time.Time{}); err != nil {
			impl.Release(ctx)
			return nil, linuxerr.ERESTARTSYS
		}
	}
}

// Size returns the capacity (F_GETPIPE_SZ).
func (p *Pipe) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

// SetSize sets the capacity (F_SETPIPE_SZ), rounded up to a power of two
// number of pages: EPERM past MaxSize without CAP_SYS_RESOURCE, EBUSY if
// the data held would not fit.
func (p *Pipe) SetSize(ctx context.Context, size int64) (int, error) {
	if size < 0 || size > 1<<31 {
		return 0, unix.EINVAL
	}
	n := int64(hostarch.PageSize)
	for n < size {
		n <<= 1
	}
	if n > MaxSize && !auth.CredentialsFromContext(ctx).HasCapability(auth.CAP_SYS_RESOURCE) {
		return 0, unix.EPERM
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > int(n) {
		return 0, unix.EBUSY
	}
	p.max = int(n)
	return p.max, nil
}

// pipeFD is one open end.
type pipeFD struct {
	vfs.FileDescriptionDefaultImpl
	vfs.DefaultStream
	p              *Pipe
	reader, writer bool
	// inode is the FIFO's inode for a named pipe (nil for pipe(2)).
	inode vfs.Inode
}

// Pipe returns the pipe behind fd, or nil.
func FromFD(fd *vfs.FileDescription) *Pipe {
	if pf, ok := fd.Impl().(*pipeFD); ok {
		return pf.p
	}
	return nil
}

func (fd *pipeFD) Release(context.Context) {
	p := fd.p
	p.mu.Lock()
	if fd.reader {
		p.readers--
	}
	if fd.writer {
		p.writers--
	}
	p.mu.Unlock()
	p.q.Notify(waiter.EventIn | waiter.EventOut | waiter.EventHUp | waiter.EventErr)
}

// Read returns data, 0 at end of file (no writers), or EAGAIN.
func (fd *pipeFD) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	want := dst.NumBytes()
	if want == 0 {
		return 0, nil
	}
	p := fd.p
	p.mu.Lock()
	if len(p.buf) == 0 {
		w := p.writers
		p.mu.Unlock()
		if w == 0 {
			return 0, nil
		}
		return 0, unix.EAGAIN
	}
	n := min(int64(len(p.buf)), want)
	c, err := dst.CopyOut(p.buf[:n])
	p.buf = p.buf[c:]
	if len(p.buf) == 0 {
		p.buf = nil
	}
	p.mu.Unlock()
	if c > 0 {
		p.q.Notify(waiter.EventOut)
		return int64(c), nil
	}
	return 0, err
}

// Write appends what fits: nothing (EAGAIN) unless all of a write of up
// to PIPE_BUF fits; EPIPE without readers (the caller sends SIGPIPE).
func (fd *pipeFD) Write(ctx context.Context, src usermem.IOSequence, _ int64, _ bool) (int64, int64, error) {
	want := src.NumBytes()
	p := fd.p
	p.mu.Lock()
	if p.readers == 0 {
		p.mu.Unlock()
		return 0, 0, unix.EPIPE
	}
	if want == 0 {
		p.mu.Unlock()
		return 0, 0, nil
	}
	avail := int64(p.max - len(p.buf))
	if avail == 0 || (want <= PipeBuf && avail < want) {
		p.mu.Unlock()
		return 0, 0, unix.EAGAIN
	}
	n := min(avail, want)
	old := len(p.buf)
	p.buf = append(p.buf, make([]byte, n)...)
	c, err := src.CopyIn(p.buf[old:])
	p.buf = p.buf[:old+c]
	p.mu.Unlock()
	if c > 0 {
		p.q.Notify(waiter.EventIn)
		return int64(c), 0, nil
	}
	return 0, 0, err
}

func (fd *pipeFD) Readiness(mask waiter.EventMask) waiter.EventMask {
	p := fd.p
	p.mu.Lock()
	defer p.mu.Unlock()
	var r waiter.EventMask
	if fd.reader {
		if len(p.buf) > 0 {
			r |= waiter.EventIn | waiter.EventRdNorm
		}
		if p.writers == 0 {
			r |= waiter.EventHUp
		}
	}
	if fd.writer {
		if p.max-len(p.buf) >= PipeBuf {
			r |= waiter.EventOut
		}
		if p.readers == 0 {
			r |= waiter.EventErr
		}
	}
	return r & (mask | waiter.AlwaysReported)
}

func (fd *pipeFD) EventRegister(e *waiter.Entry) error { fd.p.q.EventRegister(e); return nil }
func (fd *pipeFD) EventUnregister(e *waiter.Entry)     { fd.p.q.EventUnregister(e) }

func (fd *pipeFD) Stat(ctx context.Context) (vfs.Statx, error) {
	if fd.inode != nil {
		return fd.inode.Stat(ctx)
	}
	now := vfs.Now()
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: hostarch.PageSize, Nlink: 1,
		Mode: unix.S_IFIFO | 0600, Ino: fd.p.ino, Atime: now, Mtime: now, Ctime: now,
	}, nil
}

func (fd *pipeFD) StatFS(context.Context) (vfs.Statfs, error) {
	return vfs.Statfs{Type: PIPEFS_MAGIC, BlockSize: hostarch.PageSize, NameLength: vfs.NameMax}, nil
}

// Ioctl answers FIONREAD with the bytes buffered.
func (fd *pipeFD) Ioctl(ctx context.Context, uio vfs.CopyIO, args arch.SyscallArguments) (uintptr, error) {
	switch args[1].Uint() {
	case vfs.FIONREAD:
		fd.p.mu.Lock()
		n := len(fd.p.buf)
		fd.p.mu.Unlock()
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(n))
		if _, err := uio.CopyOutBytes(args[2].Pointer(), b[:]); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	}
	return 0, unix.ENOTTY
}
