package vfs

import (
	"context"
	"runtime"
	"weak"
)

// DefaultMaxCachedDentries bounds, per Filesystem, the cached leaf dentries
// whose inodes hold evictable resources. A remote filesystem pins one
// handle (a host FD in the gofer) per cached inode, so an unbounded cache
// lets one big tree walk exhaust the gofer's RLIMIT_NOFILE.
const DefaultMaxCachedDentries = 4096

// The dentry cache.
//
// Only dentries whose inode implements InodeEvicter are ever evicted: for
// tmpfs-like filesystems the dentry tree is the file tree. Of those, only
// leaves are candidates (no cached children, not a mount point or mount
// root, not a filesystem root), so that eviction never cuts a subtree out
// of the cache and a directory goes only after all its children went. The
// candidates sit on an intrusive list per Filesystem; a lookup hit only
// sets Dentry.referenced, and the evictor gives a referenced dentry a
// second chance at the front of the list (the CLOCK approximation of LRU),
// so hits never take a lock shared by the whole filesystem.
//
// An evicted dentry may still be referenced from outside the tree (a cwd,
// an open file, a walker in progress). It stays a valid Dentry: its inode
// re-acquires whatever Evict released when next used, and its parent keeps
// a weak pointer to it under its name. While anything holds it, the next
// lookup of that name revives this very dentry rather than making a second
// one, so rename and unlink keep reaching the single dentry (and inode)
// for the name, and a held dentry never goes stale behind a rename.
//
// Lock order: renameMu (held, at least for reading, by every caller that
// inserts, evicts or revives), then Dentry.mu (parent before child), then
// Filesystem.lruMu, which is a leaf. The evictor takes a victim off the
// list under lruMu alone, drops lruMu, and only then locks the victim's
// parent and the victim, re-checking that it is still a candidate.

// SetMaxCachedDentries changes the bound on evictable cached dentries
// (DefaultMaxCachedDentries); n < 1 means 1. Tests lower it.
func (fs *Filesystem) SetMaxCachedDentries(n int) {
	fs.lruMu.Lock()
	fs.lruMax = max(n, 1)
	fs.lruMu.Unlock()
}

// CachedDentries returns how many evictable dentries are on the eviction
// list.
func (fs *Filesystem) CachedDentries() int {
	fs.lruMu.Lock()
	defer fs.lruMu.Unlock()
	return fs.lruLen
}

// lruAdd puts d on the front of the list if it may be a candidate. Callers
// add on every event that can make d a leaf; the evictor re-checks the
// rest. d.mu or renameMu may be held.
func (fs *Filesystem) lruAdd(d *Dentry) {
	if !d.evictable || d.parent == nil || d.pins.Load() > 0 {
		return
	}
	fs.lruMu.Lock()
	if !d.inLRU {
		fs.pushFrontLocked(d)
	}
	fs.lruMu.Unlock()
}

// lruRemove takes d off the list (it got a child, or left the tree).
func (fs *Filesystem) lruRemove(d *Dentry) {
	if !d.evictable {
		return
	}
	fs.lruMu.Lock()
	if d.inLRU {
		fs.unlinkLocked(d)
	}
	fs.lruMu.Unlock()
}

func (fs *Filesystem) pushFrontLocked(d *Dentry) {
	d.lruPrev, d.lruNext = nil, fs.lruHead
	if fs.lruHead != nil {
		fs.lruHead.lruPrev = d
	} else {
		fs.lruTail = d
	}
	fs.lruHead = d
	d.inLRU = true
	fs.lruLen++
}

func (fs *Filesystem) unlinkLocked(d *Dentry) {
	if d.lruPrev != nil {
		d.lruPrev.lruNext = d.lruNext
	} else {
		fs.lruHead = d.lruNext
	}
	if d.lruNext != nil {
		d.lruNext.lruPrev = d.lruPrev
	} else {
		fs.lruTail = d.lruPrev
	}
	d.lruPrev, d.lruNext = nil, nil
	d.inLRU = false
	fs.lruLen--
}

// popVictim returns the least recently used candidate, taken off the list,
// or nil if the list is within its bound.
func (fs *Filesystem) popVictim() *Dentry {
	fs.lruMu.Lock()
	defer fs.lruMu.Unlock()
	// Every referenced dentry is moved at most once per call, so this
	// ends even if all of them were hit.
	for budget := fs.lruLen; fs.lruLen > fs.lruMax; budget-- {
		d := fs.lruTail
		fs.unlinkLocked(d)
		if budget > 0 && d.referenced.Swap(false) {
			fs.pushFrontLocked(d)
			continue
		}
		return d
	}
	return nil
}

// shrink evicts until the list is within its bound. renameMu is held (at
// least for reading), so parents are stable; no Dentry.mu is held.
func (fs *Filesystem) shrink(ctx context.Context) {
	for {
		v := fs.popVictim()
		if v == nil {
			return
		}
		fs.evict(ctx, v)
	}
}

// evictedKey names a weak child entry for the cleanup that drops it once
// the dentry it points to is garbage.
type evictedKey struct {
	parent *Dentry
	name   string
	wp     weak.Pointer[Dentry]
}

// evict drops v from its parent's children if it is still a candidate and
// tells its inode.
func (fs *Filesystem) evict(ctx context.Context, v *Dentry) {
	p := v.parent
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.children[v.name] != v || v.dead || v.pins.Load() > 0 {
		p.mu.Unlock()
		return
	}
	v.mu.Lock()
	leaf := len(v.children) == 0
	v.mu.Unlock()
	if !leaf {
		// It got a child after it was listed; it is listed again when
		// it loses the last one.
		p.mu.Unlock()
		return
	}
	// A concurrent walker may hold v and be about to look up a child in
	// it; that child then hangs off a detached v, which the next lookup
	// of v.name revives, child and all.
	delete(p.children, v.name)
	wp := weak.Make(v)
	if p.evicted == nil {
		p.evicted = make(map[string]weak.Pointer[Dentry])
	}
	p.evicted[v.name] = wp
	runtime.AddCleanup(v, dropEvicted, evictedKey{p, v.name, wp})
	if len(p.children) == 0 {
		fs.lruAdd(p)
	}
	p.mu.Unlock()
	// The inode is told outside Dentry.mu: releasing may do I/O.
	v.inode.(InodeEvicter).Evict(ctx)
}

// dropEvicted forgets a weak child entry whose dentry was collected,
// unless the name has been reused since.
func dropEvicted(k evictedKey) {
	k.parent.mu.Lock()
	if wp, ok := k.parent.evicted[k.name]; ok && wp == k.wp {
		delete(k.parent.evicted, k.name)
	}
	k.parent.mu.Unlock()
}

// reviveLocked returns the evicted but still referenced dentry for name
// and puts it back among d's children, or nil. d.mu is held.
func (d *Dentry) reviveLocked(name string) *Dentry {
	wp, ok := d.evicted[name]
	if !ok {
		return nil
	}
	delete(d.evicted, name)
	c := wp.Value()
	// Rename and unlink revive a dentry before touching it, so one found
	// here still has this parent and name; the check guards that rule.
	if c == nil || c.dead || c.parent != d || c.name != name {
		return nil
	}
	d.addChildLocked(c)
	c.mu.Lock()
	leaf := len(c.children) == 0
	c.mu.Unlock()
	if leaf {
		d.fs.lruAdd(c)
	}
	return c
}

// addChildLocked caches c under d; d is no longer a leaf. d.mu is held.
func (d *Dentry) addChildLocked(c *Dentry) {
	if d.children == nil {
		d.children = make(map[string]*Dentry)
	}
	d.children[c.name] = c
	delete(d.evicted, c.name)
	d.fs.lruRemove(d)
}
