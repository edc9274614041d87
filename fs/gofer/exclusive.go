package gofer

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// An exclusive mount is writable, but the sandbox is its only writer (the
// root under --overlay=none): every change to it is made by this
// filesystem, which therefore knows when what it caches goes out of date.
// So attributes fetched once stay good until the sentry itself changes the
// file (or reads it: atime), and a name found missing stays missing until
// the sentry creates it. Each inode counts its changes (changed); a fetch
// of attributes is good only if no change came between its start and its
// end, so a stat racing a write never keeps the older size.

// maxAbsent bounds the missing names remembered per directory; a full set
// is dropped and starts again.
const maxAbsent = 512

// exclusiveState is an inode's part of the above; unused elsewhere.
type exclusiveState struct {
	// changes counts the sentry's changes to the file; goodAt is
	// changes+1 as of the fetch of the cached attributes (0: none good).
	changes atomic.Uint64
	goodAt  atomic.Uint64
	// mappedShared is set once the file is mapped shared and writable:
	// its pages reach the host file behind the FDs' back, so its
	// attributes are fetched every time.
	mappedShared atomic.Bool
	// absent are names looked up and not found (guarded by inode.mu).
	absent map[string]struct{}
}

// SetExclusive marks the mount as the sandbox's own (the container's
// root): nothing outside changes it, and if writable, only the sandbox
// writes it. Call it before the filesystem is used.
func (fs *Filesystem) SetExclusive() {
	fs.owned = true
	fs.exclusive = !fs.cacheAttrs
}

// changed records that the sentry changed i (or read it); nil-safe.
func (i *inode) changed() {
	if i != nil && i.fs.exclusive {
		i.ex.changes.Add(1)
	}
}

// attrsGood reports whether i's cached attributes are current. A file
// with several links may have another inode for another of its names,
// whose changes this one does not see, so its attributes are fetched
// every time.
func (i *inode) attrsGood() bool {
	if !i.fs.exclusive || i.ex.mappedShared.Load() || i.ex.goodAt.Load() != i.ex.changes.Load()+1 {
		return false
	}
	a := i.cachedAttr()
	return a.Nlink == 1 || a.Mode&unix.S_IFMT == unix.S_IFDIR
}

// fetchingAttrs is called before attributes are fetched; done, after a
// successful fetch is cached, marks them good if nothing changed between.
func (i *inode) fetchingAttrs() (done func()) {
	if !i.fs.exclusive {
		return func() {}
	}
	c := i.ex.changes.Load()
	return func() {
		if i.ex.changes.Load() == c {
			i.ex.goodAt.Store(c + 1)
		}
	}
}

// isAbsent reports whether name was found missing in directory i since
// the sentry last created it.
func (i *inode) isAbsent(name string) bool {
	if !i.fs.exclusive {
		return false
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	_, ok := i.ex.absent[name]
	return ok
}

// noteAbsent remembers that name is missing in directory i.
func (i *inode) noteAbsent(name string) {
	if !i.fs.exclusive {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.ex.absent == nil || len(i.ex.absent) >= maxAbsent {
		i.ex.absent = make(map[string]struct{})
	}
	i.ex.absent[name] = struct{}{}
}

// created records that directory i now has name (and changed).
func (i *inode) created(name string) {
	if !i.fs.exclusive {
		return
	}
	i.mu.Lock()
	delete(i.ex.absent, name)
	i.mu.Unlock()
	i.changed()
}
