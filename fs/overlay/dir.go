package overlay

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/vfs"
)

// prepareEntryLocked readies name in directory i for a new upper entry:
// i is copied up and a whiteout at name removed. It returns i's upper
// directory and whether name hides a lower file (so that a directory made
// there must be opaque).
func (fs *Filesystem) prepareEntryLocked(ctx context.Context, i *inode, name string) (vfs.Inode, bool, error) {
	if err := fs.copyUpLocked(ctx, i); err != nil {
		return nil, false, err
	}
	pu, _ := i.layers()
	c, err := pu.Lookup(ctx, name)
	switch {
	case err == unix.ENOENT:
		return pu, fs.lowerHasLocked(ctx, i, name), nil
	case err != nil:
		return nil, false, err
	case !fs.whiteouts[c]:
		return nil, false, unix.EEXIST
	}
	if err := pu.Unlink(ctx, name, c); err != nil {
		return nil, false, err
	}
	delete(fs.whiteouts, c)
	return pu, true, nil
}

// lowerHasLocked reports whether the lower layer has name in directory i
// and i does not hide it.
func (fs *Filesystem) lowerHasLocked(ctx context.Context, i *inode, name string) bool {
	upper, lower := i.layers()
	if lower == nil || (upper != nil && fs.opaque[upper]) {
		return false
	}
	c, err := lower.Lookup(ctx, name)
	if err != nil {
		return false
	}
	evict(ctx, c)
	return true
}

// whiteoutLocked puts a whiteout at name in i's upper directory pu.
func (fs *Filesystem) whiteoutLocked(ctx context.Context, pu vfs.Inode, name string) error {
	w, err := pu.Create(ctx, name, vfs.CreateOptions{Mode: unix.S_IFCHR})
	if err != nil {
		return err
	}
	fs.whiteouts[w] = true
	return nil
}

// create makes a new upper entry name in i with mk.
func (i *inode) create(ctx context.Context, name string, dir bool, mk func(pu vfs.Inode) (vfs.Inode, error)) (vfs.Inode, error) {
	fs := i.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	pu, hides, err := fs.prepareEntryLocked(ctx, i, name)
	if err != nil {
		return nil, err
	}
	c, err := mk(pu)
	if err != nil {
		if hides {
			fs.whiteoutLocked(ctx, pu, name)
		}
		return nil, err
	}
	if dir && hides {
		fs.opaque[c] = true
	}
	return fs.newInode(i, name, c, true, nil), nil
}

// Create implements vfs.Inode.
func (i *inode) Create(ctx context.Context, name string, opts vfs.CreateOptions) (vfs.Inode, error) {
	return i.create(ctx, name, false, func(pu vfs.Inode) (vfs.Inode, error) { return pu.Create(ctx, name, opts) })
}

// Mkdir implements vfs.Inode.
func (i *inode) Mkdir(ctx context.Context, name string, opts vfs.CreateOptions) (vfs.Inode, error) {
	return i.create(ctx, name, true, func(pu vfs.Inode) (vfs.Inode, error) { return pu.Mkdir(ctx, name, opts) })
}

// Symlink implements vfs.Inode.
func (i *inode) Symlink(ctx context.Context, name, target string, opts vfs.CreateOptions) (vfs.Inode, error) {
	return i.create(ctx, name, false, func(pu vfs.Inode) (vfs.Inode, error) { return pu.Symlink(ctx, name, target, opts) })
}

// Link implements vfs.Inode: the target is copied up and linked, so the
// two names stay one file.
func (i *inode) Link(ctx context.Context, name string, target vfs.Inode) error {
	t, ok := target.(*inode)
	if !ok || t.fs != i.fs {
		return unix.EXDEV
	}
	fs := i.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.copyUpLocked(ctx, t); err != nil {
		return err
	}
	pu, hides, err := fs.prepareEntryLocked(ctx, i, name)
	if err != nil {
		return err
	}
	tu, _ := t.layers()
	if err := pu.Link(ctx, name, tu); err != nil {
		if hides {
			fs.whiteoutLocked(ctx, pu, name)
		}
		return err
	}
	return nil
}

// upperChildLocked returns the upper entry at name in i, nil if there is
// none (or only a whiteout).
func (fs *Filesystem) upperChildLocked(ctx context.Context, i *inode, name string) (vfs.Inode, error) {
	pu, _ := i.layers()
	if pu == nil {
		return nil, nil
	}
	c, err := pu.Lookup(ctx, name)
	if err == unix.ENOENT || (err == nil && fs.whiteouts[c]) {
		return nil, nil
	}
	return c, err
}

// remove takes name out of directory i: the upper entry goes, and a
// whiteout hides the lower one.
func (i *inode) remove(ctx context.Context, name string, child vfs.Inode, dir bool) error {
	fs := i.fs
	c, ok := child.(*inode)
	if !ok {
		return unix.ENOENT
	}
	if dir {
		// Empty as the application sees it: only whiteouts may remain.
		ents, err := c.ReadDir(ctx)
		if err != nil {
			return err
		}
		if len(ents) > 0 {
			return unix.ENOTEMPTY
		}
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	hidden := fs.lowerHasLocked(ctx, i, name)
	if hidden {
		if err := fs.copyUpLocked(ctx, i); err != nil {
			return err
		}
	}
	pu, _ := i.layers()
	cu, err := fs.upperChildLocked(ctx, i, name)
	if err != nil {
		return err
	}
	if cu != nil {
		if dir {
			if err := fs.clearWhiteoutsLocked(ctx, cu); err != nil {
				return err
			}
			err = pu.Rmdir(ctx, name, cu)
			delete(fs.opaque, cu)
		} else {
			err = pu.Unlink(ctx, name, cu)
			fs.forgetLinkLocked(ctx, cu)
		}
		if err != nil {
			return err
		}
	}
	if hidden {
		return fs.whiteoutLocked(ctx, pu, name)
	}
	return nil
}

// clearWhiteoutsLocked removes the whiteouts of upper directory d, which
// is to be removed or replaced.
func (fs *Filesystem) clearWhiteoutsLocked(ctx context.Context, d vfs.Inode) error {
	ents, err := d.ReadDir(ctx)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type != unix.DT_CHR {
			continue
		}
		w, err := d.Lookup(ctx, e.Name)
		if err != nil || !fs.whiteouts[w] {
			continue
		}
		if err := d.Unlink(ctx, e.Name, w); err != nil {
			return err
		}
		delete(fs.whiteouts, w)
	}
	return nil
}

// forgetLinkLocked drops the hard-link record of an upper file once its
// last link is gone.
func (fs *Filesystem) forgetLinkLocked(ctx context.Context, cu vfs.Inode) {
	if len(fs.links) == 0 {
		return
	}
	if st, err := cu.Stat(ctx); err == nil && st.Nlink > 0 {
		return
	}
	for k, v := range fs.links {
		if v == cu {
			delete(fs.links, k)
		}
	}
}

// Unlink implements vfs.Inode.
func (i *inode) Unlink(ctx context.Context, name string, child vfs.Inode) error {
	return i.remove(ctx, name, child, false)
}

// Rmdir implements vfs.Inode.
func (i *inode) Rmdir(ctx context.Context, name string, child vfs.Inode) error {
	return i.remove(ctx, name, child, true)
}

// Rename implements vfs.Inode. A directory with a lower layer is not
// moved (EXDEV, see the package doc); anything else is copied up and
// renamed in the upper layer, leaving a whiteout where a lower file was.
func (i *inode) Rename(ctx context.Context, oldName string, child vfs.Inode, newParent vfs.Inode, newName string, replaced vfs.Inode) error {
	fs := i.fs
	c, ok1 := child.(*inode)
	np, ok2 := newParent.(*inode)
	if !ok1 || !ok2 || np.fs != fs {
		return unix.EXDEV
	}
	isDir := c.Perms().IsDir()
	if _, l := c.layers(); isDir && l != nil {
		return unix.EXDEV
	}
	var r *inode
	if replaced != nil {
		if r, ok1 = replaced.(*inode); !ok1 {
			return unix.ENOENT
		}
		if r.Perms().IsDir() {
			ents, err := r.ReadDir(ctx)
			if err != nil {
				return err
			}
			if len(ents) > 0 {
				return unix.ENOTEMPTY
			}
		}
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.copyUpLocked(ctx, c); err != nil {
		return err
	}
	if err := fs.copyUpLocked(ctx, np); err != nil {
		return err
	}
	pu, _ := i.layers()
	npu, _ := np.layers()
	cu, err := fs.upperChildLocked(ctx, i, oldName)
	if err != nil {
		return err
	}
	if cu == nil {
		return unix.ENOENT
	}
	// The target name in the upper layer: a whiteout is cleared away, a
	// directory emptied of its whiteouts, so the upper rename can replace
	// it.
	var ru vfs.Inode
	if w, err := npu.Lookup(ctx, newName); err == nil {
		if fs.whiteouts[w] {
			if err := npu.Unlink(ctx, newName, w); err != nil {
				return err
			}
			delete(fs.whiteouts, w)
		} else {
			ru = w
			if ru.Perms().IsDir() {
				if err := fs.clearWhiteoutsLocked(ctx, ru); err != nil {
					return err
				}
			}
		}
	} else if err != unix.ENOENT {
		return err
	}
	oldHidden := fs.lowerHasLocked(ctx, i, oldName)
	newHides := fs.lowerHasLocked(ctx, np, newName)
	if err := pu.Rename(ctx, oldName, cu, npu, newName, ru); err != nil {
		return err
	}
	if ru != nil {
		delete(fs.opaque, ru)
		fs.forgetLinkLocked(ctx, ru)
	}
	if isDir && newHides {
		fs.opaque[cu] = true
	}
	c.parent, c.name = np, newName
	c.setLayers(func(s *layerSet) { s.lower = nil })
	if oldHidden {
		return fs.whiteoutLocked(ctx, pu, oldName)
	}
	return nil
}

// Exchange implements vfs.InodeExchanger (RENAME_EXCHANGE): both are
// copied up and swapped in the upper layer; as for Rename, a directory
// with a lower layer does not move (EXDEV).
func (i *inode) Exchange(ctx context.Context, oldName string, child vfs.Inode, newParent vfs.Inode, newName string, other vfs.Inode) error {
	fs := i.fs
	c, ok1 := child.(*inode)
	o, ok2 := other.(*inode)
	np, ok3 := newParent.(*inode)
	if !ok1 || !ok2 || !ok3 || np.fs != fs {
		return unix.EXDEV
	}
	for _, x := range []*inode{c, o} {
		if _, l := x.layers(); l != nil && x.Perms().IsDir() {
			return unix.EXDEV
		}
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, x := range []*inode{c, o} {
		if err := fs.copyUpLocked(ctx, x); err != nil {
			return err
		}
	}
	pu, _ := i.layers()
	npu, _ := np.layers()
	ex, ok := pu.(vfs.InodeExchanger)
	if !ok {
		return unix.EINVAL
	}
	cu, err := fs.upperChildLocked(ctx, i, oldName)
	if err != nil {
		return err
	}
	ou, err := fs.upperChildLocked(ctx, np, newName)
	if err != nil {
		return err
	}
	if cu == nil || ou == nil {
		return unix.ENOENT
	}
	if err := ex.Exchange(ctx, oldName, cu, npu, newName, ou); err != nil {
		return err
	}
	// A directory landing where the lower layer has a name must hide it.
	if cu.Perms().IsDir() && fs.lowerHasLocked(ctx, np, newName) {
		fs.opaque[cu] = true
	}
	if ou.Perms().IsDir() && fs.lowerHasLocked(ctx, i, oldName) {
		fs.opaque[ou] = true
	}
	c.parent, c.name, o.parent, o.name = np, newName, i, oldName
	for _, x := range []*inode{c, o} {
		x.setLayers(func(s *layerSet) { s.lower = nil })
	}
	return nil
}

var _ vfs.InodeExchanger = (*inode)(nil)
