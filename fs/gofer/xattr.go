package gofer

import (
	"context"

	"github.com/veil-sandbox/veil/sentry/vfs"
)

// Extended attributes go to the gofer, which serves user.* and keeps the
// sandbox's trusted.* in the host's user namespace (gofer/PROTOCOL.md).

// GetXattr implements vfs.InodeXattrs.
func (i *inode) GetXattr(ctx context.Context, name string) (string, error) {
	var v []byte
	err := i.withHandle(func(h uint32) (err error) {
		v, err = i.fs.client.Getxattr(h, name)
		return err
	})
	return string(v), err
}

// SetXattr implements vfs.InodeXattrs.
func (i *inode) SetXattr(ctx context.Context, name, value string, flags uint32) error {
	defer i.changed()
	return i.withHandle(func(h uint32) error {
		return i.fs.client.Setxattr(h, name, []byte(value), flags)
	})
}

// ListXattr implements vfs.InodeXattrs.
func (i *inode) ListXattr(ctx context.Context) ([]string, error) {
	var names []string
	err := i.withHandle(func(h uint32) (err error) {
		names, err = i.fs.client.Listxattr(h)
		return err
	})
	return names, err
}

// RemoveXattr implements vfs.InodeXattrs.
func (i *inode) RemoveXattr(ctx context.Context, name string) error {
	defer i.changed()
	return i.withHandle(func(h uint32) error {
		return i.fs.client.Removexattr(h, name)
	})
}

var _ vfs.InodeXattrs = (*inode)(nil)
