package vfs

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// inotify: watches name files by (Filesystem, inode number), like locks,
// so events reach them whichever path or filesystem implementation the
// change came through. Events are generated here, where every change of
// the tree and every open, read, write and close passes, so tmpfs, the
// overlay and gofer files all produce them without filesystem support.
// Changes made outside the sandbox (on the host, under a gofer mount)
// produce none.
//
// Lock order: inotifyMu (the registry) → Inotify.mu. Neither is held
// while calling into a filesystem.

// Inotify event and flag bits (include/uapi/linux/inotify.h).
const (
	InAccess       = 0x1
	InModify       = 0x2
	InAttrib       = 0x4
	InCloseWrite   = 0x8
	InCloseNowrite = 0x10
	InOpen         = 0x20
	InMovedFrom    = 0x40
	InMovedTo      = 0x80
	InCreate       = 0x100
	InDelete       = 0x200
	InDeleteSelf   = 0x400
	InMoveSelf     = 0x800
	InUnmount      = 0x2000
	InQOverflow    = 0x4000
	InIgnored      = 0x8000
	InOnlydir      = 0x01000000
	InDontFollow   = 0x02000000
	InExclUnlink   = 0x04000000
	InMaskCreate   = 0x10000000
	InMaskAdd      = 0x20000000
	InIsdir        = 0x40000000
	InOneshot      = 0x80000000

	InAllEvents = 0xfff
	// InAllBits are the bits inotify_add_watch knows.
	InAllBits = InAllEvents | InUnmount | InQOverflow | InIgnored | InOnlydir | InDontFollow |
		InExclUnlink | InMaskCreate | InMaskAdd | InIsdir | InOneshot

	// inChildEvents are reported to a watched directory for its children.
	inChildEvents = InAccess | InModify | InAttrib | InCloseWrite | InCloseNowrite | InOpen

	// inotifyMaxEvents bounds a queue (max_queued_events); past it one
	// IN_Q_OVERFLOW is queued.
	inotifyMaxEvents = 16384
	// inotifyMaxWatches bounds watches per instance (max_user_watches).
	inotifyMaxWatches = 65536
	// inotifyEventSize is sizeof(struct inotify_event) without the name.
	inotifyEventSize = 16
)

type inotifyWatch struct {
	in   *Inotify
	wd   int32
	key  fileKey
	mask uint32 // protected by inotifyMu
}

var (
	inotifyMu      sync.Mutex
	watchesByKey   = map[fileKey]map[*inotifyWatch]struct{}{}
	inotifyWatches atomic.Int64
	inotifyCookie  atomic.Uint32
)

type inotifyEvent struct {
	wd                 int32
	mask, cookie       uint32
	name               string
	paddedLen, recSize int
}

func newInotifyEvent(wd int32, mask, cookie uint32, name string) inotifyEvent {
	e := inotifyEvent{wd: wd, mask: mask, cookie: cookie, name: name}
	if name != "" {
		e.paddedLen = (len(name) + 1 + inotifyEventSize - 1) &^ (inotifyEventSize - 1)
	}
	e.recSize = inotifyEventSize + e.paddedLen
	return e
}

// Inotify is the description behind an inotify file.
type Inotify struct {
	FileDescriptionDefaultImpl
	DefaultStream

	q waiter.Queue

	// mu protects everything below.
	mu      sync.Mutex
	events  []inotifyEvent
	bytes   int
	watches map[int32]*inotifyWatch
	byKey   map[fileKey]*inotifyWatch
	nextWD  int32
}

// NewInotify returns an inotify file (inotify_init1); flags may hold
// O_NONBLOCK.
func NewInotify(flags uint32) *FileDescription {
	in := &Inotify{watches: map[int32]*inotifyWatch{}, byKey: map[fileKey]*inotifyWatch{}}
	return NewFileDescription(in, unix.O_RDONLY|flags&unix.O_NONBLOCK, VirtualDentry{})
}

// queue adds an event, merging it with an identical last one and
// replacing overflow with IN_Q_OVERFLOW.
func (in *Inotify) queue(e inotifyEvent) {
	in.mu.Lock()
	if n := len(in.events); n > 0 {
		last := in.events[n-1]
		if last.wd == e.wd && last.mask == e.mask && last.cookie == e.cookie && last.name == e.name {
			in.mu.Unlock()
			return
		}
		if last.mask == InQOverflow {
			in.mu.Unlock()
			return
		}
	}
	if len(in.events) >= inotifyMaxEvents {
		e = newInotifyEvent(-1, InQOverflow, 0, "")
	}
	in.events = append(in.events, e)
	in.bytes += e.recSize
	in.mu.Unlock()
	in.q.Notify(waiter.EventIn)
}

func (in *Inotify) Release(ctx context.Context) {
	inotifyMu.Lock()
	in.mu.Lock()
	for _, w := range in.watches {
		unregisterWatchLocked(w)
	}
	in.watches, in.byKey = nil, nil
	in.mu.Unlock()
	inotifyMu.Unlock()
}

func unregisterWatchLocked(w *inotifyWatch) {
	m := watchesByKey[w.key]
	if _, ok := m[w]; !ok {
		return
	}
	delete(m, w)
	if len(m) == 0 {
		delete(watchesByKey, w.key)
	}
	inotifyWatches.Add(-1)
}

// Read copies whole events: EINVAL if the first does not fit, EAGAIN if
// there is none.
func (in *Inotify) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.events) == 0 {
		return 0, unix.EAGAIN
	}
	room := dst.NumBytes()
	if int64(in.events[0].recSize) > room {
		return 0, unix.EINVAL
	}
	var buf []byte
	n := 0
	for n < len(in.events) && int64(len(buf)+in.events[n].recSize) <= room {
		e := in.events[n]
		rec := make([]byte, e.recSize)
		binary.LittleEndian.PutUint32(rec[0:], uint32(e.wd))
		binary.LittleEndian.PutUint32(rec[4:], e.mask)
		binary.LittleEndian.PutUint32(rec[8:], e.cookie)
		binary.LittleEndian.PutUint32(rec[12:], uint32(e.paddedLen))
		copy(rec[16:], e.name)
		buf = append(buf, rec...)
		n++
	}
	c, err := dst.CopyOut(buf)
	if c < len(buf) {
		if err == nil {
			err = unix.EFAULT
		}
		return 0, err
	}
	in.events = in.events[n:]
	in.bytes -= len(buf)
	return int64(len(buf)), nil
}

// NoopSeek makes lseek succeed without effect, as on Linux.
func (in *Inotify) NoopSeek() {}

func (in *Inotify) Readiness(mask waiter.EventMask) waiter.EventMask {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.events) > 0 {
		return mask & (waiter.EventIn | waiter.EventRdNorm)
	}
	return 0
}

func (in *Inotify) EventRegister(e *waiter.Entry) error { in.q.EventRegister(e); return nil }
func (in *Inotify) EventUnregister(e *waiter.Entry)     { in.q.EventUnregister(e) }

func (in *Inotify) Stat(context.Context) (Statx, error) {
	return Statx{Mask: unix.STATX_BASIC_STATS, Mode: 0600, Nlink: 1, Blksize: 4096}, nil
}

// Ioctl answers FIONREAD with the bytes of the queued events.
func (in *Inotify) Ioctl(ctx context.Context, uio CopyIO, args arch.SyscallArguments) (uintptr, error) {
	if args[1].Uint() != FIONREAD {
		return 0, unix.ENOTTY
	}
	in.mu.Lock()
	n := in.bytes
	in.mu.Unlock()
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(n))
	if _, err := uio.CopyOutBytes(args[2].Pointer(), b[:]); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

// AddWatch is inotify_add_watch on the file at vd (the caller resolved
// the path with IN_DONT_FOLLOW and IN_ONLYDIR applied and checks read
// permission): it returns the watch descriptor, the same one for a file
// already watched.
func (in *Inotify) AddWatch(ctx context.Context, vd VirtualDentry, mask uint32) (int32, error) {
	key, err := vd.Dentry.fileKey(ctx)
	if err != nil {
		return 0, err
	}
	inotifyMu.Lock()
	defer inotifyMu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.watches == nil {
		return 0, unix.EBADF
	}
	keep := mask & (InAllEvents | InOneshot | InExclUnlink | InDontFollow | InOnlydir)
	if w, ok := in.byKey[key]; ok {
		if mask&InMaskCreate != 0 {
			return 0, unix.EEXIST
		}
		if mask&InMaskAdd != 0 {
			w.mask |= keep
		} else {
			w.mask = keep
		}
		return w.wd, nil
	}
	if len(in.watches) >= inotifyMaxWatches {
		return 0, unix.ENOSPC
	}
	in.nextWD++
	w := &inotifyWatch{in: in, wd: in.nextWD, key: key, mask: keep}
	in.watches[w.wd] = w
	in.byKey[key] = w
	m := watchesByKey[key]
	if m == nil {
		m = map[*inotifyWatch]struct{}{}
		watchesByKey[key] = m
	}
	m[w] = struct{}{}
	inotifyWatches.Add(1)
	return w.wd, nil
}

// RmWatch is inotify_rm_watch: EINVAL for an unknown wd; IN_IGNORED is
// queued.
func (in *Inotify) RmWatch(wd int32) error {
	inotifyMu.Lock()
	in.mu.Lock()
	w, ok := in.watches[wd]
	if ok {
		delete(in.watches, wd)
		delete(in.byKey, w.key)
		unregisterWatchLocked(w)
	}
	in.mu.Unlock()
	inotifyMu.Unlock()
	if !ok {
		return unix.EINVAL
	}
	in.queue(newInotifyEvent(wd, InIgnored, 0, ""))
	return nil
}

// deliver sends mask (with name for a child event) to every watch on
// key that wants it. With self, watches go away after (DELETE_SELF):
// they get IN_IGNORED.
func deliver(key fileKey, mask, cookie uint32, name string, remove bool) {
	inotifyMu.Lock()
	var sends []func()
	for w := range watchesByKey[key] {
		if w.mask&mask&InAllEvents == 0 && !remove {
			continue
		}
		in, wd := w.in, w.wd
		if w.mask&mask&InAllEvents != 0 {
			e := newInotifyEvent(wd, mask, cookie, name)
			sends = append(sends, func() { in.queue(e) })
		}
		if remove || w.mask&InOneshot != 0 {
			unregisterWatchLocked(w)
			in.mu.Lock()
			if in.watches != nil {
				delete(in.watches, wd)
				delete(in.byKey, w.key)
			}
			in.mu.Unlock()
			sends = append(sends, func() { in.queue(newInotifyEvent(wd, InIgnored, 0, "")) })
		}
	}
	inotifyMu.Unlock()
	for _, s := range sends {
		s()
	}
}

// inotifyDentry reports mask on d's file to its own watches and, for
// events on a child, to its parent directory's with d's name. The caller
// holds renameMu (so d's parent and name are stable) unless parent is
// false.
func inotifyDentry(ctx context.Context, d *Dentry, mask, cookie uint32, parent bool) {
	if inotifyWatches.Load() == 0 || d == nil {
		return
	}
	// Linux marks events about a directory with IN_ISDIR, except the
	// *_SELF ones.
	if d.isDir() && mask&(InMoveSelf|InDeleteSelf) == 0 {
		mask |= InIsdir
	}
	if key, err := d.fileKey(ctx); err == nil {
		deliver(key, mask, cookie, "", false)
	}
	if parent && mask&inChildEvents != 0 && !d.dead && d.parent != nil {
		if pkey, err := d.parent.fileKey(ctx); err == nil {
			deliver(pkey, mask, cookie, d.name, false)
		}
	}
}

// inotifyChild reports a directory event (IN_CREATE, IN_DELETE,
// IN_MOVED_*) about child name of dir.
func inotifyChild(ctx context.Context, dir *Dentry, mask, cookie uint32, name string, childIsDir bool) {
	if inotifyWatches.Load() == 0 {
		return
	}
	if childIsDir {
		mask |= InIsdir
	}
	if key, err := dir.fileKey(ctx); err == nil {
		deliver(key, mask, cookie, name, false)
	}
}

// inotifyGone reports that d's file lost its last link: IN_DELETE_SELF,
// then the watches on it end with IN_IGNORED.
func inotifyGone(ctx context.Context, d *Dentry) {
	if inotifyWatches.Load() == 0 {
		return
	}
	key, err := d.fileKey(ctx)
	if err != nil {
		return
	}
	deliver(key, InDeleteSelf, 0, "", true)
}

// nlinkGone reports whether d's file has no link left (d.ino must be
// known, which fileKey ensures when watches exist).
func nlinkGone(ctx context.Context, d *Dentry) bool {
	st, err := d.inode.Stat(ctx)
	return err == nil && st.Nlink == 0
}

// notifyAttrib reports a metadata change of d's file to inotify watchers.
func (vfs *VirtualFilesystem) notifyAttrib(ctx context.Context, d *Dentry) {
	if inotifyWatches.Load() == 0 {
		return
	}
	vfs.renameMu.RLock()
	inotifyDentry(ctx, d, InAttrib, 0, true)
	vfs.renameMu.RUnlock()
}

// notifyFile reports an event on an open file (open, access, modify,
// close) to inotify watchers.
func (fd *FileDescription) notifyFile(ctx context.Context, mask uint32) {
	if inotifyWatches.Load() == 0 || fd.vd.Dentry == nil || fd.vd.Mount == nil {
		return
	}
	v := fd.vd.Mount.fs.vfsys
	v.renameMu.RLock()
	inotifyDentry(ctx, fd.vd.Dentry, mask, 0, true)
	v.renameMu.RUnlock()
}

// notifyClose reports the release of fd. A release can happen inside a
// walk that holds renameMu (a magic link dropping the last reference to
// a file it looked at), so renameMu is only tried: when it is busy the
// parent directory's watches miss this one close.
func (fd *FileDescription) notifyClose(ctx context.Context) {
	if inotifyWatches.Load() == 0 || fd.vd.Dentry == nil || fd.vd.Mount == nil {
		return
	}
	mask := uint32(InCloseNowrite)
	if fd.writable {
		mask = InCloseWrite
	}
	v := fd.vd.Mount.fs.vfsys
	if v.renameMu.TryRLock() {
		inotifyDentry(ctx, fd.vd.Dentry, mask, 0, true)
		v.renameMu.RUnlock()
		return
	}
	inotifyDentry(ctx, fd.vd.Dentry, mask, 0, false)
}

// notifyModify reports a change of fd's file contents to inotify watchers.
func (fd *FileDescription) notifyModify(ctx context.Context) { fd.notifyFile(ctx, InModify) }

// newCookie returns a cookie tying IN_MOVED_FROM to its IN_MOVED_TO.
func newCookie() uint32 {
	for {
		if c := inotifyCookie.Add(1); c != 0 {
			return c
		}
	}
}
