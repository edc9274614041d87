package devpts

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// Terminal is one pseudo-terminal pair.
type Terminal struct {
	fs    *Filesystem
	index uint32
	// tty is the pair as the kernel's job control sees it.
	tty kernel.TTY

	// replicaQ wakes replica readers (EventIn) and writers (EventOut);
	// masterQ the master's.
	replicaQ, masterQ waiter.Queue

	// mu protects everything below.
	mu sync.Mutex
	ld *ldisc
	ws [winsizeSize]byte
	// locked: replicas cannot be opened (TIOCSPTLCK).
	locked bool
	// masterGone: the master has closed; the pair is dead.
	masterGone bool
	// replicas counts open replica descriptions; replicaClosed is set
	// when the last one closes (master reads then end in EIO).
	replicas      int
	replicaClosed bool
	// hangups counts TIOCVHANGUPs: a replica description opened before
	// the last one is hung up.
	hangups uint64
	// exclusive: TIOCEXCL on the replica (further opens EBUSY).
	exclusive bool
	// packet: TIOCPKT on the master; pktStatus the TIOCPKT_* events not
	// yet read.
	packet    bool
	pktStatus byte

	mode                uint32
	uid                 auth.KUID
	gid                 auth.KGID
	atime, mtime, ctime vfs.StatxTimestamp
}

func newTerminal(fs *Filesystem, index uint32) *Terminal {
	t := &Terminal{fs: fs, index: index, ld: newLdisc(), locked: true}
	t.tty.Index = index
	t.tty.Terminal = t
	t.tty.Rdev = t.rdev()
	now := vfs.Now()
	t.atime, t.mtime, t.ctime = now, now, now
	return t
}

// TTY returns the pair's kernel TTY.
func (t *Terminal) TTY() *kernel.TTY { return &t.tty }

// Index returns N of /dev/pts/N.
func (t *Terminal) Index() uint32 { return t.index }

// rdev is the replica's device number.
func (t *Terminal) rdev() uint64 { return unix.Mkdev(replicaMajor+t.index/256, t.index%256) }

func (t *Terminal) replicaStat() vfs.Statx {
	t.mu.Lock()
	defer t.mu.Unlock()
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: 1024, Nlink: 1, Mode: uint16(unix.S_IFCHR | t.mode),
		UID: uint32(t.uid), GID: uint32(t.gid), Ino: uint64(t.index) + 3,
		RdevMajor: unix.Major(t.rdev()), RdevMinor: unix.Minor(t.rdev()),
		Atime: t.atime, Mtime: t.mtime, Ctime: t.ctime,
	}
}

// notify wakes the replica's and the master's waiters for the events
// given; called without mu.
func (t *Terminal) notify(replica, master waiter.EventMask) {
	if replica != 0 {
		t.replicaQ.Notify(replica)
	}
	if master != 0 {
		t.masterQ.Notify(master)
	}
}

// signal sends the ISIG signals a master write produced.
func (t *Terminal) signal(sigs []unix.Signal) {
	for _, s := range sigs {
		t.tty.SignalForeground(s)
	}
}

func (t *Terminal) openMaster() *masterFD {
	return &masterFD{t: t}
}

// openReplica opens a replica description: EIO while the pair is locked
// or dead, EBUSY when it is exclusive. Without O_NOCTTY (and unless
// noctty) a session leader with no controlling terminal acquires it.
func (t *Terminal) openReplica(ctx context.Context, flags uint32, noctty bool) (*replicaFD, error) {
	admin := auth.CredentialsFromContext(ctx).HasCapability(auth.CAP_SYS_ADMIN)
	t.mu.Lock()
	switch {
	case t.masterGone || t.locked:
		t.mu.Unlock()
		return nil, unix.EIO
	case t.exclusive && t.replicas > 0 && !admin:
		t.mu.Unlock()
		return nil, unix.EBUSY
	}
	t.replicas++
	t.replicaClosed = false
	fd := &replicaFD{t: t, gen: t.hangups, rdev: t.rdev()}
	t.mu.Unlock()
	acc := flags & unix.O_ACCMODE
	fd.readable = acc == unix.O_RDONLY || acc == unix.O_RDWR
	if task, ok := ctx.(*kernel.Task); ok && flags&unix.O_NOCTTY == 0 && !noctty {
		t.tty.OpenedBy(task, fd.readable)
	}
	t.notify(0, waiter.EventOut)
	return fd, nil
}

// OpenTTY opens tty, a terminal of this package, as the device rdev
// (/dev/tty or /dev/console): a replica description that stats as that
// device and never changes the controlling terminal.
func OpenTTY(ctx context.Context, tty *kernel.TTY, flags uint32, rdev uint64) (vfs.FileDescriptionImpl, error) {
	t, ok := tty.Terminal.(*Terminal)
	if !ok {
		return nil, unix.ENXIO
	}
	fd, err := t.openReplica(ctx, flags, true)
	if err != nil {
		return nil, err
	}
	fd.rdev, fd.alias = rdev, true
	return fd, nil
}

// TTYOf returns the kernel TTY of a description of this package (master
// or replica), or nil.
func TTYOf(fd *vfs.FileDescription) *kernel.TTY {
	switch impl := fd.Impl().(type) {
	case *replicaFD:
		return &impl.t.tty
	case *masterFD:
		return &impl.t.tty
	}
	return nil
}

// replicaFD is an open replica (pts/N, /dev/tty, /dev/console).
type replicaFD struct {
	vfs.FileDescriptionDefaultImpl
	vfs.DefaultStream
	t *Terminal
	// gen is the hangup count at open.
	gen      uint64
	readable bool
	// alias: opened as /dev/tty or /dev/console, whose device rdev is.
	alias bool
	rdev  uint64
}

// hungUpLocked reports whether fd no longer reaches the terminal.
func (fd *replicaFD) hungUpLocked() bool { return fd.t.masterGone || fd.gen != fd.t.hangups }

func (fd *replicaFD) Release(context.Context) {
	t := fd.t
	t.mu.Lock()
	t.replicas--
	last := t.replicas == 0
	if last {
		t.replicaClosed = true
	}
	t.mu.Unlock()
	if last {
		t.notify(0, waiter.EventIn|waiter.EventHUp)
	}
}

func (fd *replicaFD) Stat(context.Context) (vfs.Statx, error) {
	st := fd.t.replicaStat()
	if fd.alias {
		// As fs/dev makes the nodes: /dev/tty 0666, /dev/console 0620.
		st.Mode = unix.S_IFCHR | 0666
		if fd.rdev == unix.Mkdev(5, 1) {
			st.Mode = unix.S_IFCHR | 0620
		}
		st.UID, st.GID, st.Ino = 0, ttyGID, 0
		st.RdevMajor, st.RdevMinor = unix.Major(fd.rdev), unix.Minor(fd.rdev)
	}
	return st, nil
}

func (fd *replicaFD) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	if fd.alias {
		return unix.EPERM
	}
	return (&replicaInode{fs: fd.t.fs, index: fd.t.index}).SetStat(ctx, opts)
}

// Read is a read that never waits: what ReadWait would return at once, or
// EAGAIN.
func (fd *replicaFD) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	n, wait, _, err := fd.read(ctx, dst, false, time.Now())
	if wait {
		return 0, unix.EAGAIN
	}
	return n, err
}

// ReadWait is read(2) on the replica, waiting as the terminal's mode
// says: for a line in canonical mode; for VMIN bytes, VTIME tenths of a
// second, or both, otherwise. The syscall layer calls it instead of Read
// so that VTIME's timers and O_NONBLOCK's partial reads are Linux's.
func (fd *replicaFD) ReadWait(task *kernel.Task, dst usermem.IOSequence, nonblock bool) (int64, error) {
	start := time.Now()
	var e *waiter.Entry
	var ch chan struct{}
	for {
		n, wait, deadline, err := fd.read(task, dst, nonblock, start)
		if !wait {
			if e != nil {
				fd.t.replicaQ.EventUnregister(e)
			}
			return n, err
		}
		if e == nil {
			// Register, then look again: input may have come in between.
			e, ch = waiter.NewChannelEntry(waiter.EventIn)
			fd.t.replicaQ.EventRegister(e)
			continue
		}
		if err := task.Block(ch, deadline); err == kernel.ErrInterrupted {
			fd.t.replicaQ.EventUnregister(e)
			return 0, linuxerr.ERESTARTSYS
		}
	}
}

// read takes what a read started at start may take now. wait says the
// reader must wait for input (until deadline, if not zero) unless
// nonblock, in which case read has already answered EAGAIN.
func (fd *replicaFD) read(ctx context.Context, dst usermem.IOSequence, nonblock bool, start time.Time) (n int64, wait bool, deadline time.Time, err error) {
	t := fd.t
	t.mu.Lock()
	if fd.hungUpLocked() {
		t.mu.Unlock()
		return 0, false, time.Time{}, nil
	}
	t.mu.Unlock()
	if err := t.tty.CheckAccess(ctx, unix.SIGTTIN); err != nil {
		return 0, false, time.Time{}, err
	}
	max := int(min(dst.NumBytes(), 1<<30))
	if max == 0 {
		return 0, false, time.Time{}, nil
	}
	t.mu.Lock()
	defer func() {
		t.mu.Unlock()
		if n > 0 {
			t.notify(0, waiter.EventOut)
		}
	}()
	ld := t.ld
	if ld.canonical() {
		if ld.canonHead == 0 {
			if nonblock {
				return 0, false, time.Time{}, unix.EAGAIN
			}
			return 0, true, time.Time{}, nil
		}
		data, consumed := ld.peekLine(max)
		c, err := dst.CopyOut(data)
		if c == 0 && len(data) > 0 {
			return 0, false, time.Time{}, err
		}
		if c == len(data) {
			ld.consumeCanon(consumed)
		} else {
			ld.consumeCanon(c)
		}
		t.atime = vfs.Now()
		return int64(c), false, time.Time{}, nil
	}
	vmin, vtime := int(ld.t.cc[unix.VMIN]), time.Duration(ld.t.cc[unix.VTIME])*100*time.Millisecond
	avail := len(ld.in)
	now := time.Now()
	take := false
	switch {
	case vmin == 0:
		switch {
		case avail > 0:
			take = true
		case vtime == 0:
			return 0, false, time.Time{}, nil
		case nonblock:
			return 0, false, time.Time{}, unix.EAGAIN
		case !now.Before(start.Add(vtime)):
			return 0, false, time.Time{}, nil
		default:
			return 0, true, start.Add(vtime), nil
		}
	case avail >= min(vmin, max):
		take = true
	case avail == 0 && nonblock:
		return 0, false, time.Time{}, unix.EAGAIN
	case avail > 0 && nonblock:
		take = true
	case avail > 0 && vtime > 0:
		// The inter-byte timer runs from the last byte received.
		deadline = ld.lastInput.Add(vtime)
		if !now.Before(deadline) {
			take = true
		}
	}
	if !take {
		return 0, true, deadline, nil
	}
	data := ld.in[:min(max, avail)]
	c, err := dst.CopyOut(data)
	if c == 0 {
		return 0, false, time.Time{}, err
	}
	ld.consume(c)
	t.atime = vfs.Now()
	return int64(c), false, time.Time{}, nil
}

// Write is the replica's output: job control (TOSTOP), then as much as
// the master's queue takes, or EAGAIN; EIO once hung up.
func (fd *replicaFD) Write(ctx context.Context, src usermem.IOSequence, _ int64, _ bool) (int64, int64, error) {
	t := fd.t
	t.mu.Lock()
	hung, tostop := fd.hungUpLocked(), t.ld.t.l(unix.TOSTOP)
	t.mu.Unlock()
	if hung {
		return 0, 0, unix.EIO
	}
	if tostop {
		if err := t.tty.CheckAccess(ctx, unix.SIGTTOU); err != nil {
			return 0, 0, err
		}
	}
	if src.NumBytes() == 0 {
		return 0, 0, nil
	}
	buf := make([]byte, min(src.NumBytes(), 4096))
	c, err := src.CopyIn(buf)
	if c == 0 {
		return 0, 0, err
	}
	t.mu.Lock()
	if fd.hungUpLocked() {
		t.mu.Unlock()
		return 0, 0, unix.EIO
	}
	n := 0
	if !t.ld.stopped {
		n = t.ld.write(buf[:c])
	}
	if n > 0 {
		t.mtime = vfs.Now()
	}
	t.mu.Unlock()
	if n == 0 {
		return 0, 0, unix.EAGAIN
	}
	t.notify(0, waiter.EventIn)
	return int64(n), 0, nil
}

func (fd *replicaFD) Readiness(mask waiter.EventMask) waiter.EventMask {
	t := fd.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd.hungUpLocked() {
		return (waiter.EventIn | waiter.EventOut | waiter.EventErr | waiter.EventHUp | waiter.EventRdNorm) & (mask | waiter.AlwaysReported)
	}
	var r waiter.EventMask
	if t.ld.pollReadable() {
		r |= waiter.EventIn | waiter.EventRdNorm
	}
	if !t.ld.stopped && t.ld.outputRoom() >= 8 {
		r |= waiter.EventOut
	}
	return r & (mask | waiter.AlwaysReported)
}

func (fd *replicaFD) EventRegister(e *waiter.Entry) error { fd.t.replicaQ.EventRegister(e); return nil }
func (fd *replicaFD) EventUnregister(e *waiter.Entry)     { fd.t.replicaQ.EventUnregister(e) }

func (fd *replicaFD) Ioctl(ctx context.Context, uio vfs.CopyIO, args arch.SyscallArguments) (uintptr, error) {
	fd.t.mu.Lock()
	hung := fd.hungUpLocked()
	fd.t.mu.Unlock()
	if hung {
		if args[1].Uint() == unix.TIOCSPGRP {
			return 0, unix.ENOTTY
		}
		return 0, unix.EIO
	}
	return fd.t.ioctl(ctx, uio, args, false, fd.readable)
}

// masterFD is the master side, from ptmx.
type masterFD struct {
	vfs.FileDescriptionDefaultImpl
	vfs.DefaultStream
	t *Terminal
}

// Release ends the pair: pts/N goes away and every replica hangs up.
func (fd *masterFD) Release(context.Context) {
	t := fd.t
	t.mu.Lock()
	t.masterGone = true
	t.mu.Unlock()
	t.fs.remove(t)
	t.notify(waiter.EventIn|waiter.EventOut|waiter.EventErr|waiter.EventHUp, 0)
	t.tty.Hangup()
}

func (fd *masterFD) Stat(context.Context) (vfs.Statx, error) { return fd.t.fs.ptmxStat(), nil }

// Read returns the replica's output (in packet mode behind a status
// byte), EIO once every replica has closed and nothing is left, else
// EAGAIN.
func (fd *masterFD) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	max := int(min(dst.NumBytes(), 1<<30))
	if max == 0 {
		return 0, nil
	}
	t := fd.t
	t.mu.Lock()
	ld := t.ld
	if t.packet && t.pktStatus != 0 {
		st := t.pktStatus
		c, err := dst.CopyOut([]byte{st})
		if c == 0 {
			t.mu.Unlock()
			return 0, err
		}
		t.pktStatus = 0
		t.mu.Unlock()
		return 1, nil
	}
	if len(ld.out) == 0 {
		closed := t.replicaClosed
		t.mu.Unlock()
		if closed {
			return 0, unix.EIO
		}
		return 0, unix.EAGAIN
	}
	var c int
	var err error
	if t.packet {
		// TIOCPKT_DATA, then the data.
		buf := append([]byte{0}, ld.out[:min(len(ld.out), max-1)]...)
		c, err = dst.CopyOut(buf)
		if c > 0 {
			ld.out = ld.out[c-1:]
		}
	} else {
		c, err = dst.CopyOut(ld.out[:min(len(ld.out), max)])
		ld.out = ld.out[c:]
	}
	if len(ld.out) == 0 {
		ld.out = nil
	}
	t.mu.Unlock()
	if c == 0 {
		return 0, err
	}
	t.notify(waiter.EventOut, 0)
	return int64(c), nil
}

// Write is the replica's input, through the line discipline; it takes
// what fits in the replica's buffer, or EAGAIN.
func (fd *masterFD) Write(ctx context.Context, src usermem.IOSequence, _ int64, _ bool) (int64, int64, error) {
	if src.NumBytes() == 0 {
		return 0, 0, nil
	}
	buf := make([]byte, min(src.NumBytes(), inputSize))
	c, err := src.CopyIn(buf)
	if c == 0 {
		return 0, 0, err
	}
	n, err := fd.t.input(buf[:c])
	return int64(n), 0, err
}

// input runs b through the line discipline as if typed; it returns how
// much was taken, or EAGAIN when nothing fit.
func (t *Terminal) input(b []byte) (int, error) {
	t.mu.Lock()
	outBefore := len(t.ld.out)
	flushed := false
	n, sigs := t.ld.receive(b)
	if len(sigs) > 0 && !t.ld.t.l(unix.NOFLSH) {
		flushed = true
	}
	echoed := len(t.ld.out) != outBefore
	if flushed && t.packet {
		t.pktStatus |= unix.TIOCPKT_FLUSHREAD
	}
	t.mu.Unlock()
	if n == 0 {
		return 0, unix.EAGAIN
	}
	var m waiter.EventMask
	if echoed || flushed {
		m = waiter.EventIn
	}
	t.notify(waiter.EventIn|waiter.EventOut, m)
	t.signal(sigs)
	return n, nil
}

func (fd *masterFD) Readiness(mask waiter.EventMask) waiter.EventMask {
	t := fd.t
	t.mu.Lock()
	defer t.mu.Unlock()
	var r waiter.EventMask
	if len(t.ld.out) > 0 || t.packet && t.pktStatus != 0 {
		r |= waiter.EventIn | waiter.EventRdNorm
	}
	if t.packet && t.pktStatus != 0 {
		r |= waiter.EventPri
	}
	if t.ld.inputRoom() {
		r |= waiter.EventOut
	}
	if t.replicaClosed {
		r |= waiter.EventHUp
	}
	return r & (mask | waiter.AlwaysReported)
}

func (fd *masterFD) EventRegister(e *waiter.Entry) error { fd.t.masterQ.EventRegister(e); return nil }
func (fd *masterFD) EventUnregister(e *waiter.Entry)     { fd.t.masterQ.EventUnregister(e) }

func (fd *masterFD) Ioctl(ctx context.Context, uio vfs.CopyIO, args arch.SyscallArguments) (uintptr, error) {
	return fd.t.ioctl(ctx, uio, args, true, true)
}

// copyOutU32 and copyInU32 move an int argument.
func copyOutU32(uio vfs.CopyIO, addr hostarch.Addr, v uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	if _, err := uio.CopyOutBytes(addr, b[:]); err != nil {
		return unix.EFAULT
	}
	return nil
}

func copyInU32(uio vfs.CopyIO, addr hostarch.Addr) (uint32, error) {
	var b [4]byte
	if _, err := uio.CopyInBytes(addr, b[:]); err != nil {
		return 0, unix.EFAULT
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// ioctl serves both sides. master says which side fd is; readable
// whether it was opened for reading (TIOCSCTTY wants that).
func (t *Terminal) ioctl(ctx context.Context, uio vfs.CopyIO, args arch.SyscallArguments, master, readable bool) (uintptr, error) {
	task, _ := ctx.(*kernel.Task)
	req := args[1].Uint()
	addr := args[2].Pointer()
	switch req {
	case unix.TCGETS, unix.TCGETS2:
		size := termiosSize
		if req == unix.TCGETS2 {
			size = termios2Size
		}
		b := make([]byte, size)
		t.mu.Lock()
		t.ld.t.encode(b)
		t.mu.Unlock()
		if _, err := uio.CopyOutBytes(addr, b); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil

	case unix.TCSETS, unix.TCSETSW, unix.TCSETSF, unix.TCSETS2, unix.TCSETSW2, unix.TCSETSF2:
		if err := t.tty.CheckAccess(ctx, unix.SIGTTOU); err != nil {
			return 0, err
		}
		size := termiosSize
		if req == unix.TCSETS2 || req == unix.TCSETSW2 || req == unix.TCSETSF2 {
			size = termios2Size
		}
		b := make([]byte, size)
		if _, err := uio.CopyInBytes(addr, b); err != nil {
			return 0, unix.EFAULT
		}
		t.mu.Lock()
		nt := t.ld.t
		nt.decode(b)
		if req == unix.TCSETSF || req == unix.TCSETSF2 {
			t.ld.flushInput()
		}
		t.ld.setTermios(nt)
		t.mu.Unlock()
		// New VMIN/VTIME/ICANON or a restart may satisfy waiters.
		t.notify(waiter.EventIn|waiter.EventOut, waiter.EventOut)
		return 0, nil

	case unix.TIOCGWINSZ:
		t.mu.Lock()
		ws := t.ws
		t.mu.Unlock()
		if _, err := uio.CopyOutBytes(addr, ws[:]); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil

	case unix.TIOCSWINSZ:
		var ws [winsizeSize]byte
		if _, err := uio.CopyInBytes(addr, ws[:]); err != nil {
			return 0, unix.EFAULT
		}
		t.SetWindowSize(ws)
		return 0, nil

	case vfs.FIONREAD:
		t.mu.Lock()
		n := t.ld.inq()
		if master {
			n = len(t.ld.out)
		}
		t.mu.Unlock()
		return 0, copyOutU32(uio, addr, uint32(n))

	case unix.TIOCOUTQ:
		// Output goes straight to the other side's queue.
		return 0, copyOutU32(uio, addr, 0)

	case unix.TCFLSH:
		if !master {
			if err := t.tty.CheckAccess(ctx, unix.SIGTTOU); err != nil {
				return 0, err
			}
		}
		q := args[2].Int()
		if q < unix.TCIFLUSH || q > unix.TCIOFLUSH {
			return 0, unix.EINVAL
		}
		in := q == unix.TCIFLUSH || q == unix.TCIOFLUSH
		out := q == unix.TCOFLUSH || q == unix.TCIOFLUSH
		if master {
			// The master's input is the replica's output and vice versa.
			in, out = out, in
		}
		t.mu.Lock()
		if in {
			t.ld.flushInput()
			if t.packet {
				t.pktStatus |= unix.TIOCPKT_FLUSHREAD
			}
		}
		if out {
			t.ld.out = nil
			if t.packet {
				t.pktStatus |= unix.TIOCPKT_FLUSHWRITE
			}
		}
		t.mu.Unlock()
		t.notify(waiter.EventOut, waiter.EventIn|waiter.EventOut|waiter.EventPri)
		return 0, nil

	case unix.TCXONC:
		if !master {
			if err := t.tty.CheckAccess(ctx, unix.SIGTTOU); err != nil {
				return 0, err
			}
		}
		return 0, t.flow(args[2].Int(), master)

	case unix.TCSBRK, unix.TCSBRKP, unix.TIOCSBRK, unix.TIOCCBRK:
		if !master {
			if err := t.tty.CheckAccess(ctx, unix.SIGTTOU); err != nil {
				return 0, err
			}
		}
		// Output is never pending and a pty has no line to break.
		return 0, nil

	case unix.TIOCGPTPEER:
		if !master {
			return 0, unix.EIO
		}
		if task == nil {
			return 0, unix.ENOTTY
		}
		return t.openPeer(task, uint32(args[2].Uint()))

	case unix.TIOCGPTN:
		if !master {
			return 0, unix.ENOTTY
		}
		return 0, copyOutU32(uio, addr, t.index)

	case unix.TIOCSPTLCK:
		if !master {
			return 0, unix.ENOTTY
		}
		v, err := copyInU32(uio, addr)
		if err != nil {
			return 0, err
		}
		t.mu.Lock()
		t.locked = v != 0
		t.mu.Unlock()
		return 0, nil

	case unix.TIOCGPTLCK:
		if !master {
			return 0, unix.ENOTTY
		}
		t.mu.Lock()
		locked := t.locked
		t.mu.Unlock()
		v := uint32(0)
		if locked {
			v = 1
		}
		return 0, copyOutU32(uio, addr, v)

	case unix.TIOCPKT:
		if !master {
			return 0, unix.ENOTTY
		}
		v, err := copyInU32(uio, addr)
		if err != nil {
			return 0, err
		}
		t.mu.Lock()
		if v != 0 && !t.packet {
			t.pktStatus = 0
		}
		t.packet = v != 0
		t.mu.Unlock()
		return 0, nil

	case unix.TIOCGPKT:
		if !master {
			return 0, unix.ENOTTY
		}
		t.mu.Lock()
		p := t.packet
		t.mu.Unlock()
		v := uint32(0)
		if p {
			v = 1
		}
		return 0, copyOutU32(uio, addr, v)

	case unix.TIOCGDEV:
		// new_encode_dev of the replica.
		d := t.rdev()
		maj, mnr := unix.Major(d), unix.Minor(d)
		return 0, copyOutU32(uio, addr, mnr&0xff|maj<<8|(mnr&^0xff)<<12)

	case unix.TIOCEXCL, unix.TIOCNXCL:
		if !master {
			t.mu.Lock()
			t.exclusive = req == unix.TIOCEXCL
			t.mu.Unlock()
		}
		return 0, nil

	case unix.TIOCGEXCL:
		t.mu.Lock()
		excl := t.exclusive && !master
		t.mu.Unlock()
		v := uint32(0)
		if excl {
			v = 1
		}
		return 0, copyOutU32(uio, addr, v)

	case unix.TIOCGETD:
		return 0, copyOutU32(uio, addr, 0) // N_TTY

	case unix.TIOCSETD:
		v, err := copyInU32(uio, addr)
		if err != nil {
			return 0, err
		}
		if v != 0 {
			return 0, unix.EINVAL // only N_TTY exists here
		}
		return 0, nil

	case unix.TIOCSTI:
		// As Linux without legacy TIOCSTI: CAP_SYS_ADMIN only.
		if task == nil || !task.Credentials().HasCapability(auth.CAP_SYS_ADMIN) {
			return 0, unix.EIO
		}
		var b [1]byte
		if _, err := uio.CopyInBytes(addr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		if master {
			t.mu.Lock()
			t.ld.out = append(t.ld.out, b[0])
			t.mu.Unlock()
			t.notify(0, waiter.EventIn)
			return 0, nil
		}
		t.mu.Lock()
		n, sigs := t.ld.receive(b[:])
		t.mu.Unlock()
		if n > 0 {
			t.notify(waiter.EventIn, waiter.EventIn)
			t.signal(sigs)
		}
		return 0, nil

	case unix.TIOCVHANGUP:
		if task == nil || !task.Credentials().HasCapability(auth.CAP_SYS_ADMIN) {
			return 0, unix.EPERM
		}
		if master {
			return 0, unix.ENOTTY
		}
		t.mu.Lock()
		t.hangups++
		t.mu.Unlock()
		t.notify(waiter.EventIn|waiter.EventOut|waiter.EventErr|waiter.EventHUp, 0)
		t.tty.Hangup()
		return 0, nil

	case unix.TIOCSCTTY:
		if task == nil {
			return 0, unix.EPERM
		}
		return 0, t.tty.SetControlling(task, args[2].Int() == 1, readable)

	case unix.TIOCNOTTY:
		if task == nil || master {
			return 0, unix.ENOTTY
		}
		return 0, t.tty.ReleaseControlling(task)

	case unix.TIOCGPGRP:
		if task == nil {
			return 0, unix.ENOTTY
		}
		pg, err := t.tty.ForegroundGroup(task, master)
		if err != nil {
			return 0, err
		}
		return 0, copyOutU32(uio, addr, uint32(pg))

	case unix.TIOCSPGRP:
		if task == nil {
			return 0, unix.ENOTTY
		}
		v, err := copyInU32(uio, addr)
		if err != nil {
			return 0, err
		}
		return 0, t.tty.SetForegroundGroup(task, kernel.ThreadID(int32(v)))

	case unix.TIOCGSID:
		if task == nil {
			return 0, unix.ENOTTY
		}
		sid, err := t.tty.Session(task, master)
		if err != nil {
			return 0, err
		}
		return 0, copyOutU32(uio, addr, uint32(sid))
	}
	return 0, unix.ENOTTY
}

// SetWindowSize sets the pair's struct winsize; a change sends SIGWINCH
// to the foreground process group.
func (t *Terminal) SetWindowSize(ws [winsizeSize]byte) {
	t.mu.Lock()
	changed := ws != t.ws
	t.ws = ws
	t.mu.Unlock()
	if changed {
		t.tty.SignalForeground(unix.SIGWINCH)
	}
}

// flow is TCXONC: suspend or restart output, or send a STOP or START
// character to the other side.
func (t *Terminal) flow(action int32, master bool) error {
	t.mu.Lock()
	ld := t.ld
	var send []byte
	switch action {
	case unix.TCOOFF, unix.TCOON:
		if master {
			// The master's output is the replica's input, which has no
			// flow control of its own here.
			break
		}
		ld.tcoStopped = action == unix.TCOOFF
		ld.stopped = ld.tcoStopped
		if t.packet {
			if ld.stopped {
				t.pktStatus = t.pktStatus&^unix.TIOCPKT_START | unix.TIOCPKT_STOP
			} else {
				t.pktStatus = t.pktStatus&^unix.TIOCPKT_STOP | unix.TIOCPKT_START
			}
		}
	case unix.TCIOFF, unix.TCION:
		idx := unix.VSTOP
		if action == unix.TCION {
			idx = unix.VSTART
		}
		if c := ld.t.cc[idx]; c != 0 {
			send = []byte{c}
		}
	default:
		t.mu.Unlock()
		return unix.EINVAL
	}
	if send != nil && !master {
		ld.out = append(ld.out, send...)
	}
	t.mu.Unlock()
	if send != nil && master {
		t.input(send)
	}
	t.notify(waiter.EventOut, waiter.EventIn|waiter.EventPri)
	return nil
}

// openPeer is TIOCGPTPEER: the caller gets a new descriptor of the
// replica, opened with flags through a mount of the pair's devpts, as if
// it had opened pts/N (without having to find it by name).
func (t *Terminal) openPeer(task *kernel.Task, flags uint32) (uintptr, error) {
	v := task.Kernel().VFS()
	var mnt *vfs.Mount
	for _, m := range v.Mounts() {
		if m.Filesystem().Impl() == t.fs && m.Root().Dentry.Inode() == vfs.Inode(t.fs.root) {
			mnt = m
			break
		}
	}
	if mnt == nil {
		return 0, unix.EIO
	}
	const allowed = unix.O_ACCMODE | unix.O_NOCTTY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_APPEND |
		unix.O_ASYNC | unix.O_DSYNC | unix.O_SYNC | unix.O_LARGEFILE | unix.O_NOATIME
	flags &= allowed
	root := mnt.Root()
	f, err := v.OpenAt(task, &vfs.PathOperation{Root: root, Start: root, Path: strconv.FormatUint(uint64(t.index), 10)},
		vfs.OpenOptions{Flags: flags &^ unix.O_CLOEXEC})
	if err != nil {
		return 0, err
	}
	defer f.DecRef(task)
	fd, err := task.FDTable().NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0}, task.FileLimit())
	return uintptr(fd), err
}
