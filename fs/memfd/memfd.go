// Package memfd owns memfd_create(2) files: anonymous regular files of an
// internal tmpfs (one per memory file), with a name for /proc/PID/fd and
// file seals (F_ADD_SEALS, F_GET_SEALS) that forbid later writes, growth,
// shrinking or sealing.
package memfd

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/tmpfs"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// Seals (include/uapi/linux/fcntl.h).
const (
	F_SEAL_SEAL         = 0x1
	F_SEAL_SHRINK       = 0x2
	F_SEAL_GROW         = 0x4
	F_SEAL_WRITE        = 0x8
	F_SEAL_FUTURE_WRITE = 0x10
	allSeals            = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE
)

// MaxNameLen is the longest name memfd_create takes (NAME_MAX less the
// "memfd:" prefix).
const MaxNameLen = 249

var (
	fsMu sync.Mutex
	fses = map[tmpfs.MemoryFile]*tmpfs.Filesystem{}
)

func filesystem(mf tmpfs.MemoryFile) *tmpfs.Filesystem {
	fsMu.Lock()
	defer fsMu.Unlock()
	fs := fses[mf]
	if fs == nil {
		fs = tmpfs.New(mf, tmpfs.Options{Mode: 01777})
		fses[mf] = fs
	}
	return fs
}

// state is what every description of one memfd shares.
//
// Lock order: state.mu is taken before calling into tmpfs.
type state struct {
	mu    sync.Mutex
	seals uint32
	// writableMaps counts shared writable mappings (F_SEAL_WRITE is
	// EBUSY while there are any).
	writableMaps int
}

// File is the implementation behind a memfd description: the tmpfs
// regular file with the seals checked in front of it.
type File struct {
	vfs.FileDescriptionImpl
	name string
	st   *state
}

// New makes a memfd called name, owned by the caller in ctx, in mf.
// Without allowSealing it carries F_SEAL_SEAL from the start.
func New(ctx context.Context, mf tmpfs.MemoryFile, name string, opts vfs.CreateOptions, allowSealing bool) (*vfs.FileDescription, error) {
	root, err := filesystem(mf).Root(ctx)
	if err != nil {
		return nil, err
	}
	opts.Mode = unix.S_IFREG | 0777
	ino, err := root.(vfs.InodeTmpfileCreator).CreateTmpfile(ctx, opts)
	if err != nil {
		return nil, err
	}
	impl, err := ino.Open(ctx, unix.O_RDWR)
	if err != nil {
		return nil, err
	}
	st := &state{}
	if !allowSealing {
		st.seals = F_SEAL_SEAL
	}
	f := &File{FileDescriptionImpl: impl, name: name, st: st}
	return vfs.NewFileDescription(f, unix.O_RDWR|unix.O_LARGEFILE, vfs.VirtualDentry{}), nil
}

// FromFD returns the memfd behind fd, or nil.
func FromFD(fd *vfs.FileDescription) *File {
	f, _ := fd.Impl().(*File)
	return f
}

// AnonName is what readlink of /proc/PID/fd/N says, as on Linux.
func (f *File) AnonName() string { return "/memfd:" + f.name + " (deleted)" }

// Seals returns the seals (F_GET_SEALS).
func (f *File) Seals() uint32 {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	return f.st.seals
}

// AddSeals adds seals (F_ADD_SEALS): EINVAL for unknown bits, EPERM once
// F_SEAL_SEAL is set or when the description is not writable, EBUSY for
// F_SEAL_WRITE while shared writable mappings exist.
func (f *File) AddSeals(seals uint32, writable bool) error {
	if seals&^allSeals != 0 {
		return unix.EINVAL
	}
	if !writable {
		return unix.EPERM
	}
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if f.st.seals&F_SEAL_SEAL != 0 {
		return unix.EPERM
	}
	if seals&F_SEAL_WRITE != 0 && f.st.seals&F_SEAL_WRITE == 0 && f.st.writableMaps > 0 {
		return unix.EBUSY
	}
	f.st.seals |= seals
	return nil
}

func (f *File) size(ctx context.Context) (uint64, error) {
	st, err := f.FileDescriptionImpl.Stat(ctx)
	return st.Size, err
}

// Write refuses writes under F_SEAL_WRITE/F_SEAL_FUTURE_WRITE and growth
// under F_SEAL_GROW.
func (f *File) Write(ctx context.Context, src usermem.IOSequence, off int64, appending bool) (int64, int64, error) {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if f.st.seals&(F_SEAL_WRITE|F_SEAL_FUTURE_WRITE) != 0 {
		return 0, off, unix.EPERM
	}
	if f.st.seals&F_SEAL_GROW != 0 {
		size, err := f.size(ctx)
		if err != nil {
			return 0, off, err
		}
		if appending {
			off = int64(size)
		}
		if off >= int64(size) {
			return 0, off, unix.EPERM
		}
		// Write what fits in the current size.
		src = src.TakeFirst(int64(size) - off)
	}
	return f.FileDescriptionImpl.Write(ctx, src, off, appending)
}

// SetStat refuses size changes the seals forbid.
func (f *File) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if opts.Mask&unix.STATX_SIZE != 0 {
		size, err := f.size(ctx)
		if err != nil {
			return err
		}
		if (opts.Size < size && f.st.seals&F_SEAL_SHRINK != 0) || (opts.Size > size && f.st.seals&F_SEAL_GROW != 0) {
			return unix.EPERM
		}
	}
	return f.FileDescriptionImpl.SetStat(ctx, opts)
}

// Allocate refuses hole punching under F_SEAL_WRITE/FUTURE_WRITE and
// growth under F_SEAL_GROW.
func (f *File) Allocate(ctx context.Context, mode uint32, off, length uint64) error {
	a, ok := f.FileDescriptionImpl.(vfs.Allocator)
	if !ok {
		return unix.EOPNOTSUPP
	}
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if mode&unix.FALLOC_FL_PUNCH_HOLE != 0 && f.st.seals&(F_SEAL_WRITE|F_SEAL_FUTURE_WRITE) != 0 {
		return unix.EPERM
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 && f.st.seals&F_SEAL_GROW != 0 {
		size, err := f.size(ctx)
		if err != nil {
			return err
		}
		if off+length > size {
			return unix.EPERM
		}
	}
	return a.Allocate(ctx, mode, off, length)
}

// ConfigureMMap refuses shared writable mappings under the write seals
// (and takes away mprotect's way to one), and counts shared writable
// mappings for F_SEAL_WRITE's EBUSY.
func (f *File) ConfigureMMap(ctx context.Context, opts *memmap.MMapOpts) error {
	f.st.mu.Lock()
	sealed := f.st.seals&(F_SEAL_WRITE|F_SEAL_FUTURE_WRITE) != 0
	f.st.mu.Unlock()
	if sealed && !opts.Private {
		if opts.Perms.Write {
			return unix.EPERM
		}
		opts.MaxPerms.Write = false
	}
	if err := f.FileDescriptionImpl.ConfigureMMap(ctx, opts); err != nil {
		return err
	}
	if !opts.Private && opts.Mappable != nil {
		opts.Mappable = &countingMappable{Mappable: opts.Mappable, st: f.st}
	}
	return nil
}

// countingMappable counts the writable mappings of a memfd's pages.
type countingMappable struct {
	memmap.Mappable
	st *state
}

func (m *countingMappable) AddMapping(ms memmap.MappingSpace, ar hostarch.AddrRange, off uint64, writable bool) {
	if writable {
		m.st.mu.Lock()
		m.st.writableMaps++
		m.st.mu.Unlock()
	}
	m.Mappable.AddMapping(ms, ar, off, writable)
}

func (m *countingMappable) RemoveMapping(ms memmap.MappingSpace, ar hostarch.AddrRange, off uint64, writable bool) {
	if writable {
		m.st.mu.Lock()
		m.st.writableMaps--
		m.st.mu.Unlock()
	}
	m.Mappable.RemoveMapping(ms, ar, off, writable)
}
