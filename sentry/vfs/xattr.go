package vfs

import (
	"context"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
)

// Limits of extended attributes (include/uapi/linux/limits.h).
const (
	XattrNameMax = 255
	XattrSizeMax = 65536
	XattrListMax = 65536
)

// The extended attribute namespaces Veil serves.
const (
	xattrUser     = "user."
	xattrTrusted  = "trusted."
	xattrSecurity = "security."
)

// InodeXattrs is implemented by inodes whose filesystem stores extended
// attributes. The VFS checks names, namespaces and permissions first;
// the filesystem stores and retrieves.
type InodeXattrs interface {
	// GetXattr returns the value of name: ENODATA if it is not set.
	GetXattr(ctx context.Context, name string) (string, error)
	// SetXattr sets name to value. flags may hold XATTR_CREATE (EEXIST
	// if set) or XATTR_REPLACE (ENODATA if not).
	SetXattr(ctx context.Context, name, value string, flags uint32) error
	// ListXattr returns the names set, in any order.
	ListXattr(ctx context.Context) ([]string, error)
	// RemoveXattr removes name: ENODATA if it is not set.
	RemoveXattr(ctx context.Context, name string) error
}

// xattrPermission makes Linux's xattr_permission checks for access ats
// (MayRead or MayWrite) of name on the file at vd.
func xattrPermission(ctx context.Context, vd VirtualDentry, name string, ats AccessTypes) error {
	return xattrPermissionPerms(ctx, vd.Dentry.inode.Perms(), name, ats)
}

func xattrPermissionPerms(ctx context.Context, p Perms, name string, ats AccessTypes) error {
	creds := auth.CredentialsFromContext(ctx)
	write := ats&MayWrite != 0
	switch {
	case strings.HasPrefix(name, xattrSecurity):
		// Left to security modules on Linux; the capability module asks
		// for CAP_SYS_ADMIN to change them.
		if write && !creds.HasCapability(auth.CAP_SYS_ADMIN) {
			return unix.EPERM
		}
		return nil
	case strings.HasPrefix(name, xattrTrusted):
		if !creds.HasCapability(auth.CAP_SYS_ADMIN) {
			if write {
				return unix.EPERM
			}
			return unix.ENODATA
		}
		return nil
	case strings.HasPrefix(name, xattrUser):
		if !p.IsRegular() && !p.IsDir() {
			if write {
				return unix.EPERM
			}
			return unix.ENODATA
		}
		if p.IsDir() && p.Mode&unix.S_ISVTX != 0 && write && !CanActAsOwner(creds, p.UID) {
			return unix.EPERM
		}
	}
	return GenericCheckPermissions(creds, ats, p)
}

// checkXattrName refuses names outside the namespaces Veil serves: an
// unknown prefix, or system.* (POSIX ACLs), is EOPNOTSUPP; a bare prefix
// is EINVAL.
func checkXattrName(name string) error {
	for _, pre := range []string{xattrUser, xattrTrusted, xattrSecurity} {
		if strings.HasPrefix(name, pre) {
			if len(name) == len(pre) {
				return unix.EINVAL
			}
			return nil
		}
	}
	return unix.EOPNOTSUPP
}

func xattrInode(vd VirtualDentry) (InodeXattrs, error) {
	x, ok := vd.Dentry.inode.(InodeXattrs)
	if !ok {
		return nil, unix.EOPNOTSUPP
	}
	return x, nil
}

// GetXattr is getxattr(2) on the file at vd.
func (vfs *VirtualFilesystem) GetXattr(ctx context.Context, vd VirtualDentry, name string) (string, error) {
	if err := checkXattrName(name); err != nil {
		return "", err
	}
	if err := xattrPermission(ctx, vd, name, MayRead); err != nil {
		return "", err
	}
	x, err := xattrInode(vd)
	if err != nil {
		return "", err
	}
	return x.GetXattr(ctx, name)
}

// SetXattr is setxattr(2) on the file at vd.
func (vfs *VirtualFilesystem) SetXattr(ctx context.Context, vd VirtualDentry, name, value string, flags uint32) error {
	if err := checkXattrName(name); err != nil {
		return err
	}
	if vd.Mount.ReadOnly() {
		return unix.EROFS
	}
	if err := xattrPermission(ctx, vd, name, MayWrite); err != nil {
		return err
	}
	x, err := xattrInode(vd)
	if err != nil {
		return err
	}
	if err := x.SetXattr(ctx, name, value, flags); err != nil {
		return err
	}
	vfs.notifyAttrib(ctx, vd.Dentry)
	return nil
}

// ListXattr is listxattr(2): trusted.* names are shown only to callers
// with CAP_SYS_ADMIN, as Linux does.
func (vfs *VirtualFilesystem) ListXattr(ctx context.Context, vd VirtualDentry) ([]string, error) {
	x, ok := vd.Dentry.inode.(InodeXattrs)
	if !ok {
		return nil, nil
	}
	names, err := x.ListXattr(ctx)
	if err != nil {
		return nil, err
	}
	admin := auth.CredentialsFromContext(ctx).HasCapability(auth.CAP_SYS_ADMIN)
	out := names[:0]
	for _, n := range names {
		if strings.HasPrefix(n, xattrTrusted) && !admin {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// RemoveXattr is removexattr(2) on the file at vd.
func (vfs *VirtualFilesystem) RemoveXattr(ctx context.Context, vd VirtualDentry, name string) error {
	if err := checkXattrName(name); err != nil {
		return err
	}
	if vd.Mount.ReadOnly() {
		return unix.EROFS
	}
	if err := xattrPermission(ctx, vd, name, MayWrite); err != nil {
		return err
	}
	x, err := xattrInode(vd)
	if err != nil {
		return err
	}
	if err := x.RemoveXattr(ctx, name); err != nil {
		return err
	}
	vfs.notifyAttrib(ctx, vd.Dentry)
	return nil
}

// AnonXattr answers an xattr call on a description with no dentry (a
// pipe, a socket): such files hold no attributes, but the namespace
// checks come first, as on Linux (user.* on a pipe is ENODATA or EPERM).
func AnonXattr(ctx context.Context, fd *FileDescription, name string, write bool) error {
	if err := checkXattrName(name); err != nil {
		return err
	}
	st, err := fd.Stat(ctx)
	if err != nil {
		return err
	}
	ats := MayRead
	if write {
		ats = MayWrite
	}
	p := Perms{Mode: uint32(st.Mode), UID: auth.KUID(st.UID), GID: auth.KGID(st.GID)}
	if err := xattrPermissionPerms(ctx, p, name, ats); err != nil {
		return err
	}
	return unix.EOPNOTSUPP
}
