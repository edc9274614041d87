package gofer

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// On a read-only mount nothing the sandbox does changes a directory, so
// one listing with attributes (a single Readdir with attrs, usually one
// round trip) answers every later lookup in it: a name listed becomes an
// inode with no handle yet (walked to only if it is opened or listed
// itself), and a name not listed is ENOENT at once. Programs that probe
// many names in a directory (the dynamic linker, Python's importer, find,
// ls -l) then pay one round trip per directory instead of one per name.
//
// The listing is fetched by ReadDir, or by the second lookup in a
// directory (a single lookup is cheaper as a walk). It lives as long as
// the directory's inode.
//
// A directory without a handle is listed through its nearest ancestor
// that has one, by name, and gets a handle with the listing. Programs
// that walk a whole tree (find, ls -R, du, tar) list one directory after
// another: once a second subdirectory of a directory is listed, or in a
// directory that itself came prefetched, a listing also brings those of
// the listed directory's subdirectories that fit its page, so that most
// of a tree costs no round trip of its own.

// listedAfter is how many lookups in a directory are walked one by one
// before its listing is fetched.
const listedAfter = 1

// listedAtOnce is the size up to which a directory without a handle is
// listed at its first lookup: a walk would need two round trips (to the
// directory, then in it), a listing through an ancestor needs one, and
// for a directory this small it costs the gofer little more.
const listedAtOnce = 8 << 10

// prefetchDirs is how many subdirectories' listings a listing may bring.
const prefetchDirs = 128

// maxVia bounds how far up a directory is listed through an ancestor.
const maxVia = 16

// listing is a directory's entries as the gofer listed them.
type listing struct {
	ents   []proto.PackedDirent
	byName map[string]int32 // index into ents
	// subs are prefetched listings of subdirectories, by name, packed,
	// until an inode takes them (guarded by the directory's inode.mu).
	subs map[string]string
	// prefetched is set on a listing that came with its parent's.
	prefetched bool
}

func newListing(ents []proto.PackedDirent) *listing {
	l := &listing{ents: ents, byName: make(map[string]int32, len(ents))}
	for k := range ents {
		l.byName[ents[k].Name] = int32(k)
	}
	return l
}

// cachedListing returns i's listing, fetching it if fetch and there is
// none. Only read-only mounts keep listings.
func (i *inode) cachedListing(fetch bool) (*listing, error) {
	i.mu.Lock()
	l := i.list
	i.mu.Unlock()
	if l != nil || !fetch {
		return l, nil
	}
	dl, err := i.listByName()
	if err != nil {
		err = i.withHandle(func(h uint32) (err error) {
			dl, err = i.fs.client.ListDir(h, ListOpts{Attrs: true})
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	l = newListing(dl.Ents)
	l.subs = dl.Subs
	i.mu.Lock()
	if i.list == nil {
		i.list = l
	}
	l = i.list
	i.mu.Unlock()
	return l, nil
}

// listByName lists i through its nearest ancestor with a handle and the
// names down from there when i has no handle of its own, taking the
// handle of i the gofer makes while at it: a directory only listed costs
// no walk, and neither does listing its subdirectories in turn. EAGAIN
// means i has a handle to list with; on any error the caller lists
// through i's own.
func (i *inode) listByName() (*DirList, error) {
	fs := i.fs
	fs.handleMu.RLock()
	if i.hold.held || len(i.links) == 0 {
		fs.handleMu.RUnlock()
		return nil, unix.EAGAIN
	}
	name, parent := i.links[0].name, i.links[0].dir
	var anc *inode
	var via []string
	for d := parent; d != nil; d = d.links[0].dir {
		if d.hold.held {
			anc = d
			break
		}
		if len(d.links) == 0 || len(via) == maxVia {
			break
		}
		via = append(via, d.links[0].name)
	}
	fs.handleMu.RUnlock()
	if anc == nil {
		return nil, unix.EAGAIN
	}
	for a, b := 0, len(via)-1; a < b; a, b = a+1, b-1 {
		via[a], via[b] = via[b], via[a]
	}
	o := ListOpts{Name: name, Via: via, Attrs: true, WantHandle: true}
	parent.mu.Lock()
	if parent.childLists > 0 || (parent.list != nil && parent.list.prefetched) {
		o.Prefetch = prefetchDirs
	}
	parent.childLists++
	parent.mu.Unlock()
	var dl *DirList
	err := anc.withHandle(func(h uint32) (err error) {
		dl, err = fs.client.ListDir(h, o)
		return err
	})
	if err != nil || dl.Handle == 0 {
		return dl, err
	}
	fs.handleMu.Lock()
	old := i.cachedAttr()
	var batch []uint32
	if a := dl.HandleAttr; i.hold.held || len(i.links) == 0 || a.Ino != old.Ino || a.Dev != old.Dev {
		// Walked to meanwhile, unlinked, or not the file this inode
		// is: the new handle is not needed.
		batch = fs.releaseLocked(&holding{handle: dl.Handle, held: true})
	} else {
		i.watchLocked()
		i.hold.handle, i.hold.held = dl.Handle, true
	}
	fs.handleMu.Unlock()
	fs.closeHandles(batch)
	return dl, nil
}

// heldNow reports whether i has a handle at the moment.
func (i *inode) heldNow() bool {
	i.fs.handleMu.RLock()
	defer i.fs.handleMu.RUnlock()
	return i.hold.held
}

// lookupListed answers a lookup from i's listing; ok is false when the
// caller should walk instead.
func (i *inode) lookupListed(name string) (c *inode, ok bool, err error) {
	small := i.cachedAttr().Size <= listedAtOnce && !i.heldNow()
	i.mu.Lock()
	fetch := i.list == nil && (i.lookups >= listedAfter || small)
	i.lookups++
	i.mu.Unlock()
	l, err := i.cachedListing(fetch)
	if err != nil || l == nil {
		return nil, false, nil
	}
	k, found := l.byName[name]
	if !found {
		return nil, true, unix.ENOENT
	}
	e := &l.ents[k]
	if !e.HasAttr {
		// It vanished while being listed, or was replaced: ask.
		return nil, false, nil
	}
	st := e.Attr
	c = i.fs.newUnheldInode(&st, i, name)
	// A prefetched listing goes to the first inode made for the name,
	// and lives as long as that inode does.
	i.mu.Lock()
	sub, ok := l.subs[name]
	delete(l.subs, name)
	i.mu.Unlock()
	if ok && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if ents, err := proto.DecodePacked(sub, nil); err == nil {
			c.list = newListing(ents)
			c.list.prefetched = true
		}
	}
	return c, true, nil
}

// dirents returns the listing as ReadDir does.
func (l *listing) dirents() []vfs.Dirent {
	out := make([]vfs.Dirent, len(l.ents))
	for k := range l.ents {
		e := &l.ents[k]
		out[k] = vfs.Dirent{Name: e.Name, Ino: e.Ino, Type: e.Type}
	}
	return out
}

func direntsOf(ents []*proto.Dirent) []vfs.Dirent {
	out := make([]vfs.Dirent, 0, len(ents))
	for _, e := range ents {
		out = append(out, vfs.Dirent{Name: string(e.Name), Ino: e.Ino, Type: uint8(e.Type)})
	}
	return out
}
