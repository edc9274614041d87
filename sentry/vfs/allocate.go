package vfs

import (
	"context"

	"golang.org/x/sys/unix"
)

// Allocator is implemented by descriptions of files whose filesystem
// supports fallocate(2). mode is 0, FALLOC_FL_KEEP_SIZE or
// FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE (the VFS refuses others
// unless the filesystem says it takes them, see AllocateModes).
type Allocator interface {
	Allocate(ctx context.Context, mode uint32, off, length uint64) error
}

// AllocateModes is implemented by Allocators that take more fallocate
// modes than the three above.
type AllocateModes interface {
	AllocateModes() uint32
}

const fallocBasic = unix.FALLOC_FL_KEEP_SIZE | unix.FALLOC_FL_PUNCH_HOLE

const fallocKnown = unix.FALLOC_FL_KEEP_SIZE | unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_COLLAPSE_RANGE |
	unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_INSERT_RANGE | unix.FALLOC_FL_UNSHARE_RANGE

// Allocate is fallocate(2), with vfs_fallocate's checks in its order.
func (fd *FileDescription) Allocate(ctx context.Context, mode uint32, off, length int64) error {
	if off < 0 || length <= 0 {
		return unix.EINVAL
	}
	if mode&^fallocKnown != 0 {
		return unix.EOPNOTSUPP
	}
	if mode&unix.FALLOC_FL_PUNCH_HOLE != 0 && mode&unix.FALLOC_FL_KEEP_SIZE == 0 {
		return unix.EOPNOTSUPP
	}
	if !fd.writable {
		return unix.EBADF
	}
	st, err := fd.impl.Stat(ctx)
	if err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return unix.ESPIPE
	case unix.S_IFDIR:
		return unix.EISDIR
	case unix.S_IFREG:
	default:
		return unix.ENODEV
	}
	if off+length < off {
		return unix.EFBIG
	}
	a, ok := fd.impl.(Allocator)
	if !ok {
		return unix.EOPNOTSUPP
	}
	supported := uint32(fallocBasic)
	if m, ok := a.(AllocateModes); ok {
		supported = m.AllocateModes()
	}
	if mode&^supported != 0 {
		return unix.EOPNOTSUPP
	}
	if err := a.Allocate(ctx, mode, uint64(off), uint64(length)); err != nil {
		return err
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 || mode&unix.FALLOC_FL_PUNCH_HOLE != 0 {
		fd.notifyModify(ctx)
	}
	return nil
}
