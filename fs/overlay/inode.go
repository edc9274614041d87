package overlay

import (
	"context"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func kuid(u uint32) auth.KUID { return auth.KUID(u) }
func kgid(g uint32) auth.KGID { return auth.KGID(g) }

// inode is the file at one path of the overlay.
type inode struct {
	fs *Filesystem

	// parent and name say where the file is, for copy-up; guarded by
	// fs.mu. The root has no parent.
	parent *inode
	name   string

	// ls is the inode's layers, replaced whole (under fs.mu) when they
	// change, so that walks read them with one load.
	ls    atomic.Pointer[layerSet]
	first layerSet // ls until the first change
}

// layerSet is what an inode is made of.
type layerSet struct {
	// upper is the file in the upper layer, nil until copied up. placed
	// is false while upper is only a copy made through another hard link
	// and not yet linked at this name.
	upper  vfs.Inode
	placed bool
	// lower is the file in the lower layer at this name, nil if none (or
	// hidden: an opaque directory's lower one is never looked up).
	lower vfs.Inode
}

// layers returns upper (if any) and lower.
func (i *inode) layers() (upper, lower vfs.Inode) {
	s := i.ls.Load()
	return s.upper, s.lower
}

// setLayers changes i's layers with change. fs.mu is held.
func (i *inode) setLayers(change func(s *layerSet)) {
	s := *i.ls.Load()
	change(&s)
	i.ls.Store(&s)
}

// cur is the layer inode that answers for the file now.
func (i *inode) cur() vfs.Inode {
	u, l := i.layers()
	if u != nil {
		return u
	}
	return l
}

// Perms implements vfs.Inode.
func (i *inode) Perms() vfs.Perms { return i.cur().Perms() }

// Stat implements vfs.Inode.
func (i *inode) Stat(ctx context.Context) (vfs.Statx, error) {
	u, l := i.layers()
	if u == nil {
		return l.Stat(ctx)
	}
	st, err := u.Stat(ctx)
	if err != nil || l == nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return st, err
	}
	return i.mergedDirStat(ctx, st, u, l)
}

// mergedDirStat completes the attributes of a merged directory, whose
// mode, owner and times are the upper one's: size and blocks are the
// lower directory's, and the link count is 2 plus its subdirectories as
// listed, so that find's leaf optimisation stays right. An upper
// directory still empty changes nothing in the listing.
func (i *inode) mergedDirStat(ctx context.Context, st vfs.Statx, u, l vfs.Inode) (vfs.Statx, error) {
	lst, err := l.Stat(ctx)
	if err != nil {
		return st, err
	}
	st.Size, st.Blocks, st.Blksize = lst.Size, lst.Blocks, lst.Blksize
	upperEnts, err := u.ReadDir(ctx)
	if err != nil {
		return st, err
	}
	if len(upperEnts) == 0 {
		st.Nlink = lst.Nlink
		return st, nil
	}
	ents, err := i.ReadDir(ctx)
	if err != nil {
		return st, err
	}
	st.Nlink = 2
	for _, e := range ents {
		if e.Type == unix.DT_DIR {
			st.Nlink++
		}
	}
	return st, nil
}

// SetStat implements vfs.Inode.
func (i *inode) SetStat(ctx context.Context, opts vfs.SetStatOptions) error {
	if err := i.fs.copyUp(ctx, i); err != nil {
		return err
	}
	u, _ := i.layers()
	return u.SetStat(ctx, opts)
}

// Readlink implements vfs.Inode.
func (i *inode) Readlink(ctx context.Context) (string, error) { return i.cur().Readlink(ctx) }

// Open implements vfs.Inode. Opening a regular file for writing copies it
// up first; anything else opens whichever layer holds the file.
func (i *inode) Open(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	if i.Perms().IsRegular() && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0) {
		if err := i.fs.copyUp(ctx, i); err != nil {
			return nil, err
		}
	}
	return i.cur().Open(ctx, flags)
}

// Evict implements vfs.InodeEvicter: the layers let go of what they hold
// (a lower gofer handle) and take it again when used.
func (i *inode) Evict(ctx context.Context) {
	u, l := i.layers()
	if u != nil {
		evict(ctx, u)
	}
	if l != nil {
		evict(ctx, l)
	}
}

// Lookup implements vfs.Inode.
func (i *inode) Lookup(ctx context.Context, name string) (vfs.Inode, error) {
	fs := i.fs
	if !i.Perms().IsDir() {
		return nil, unix.ENOTDIR
	}
	upper, lower := i.layers()
	var cu, cl vfs.Inode
	if upper != nil {
		c, err := upper.Lookup(ctx, name)
		switch {
		case err == nil:
			if fs.isWhiteout(c) {
				return nil, unix.ENOENT
			}
			cu = c
			if !c.Perms().IsDir() || fs.isOpaque(c) {
				return fs.newInode(i, name, cu, true, nil), nil
			}
		case err != unix.ENOENT:
			return nil, err
		}
		if fs.isOpaque(upper) {
			lower = nil
		}
	}
	if lower != nil {
		c, err := lower.Lookup(ctx, name)
		switch {
		case err == nil:
			if cu == nil || c.Perms().IsDir() {
				cl = c
			} else {
				evict(ctx, c)
			}
		case err != unix.ENOENT && cu == nil:
			return nil, err
		}
	}
	if cu == nil && cl == nil {
		return nil, unix.ENOENT
	}
	if cu == nil && !cl.Perms().IsDir() {
		// Another name of a lower file already copied up: use the copy.
		if c := fs.linkedCopy(ctx, cl); c != nil {
			return fs.newInode(i, name, c, false, cl), nil
		}
	}
	return fs.newInode(i, name, cu, cu != nil, cl), nil
}

func (fs *Filesystem) newInode(parent *inode, name string, upper vfs.Inode, placed bool, lower vfs.Inode) *inode {
	i := &inode{fs: fs, parent: parent, name: name, first: layerSet{upper: upper, placed: placed, lower: lower}}
	i.ls.Store(&i.first)
	return i
}

// linkedCopy returns the copy of lower file l if another of its names was
// copied up.
func (fs *Filesystem) linkedCopy(ctx context.Context, l vfs.Inode) vfs.Inode {
	fs.mu.Lock()
	empty := len(fs.links) == 0
	fs.mu.Unlock()
	if empty {
		return nil
	}
	st, err := l.Stat(ctx)
	if err != nil || st.Nlink < 2 {
		return nil
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.links[st.Ino]
}

// ReadDir implements vfs.Inode: the upper entries less whiteouts, then the
// lower entries the upper directory neither has nor hides.
func (i *inode) ReadDir(ctx context.Context) ([]vfs.Dirent, error) {
	fs := i.fs
	upper, lower := i.layers()
	if upper == nil {
		// Nothing to merge: a directory only the lower layer has.
		return lower.ReadDir(ctx)
	}
	var out []vfs.Dirent
	seen := map[string]bool{}
	if upper != nil {
		ents, err := upper.ReadDir(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			seen[e.Name] = true
			if e.Type == unix.DT_CHR {
				if c, err := upper.Lookup(ctx, e.Name); err == nil && fs.isWhiteout(c) {
					continue
				}
			}
			out = append(out, e)
		}
		if fs.isOpaque(upper) {
			lower = nil
		}
	}
	if lower != nil {
		ents, err := lower.ReadDir(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !seen[e.Name] {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

var (
	_ vfs.Inode        = (*inode)(nil)
	_ vfs.InodeEvicter = (*inode)(nil)
)
