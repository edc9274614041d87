package vfs

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/usermem"
)

// dirFD is the description of an open directory of any filesystem. It
// snapshots the listing when read from offset 0, so a directory read in
// several getdents calls neither repeats nor skips entries: offset k means
// "the k-th entry of the snapshot comes next" (0 and 1 are "." and "..").
type dirFD struct {
	FileDescriptionDefaultImpl
	NoPoll
	vfs *VirtualFilesystem
	vd  VirtualDentry

	// snap is protected by the FileDescription's offMu: every caller of
	// IterDirents and Seek holds it.
	snap []Dirent
}

func (d *dirFD) Read(context.Context, usermem.IOSequence, int64) (int64, error) {
	return 0, unix.EISDIR
}

func (d *dirFD) Stat(ctx context.Context) (Statx, error) { return d.vd.Dentry.inode.Stat(ctx) }

func (d *dirFD) SetStat(ctx context.Context, opts SetStatOptions) error {
	return d.vd.Dentry.inode.SetStat(ctx, opts)
}

func (d *dirFD) Sync(context.Context) error { return nil }

func (d *dirFD) Seek(ctx context.Context, offset int64, whence int32, cur int64) (int64, error) {
	switch whence {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		offset += cur
	default:
		return 0, unix.EINVAL
	}
	if offset < 0 {
		return 0, unix.EINVAL
	}
	if offset == 0 {
		d.snap = nil
	}
	return offset, nil
}

func (d *dirFD) dotEntries(ctx context.Context) ([]Dirent, error) {
	self, err := d.vd.Dentry.inode.Stat(ctx)
	if err != nil {
		return nil, err
	}
	d.vfs.renameMu.RLock()
	r := resolver{vfs: d.vfs, cur: d.vd, root: VirtualDentry{}}
	parent := r.dotdot()
	d.vfs.renameMu.RUnlock()
	pst, err := parent.Dentry.inode.Stat(ctx)
	if err != nil {
		return nil, err
	}
	return []Dirent{
		{Name: ".", Ino: self.Ino, Type: unix.DT_DIR},
		{Name: "..", Ino: pst.Ino, Type: unix.DT_DIR},
	}, nil
}

func (d *dirFD) IterDirents(ctx context.Context, cookie int64, cb func(Dirent, int64) bool) (int64, error) {
	if d.snap == nil || cookie == 0 {
		d.vfs.renameMu.RLock()
		dead := d.vd.Dentry.dead
		d.vfs.renameMu.RUnlock()
		if dead {
			return cookie, unix.ENOENT
		}
		dots, err := d.dotEntries(ctx)
		if err != nil {
			return cookie, err
		}
		ents, err := d.vd.Dentry.inode.ReadDir(ctx)
		if err != nil {
			return cookie, err
		}
		d.snap = append(dots, ents...)
	}
	for cookie < int64(len(d.snap)) {
		if !cb(d.snap[cookie], cookie+1) {
			break
		}
		cookie++
	}
	return cookie, nil
}

// pathFD is an O_PATH description: it can be stat'ed, used as a dirfd and
// passed around, but not read or written.
type pathFD struct {
	FileDescriptionDefaultImpl
	NoPoll
	inode Inode
}

func (p *pathFD) Stat(ctx context.Context) (Statx, error) { return p.inode.Stat(ctx) }
func (p *pathFD) Sync(context.Context) error              { return unix.EBADF }
