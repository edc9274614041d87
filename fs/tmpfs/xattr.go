package tmpfs

import (
	"context"

	"golang.org/x/sys/unix"
)

// xattrSpaceMax bounds the names and values one inode may hold, so an
// application cannot grow sentry memory without limit through xattrs.
const xattrSpaceMax = 1 << 20

// xattrSpaceLocked is what i's attributes take up. fs.mu is held.
func (i *inode) xattrSpaceLocked() int {
	n := 0
	for k, v := range i.xattrs {
		n += len(k) + len(v)
	}
	return n
}

func (i *inode) GetXattr(ctx context.Context, name string) (string, error) {
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	v, ok := i.xattrs[name]
	if !ok {
		return "", unix.ENODATA
	}
	return v, nil
}

func (i *inode) SetXattr(ctx context.Context, name, value string, flags uint32) error {
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	old, ok := i.xattrs[name]
	switch {
	case ok && flags&unix.XATTR_CREATE != 0:
		return unix.EEXIST
	case !ok && flags&unix.XATTR_REPLACE != 0:
		return unix.ENODATA
	}
	grow := len(value) - len(old)
	if !ok {
		grow += len(name)
	}
	if grow > 0 && i.xattrSpaceLocked()+grow > xattrSpaceMax {
		return unix.ENOSPC
	}
	if i.xattrs == nil {
		i.xattrs = make(map[string]string)
	}
	i.xattrs[name] = value
	i.ctime = nowTS()
	return nil
}

func (i *inode) ListXattr(ctx context.Context) ([]string, error) {
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	names := make([]string, 0, len(i.xattrs))
	for k := range i.xattrs {
		names = append(names, k)
	}
	return names, nil
}

func (i *inode) RemoveXattr(ctx context.Context, name string) error {
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	if _, ok := i.xattrs[name]; !ok {
		return unix.ENODATA
	}
	delete(i.xattrs, name)
	i.ctime = nowTS()
	return nil
}
