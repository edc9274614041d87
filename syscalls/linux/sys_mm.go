package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func Mmap(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	addr := args[0].Pointer()
	length := args[1].Uint64()
	prot := args[2].Int()
	flags := args[3].Int()
	fd := args[4].Int()
	off := args[5].Uint64()

	const knownFlags = unix.MAP_SHARED | unix.MAP_PRIVATE | unix.MAP_SHARED_VALIDATE | unix.MAP_FIXED |
		unix.MAP_ANONYMOUS | unix.MAP_32BIT | unix.MAP_GROWSDOWN | unix.MAP_DENYWRITE |
		unix.MAP_EXECUTABLE | unix.MAP_LOCKED | unix.MAP_NORESERVE | unix.MAP_POPULATE |
		unix.MAP_NONBLOCK | unix.MAP_STACK | unix.MAP_HUGETLB | unix.MAP_SYNC | unix.MAP_FIXED_NOREPLACE |
		0xfc000000 // huge page size bits
	typ := flags & (unix.MAP_SHARED | unix.MAP_PRIVATE | unix.MAP_SHARED_VALIDATE)
	switch typ {
	case unix.MAP_SHARED, unix.MAP_PRIVATE:
	case unix.MAP_SHARED_VALIDATE:
		if uint32(flags)&^uint32(knownFlags) != 0 {
			return 0, unix.EOPNOTSUPP
		}
	default:
		return 0, unix.EINVAL
	}
	if prot&^(unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC|unix.PROT_GROWSDOWN|unix.PROT_GROWSUP) != 0 {
		return 0, unix.EINVAL
	}
	if flags&unix.MAP_HUGETLB != 0 {
		return 0, unix.EINVAL // no hugetlbfs
	}
	if length == 0 {
		return 0, unix.EINVAL
	}
	if off%hostarch.PageSize != 0 {
		return 0, unix.EINVAL
	}
	fixed := flags&(unix.MAP_FIXED|unix.MAP_FIXED_NOREPLACE) != 0
	opts := memmap.MMapOpts{
		Length:    length,
		Offset:    off,
		Addr:      addr,
		Fixed:     fixed,
		Unmap:     flags&unix.MAP_FIXED != 0,
		Private:   typ == unix.MAP_PRIVATE,
		Perms:     hostarch.AccessFromProt(int(prot)),
		MaxPerms:  hostarch.AnyAccess,
		GrowsDown: flags&unix.MAP_GROWSDOWN != 0,
	}
	if flags&unix.MAP_ANONYMOUS == 0 {
		file, err := fileForMMap(t, fd)
		if err != nil {
			return 0, err
		}
		defer file.release()
		if err := file.configure(&opts, typ == unix.MAP_SHARED || typ == unix.MAP_SHARED_VALIDATE); err != nil {
			return 0, err
		}
	} else if typ != unix.MAP_PRIVATE {
		opts.Offset = 0
	}
	// MAP_POPULATE is a hint: pages fault in on first touch anyway.
	a, err := t.MemoryManager().MMap(opts)
	if err != nil {
		return 0, err
	}
	return uintptr(a), nil
}

func Munmap(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.MemoryManager().MUnmap(args[0].Pointer(), args[1].Uint64())
}

func Mprotect(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	prot := args[2].Int()
	if prot&^(unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC|unix.PROT_GROWSDOWN|unix.PROT_GROWSUP) != 0 {
		return 0, unix.EINVAL
	}
	return 0, t.MemoryManager().MProtect(args[0].Pointer(), args[1].Uint64(), hostarch.AccessFromProt(int(prot)), prot&unix.PROT_GROWSDOWN != 0)
}

func Mremap(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	a, err := t.MemoryManager().MRemap(args[0].Pointer(), args[1].Uint64(), args[2].Uint64(), int(args[3].Int()), args[4].Pointer())
	return uintptr(a), err
}

func Madvise(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.MemoryManager().MAdvise(args[0].Pointer(), args[1].Uint64(), int(args[2].Int()))
}

func Brk(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.MemoryManager().Brk(args[0].Pointer())), nil
}

func Msync(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.MemoryManager().MSync(args[0].Pointer(), args[1].Uint64(), int(args[2].Int()))
}

func Mlock(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.MemoryManager().MLock(args[0].Pointer(), args[1].Uint64(), true)
}

func Munlock(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.MemoryManager().MLock(args[0].Pointer(), args[1].Uint64(), false)
}

func Mlockall(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.MemoryManager().MLockAll(int(args[0].Int()))
}

func Munlockall(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	t.MemoryManager().MUnlockAll()
	return 0, nil
}

func Mincore(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	addr, length := args[0].Pointer(), args[1].Uint64()
	if !addr.IsPageAligned() {
		return 0, unix.EINVAL
	}
	pages := (length + hostarch.PageSize - 1) / hostarch.PageSize
	if pages > 1<<20 {
		pages = 1 << 20
	}
	// Report every page resident: the sandbox's memory file is never
	// swapped out, and untouched pages fault in at no cost.
	v := make([]byte, pages)
	for i := range v {
		v[i] = 1
	}
	if _, err := t.CopyOutBytes(args[2].Pointer(), v); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

func init() {
	reg(unix.SYS_MMAP, Full, Mmap)
	reg(unix.SYS_MUNMAP, Full, Munmap)
	reg(unix.SYS_MPROTECT, Full, Mprotect)
	reg(unix.SYS_MREMAP, Partial, Mremap, "no MREMAP_DONTUNMAP")
	reg(unix.SYS_MADVISE, Partial, Madvise, "DONTNEED/FREE/DONTFORK honoured, others hints")
	reg(unix.SYS_BRK, Full, Brk)
	reg(unix.SYS_MSYNC, Full, Msync)
	reg(unix.SYS_MLOCK, Partial, Mlock, "accepted; memory is never swapped")
	reg(unix.SYS_MUNLOCK, Partial, Munlock)
	reg(unix.SYS_MLOCK2, Partial, Mlock)
	reg(unix.SYS_MLOCKALL, Partial, Mlockall)
	reg(unix.SYS_MUNLOCKALL, Partial, Munlockall)
	reg(unix.SYS_MINCORE, Partial, Mincore, "reports all pages resident")
}

type mmapFile struct {
	t  *kernel.Task
	fd *vfs.FileDescription
}

func (f mmapFile) release() { f.fd.DecRef(f.t) }

func fileForMMap(t *kernel.Task, fd int32) (mmapFile, error) {
	file, _ := t.FDTable().Get(fd)
	if file == nil {
		return mmapFile{}, unix.EBADF
	}
	if file.IsPath() {
		file.DecRef(t)
		return mmapFile{}, unix.EBADF
	}
	return mmapFile{t, file}, nil
}

// configure applies mmap(2)'s access rules and lets the file fill in the
// mappable.
func (f mmapFile) configure(opts *memmap.MMapOpts, shared bool) error {
	if !f.fd.IsReadable() {
		return unix.EACCES
	}
	if shared && !f.fd.IsWritable() {
		if opts.Perms.Write {
			return unix.EACCES
		}
		opts.MaxPerms.Write = false
	}
	if shared && f.fd.StatusFlags()&unix.O_APPEND != 0 && opts.Perms.Write {
		return unix.EACCES
	}
	if err := f.fd.ConfigureMMap(f.t, opts); err != nil {
		return err
	}
	if opts.Name == "" {
		opts.Name = mappedName(f.t, f.fd)
	}
	return nil
}

// mappedName is how /proc/PID/maps names a mapping of fd: its path from
// the task's root, marked when the file is gone.
func mappedName(t *kernel.Task, fd *vfs.FileDescription) string {
	vd := fd.VirtualDentry()
	if !vd.Ok() || t.FSContext() == nil {
		return ""
	}
	p, ok := t.Kernel().VFS().PathnameWithin(t.FSContext().Root(), vd)
	if !ok {
		p += " (deleted)"
	}
	return p
}
