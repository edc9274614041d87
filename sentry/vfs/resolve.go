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

// resolver is the one path walker. It consumes the components of rest
// one at a time from cur, splicing in the targets of the symlinks it
// follows. Components are found as the walk reaches them, so that a walk
// allocates nothing but what it caches.
type resolver struct {
	vfs   *VirtualFilesystem
	ctx   context.Context
	creds *auth.Credentials
	root  VirtualDentry
	cur   VirtualDentry
	// rest is what is left of the path, components separated by one or
	// more slashes; every component was checked against NAME_MAX.
	rest string
	// mustBeDir is set when the path (or the target of a final symlink)
	// ends in '/': the final file must be a directory.
	mustBeDir bool
	symlinks  int
	// jumped is set when a magic link moved cur (see MagicLink).
	jumped bool
	// flags are openat2's RESOLVE_* flags.
	flags uint64
}

// checkPath refuses a path with a component longer than NAME_MAX (before
// anything is walked, as Linux's fixed-length component check) and says
// whether it has components and whether it ends in '/'.
func checkPath(p string) (hasComps, trailingSlash bool, err error) {
	n := 0
	for k := 0; k < len(p); k++ {
		if p[k] == '/' {
			n = 0
			continue
		}
		hasComps = true
		if n++; n > NameMax {
			return false, false, unix.ENAMETOOLONG
		}
	}
	return hasComps, hasComps && p[len(p)-1] == '/', nil
}

// next returns the first component left, "" if none, and whether another
// follows it; it does not consume it.
func (r *resolver) next() (name string, more bool) {
	p := r.rest
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	r.rest = p
	i := strings.IndexByte(p, '/')
	if i < 0 {
		return p, false
	}
	for k := i; k < len(p); k++ {
		if p[k] != '/' {
			return p[:i], true
		}
	}
	return p[:i], false
}

// consume drops name, the component next returned.
func (r *resolver) consume(name string) { r.rest = r.rest[len(name):] }

// final returns the one component left after walkToParent, if any.
func (r *resolver) final() (string, bool) {
	name, _ := r.next()
	return name, name != ""
}

func (vfs *VirtualFilesystem) newResolver(ctx context.Context, pop *PathOperation) (*resolver, error) {
	r := new(resolver)
	if err := r.init(vfs, ctx, pop); err != nil {
		return nil, err
	}
	return r, nil
}

// init readies r to resolve pop. Hot paths keep r on their stack.
func (r *resolver) init(vfs *VirtualFilesystem, ctx context.Context, pop *PathOperation) error {
	if pop.Path == "" {
		return unix.ENOENT
	}
	if len(pop.Path) >= PathMax {
		return unix.ENAMETOOLONG
	}
	_, slash, err := checkPath(pop.Path)
	if err != nil {
		return err
	}
	*r = resolver{
		vfs:       vfs,
		ctx:       ctx,
		creds:     auth.CredentialsFromContext(ctx),
		root:      pop.Root,
		cur:       pop.Start,
		rest:      pop.Path,
		mustBeDir: slash,
		flags:     pop.Resolve,
	}
	if r.flags&(ResolveBeneath|ResolveInRoot) != 0 {
		// The starting directory is the root of the walk.
		r.root = pop.Start
	}
	if pop.Path[0] == '/' {
		if r.flags&ResolveBeneath != 0 {
			return unix.EXDEV
		}
		// An absolute path may start on another mount than the
		// directory even under RESOLVE_NO_XDEV.
		r.cur = r.root
	}
	if !r.cur.Ok() || !r.root.Ok() {
		return unix.ENOENT
	}
	return nil
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
	_, slash, err := checkPath(target)
	if err != nil {
		return err
	}
	if rest, _ := r.final(); rest == "" {
		if slash {
			r.mustBeDir = true
		}
		r.rest = target
	} else {
		r.rest = target + "/" + r.rest
	}
	if target[0] == '/' {
		if r.flags&ResolveBeneath != 0 {
			return unix.EXDEV
		}
		return r.moveTo(r.root)
	}
	return nil
}

// walkToParent walks every component but the last, following symlinks;
// afterwards cur is the parent and rest holds at most one component.
func (r *resolver) walkToParent() error {
	for {
		name, more := r.next()
		if !more {
			return nil
		}
		if err := r.mayLookup(); err != nil {
			return err
		}
		r.consume(name)
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
}

// walkFinal resolves the whole path.
func (r *resolver) walkFinal(followFinal bool) (VirtualDentry, error) {
	for {
		if err := r.walkToParent(); err != nil {
			return VirtualDentry{}, err
		}
		name, ok := r.final()
		if !ok {
			// The path was all slashes, or a symlink to such a path.
			if !r.cur.Dentry.isDir() && r.mustBeDir {
				return VirtualDentry{}, unix.ENOTDIR
			}
			return r.cur, nil
		}
		if err := r.mayLookup(); err != nil {
			return VirtualDentry{}, err
		}
		r.rest = ""
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
	var r resolver
	if err := r.init(vfs, ctx, pop); err != nil {
		return VirtualDentry{}, err
	}
	return r.walkFinal(pop.FollowFinalSymlink)
}
