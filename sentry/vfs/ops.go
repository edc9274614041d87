package vfs

import (
	"context"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
)

// OpenOptions are open(2)'s flags and mode (umask already applied).
type OpenOptions struct {
	Flags uint32
	Mode  uint32
}

func isDotName(name string) bool { return name == "." || name == ".." }

// createOptions computes owner, group and mode of a new file in parent.
func createOptions(creds *auth.Credentials, parent Perms, mode uint32) CreateOptions {
	opts := CreateOptions{Mode: mode, UID: creds.FSKUID, GID: creds.FSKGID}
	if parent.Mode&unix.S_ISGID != 0 {
		opts.GID = parent.GID
		if mode&unix.S_IFMT == unix.S_IFDIR {
			opts.Mode |= unix.S_ISGID
		}
	}
	if mode&unix.S_IFMT != unix.S_IFDIR && opts.Mode&unix.S_ISGID != 0 &&
		!creds.InGroup(opts.GID) && !creds.HasCapability(auth.CAP_FSETID) {
		opts.Mode &^= unix.S_ISGID
	}
	return opts
}

// mayCreate checks that the caller may add an entry to dir.
func mayCreate(creds *auth.Credentials, dir VirtualDentry) error {
	if dir.Dentry.dead {
		return unix.ENOENT
	}
	return GenericCheckPermissions(creds, MayWrite|MayExec, dir.Dentry.inode.Perms())
}

// mayDelete checks that the caller may remove child from dir (may_delete).
func mayDelete(creds *auth.Credentials, dir VirtualDentry, child *Dentry, wantDir bool) error {
	dp := dir.Dentry.inode.Perms()
	if err := GenericCheckPermissions(creds, MayWrite|MayExec, dp); err != nil {
		return err
	}
	cp := child.inode.Perms()
	if err := checkSticky(creds, dp, cp); err != nil {
		return err
	}
	if wantDir {
		if !cp.IsDir() {
			return unix.ENOTDIR
		}
	} else if cp.IsDir() {
		return unix.EISDIR
	}
	return nil
}

// isMountpoint reports whether anything is mounted on d.
func (vfs *VirtualFilesystem) isMountpoint(d *Dentry) bool {
	return d.mounts.Load() > 0
}

// OpenAt is open(2)/openat(2).
func (vfs *VirtualFilesystem) OpenAt(ctx context.Context, pop *PathOperation, opts OpenOptions) (*FileDescription, error) {
	flags := opts.Flags
	if flags&OTmpfileBit != 0 {
		return vfs.openTmpfile(ctx, pop, opts)
	}
	// Linux 6.4 and later refuse the meaningless O_CREAT|O_DIRECTORY.
	if flags&(unix.O_CREAT|unix.O_DIRECTORY) == unix.O_CREAT|unix.O_DIRECTORY {
		return nil, unix.EINVAL
	}
	if flags&unix.O_CREAT != 0 && flags&unix.O_PATH == 0 {
		return vfs.openCreate(ctx, pop, opts)
	}
	if flags&unix.O_PATH != 0 {
		flags &= unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	}
	vfs.renameMu.RLock()
	var r resolver
	if err := r.init(vfs, ctx, pop); err != nil {
		vfs.renameMu.RUnlock()
		return nil, err
	}
	vd, err := r.walkFinal(flags&unix.O_NOFOLLOW == 0)
	vfs.renameMu.RUnlock()
	if err != nil {
		return nil, err
	}
	return vfs.openDentry(ctx, vd, flags, false)
}

func (vfs *VirtualFilesystem) openCreate(ctx context.Context, pop *PathOperation, opts OpenOptions) (*FileDescription, error) {
	flags := opts.Flags
	vfs.renameMu.Lock()
	r, err := vfs.newResolver(ctx, pop)
	if err != nil {
		vfs.renameMu.Unlock()
		return nil, err
	}
	var vd VirtualDentry
	created := false
	for {
		if err := r.walkToParent(); err != nil {
			vfs.renameMu.Unlock()
			return nil, err
		}
		name, ok := r.final()
		if !ok || isDotName(name) || r.mustBeDir {
			vfs.renameMu.Unlock()
			return nil, unix.EISDIR
		}
		if err := r.mayLookup(); err != nil {
			vfs.renameMu.Unlock()
			return nil, err
		}
		next, err := r.walkOne(name)
		if err == unix.ENOENT {
			parent := r.cur
			if parent.Mount.ReadOnly() {
				err = unix.EROFS
			} else if err = mayCreate(r.creds, parent); err == nil {
				co := createOptions(r.creds, parent.Dentry.inode.Perms(), unix.S_IFREG|opts.Mode&07777)
				var ino Inode
				if ino, err = parent.Dentry.inode.Create(ctx, name, co); err == nil {
					vd = VirtualDentry{parent.Mount, insertChildLocked(ctx, parent.Dentry, name, ino)}
					created = true
					inotifyChild(ctx, parent.Dentry, InCreate, 0, name, false)
				}
			}
			if err != nil {
				vfs.renameMu.Unlock()
				return nil, err
			}
			break
		}
		if err != nil {
			vfs.renameMu.Unlock()
			return nil, err
		}
		if flags&unix.O_EXCL != 0 {
			vfs.renameMu.Unlock()
			return nil, unix.EEXIST
		}
		if next.Dentry.isSymlink() {
			if flags&unix.O_NOFOLLOW != 0 {
				vfs.renameMu.Unlock()
				return nil, unix.ELOOP
			}
			r.rest = ""
			r.jumped = false
			if err := r.follow(next); err != nil {
				vfs.renameMu.Unlock()
				return nil, err
			}
			if r.jumped {
				// A magic link names an existing file: open that.
				next = r.cur
			} else {
				continue
			}
		}
		if next.Dentry.isDir() {
			vfs.renameMu.Unlock()
			return nil, unix.EISDIR
		}
		vd = next
		break
	}
	vfs.renameMu.Unlock()
	return vfs.openDentry(ctx, vd, flags, created)
}

// OpenDentry opens the file at vd with open(2) flags, checking
// permissions (for files found other than by path, such as /proc links).
func (vfs *VirtualFilesystem) OpenDentry(ctx context.Context, vd VirtualDentry, flags uint32) (*FileDescription, error) {
	return vfs.openDentry(ctx, vd, flags, false)
}

func (vfs *VirtualFilesystem) openDentry(ctx context.Context, vd VirtualDentry, flags uint32, created bool) (*FileDescription, error) {
	ino := vd.Dentry.inode
	p := ino.Perms()
	if flags&unix.O_PATH != 0 {
		if flags&unix.O_DIRECTORY != 0 && !p.IsDir() {
			return nil, unix.ENOTDIR
		}
		return NewFileDescription(&pathFD{inode: ino}, flags, vd), nil
	}
	if p.IsSymlink() {
		return nil, unix.ELOOP
	}
	if flags&unix.O_DIRECTORY != 0 && !p.IsDir() {
		return nil, unix.ENOTDIR
	}
	ats := AccessTypesForOpenFlags(flags)
	if p.IsDir() && (ats&MayWrite != 0 || flags&unix.O_CREAT != 0) {
		return nil, unix.EISDIR
	}
	if !created {
		if ats&MayWrite != 0 && vd.Mount.ReadOnly() && (p.IsRegular() || p.IsDir()) {
			return nil, unix.EROFS
		}
		if err := GenericCheckPermissions(auth.CredentialsFromContext(ctx), ats, p); err != nil {
			return nil, err
		}
		if p.Type() == unix.S_IFCHR || p.Type() == unix.S_IFBLK {
			if vd.Mount.Flags()&MountNoDev != 0 {
				return nil, unix.EACCES
			}
		}
		if flags&unix.O_TRUNC != 0 && p.IsRegular() {
			if err := ino.SetStat(ctx, SetStatOptions{Mask: unix.STATX_SIZE}); err != nil {
				return nil, err
			}
		}
	}
	var impl FileDescriptionImpl
	if p.IsDir() {
		impl = &dirFD{vfs: vfs, vd: vd}
	} else {
		var err error
		if impl, err = ino.Open(ctx, flags); err != nil {
			return nil, err
		}
	}
	fd := NewFileDescription(impl, flags, vd)
	fd.notifyFile(ctx, InOpen)
	return fd, nil
}

// OpenForExec opens the file at path for execve and the ELF loader: it
// must be a regular file the caller may execute on a mount without
// MS_NOEXEC (else EACCES). The description is readable whatever the read
// permission, as for the kernel's own reads of an executable.
func (vfs *VirtualFilesystem) OpenForExec(ctx context.Context, root, cwd VirtualDentry, path string) (*FileDescription, error) {
	vd, err := vfs.GetDentryAt(ctx, &PathOperation{Root: root, Start: cwd, Path: path, FollowFinalSymlink: true})
	if err != nil {
		return nil, err
	}
	p := vd.Dentry.inode.Perms()
	if !p.IsRegular() || vd.Mount.NoExec() {
		return nil, unix.EACCES
	}
	if err := GenericCheckPermissions(auth.CredentialsFromContext(ctx), MayExec, p); err != nil {
		return nil, err
	}
	impl, err := vd.Dentry.inode.Open(ctx, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	return NewFileDescription(impl, unix.O_RDONLY, vd), nil
}

// createAt resolves pop's parent under the write lock and calls create
// for a new entry, with Linux's filename_create checks. wantDir allows a
// trailing slash.
func (vfs *VirtualFilesystem) createAt(ctx context.Context, pop *PathOperation, wantDir bool, create func(r *resolver, parent VirtualDentry, name string) error) error {
	vfs.renameMu.Lock()
	defer vfs.renameMu.Unlock()
	r, err := vfs.newResolver(ctx, pop)
	if err != nil {
		return err
	}
	if err := r.walkToParent(); err != nil {
		return err
	}
	name, ok := r.final()
	if !ok || isDotName(name) {
		return unix.EEXIST
	}
	if err := r.mayLookup(); err != nil {
		return err
	}
	_, err = r.walkOne(name)
	switch {
	case err == nil:
		return unix.EEXIST
	case err != unix.ENOENT:
		return err
	case r.mustBeDir && !wantDir:
		return unix.ENOENT
	}
	parent := r.cur
	if parent.Mount.ReadOnly() {
		return unix.EROFS
	}
	if err := mayCreate(r.creds, parent); err != nil {
		return err
	}
	return create(r, parent, name)
}

// MkdirAt is mkdir(2); mode has the umask applied.
func (vfs *VirtualFilesystem) MkdirAt(ctx context.Context, pop *PathOperation, mode uint32) error {
	return vfs.createAt(ctx, pop, true, func(r *resolver, parent VirtualDentry, name string) error {
		co := createOptions(r.creds, parent.Dentry.inode.Perms(), unix.S_IFDIR|mode&07777)
		ino, err := parent.Dentry.inode.Mkdir(ctx, name, co)
		if err == nil {
			insertChildLocked(ctx, parent.Dentry, name, ino)
			inotifyChild(ctx, parent.Dentry, InCreate, 0, name, true)
		}
		return err
	})
}

// MknodAt is mknod(2) for regular files, FIFOs, sockets and devices;
// mode includes the type and has the umask applied.
func (vfs *VirtualFilesystem) MknodAt(ctx context.Context, pop *PathOperation, mode uint32, rdev uint64) error {
	switch mode & unix.S_IFMT {
	case 0:
		mode |= unix.S_IFREG
	case unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK:
	case unix.S_IFCHR, unix.S_IFBLK:
		if !auth.CredentialsFromContext(ctx).HasCapability(auth.CAP_MKNOD) {
			return unix.EPERM
		}
	case unix.S_IFDIR:
		return unix.EPERM
	default:
		return unix.EINVAL
	}
	return vfs.createAt(ctx, pop, false, func(r *resolver, parent VirtualDentry, name string) error {
		co := createOptions(r.creds, parent.Dentry.inode.Perms(), mode&(unix.S_IFMT|07777))
		co.Rdev = rdev
		ino, err := parent.Dentry.inode.Create(ctx, name, co)
		if err == nil {
			insertChildLocked(ctx, parent.Dentry, name, ino)
			inotifyChild(ctx, parent.Dentry, InCreate, 0, name, false)
		}
		return err
	})
}

// SymlinkAt is symlink(2).
func (vfs *VirtualFilesystem) SymlinkAt(ctx context.Context, pop *PathOperation, target string) error {
	if target == "" {
		return unix.ENOENT
	}
	if len(target) >= PathMax {
		return unix.ENAMETOOLONG
	}
	return vfs.createAt(ctx, pop, false, func(r *resolver, parent VirtualDentry, name string) error {
		co := createOptions(r.creds, parent.Dentry.inode.Perms(), unix.S_IFLNK|0777)
		ino, err := parent.Dentry.inode.Symlink(ctx, name, target, co)
		if err == nil {
			insertChildLocked(ctx, parent.Dentry, name, ino)
			inotifyChild(ctx, parent.Dentry, InCreate, 0, name, false)
		}
		return err
	})
}

// LinkAt is link(2): a new name newpop for the file at oldpop (whose
// FollowFinalSymlink says whether AT_SYMLINK_FOLLOW was given).
func (vfs *VirtualFilesystem) LinkAt(ctx context.Context, oldpop, newpop *PathOperation) error {
	old, err := vfs.GetDentryAt(ctx, oldpop)
	if err != nil {
		return err
	}
	return vfs.LinkDentryAt(ctx, old, newpop)
}

// LinkDentryAt links the file at old as newpop (linkat with AT_EMPTY_PATH).
func (vfs *VirtualFilesystem) LinkDentryAt(ctx context.Context, old VirtualDentry, newpop *PathOperation) error {
	if old.Dentry.isDir() {
		return unix.EPERM
	}
	return vfs.createAt(ctx, newpop, false, func(r *resolver, parent VirtualDentry, name string) error {
		if parent.Mount != old.Mount {
			return unix.EXDEV
		}
		if old.Dentry.dead {
			// Linked elsewhere, or an O_TMPFILE file made without
			// O_EXCL: either may get a name.
			st, err := old.Dentry.inode.Stat(ctx)
			if err != nil {
				return err
			}
			if st.Nlink == 0 && !old.Dentry.linkable {
				return unix.ENOENT
			}
		}
		if err := mayLink(ctx, old.Dentry.inode); err != nil {
			return err
		}
		if err := parent.Dentry.inode.Link(ctx, name, old.Dentry.inode); err != nil {
			return err
		}
		old.Dentry.linkable = false
		insertChildLocked(ctx, parent.Dentry, name, old.Dentry.inode)
		inotifyDentry(ctx, old.Dentry, InAttrib, 0, false)
		inotifyChild(ctx, parent.Dentry, InCreate, 0, name, false)
		return nil
	})
}

// removeAt resolves pop's parent and child for unlink and rmdir.
func (vfs *VirtualFilesystem) removeAt(ctx context.Context, pop *PathOperation, dir bool) error {
	vfs.renameMu.Lock()
	defer vfs.renameMu.Unlock()
	r, err := vfs.newResolver(ctx, pop)
	if err != nil {
		return err
	}
	if err := r.walkToParent(); err != nil {
		return err
	}
	name, ok := r.final()
	if !ok {
		if dir {
			return unix.EBUSY
		}
		return unix.EISDIR
	}
	if isDotName(name) {
		switch {
		case !dir:
			return unix.EISDIR
		case name == ".":
			return unix.EINVAL
		default:
			return unix.ENOTEMPTY
		}
	}
	if err := r.mayLookup(); err != nil {
		return err
	}
	parent := r.cur
	if parent.Mount.ReadOnly() {
		return unix.EROFS
	}
	child, err := vfs.lookupChildLocked(ctx, parent.Dentry, name)
	if err != nil {
		return err
	}
	if !dir && r.mustBeDir {
		if child.isDir() {
			return unix.EISDIR
		}
		return unix.ENOTDIR
	}
	if err := mayDelete(r.creds, parent, child, dir); err != nil {
		return err
	}
	if vfs.isMountpoint(child) {
		return unix.EBUSY
	}
	if inotifyWatches.Load() != 0 {
		child.fileKey(ctx) // known before the file goes
	}
	if dir {
		err = parent.Dentry.inode.Rmdir(ctx, name, child.inode)
	} else {
		err = parent.Dentry.inode.Unlink(ctx, name, child.inode)
	}
	if err != nil {
		return err
	}
	if inotifyWatches.Load() != 0 {
		if !dir {
			inotifyDentry(ctx, child, InAttrib, 0, false)
		}
		if dir || nlinkGone(ctx, child) {
			inotifyGone(ctx, child)
		}
		inotifyChild(ctx, parent.Dentry, InDelete, 0, name, dir)
	}
	removeChildLocked(ctx, parent.Dentry, child)
	return nil
}

// UnlinkAt is unlink(2).
func (vfs *VirtualFilesystem) UnlinkAt(ctx context.Context, pop *PathOperation) error {
	return vfs.removeAt(ctx, pop, false)
}

// RmdirAt is rmdir(2).
func (vfs *VirtualFilesystem) RmdirAt(ctx context.Context, pop *PathOperation) error {
	return vfs.removeAt(ctx, pop, true)
}

// isAncestor reports whether a is d or an ancestor of d in one dentry
// tree. renameMu is held.
func isAncestor(a, d *Dentry) bool {
	for ; d != nil; d = d.parent {
		if d == a {
			return true
		}
	}
	return false
}

// InodeExchanger is implemented by directories of filesystems that
// support RENAME_EXCHANGE.
type InodeExchanger interface {
	// Exchange atomically swaps child, called oldName in this directory,
	// with other, called newName in newParent (same filesystem). The VFS
	// has made the permission and ancestry checks.
	Exchange(ctx context.Context, oldName string, child Inode, newParent Inode, newName string, other Inode) error
}

// RenameAt is renameat2(2) with flags 0, RENAME_NOREPLACE or
// RENAME_EXCHANGE (RENAME_WHITEOUT gives EINVAL: no filesystem here
// makes whiteouts on request).
func (vfs *VirtualFilesystem) RenameAt(ctx context.Context, oldpop, newpop *PathOperation, flags uint32) error {
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 ||
		flags == unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE {
		return unix.EINVAL
	}
	exchange := flags&unix.RENAME_EXCHANGE != 0
	vfs.renameMu.Lock()
	defer vfs.renameMu.Unlock()
	or, err := vfs.newResolver(ctx, oldpop)
	if err != nil {
		return err
	}
	if err := or.walkToParent(); err != nil {
		return err
	}
	nr, err := vfs.newResolver(ctx, newpop)
	if err != nil {
		return err
	}
	if err := nr.walkToParent(); err != nil {
		return err
	}
	oldName, oldOK := or.final()
	newName, newOK := nr.final()
	if !oldOK || isDotName(oldName) {
		return unix.EBUSY
	}
	if !newOK || isDotName(newName) {
		if flags&unix.RENAME_NOREPLACE != 0 {
			return unix.EEXIST
		}
		return unix.EBUSY
	}
	oldParent, newParent := or.cur, nr.cur
	if err := or.mayLookup(); err != nil {
		return err
	}
	if err := nr.mayLookup(); err != nil {
		return err
	}
	if oldParent.Mount != newParent.Mount {
		return unix.EXDEV
	}
	if oldParent.Mount.ReadOnly() {
		return unix.EROFS
	}
	creds := or.creds
	src, err := vfs.lookupChildLocked(ctx, oldParent.Dentry, oldName)
	if err != nil {
		return err
	}
	srcDir := src.isDir()
	dst, err := vfs.lookupChildLocked(ctx, newParent.Dentry, newName)
	switch {
	case err == unix.ENOENT:
		if exchange {
			return unix.ENOENT
		}
		dst = nil
	case err != nil:
		return err
	case flags&unix.RENAME_NOREPLACE != 0:
		return unix.EEXIST
	}
	if exchange {
		return vfs.exchangeLocked(ctx, or, nr, src, dst)
	}
	if !srcDir && (or.mustBeDir || nr.mustBeDir) {
		return unix.ENOTDIR
	}
	// A directory may not move below itself; nor may the target be an
	// ancestor of the source (it would not be empty).
	if srcDir && isAncestor(src, newParent.Dentry) {
		return unix.EINVAL
	}
	if dst != nil && isAncestor(dst, oldParent.Dentry) {
		return unix.ENOTEMPTY
	}
	if err := mayDelete(creds, oldParent, src, srcDir); err != nil {
		return err
	}
	if dst != nil {
		if dst.inode == src.inode {
			return nil // hard links of one file: Linux does nothing
		}
		if err := mayDelete(creds, newParent, dst, srcDir); err != nil {
			return err
		}
	} else if err := mayCreate(creds, newParent); err != nil {
		return err
	}
	if srcDir && oldParent.Dentry != newParent.Dentry {
		// ".." of the moved directory changes.
		if err := GenericCheckPermissions(creds, MayWrite, src.inode.Perms()); err != nil {
			return err
		}
	}
	if vfs.isMountpoint(src) || (dst != nil && vfs.isMountpoint(dst)) {
		return unix.EBUSY
	}
	var replaced Inode
	if dst != nil {
		replaced = dst.inode
	}
	if inotifyWatches.Load() != 0 && dst != nil {
		dst.fileKey(ctx)
	}
	if err := oldParent.Dentry.inode.Rename(ctx, oldName, src.inode, newParent.Dentry.inode, newName, replaced); err != nil {
		return err
	}
	if dst != nil {
		removeChildLocked(ctx, newParent.Dentry, dst)
	}
	moveDentryLocked(src, newParent.Dentry, newName)
	if inotifyWatches.Load() != 0 {
		inotifyMoved(ctx, oldParent.Dentry, oldName, newParent.Dentry, newName, src)
		if dst != nil {
			inotifyDentry(ctx, dst, InAttrib, 0, false)
			if nlinkGone(ctx, dst) {
				inotifyGone(ctx, dst)
			}
		}
	}
	return nil
}

// inotifyMoved reports a rename of d from oldName in oldDir to newName in
// newDir.
func inotifyMoved(ctx context.Context, oldDir *Dentry, oldName string, newDir *Dentry, newName string, d *Dentry) {
	cookie := newCookie()
	isDir := d.isDir()
	inotifyChild(ctx, oldDir, InMovedFrom, cookie, oldName, isDir)
	inotifyChild(ctx, newDir, InMovedTo, cookie, newName, isDir)
	inotifyDentry(ctx, d, InMoveSelf, 0, false)
}

// moveDentryLocked gives d the name newName in newParent's cache.
// renameMu is held for writing.
func moveDentryLocked(d, newParent *Dentry, newName string) {
	old := d.parent
	old.mu.Lock()
	if old.children[d.name] == d {
		delete(old.children, d.name)
	}
	delete(old.evicted, d.name)
	if len(old.children) == 0 {
		old.fs.lruAdd(old)
	}
	old.mu.Unlock()
	d.parent, d.name = newParent, newName
	newParent.mu.Lock()
	newParent.addChildLocked(d)
	newParent.mu.Unlock()
}

// exchangeLocked is RENAME_EXCHANGE of src (the last component of or)
// and dst (of nr), with Linux's checks. renameMu is held for writing.
func (vfs *VirtualFilesystem) exchangeLocked(ctx context.Context, or, nr *resolver, src, dst *Dentry) error {
	oldParent, newParent := or.cur, nr.cur
	srcDir, dstDir := src.isDir(), dst.isDir()
	if (or.mustBeDir && !srcDir) || (nr.mustBeDir && !dstDir) {
		return unix.ENOTDIR
	}
	// Neither may be an ancestor of the other's new place.
	if isAncestor(src, newParent.Dentry) || isAncestor(dst, oldParent.Dentry) {
		return unix.EINVAL
	}
	creds := or.creds
	if err := mayDelete(creds, oldParent, src, srcDir); err != nil {
		return err
	}
	if err := mayDelete(creds, newParent, dst, dstDir); err != nil {
		return err
	}
	if src.inode == dst.inode {
		return nil
	}
	if oldParent.Dentry != newParent.Dentry {
		for _, d := range []*Dentry{src, dst} {
			if d.isDir() {
				if err := GenericCheckPermissions(creds, MayWrite, d.inode.Perms()); err != nil {
					return err
				}
			}
		}
	}
	if vfs.isMountpoint(src) || vfs.isMountpoint(dst) {
		return unix.EBUSY
	}
	ex, ok := oldParent.Dentry.inode.(InodeExchanger)
	if !ok {
		return unix.EINVAL
	}
	oldName, newName := src.name, dst.name
	if err := ex.Exchange(ctx, oldName, src.inode, newParent.Dentry.inode, newName, dst.inode); err != nil {
		return err
	}
	// Swap the two in the cache: take both out, then put each back.
	for _, d := range []*Dentry{src, dst} {
		p := d.parent
		p.mu.Lock()
		if p.children[d.name] == d {
			delete(p.children, d.name)
		}
		delete(p.evicted, d.name)
		p.mu.Unlock()
	}
	src.parent, src.name, dst.parent, dst.name = newParent.Dentry, newName, oldParent.Dentry, oldName
	for _, d := range []*Dentry{src, dst} {
		d.parent.mu.Lock()
		d.parent.addChildLocked(d)
		d.parent.mu.Unlock()
	}
	if inotifyWatches.Load() != 0 {
		inotifyMoved(ctx, oldParent.Dentry, oldName, newParent.Dentry, newName, src)
		inotifyMoved(ctx, newParent.Dentry, newName, oldParent.Dentry, oldName, dst)
	}
	return nil
}

// ReadlinkAt is readlink(2): EINVAL unless pop names a symlink.
func (vfs *VirtualFilesystem) ReadlinkAt(ctx context.Context, pop *PathOperation) (string, error) {
	p := *pop
	p.FollowFinalSymlink = false
	vd, err := vfs.GetDentryAt(ctx, &p)
	if err != nil {
		return "", err
	}
	return vd.Dentry.inode.Readlink(ctx)
}

// StatAt is stat(2)/lstat(2)/statx(2).
func (vfs *VirtualFilesystem) StatAt(ctx context.Context, pop *PathOperation) (Statx, error) {
	vd, err := vfs.GetDentryAt(ctx, pop)
	if err != nil {
		return Statx{}, err
	}
	return vfs.StatDentry(ctx, vd)
}

// StatDentry returns the attributes of the file at vd.
func (vfs *VirtualFilesystem) StatDentry(ctx context.Context, vd VirtualDentry) (Statx, error) {
	st, err := vd.Dentry.inode.Stat(ctx)
	if err == nil {
		vd.Mount.fs.fillDev(&st)
	}
	return st, err
}

// SetStatAt is chmod/chown/truncate/utimensat on a path.
func (vfs *VirtualFilesystem) SetStatAt(ctx context.Context, pop *PathOperation, opts SetStatOptions) error {
	vd, err := vfs.GetDentryAt(ctx, pop)
	if err != nil {
		return err
	}
	return vfs.SetStatDentry(ctx, vd, opts)
}

// SetStatDentry changes attributes of the file at vd after Linux's
// checks; a size change needs write permission (truncate(2)).
func (vfs *VirtualFilesystem) SetStatDentry(ctx context.Context, vd VirtualDentry, opts SetStatOptions) error {
	if vd.Mount.ReadOnly() {
		return unix.EROFS
	}
	ino := vd.Dentry.inode
	st, err := ino.Stat(ctx)
	if err != nil {
		return err
	}
	creds := auth.CredentialsFromContext(ctx)
	if opts.Mask&unix.STATX_SIZE != 0 {
		p := ino.Perms()
		if p.IsDir() {
			return unix.EISDIR
		}
		if !p.IsRegular() {
			return unix.EINVAL
		}
		if err := GenericCheckPermissions(creds, MayWrite, p); err != nil {
			return err
		}
	}
	if opts.TouchNow && opts.Mask&^(unix.STATX_ATIME|unix.STATX_MTIME) == 0 && !CanActAsOwner(creds, auth.KUID(st.UID)) {
		// utimensat(NULL): write permission is enough.
		if err := GenericCheckPermissions(creds, MayWrite, ino.Perms()); err != nil {
			return err
		}
		if err := ino.SetStat(ctx, opts); err != nil {
			return err
		}
		vfs.notifySetStat(ctx, vd.Dentry, opts.Mask)
		return nil
	}
	if err := CheckSetStat(ctx, opts, st); err != nil {
		return err
	}
	if err := ino.SetStat(ctx, FixSetStatForChmodChown(ctx, opts, st)); err != nil {
		return err
	}
	vfs.notifySetStat(ctx, vd.Dentry, opts.Mask)
	return nil
}

// notifySetStat reports an attribute change of d's file: IN_MODIFY for a
// size change, IN_ATTRIB for the rest.
func (vfs *VirtualFilesystem) notifySetStat(ctx context.Context, d *Dentry, mask uint32) {
	if inotifyWatches.Load() == 0 {
		return
	}
	vfs.renameMu.RLock()
	defer vfs.renameMu.RUnlock()
	if mask&unix.STATX_SIZE != 0 {
		inotifyDentry(ctx, d, InModify, 0, true)
	}
	if mask&^unix.STATX_SIZE != 0 {
		inotifyDentry(ctx, d, InAttrib, 0, true)
	}
}

// AccessAt is access(2)/faccessat(2): ctx carries the credentials to
// check with (the real IDs unless AT_EACCESS).
func (vfs *VirtualFilesystem) AccessAt(ctx context.Context, pop *PathOperation, ats AccessTypes) error {
	vd, err := vfs.GetDentryAt(ctx, pop)
	if err != nil {
		return err
	}
	return CheckAccess(ctx, vd, ats)
}

// CheckAccess checks ats on the file at vd, including EROFS for writes
// to files of a read-only mount.
func CheckAccess(ctx context.Context, vd VirtualDentry, ats AccessTypes) error {
	p := vd.Dentry.inode.Perms()
	if ats&MayWrite != 0 && vd.Mount.ReadOnly() && (p.IsRegular() || p.IsDir() || p.IsSymlink()) {
		return unix.EROFS
	}
	return GenericCheckPermissions(auth.CredentialsFromContext(ctx), ats, p)
}

// StatFSAt is statfs(2).
func (vfs *VirtualFilesystem) StatFSAt(ctx context.Context, pop *PathOperation) (Statfs, error) {
	vd, err := vfs.GetDentryAt(ctx, pop)
	if err != nil {
		return Statfs{}, err
	}
	return vd.Mount.fs.impl.StatFS(ctx)
}

// SyncAll is sync(2): every mounted filesystem is flushed.
func (vfs *VirtualFilesystem) SyncAll(ctx context.Context) error {
	seen := map[*Filesystem]bool{}
	var first error
	for _, m := range vfs.Mounts() {
		if seen[m.fs] {
			continue
		}
		seen[m.fs] = true
		if err := m.fs.impl.Sync(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Now returns the current time as a StatxTimestamp (for UTIME_NOW and
// filesystems' timestamps).
func Now() StatxTimestamp {
	t := time.Now()
	return StatxTimestamp{Sec: t.Unix(), Nsec: uint32(t.Nanosecond())}
}
