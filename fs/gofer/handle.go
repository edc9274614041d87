package gofer

import (
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// Gofer handles are re-acquirable. Each handle is a host FD in the gofer,
// whose RLIMIT_NOFILE the whole sandbox shares, so an inode lets go of its
// handle when the VFS evicts its dentry, and walks to the file again from
// its parent, by name, when an operation next needs one. The parent does
// the same in turn, up to the root, whose handle is never released.
//
// Locking: Filesystem.handleMu guards every inode's holding and links.
// An operation holds it for reading across the round trip that uses a
// handle, so a handle is never closed under a request that names it. An
// inode without a handle re-acquires it with handleMu held for writing,
// walking up through its parents' links under that one lock: no
// per-inode lock is ever taken child-then-parent, and since round trips
// are serialized on the connection anyway, one lock costs no concurrency.
// Operations that change links (link, unlink, rmdir, rename) also hold it
// for writing, so a re-walk never sees a name half-changed.

// closeBatch is how many released handles are closed in one round trip.
// Releasing happens once per evicted dentry, so batching keeps a tree
// walk at about one round trip per file while bounding what the gofer
// holds for nothing.
const closeBatch = 32

// link is one name the inode can be reached by: name in dir.
type link struct {
	dir  *inode
	name string
}

// holding is what an inode holds outside the sentry's heap. It lives apart
// from the inode so that a cleanup can let go of it when the inode becomes
// garbage while holding a handle (it re-acquired one after its dentry was
// evicted, then was dropped by whoever still held it).
type holding struct {
	// handle is open in the gofer while held; guarded by handleMu.
	handle uint32
	held   bool
	// cache is the page cache kept for the next mmap while the handle is
	// held (a warm binary). Written with handleMu held for reading and
	// inode.mu, or handleMu held for writing.
	cache *pageCache
	// fds are donated FDs kept for later opens (fdcache.go), by access
	// mode; guarded like cache.
	fds [3]*hostFD
	// watched is set once the inode has a cleanup to drop the holding;
	// guarded by handleMu.
	watched bool
}

// newInode makes an inode holding handle h, reachable as name in dir (dir
// is nil for the root).
func (fs *Filesystem) newInode(h uint32, a *proto.Attr, dir *inode, name string) *inode {
	i := &inode{fs: fs, hold: &holding{handle: h, held: true}}
	i.setAttr(a)
	if fs.exclusive {
		i.ex.goodAt.Store(1) // just fetched, nothing changed since
	}
	if dir != nil {
		i.links = []link{{dir, name}}
		i.watchLocked()
	}
	return i
}

// newUnheldInode makes an inode known by attributes only, reachable as
// name in dir; its handle is walked to when first needed. Most such
// inodes (a listing's) are only ever stat'ed, so they get no cleanup
// until they first hold something.
func (fs *Filesystem) newUnheldInode(a *proto.Stat, dir *inode, name string) *inode {
	i := &inode{fs: fs, hold: &holding{}, links: []link{{dir, name}}}
	i.attr.Store(a)
	return i
}

// watchLocked makes sure a garbage i lets go of what it holds: i is about
// to hold a handle, which comes before any FD or page cache it keeps.
// handleMu is held for writing (or i is not yet shared).
func (i *inode) watchLocked() {
	if !i.hold.watched {
		i.hold.watched = true
		runtime.AddCleanup(i, i.fs.dropHolding, i.hold)
	}
}

// dropHolding lets go of what a garbage inode still held.
func (fs *Filesystem) dropHolding(h *holding) {
	fs.handleMu.Lock()
	c := h.cache
	h.cache = nil
	h.dropFDs()
	batch := fs.releaseLocked(h)
	fs.handleMu.Unlock()
	if c != nil {
		c.DecRef()
	}
	fs.closeHandles(batch)
}

// releaseLocked queues h's handle for closing and returns a batch to close
// once enough are queued. handleMu is held for writing.
func (fs *Filesystem) releaseLocked(h *holding) []uint32 {
	if !h.held {
		return nil
	}
	h.held = false
	fs.closing = append(fs.closing, h.handle)
	if len(fs.closing) < closeBatch {
		return nil
	}
	batch := fs.closing
	fs.closing = nil
	return batch
}

func (fs *Filesystem) closeHandles(batch []uint32) {
	if len(batch) > 0 {
		// A failure means the gofer is gone, and the handles with it.
		fs.client.Close(batch...)
	}
}

// acquireLocked returns i's handle, walking to it again if it was
// released. handleMu is held for writing.
func (fs *Filesystem) acquireLocked(i *inode) (uint32, error) {
	if i.hold.held {
		return i.hold.handle, nil
	}
	err := error(unix.ESTALE) // no name left: unlinked
	for _, l := range i.links {
		dh, derr := fs.acquireLocked(l.dir)
		if derr != nil {
			err = derr
			continue
		}
		h, a, werr := fs.client.Walk(dh, l.name)
		if werr != nil {
			if err = werr; err == unix.ENOENT {
				err = unix.ESTALE
			}
			continue
		}
		if old := i.cachedAttr(); a.Ino != old.Ino || a.Dev != old.Dev {
			// Replaced behind the sandbox's back (the mount is shared
			// with the host): this inode's file is gone.
			fs.client.Close(h)
			err = unix.ESTALE
			continue
		}
		i.watchLocked()
		i.hold.handle, i.hold.held = h, true
		if !fs.cacheAttrs {
			i.setAttr(a)
		}
		return h, nil
	}
	return 0, err
}

// withHandle runs fn with i's handle, re-acquiring it if needed. fn must
// not take handleMu.
func (i *inode) withHandle(fn func(h uint32) error) error {
	fs := i.fs
	fs.handleMu.RLock()
	if i.hold.held {
		defer fs.handleMu.RUnlock()
		return fn(i.hold.handle)
	}
	fs.handleMu.RUnlock()
	fs.handleMu.Lock()
	defer fs.handleMu.Unlock()
	h, err := fs.acquireLocked(i)
	if err != nil {
		return err
	}
	return fn(h)
}

// unlinked reports whether i has no name left to be re-walked by.
func (i *inode) unlinked() bool {
	if i == i.fs.root {
		return false
	}
	i.fs.handleMu.RLock()
	defer i.fs.handleMu.RUnlock()
	return len(i.links) == 0
}

// removeLinkLocked forgets name in dir as a way to i. handleMu is held
// for writing.
func (i *inode) removeLinkLocked(dir *inode, name string) {
	for k, l := range i.links {
		if l.dir == dir && l.name == name {
			i.links = append(i.links[:k:k], i.links[k+1:]...)
			return
		}
	}
}
