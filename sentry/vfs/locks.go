package vfs

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/linuxerr"
)

// Advisory file locks: flock(2) locks, owned by an open file description,
// and byte-range record locks of fcntl(2), owned either by a process's FD
// table (F_SETLK, "POSIX" locks, dropped when the process closes any
// descriptor of the file) or by an open file description (F_OFD_SETLK).
// The two kinds of record lock share one range list per file and conflict
// with each other; flock locks are independent of both, as on Linux.
//
// A file is identified by (Filesystem, inode number), so that every
// description of it, through any hard link or any inode object a
// filesystem hands out for it, meets the same locks. All lock state is
// guarded by the single leaf mutex lockMu: lock calls are rare next to
// reads and writes, and one mutex keeps deadlock detection, which looks
// across files, consistent.

// Blocker waits for ch interruptibly; a *kernel.Task satisfies it. Block
// returns non-nil when the wait was interrupted (by a signal) or timed out.
type Blocker interface {
	Block(ch <-chan struct{}, deadline time.Time) error
}

// LockOffsetMax is the end of a lock that runs to the end of the file
// (and beyond), Linux's OFFSET_MAX.
const LockOffsetMax = math.MaxInt64

// fileKey names a file for locks and inotify watches.
type fileKey struct {
	fs  *Filesystem
	ino uint64
}

// recordLock is one range lock. start and end are inclusive.
type recordLock struct {
	owner      any // *FDTable (POSIX) or *FileDescription (OFD)
	pid        int32
	write      bool
	start, end int64
}

func (l *recordLock) ofd() bool { _, ok := l.owner.(*FileDescription); return ok }

// fileLocks is the lock state of one file.
type fileLocks struct {
	// records is sorted by start.
	records []recordLock
	// flocks maps holders of flock locks to whether theirs is exclusive.
	flocks map[*FileDescription]bool
	// changed is closed (and replaced) when a lock goes away or is
	// weakened, waking every waiter to try again.
	changed chan struct{}
}

var (
	lockMu sync.Mutex
	// lockFiles holds the state of every file with a lock or a waiter.
	lockFiles = map[any]*fileLocks{}
	// waitsFor records, for each POSIX lock owner blocked in F_SETLKW,
	// the owners it waits for (with a count per blocked thread), for
	// deadlock detection.
	waitsFor = map[any]map[any]int{}
	// posixLocked counts files holding process-owned record locks, so
	// close(2) need not look anything up in the common case.
	posixLocked atomic.Int64
)

func (fl *fileLocks) wake() {
	close(fl.changed)
	fl.changed = make(chan struct{})
}

func (fl *fileLocks) hasPosix() bool {
	for i := range fl.records {
		if !fl.records[i].ofd() {
			return true
		}
	}
	return false
}

// getLocks returns the state of key, creating it. lockMu is held.
func getLocks(key any) *fileLocks {
	fl := lockFiles[key]
	if fl == nil {
		fl = &fileLocks{changed: make(chan struct{})}
		lockFiles[key] = fl
	}
	return fl
}

// putLocksLocked drops key's state when nothing is left in it. Waiters
// holding the old channel are woken so they look the state up anew.
func putLocksLocked(key any, fl *fileLocks) {
	if len(fl.records) == 0 && len(fl.flocks) == 0 {
		fl.wake()
		delete(lockFiles, key)
	}
}

// lockKey returns the identity of fd's file for locking, computing it
// once.
func (fd *FileDescription) lockKey(ctx context.Context) (any, error) {
	if k := fd.lkey.Load(); k != nil {
		return *k, nil
	}
	var key any
	if fd.vd.Dentry != nil {
		k, err := fd.vd.Dentry.fileKey(ctx)
		if err != nil {
			return nil, err
		}
		key = k
	} else {
		key = fd.impl
	}
	fd.lkey.Store(&key)
	return key, nil
}

// fileKey returns the (Filesystem, inode number) pair of d's file.
func (d *Dentry) fileKey(ctx context.Context) (fileKey, error) {
	if ino := d.ino.Load(); ino != 0 {
		return fileKey{d.fs, ino}, nil
	}
	st, err := d.inode.Stat(ctx)
	if err != nil {
		return fileKey{}, err
	}
	d.ino.Store(st.Ino)
	return fileKey{d.fs, st.Ino}, nil
}

// Flock is a decoded struct flock.
type Flock struct {
	Type   int16
	Whence int16
	Start  int64
	Len    int64
	PID    int32
}

// lockRange turns (whence, start, len) into an inclusive byte range, as
// Linux's flock_to_posix_lock does.
func (fd *FileDescription) lockRange(ctx context.Context, l *Flock) (start, end int64, err error) {
	var base int64
	switch l.Whence {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		base = fd.Offset()
	case unix.SEEK_END:
		st, err := fd.impl.Stat(ctx)
		if err != nil {
			return 0, 0, err
		}
		base = int64(st.Size)
	default:
		return 0, 0, unix.EINVAL
	}
	start = base + l.Start
	if (l.Start > 0 && start < base) || (l.Start < 0 && start > base) {
		return 0, 0, unix.EOVERFLOW
	}
	if start < 0 {
		return 0, 0, unix.EINVAL
	}
	switch {
	case l.Len > 0:
		end = start + l.Len - 1
		if end < start {
			return 0, 0, unix.EOVERFLOW
		}
	case l.Len == 0:
		end = LockOffsetMax
	default:
		end = start - 1
		start += l.Len
		if start < 0 {
			return 0, 0, unix.EINVAL
		}
	}
	return start, end, nil
}

// conflictLocked returns a lock of another owner that keeps owner from
// taking [start, end] (for writing if write), or nil.
func (fl *fileLocks) conflictLocked(owner any, write bool, start, end int64) *recordLock {
	for i := range fl.records {
		l := &fl.records[i]
		if l.owner == owner || l.end < start || l.start > end {
			continue
		}
		if write || l.write {
			return l
		}
	}
	return nil
}

// setLocked applies an acquire (typ F_RDLCK/F_WRLCK) or release (F_UNLCK)
// of [start, end] by owner, splitting the owner's locks that the range
// cuts and merging adjacent ones of the same type. It reports whether any
// of the owner's locks was dropped or weakened.
func (fl *fileLocks) setLocked(owner any, pid int32, typ int16, start, end int64) (weakened bool) {
	write := typ == unix.F_WRLCK
	out := fl.records[:0:0]
	for _, l := range fl.records {
		if l.owner != owner {
			out = append(out, l)
			continue
		}
		adjacent := (l.end != LockOffsetMax && l.end+1 == start) || (end != LockOffsetMax && end+1 == l.start)
		overlaps := l.end >= start && l.start <= end
		if typ != unix.F_UNLCK && l.write == write && (overlaps || adjacent) {
			// Same type: fold it into the new range.
			start, end = min(start, l.start), max(end, l.end)
			continue
		}
		if !overlaps {
			out = append(out, l)
			continue
		}
		if l.write && !write {
			weakened = true
		}
		if typ == unix.F_UNLCK {
			weakened = true
		}
		if l.start < start {
			left := l
			left.end = start - 1
			out = append(out, left)
		}
		if l.end > end {
			right := l
			right.start = end + 1
			out = append(out, right)
		}
	}
	if typ != unix.F_UNLCK {
		out = append(out, recordLock{owner: owner, pid: pid, write: write, start: start, end: end})
	}
	// Keep records ordered by start (insertion sort: lists are short).
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].start < out[j-1].start; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	fl.records = out
	return weakened
}

// deadlockLocked reports whether owner waiting for blocker would close a
// cycle of POSIX lock waiters.
func deadlockLocked(owner, blocker any) bool {
	seen := map[any]bool{}
	stack := []any{blocker}
	for len(stack) > 0 {
		o := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if o == owner {
			return true
		}
		if seen[o] {
			continue
		}
		seen[o] = true
		for next := range waitsFor[o] {
			stack = append(stack, next)
		}
	}
	return false
}

func addWaitLocked(owner, blocker any) {
	m := waitsFor[owner]
	if m == nil {
		m = map[any]int{}
		waitsFor[owner] = m
	}
	m[blocker]++
}

func removeWaitLocked(owner, blocker any) {
	m := waitsFor[owner]
	if m[blocker]--; m[blocker] <= 0 {
		delete(m, blocker)
	}
	if len(m) == 0 {
		delete(waitsFor, owner)
	}
}

// lockOwner returns the owner of record locks set through fd: the FD
// table for POSIX locks, the description itself for OFD locks.
func (fd *FileDescription) lockOwner(table *FDTable, ofd bool) any {
	if ofd {
		return fd
	}
	return table
}

// GetRecordLock is F_GETLK (ofd false, table the caller's FD table) and
// F_OFD_GETLK: l describes the wanted lock on entry and, on return, the
// first lock in the way (Type F_UNLCK if none).
func (fd *FileDescription) GetRecordLock(ctx context.Context, table *FDTable, ofd bool, l *Flock) error {
	if l.Type != unix.F_RDLCK && l.Type != unix.F_WRLCK {
		return unix.EINVAL
	}
	if ofd && l.PID != 0 {
		return unix.EINVAL
	}
	start, end, err := fd.lockRange(ctx, l)
	if err != nil {
		return err
	}
	key, err := fd.lockKey(ctx)
	if err != nil {
		return err
	}
	lockMu.Lock()
	defer lockMu.Unlock()
	var c *recordLock
	if fl := lockFiles[key]; fl != nil {
		c = fl.conflictLocked(fd.lockOwner(table, ofd), l.Type == unix.F_WRLCK, start, end)
	}
	if c == nil {
		l.Type = unix.F_UNLCK
		return nil
	}
	*l = Flock{Type: unix.F_RDLCK, Whence: unix.SEEK_SET, Start: c.start, PID: c.pid}
	if c.write {
		l.Type = unix.F_WRLCK
	}
	if c.end != LockOffsetMax {
		l.Len = c.end - c.start + 1
	}
	if c.ofd() {
		l.PID = -1
	}
	return nil
}

// SetRecordLock is F_SETLK/F_SETLKW (ofd false: the lock belongs to
// table, and pid is reported by F_GETLK) and F_OFD_SETLK/F_OFD_SETLKW.
// With b non-nil it waits for conflicting locks to go away: EDEADLK if
// the wait would deadlock with other POSIX lock holders, ERESTARTSYS if
// interrupted. Without b a conflict is EAGAIN.
func (fd *FileDescription) SetRecordLock(ctx context.Context, b Blocker, table *FDTable, pid int32, ofd bool, l Flock) error {
	switch l.Type {
	case unix.F_RDLCK:
		if !fd.readable {
			return unix.EBADF
		}
	case unix.F_WRLCK:
		if !fd.writable {
			return unix.EBADF
		}
	case unix.F_UNLCK:
	default:
		return unix.EINVAL
	}
	if ofd {
		if l.PID != 0 {
			return unix.EINVAL
		}
		pid = -1
	}
	start, end, err := fd.lockRange(ctx, &l)
	if err != nil {
		return err
	}
	key, err := fd.lockKey(ctx)
	if err != nil {
		return err
	}
	owner := fd.lockOwner(table, ofd)
	write := l.Type == unix.F_WRLCK
	for {
		lockMu.Lock()
		fl := getLocks(key)
		var c *recordLock
		if l.Type != unix.F_UNLCK {
			c = fl.conflictLocked(owner, write, start, end)
		}
		if c == nil {
			had := fl.hasPosix()
			if fl.setLocked(owner, pid, l.Type, start, end) {
				fl.wake()
			}
			if has := fl.hasPosix(); has != had {
				if has {
					posixLocked.Add(1)
				} else {
					posixLocked.Add(-1)
				}
			}
			putLocksLocked(key, fl)
			lockMu.Unlock()
			return nil
		}
		if b == nil {
			putLocksLocked(key, fl)
			lockMu.Unlock()
			return unix.EAGAIN
		}
		blocker := c.owner
		if !ofd {
			if deadlockLocked(owner, blocker) {
				putLocksLocked(key, fl)
				lockMu.Unlock()
				return unix.EDEADLK
			}
			addWaitLocked(owner, blocker)
		}
		ch := fl.changed
		lockMu.Unlock()
		err := b.Block(ch, time.Time{})
		if !ofd {
			lockMu.Lock()
			removeWaitLocked(owner, blocker)
			lockMu.Unlock()
		}
		if err != nil {
			return linuxerr.ERESTARTSYS
		}
	}
}

// releaseRecordLocks drops every record lock owner holds on key.
func releaseRecordLocks(key any, owner any) {
	lockMu.Lock()
	defer lockMu.Unlock()
	fl := lockFiles[key]
	if fl == nil {
		return
	}
	had := fl.hasPosix()
	if fl.setLocked(owner, 0, unix.F_UNLCK, 0, LockOffsetMax) {
		fl.wake()
	}
	if had && !fl.hasPosix() {
		posixLocked.Add(-1)
	}
	putLocksLocked(key, fl)
}

// releasePosixLocks drops the POSIX locks table holds on fd's file: any
// close of a descriptor of the file by the process does that, except of
// an O_PATH one.
func (fd *FileDescription) releasePosixLocks(ctx context.Context, table *FDTable) {
	if posixLocked.Load() == 0 || fd.IsPath() {
		return
	}
	key, err := fd.lockKey(ctx)
	if err != nil {
		return
	}
	releaseRecordLocks(key, table)
}

// releaseDescriptionLocks drops the flock and OFD locks of fd when its
// last reference goes.
func (fd *FileDescription) releaseDescriptionLocks() {
	k := fd.lkey.Load()
	if k == nil {
		return
	}
	releaseRecordLocks(*k, fd)
	lockMu.Lock()
	defer lockMu.Unlock()
	if fl := lockFiles[*k]; fl != nil {
		if _, ok := fl.flocks[fd]; ok {
			delete(fl.flocks, fd)
			fl.wake()
		}
		putLocksLocked(*k, fl)
	}
}

// Flock is flock(2): op is LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB or
// b nil for not waiting (EWOULDBLOCK). As on Linux, converting a lock
// drops the old one first, so a failed conversion leaves none.
func (fd *FileDescription) Flock(ctx context.Context, b Blocker, op int) error {
	nb := op&unix.LOCK_NB != 0
	op &^= unix.LOCK_NB
	if op != unix.LOCK_SH && op != unix.LOCK_EX && op != unix.LOCK_UN {
		return unix.EINVAL
	}
	key, err := fd.lockKey(ctx)
	if err != nil {
		return err
	}
	excl := op == unix.LOCK_EX
	for {
		lockMu.Lock()
		fl := getLocks(key)
		cur, held := fl.flocks[fd]
		if held && op != unix.LOCK_UN && cur == excl {
			lockMu.Unlock()
			return nil
		}
		if held {
			delete(fl.flocks, fd)
			fl.wake()
		}
		if op == unix.LOCK_UN {
			putLocksLocked(key, fl)
			lockMu.Unlock()
			return nil
		}
		busy := false
		for other, x := range fl.flocks {
			if other != fd && (x || excl) {
				busy = true
				break
			}
		}
		if !busy {
			if fl.flocks == nil {
				fl.flocks = map[*FileDescription]bool{}
			}
			fl.flocks[fd] = excl
			lockMu.Unlock()
			return nil
		}
		if nb || b == nil {
			putLocksLocked(key, fl)
			lockMu.Unlock()
			return unix.EWOULDBLOCK
		}
		ch := fl.changed
		lockMu.Unlock()
		if err := b.Block(ch, time.Time{}); err != nil {
			return linuxerr.ERESTARTSYS
		}
	}
}
