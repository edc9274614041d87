package vfs

import (
	"context"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
)

// PathOperation names a file: Path resolved from Start (a relative path)
// or Root (an absolute one); ".." never leaves Root.
type PathOperation struct {
	Root  VirtualDentry
	Start VirtualDentry
	Path  string
	// FollowFinalSymlink follows a symlink in the last component
	// (stat(2) as opposed to lstat(2)). A trailing slash always follows.
	FollowFinalSymlink bool
	// Resolve holds openat2's RESOLVE_* flags.
	Resolve uint64
}

// openat2 resolution flags (include/uapi/linux/openat2.h).
const (
	ResolveNoXdev       = 0x01
	ResolveNoMagicLinks = 0x02
	ResolveNoSymlinks   = 0x04
	ResolveBeneath      = 0x08
	ResolveInRoot       = 0x10
	ResolveCached       = 0x20
	ResolveAll          = 0x3f
)

// resolver is the one path walker. It consumes comps one at a time from
// cur, splicing in the targets of the symlinks it follows.
type resolver struct {
	vfs   *VirtualFilesystem
	ctx   context.Context
	creds *auth.Credentials
	root  VirtualDentry
	cur   VirtualDentry
	comps []string
	// mustBeDir is set when the path (or the target of a final symlink)
	// ends in '/': the final file must be a directory.
	mustBeDir bool
	symlinks  int
	// jumped is set when a magic link moved cur (see MagicLink).
	jumped bool
	// flags are openat2's RESOLVE_* flags.
	flags uint64
}

func splitPath(p string) (comps []string, trailingSlash bool, err error) {
	for _, c := range strings.Split(p, "/") {
		if c == "" {
			continue
		}
		if len(c) > NameMax {
			return nil, false, unix.ENAMETOOLONG
		}
		comps = append(comps, c)
	}
	return comps, len(comps) > 0 && strings.HasSuffix(p, "/"), nil
}

func (vfs *VirtualFilesystem) newResolver(ctx context.Context, pop *PathOperation) (*resolver, error) {
	if pop.Path == "" {
		return nil, unix.ENOENT
	}
	if len(pop.Path) >= PathMax {
		return nil, unix.ENAMETOOLONG
	}
	comps, slash, err := splitPath(pop.Path)
	if err != nil {
		return nil, err
	}
	r := &resolver{
		vfs:       vfs,
		ctx:       ctx,
		creds:     auth.CredentialsFromContext(ctx),
		root:      pop.Root,
		cur:       pop.Start,
		comps:     comps,
		mustBeDir: slash,
		flags:     pop.Resolve,
	}
	if r.flags&(ResolveBeneath|ResolveInRoot) != 0 {
		// The starting directory is the root of the walk.
		r.root = pop.Start
	}
	if pop.Path[0] == '/' {
		if r.flags&ResolveBeneath != 0 {
			return nil, unix.EXDEV
		}
		// An absolute path may start on another mount than the
		// directory even under RESOLVE_NO_XDEV.
		r.cur = r.root
	}
	if !r.cur.Ok() || !r.root.Ok() {
		return nil, unix.ENOENT
	}
	return r, nil
}

// moveTo moves cur to vd, refusing a change of mount under
// RESOLVE_NO_XDEV.
func (r *resolver) moveTo(vd VirtualDentry) error {
	if r.flags&ResolveNoXdev != 0 && vd.Mount != r.cur.Mount {
		return unix.EXDEV
	}
	r.cur = vd
	return nil
}

// mayLookup checks that cur is a directory the caller may search.
func (r *resolver) mayLookup() error {
	p := r.cur.Dentry.inode.Perms()
	if !p.IsDir() {
		return unix.ENOTDIR
	}
	return GenericCheckPermissions(r.creds, MayExec, p)
}

// walkOne looks up name under cur (a directory the caller may search)
// without moving cur, crossing into whatever is mounted at the result.
func (r *resolver) walkOne(name string) (VirtualDentry, error) {
	switch name {
	case ".":
		return r.cur, nil
	case "..":
		if r.flags&ResolveBeneath != 0 && r.cur == r.root {
			return VirtualDentry{}, unix.EXDEV
		}
		vd := r.dotdot()
		if r.flags&ResolveNoXdev != 0 && vd.Mount != r.cur.Mount {
			return VirtualDentry{}, unix.EXDEV
		}
		return vd, nil
	}
	if r.cur.Dentry.dead {
		return VirtualDentry{}, unix.ENOENT
	}
	var child *Dentry
	var err error
	if r.flags&ResolveCached != 0 {
		child, err = r.vfs.cachedChildLocked(r.cur.Dentry, name)
	} else {
		child, err = r.vfs.lookupChildLocked(r.ctx, r.cur.Dentry, name)
	}
	if err != nil {
		return VirtualDentry{}, err
	}
	vd := VirtualDentry{r.cur.Mount, child}
	if m := r.vfs.mountedAt(vd.Mount, vd.Dentry); m != nil {
		if r.flags&ResolveNoXdev != 0 {
			return VirtualDentry{}, unix.EXDEV
		}
		vd = m.Root()
	}
	return vd, nil
}

// dotdot returns the parent of cur: the root stays put, and the root of a
// mount goes to its mount point's parent.
func (r *resolver) dotdot() VirtualDentry {
	vd := r.cur
	for {
		if vd == r.root {
			return vd
		}
		if vd.Dentry != vd.Mount.root {
			break
		}
		p, ok := r.vfs.mountParent(vd.Mount)
		if !ok {
			return vd
		}
		vd = p
	}
	if vd.Dentry.parent == nil {
		return vd
	}
	vd.Dentry = vd.Dentry.parent
	if m := r.vfs.mountedAt(vd.Mount, vd.Dentry); m != nil {
		vd = m.Root()
	}
	return vd
}

// follow splices the target of the symlink link (a child of cur) in front
// of the remaining components.
func (r *resolver) follow(link VirtualDentry) error {
	r.symlinks++
	if r.symlinks > MaxSymlinks || r.flags&ResolveNoSymlinks != 0 {
		return unix.ELOOP
	}
	if ml, ok := link.Dentry.inode.(MagicLink); ok {
		// openat2's restrictions on magic links, as nd_jump_link.
		if r.flags&ResolveNoMagicLinks != 0 {
			return unix.ELOOP
		}
		if r.flags&(ResolveBeneath|ResolveInRoot) != 0 {
			return unix.EXDEV
		}
		from := r.cur.Mount
		if err := r.jump(ml, link); err != nil {
			return err
		}
		if r.flags&ResolveNoXdev != 0 && r.cur.Mount != from {
			return unix.EXDEV
		}
		return nil
	}
	target, err := link.Dentry.inode.Readlink(r.ctx)
	if err != nil {
		return err
	}
	if target == "" {
		return unix.ENOENT
	}
	comps, slash, err := splitPath(target)
	if err != nil {
		return err
	}
	if len(r.comps) == 0 && slash {
		r.mustBeDir = true
	}
	r.comps = append(comps, r.comps...)
	if target[0] == '/' {
		if r.flags&ResolveBeneath != 0 {
			return unix.EXDEV
		}
		return r.moveTo(r.root)
	}
	return nil
}

// walkToParent walks every component but the last, following symlinks;
// afterwards cur is the parent and comps holds at most one name.
func (r *resolver) walkToParent() error {
	for len(r.comps) > 1 {
		if err := r.mayLookup(); err != nil {
			return err
		}
		name := r.comps[0]
		r.comps = r.comps[1:]
		next, err := r.walkOne(name)
		if err != nil {
			return err
		}
		if next.Dentry.isSymlink() {
			if err := r.follow(next); err != nil {
				return err
			}
			continue
		}
		r.cur = next
	}
	return nil
}

// walkFinal resolves the whole path.
func (r *resolver) walkFinal(followFinal bool) (VirtualDentry, error) {
	for {
		if err := r.walkToParent(); err != nil {
			return VirtualDentry{}, err
		}
		if len(r.comps) == 0 {
			// The path was all slashes, or a symlink to such a path.
			if !r.cur.Dentry.isDir() && r.mustBeDir {
				return VirtualDentry{}, unix.ENOTDIR
			}
			return r.cur, nil
		}
		if err := r.mayLookup(); err != nil {
			return VirtualDentry{}, err
		}
		name := r.comps[0]
		r.comps = nil
		next, err := r.walkOne(name)
		if err != nil {
			return VirtualDentry{}, err
		}
		if next.Dentry.isSymlink() && (followFinal || r.mustBeDir) {
			if err := r.follow(next); err != nil {
				return VirtualDentry{}, err
			}
			continue
		}
		if r.mustBeDir && !next.Dentry.isDir() {
			return VirtualDentry{}, unix.ENOTDIR
		}
		return next, nil
	}
}

// GetDentryAt resolves pop (stat, chdir, access, the ELF loader).
func (vfs *VirtualFilesystem) GetDentryAt(ctx context.Context, pop *PathOperation) (VirtualDentry, error) {
	vfs.renameMu.RLock()
	defer vfs.renameMu.RUnlock()
	r, err := vfs.newResolver(ctx, pop)
	if err != nil {
		return VirtualDentry{}, err
	}
	return r.walkFinal(pop.FollowFinalSymlink)
}
