package overlay

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/vfs"
)

func xattrs(ino vfs.Inode) (vfs.InodeXattrs, error) {
	x, ok := ino.(vfs.InodeXattrs)
	if !ok {
		return nil, unix.EOPNOTSUPP
	}
	return x, nil
}

// GetXattr implements vfs.InodeXattrs: from whichever layer holds the
// file.
func (i *inode) GetXattr(ctx context.Context, name string) (string, error) {
	x, err := xattrs(i.cur())
	if err != nil {
		return "", err
	}
	return x.GetXattr(ctx, name)
}

// ListXattr implements vfs.InodeXattrs.
func (i *inode) ListXattr(ctx context.Context) ([]string, error) {
	x, err := xattrs(i.cur())
	if err != nil {
		return nil, err
	}
	return x.ListXattr(ctx)
}

// SetXattr implements vfs.InodeXattrs: a change copies the file up.
func (i *inode) SetXattr(ctx context.Context, name, value string, flags uint32) error {
	if err := i.fs.copyUp(ctx, i); err != nil {
		return err
	}
	x, err := xattrs(i.cur())
	if err != nil {
		return err
	}
	return x.SetXattr(ctx, name, value, flags)
}

// RemoveXattr implements vfs.InodeXattrs.
func (i *inode) RemoveXattr(ctx context.Context, name string) error {
	if err := i.fs.copyUp(ctx, i); err != nil {
		return err
	}
	x, err := xattrs(i.cur())
	if err != nil {
		return err
	}
	return x.RemoveXattr(ctx, name)
}

// copyXattrs gives the copy c of lower file l its extended attributes. A
// lower layer without them, or an upper one that cannot hold them, copies
// none, as overlayfs does when either side lacks support.
func copyXattrs(ctx context.Context, l, c vfs.Inode) error {
	lx, ok1 := l.(vfs.InodeXattrs)
	cx, ok2 := c.(vfs.InodeXattrs)
	if !ok1 || !ok2 {
		return nil
	}
	names, err := lx.ListXattr(ctx)
	if err == unix.EOPNOTSUPP || err == unix.ENOTSUP {
		return nil
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		v, err := lx.GetXattr(ctx, n)
		if err == unix.ENODATA {
			continue // gone meanwhile
		}
		if err != nil {
			return err
		}
		if err := cx.SetXattr(ctx, n, v, 0); err != nil && err != unix.EOPNOTSUPP {
			return err
		}
	}
	return nil
}

var _ vfs.InodeXattrs = (*inode)(nil)
