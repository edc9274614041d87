package vfs

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// FDFlags are the per-descriptor flags (not shared by dup).
type FDFlags struct {
	CloseOnExec bool
}

// ToLinux returns the F_GETFD value.
func (f FDFlags) ToLinux() int32 {
	if f.CloseOnExec {
		return unix.FD_CLOEXEC
	}
	return 0
}

type fdEntry struct {
	file  *FileDescription
	flags FDFlags
}

// FDTable maps descriptor numbers to open file descriptions. Tasks made
// with CLONE_FILES share one table (IncRef); fork copies it (Fork).
type FDTable struct {
	refs atomic.Int64

	// mu protects files and next.
	mu    sync.Mutex
	files []fdEntry // index = fd; file nil = free
	// next is a hint: no free descriptor below it.
	next int32
}

// NewFDTable returns an empty table with one reference.
func NewFDTable() *FDTable {
	t := &FDTable{}
	t.refs.Store(1)
	return t
}

// IncRef shares the table (CLONE_FILES).
func (t *FDTable) IncRef() { t.refs.Add(1) }

// DecRef drops a sharer; the last one closes every descriptor.
func (t *FDTable) DecRef(ctx context.Context) {
	if t.refs.Add(-1) == 0 {
		t.RemoveAll(ctx)
	}
}

// Fork returns a copy with one reference; each file gets a new reference.
func (t *FDTable) Fork() *FDTable {
	n := NewFDTable()
	t.mu.Lock()
	defer t.mu.Unlock()
	n.files = make([]fdEntry, len(t.files))
	copy(n.files, t.files)
	for _, e := range n.files {
		if e.file != nil {
			e.file.IncRef()
		}
	}
	n.next = t.next
	return n
}

// NewFD installs file at the lowest free descriptor ≥ minfd, below limit
// (RLIMIT_NOFILE): EMFILE if there is none. The table takes its own
// reference to file.
func (t *FDTable) NewFD(minfd int32, file *FileDescription, flags FDFlags, limit int32) (int32, error) {
	if minfd < 0 {
		return -1, unix.EINVAL
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fd := minfd
	if fd < t.next {
		fd = t.next
	}
	for ; int(fd) < len(t.files) && t.files[fd].file != nil; fd++ {
	}
	if fd >= limit {
		return -1, unix.EMFILE
	}
	t.setLocked(fd, file, flags)
	if minfd <= t.next {
		t.next = fd + 1
	}
	return fd, nil
}

func (t *FDTable) setLocked(fd int32, file *FileDescription, flags FDFlags) {
	for int(fd) >= len(t.files) {
		t.files = append(t.files, fdEntry{})
	}
	file.IncRef()
	t.files[fd] = fdEntry{file, flags}
}

// NewFDAt installs file at fd (dup2, dup3), closing what was there: EBADF
// if fd is negative or not below limit.
func (t *FDTable) NewFDAt(ctx context.Context, fd int32, file *FileDescription, flags FDFlags, limit int32) error {
	if fd < 0 || fd >= limit {
		return unix.EBADF
	}
	t.mu.Lock()
	var old *FileDescription
	if int(fd) < len(t.files) {
		old = t.files[fd].file
	}
	t.setLocked(fd, file, flags)
	t.mu.Unlock()
	if old != nil {
		t.closed(ctx, old)
	}
	return nil
}

// closed drops the table's reference to f, which just left the table,
// and the process's POSIX locks on its file (close(2) semantics).
func (t *FDTable) closed(ctx context.Context, f *FileDescription) {
	f.releasePosixLocks(ctx, t)
	f.DecRef(ctx)
}

// Get returns the file at fd with a new reference (the caller DecRefs it)
// and its flags, or nil.
func (t *FDTable) Get(fd int32) (*FileDescription, FDFlags) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd < 0 || int(fd) >= len(t.files) || t.files[fd].file == nil {
		return nil, FDFlags{}
	}
	e := t.files[fd]
	e.file.IncRef()
	return e.file, e.flags
}

// SetFlags changes fd's flags (F_SETFD, FIOCLEX): EBADF if fd is not open.
func (t *FDTable) SetFlags(fd int32, flags FDFlags) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd < 0 || int(fd) >= len(t.files) || t.files[fd].file == nil {
		return unix.EBADF
	}
	t.files[fd].flags = flags
	return nil
}

// Remove takes fd out of the table and returns its file, whose table
// reference passes to the caller (who DecRefs it), or nil. The process's
// POSIX locks on the file are released, as close(2) does.
func (t *FDTable) Remove(fd int32) *FileDescription {
	f := t.remove(fd)
	if f != nil {
		f.releasePosixLocks(context.Background(), t)
	}
	return f
}

func (t *FDTable) remove(fd int32) *FileDescription {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd < 0 || int(fd) >= len(t.files) || t.files[fd].file == nil {
		return nil
	}
	f := t.files[fd].file
	t.files[fd] = fdEntry{}
	if fd < t.next {
		t.next = fd
	}
	return f
}

// RemoveRange closes every open descriptor in [first, last]
// (close_range(2)); with cloexecOnly it sets FD_CLOEXEC instead.
func (t *FDTable) RemoveRange(ctx context.Context, first, last uint32, cloexecOnly bool) {
	var closed []*FileDescription
	t.mu.Lock()
	for fd := uint64(first); fd <= uint64(last) && fd < uint64(len(t.files)); fd++ {
		e := &t.files[fd]
		if e.file == nil {
			continue
		}
		if cloexecOnly {
			e.flags.CloseOnExec = true
			continue
		}
		closed = append(closed, e.file)
		*e = fdEntry{}
		if int32(fd) < t.next {
			t.next = int32(fd)
		}
	}
	t.mu.Unlock()
	for _, f := range closed {
		t.closed(ctx, f)
	}
}

// CloseOnExec closes every descriptor marked FD_CLOEXEC (execve).
func (t *FDTable) CloseOnExec(ctx context.Context) {
	var closed []*FileDescription
	t.mu.Lock()
	for fd := range t.files {
		e := &t.files[fd]
		if e.file != nil && e.flags.CloseOnExec {
			closed = append(closed, e.file)
			*e = fdEntry{}
			if int32(fd) < t.next {
				t.next = int32(fd)
			}
		}
	}
	t.mu.Unlock()
	for _, f := range closed {
		t.closed(ctx, f)
	}
}

// RemoveAll closes every descriptor.
func (t *FDTable) RemoveAll(ctx context.Context) {
	t.mu.Lock()
	files := t.files
	t.files = nil
	t.next = 0
	t.mu.Unlock()
	for _, e := range files {
		if e.file != nil {
			t.closed(ctx, e.file)
		}
	}
}

// Len returns one past the highest descriptor that may be open.
func (t *FDTable) Len() int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int32(len(t.files))
}

// ForEach calls fn for every open descriptor in ascending order, without
// the table lock (for /proc/self/fd).
func (t *FDTable) ForEach(fn func(fd int32, file *FileDescription, flags FDFlags)) {
	t.mu.Lock()
	snap := make([]fdEntry, len(t.files))
	copy(snap, t.files)
	for _, e := range snap {
		if e.file != nil {
			e.file.IncRef()
		}
	}
	t.mu.Unlock()
	for fd, e := range snap {
		if e.file != nil {
			fn(int32(fd), e.file, e.flags)
		}
	}
	for _, e := range snap {
		if e.file != nil {
			e.file.DecRef(context.Background())
		}
	}
}
