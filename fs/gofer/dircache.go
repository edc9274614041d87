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

// listedAfter is how many lookups in a directory are walked one by one
// before its listing is fetched.
const listedAfter = 1

// listing is a directory's entries as the gofer listed them.
type listing struct {
	ents   []proto.PackedDirent
	byName map[string]int32 // index into ents
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
	ents, err := i.listByName()
	if err != nil {
		err = i.withHandle(func(h uint32) (err error) {
			ents, _, _, err = i.fs.client.ListDir(h, "", true, false)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	l = newListing(ents)
	i.mu.Lock()
	if i.list == nil {
		i.list = l
	}
	l = i.list
	i.mu.Unlock()
	return l, nil
}

// listByName lists i through its parent's handle and its name when i has
// no handle of its own, taking the handle of i the gofer makes while at
// it: a directory only listed (find, ls -R) then costs no walk, and
// neither does listing its subdirectories in turn. EAGAIN means i has a
// handle to list with; on any error the caller lists through i's own.
func (i *inode) listByName() ([]proto.PackedDirent, error) {
	fs := i.fs
	fs.handleMu.RLock()
	held := i.hold.held
	var l link
	if len(i.links) > 0 {
		l = i.links[0]
	}
	fs.handleMu.RUnlock()
	if held || l.dir == nil {
		return nil, unix.EAGAIN
	}
	var (
		ents []proto.PackedDirent
		h    uint32
		a    *proto.Attr
	)
	err := l.dir.withHandle(func(dh uint32) (err error) {
		ents, h, a, err = fs.client.ListDir(dh, l.name, true, true)
		return err
	})
	if err != nil || h == 0 {
		return ents, err
	}
	fs.handleMu.Lock()
	old := i.cachedAttr()
	var batch []uint32
	if i.hold.held || len(i.links) == 0 || a.Ino != old.Ino || a.Dev != old.Dev {
		// Walked to meanwhile, unlinked, or not the file this inode
		// is: the new handle is not needed.
		batch = fs.releaseLocked(&holding{handle: h, held: true})
	} else {
		i.watchLocked()
		i.hold.handle, i.hold.held = h, true
	}
	fs.handleMu.Unlock()
	fs.closeHandles(batch)
	return ents, nil
}

// lookupListed answers a lookup from i's listing; ok is false when the
// caller should walk instead.
func (i *inode) lookupListed(name string) (c *inode, ok bool, err error) {
	i.mu.Lock()
	fetch := i.list == nil && i.lookups >= listedAfter
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
	return i.fs.newUnheldInode(&st, i, name), true, nil
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
