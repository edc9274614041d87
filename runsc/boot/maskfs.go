package boot

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/dev"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// maskFS is the one-node filesystem mounted over a masked file of
// linux.maskedPaths: a character device that behaves as /dev/null (runc
// bind-mounts /dev/null there), so reads see nothing and writes vanish.
type maskFS struct{ node *maskNode }

func newMaskFS() *maskFS { return &maskFS{node: &maskNode{ts: vfs.Now()}} }

func (*maskFS) Name() string                              { return "tmpfs" }
func (m *maskFS) Root(context.Context) (vfs.Inode, error) { return m.node, nil }
func (*maskFS) StatFS(context.Context) (vfs.Statfs, error) {
	return vfs.Statfs{Type: 0x01021994, BlockSize: 4096, NameLength: vfs.NameMax}, nil
}
func (*maskFS) Sync(context.Context) error { return nil }
func (*maskFS) Release(context.Context)    {}

type maskNode struct {
	vfs.NotDir
	vfs.NotSymlink
	ts vfs.StatxTimestamp
}

const maskMode = unix.S_IFCHR | 0o666

func (*maskNode) Perms() vfs.Perms { return vfs.Perms{Mode: maskMode} }

func (n *maskNode) Stat(context.Context) (vfs.Statx, error) {
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: 4096, Nlink: 1, Mode: maskMode, Ino: 1,
		Atime: n.ts, Mtime: n.ts, Ctime: n.ts,
		RdevMajor: unix.Major(dev.Null), RdevMinor: unix.Minor(dev.Null),
	}, nil
}

// SetStat refuses: the mount is read-only and the node is not the
// container's to change.
func (*maskNode) SetStat(context.Context, vfs.SetStatOptions) error { return unix.EROFS }

func (*maskNode) Open(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	return dev.Open(ctx, dev.Null, flags)
}
