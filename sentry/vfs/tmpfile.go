package vfs

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
)

// InodeTmpfileCreator is implemented by directories of filesystems that
// support O_TMPFILE.
type InodeTmpfileCreator interface {
	// CreateTmpfile makes a regular file with no name (link count 0) on
	// the directory's filesystem. Link may give it one later; until then
	// its data goes away with its last open description.
	CreateTmpfile(ctx context.Context, opts CreateOptions) (Inode, error)
}

// OTmpfileBit is __O_TMPFILE, the bit that O_TMPFILE adds to O_DIRECTORY.
const OTmpfileBit = unix.O_TMPFILE &^ unix.O_DIRECTORY

// openTmpfile is open(2) with O_TMPFILE: an unnamed regular file in the
// directory pop names. Without O_EXCL it may be linked into the tree
// later (linkat with AT_EMPTY_PATH or through /proc/self/fd).
func (vfs *VirtualFilesystem) openTmpfile(ctx context.Context, pop *PathOperation, opts OpenOptions) (*FileDescription, error) {
	dir, err := vfs.GetDentryAt(ctx, pop)
	if err != nil {
		return nil, err
	}
	perms := dir.Dentry.inode.Perms()
	if !perms.IsDir() {
		return nil, unix.ENOTDIR
	}
	creds := auth.CredentialsFromContext(ctx)
	if err := GenericCheckPermissions(creds, MayWrite|MayExec, perms); err != nil {
		return nil, err
	}
	if dir.Mount.ReadOnly() {
		return nil, unix.EROFS
	}
	tc, ok := dir.Dentry.inode.(InodeTmpfileCreator)
	if !ok {
		return nil, unix.EOPNOTSUPP
	}
	co := createOptions(creds, perms, unix.S_IFREG|opts.Mode&07777)
	ino, err := tc.CreateTmpfile(ctx, co)
	if err != nil {
		return nil, err
	}
	st, err := ino.Stat(ctx)
	if err != nil {
		return nil, err
	}
	// Linux names the dentry "#<ino>"; it is in no directory's listing.
	d := newDentry(dir.Dentry.fs, dir.Dentry, fmt.Sprintf("#%d", st.Ino), ino)
	d.dead = true
	d.linkable = opts.Flags&unix.O_EXCL == 0
	d.ino.Store(st.Ino)
	flags := opts.Flags &^ (OTmpfileBit | unix.O_DIRECTORY | unix.O_CREAT | unix.O_EXCL)
	return vfs.openDentry(ctx, VirtualDentry{dir.Mount, d}, flags, true)
}

// mayLink makes the checks of fs.protected_hardlinks (on by default):
// without owning the file or CAP_FOWNER, only a regular file that is not
// set-user-ID or executable set-group-ID, and that the caller may read
// and write, may get a new link.
func mayLink(ctx context.Context, ino Inode) error {
	creds := auth.CredentialsFromContext(ctx)
	p := ino.Perms()
	if CanActAsOwner(creds, p.UID) {
		return nil
	}
	if !p.IsRegular() || p.Mode&unix.S_ISUID != 0 || p.Mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP {
		return unix.EPERM
	}
	if GenericCheckPermissions(creds, MayRead|MayWrite, p) != nil {
		return unix.EPERM
	}
	return nil
}
