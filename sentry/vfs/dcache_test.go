package vfs

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// The fake remote filesystem: nodes are the backing store, and every
// Lookup makes a new inode "holding a handle" on its node, as a gofer
// mount does. An inode counts as holding until evicted, and holds again
// once used after that (it re-acquires).

type fakeNode struct {
	ino      uint64
	mode     uint32
	children map[string]*fakeNode
}

type fakeFS struct {
	mu      sync.Mutex // guards every node's children
	nextIno uint64
	root    *fakeNode
	rootIno *fakeInode

	held       atomic.Int64 // inodes holding a handle
	evicts     atomic.Int64
	reacquires atomic.Int64
}

func newFakeFS() *fakeFS {
	f := &fakeFS{nextIno: 1}
	f.root = f.newNode(unix.S_IFDIR | 0o755)
	f.rootIno = f.newInode(f.root)
	return f
}

func (f *fakeFS) newNode(mode uint32) *fakeNode {
	f.nextIno++
	n := &fakeNode{ino: f.nextIno, mode: mode}
	if mode&unix.S_IFMT == unix.S_IFDIR {
		n.children = map[string]*fakeNode{}
	}
	return n
}

// add makes path's directories and a file at its end in the backing store.
func (f *fakeFS) add(dirs []string, file string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.root
	for _, d := range dirs {
		c, ok := n.children[d]
		if !ok {
			c = f.newNode(unix.S_IFDIR | 0o755)
			n.children[d] = c
		}
		n = c
	}
	if file != "" {
		n.children[file] = f.newNode(unix.S_IFREG | 0o644)
	}
}

func (f *fakeFS) Name() string                           { return "fake" }
func (f *fakeFS) Root(context.Context) (Inode, error)    { return f.rootIno, nil }
func (f *fakeFS) StatFS(context.Context) (Statfs, error) { return Statfs{}, nil }
func (f *fakeFS) Sync(context.Context) error             { return nil }
func (f *fakeFS) Release(context.Context)                {}
func (f *fakeFS) newInode(n *fakeNode) *fakeInode {
	f.held.Add(1)
	return &fakeInode{fs: f, node: n, held: true}
}
func (i *fakeInode) Perms() Perms                             { return Perms{Mode: i.node.mode} }
func (i *fakeInode) Readlink(context.Context) (string, error) { return "", unix.EINVAL }

type fakeInode struct {
	fs   *fakeFS
	node *fakeNode

	mu      sync.Mutex
	held    bool
	evicted int
}

// use re-acquires the "handle" if it was evicted.
func (i *fakeInode) use() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.held {
		i.held = true
		i.fs.held.Add(1)
		i.fs.reacquires.Add(1)
	}
}

func (i *fakeInode) Evict(context.Context) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.evicted++
	i.fs.evicts.Add(1)
	if i.held {
		i.held = false
		i.fs.held.Add(-1)
	}
}

func (i *fakeInode) evictions() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.evicted
}

func (i *fakeInode) Stat(context.Context) (Statx, error) {
	i.use()
	return Statx{Mode: uint16(i.node.mode), Ino: i.node.ino, Nlink: 1}, nil
}

func (i *fakeInode) SetStat(context.Context, SetStatOptions) error { return unix.EPERM }

func (i *fakeInode) Lookup(_ context.Context, name string) (Inode, error) {
	i.use()
	i.fs.mu.Lock()
	c, ok := i.node.children[name]
	i.fs.mu.Unlock()
	if !ok {
		return nil, unix.ENOENT
	}
	return i.fs.newInode(c), nil
}

func (i *fakeInode) ReadDir(context.Context) ([]Dirent, error) {
	i.use()
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	var out []Dirent
	for name, c := range i.node.children {
		out = append(out, Dirent{Name: name, Ino: c.ino, Type: DirentType(c.mode)})
	}
	return out, nil
}

func (i *fakeInode) Open(context.Context, uint32) (FileDescriptionImpl, error) {
	return nil, unix.ENXIO
}

func (i *fakeInode) Create(context.Context, string, CreateOptions) (Inode, error) {
	return nil, unix.EPERM
}

func (i *fakeInode) Mkdir(_ context.Context, name string, _ CreateOptions) (Inode, error) {
	i.use()
	i.fs.mu.Lock()
	n := i.fs.newNode(unix.S_IFDIR | 0o755)
	i.node.children[name] = n
	i.fs.mu.Unlock()
	return i.fs.newInode(n), nil
}

func (i *fakeInode) Symlink(context.Context, string, string, CreateOptions) (Inode, error) {
	return nil, unix.EPERM
}
func (i *fakeInode) Link(context.Context, string, Inode) error { return unix.EPERM }

func (i *fakeInode) Unlink(_ context.Context, name string, _ Inode) error {
	i.use()
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	delete(i.node.children, name)
	return nil
}

func (i *fakeInode) Rmdir(ctx context.Context, name string, child Inode) error {
	return i.Unlink(ctx, name, child)
}

func (i *fakeInode) Rename(_ context.Context, oldName string, _ Inode, newParent Inode, newName string, _ Inode) error {
	i.use()
	np := newParent.(*fakeInode)
	np.use()
	i.fs.mu.Lock()
	defer i.fs.mu.Unlock()
	n := i.node.children[oldName]
	delete(i.node.children, oldName)
	np.node.children[newName] = n
	return nil
}

type fakeEnv struct {
	t    *testing.T
	vfs  *VirtualFilesystem
	fake *fakeFS
	fs   *Filesystem
	root VirtualDentry
}

// newFakeEnv mounts a fake filesystem of dirs directories with files
// files each, with the dentry cache bounded at limit.
func newFakeEnv(t *testing.T, dirs, files, limit int) *fakeEnv {
	ctx := context.Background()
	f := newFakeFS()
	for d := 0; d < dirs; d++ {
		for i := 0; i < files; i++ {
			f.add([]string{fmt.Sprintf("d%d", d)}, fmt.Sprintf("f%d", i))
		}
	}
	v := New()
	fs, err := v.NewFilesystem(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	fs.SetMaxCachedDentries(limit)
	root, err := v.MountRoot(ctx, fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeEnv{t: t, vfs: v, fake: f, fs: fs, root: root}
}

func (e *fakeEnv) get(start VirtualDentry, path string) VirtualDentry {
	e.t.Helper()
	vd, err := e.vfs.GetDentryAt(context.Background(), &PathOperation{Root: e.root, Start: start, Path: path})
	if err != nil {
		e.t.Fatalf("walk %q: %v", path, err)
	}
	return vd
}

func (e *fakeEnv) statIno(start VirtualDentry, path string) uint64 {
	e.t.Helper()
	st, err := e.vfs.StatAt(context.Background(), &PathOperation{Root: e.root, Start: start, Path: path})
	if err != nil {
		e.t.Fatalf("stat %q: %v", path, err)
	}
	return st.Ino
}

// walkAll stats every file, checking the cache bound after each.
func (e *fakeEnv) walkAll(dirs, files, limit int) {
	e.t.Helper()
	for d := 0; d < dirs; d++ {
		for i := 0; i < files; i++ {
			e.get(e.root, fmt.Sprintf("/d%d/f%d", d, i))
			if n := e.fs.CachedDentries(); n > limit {
				e.t.Fatalf("%d evictable dentries cached, limit %d", n, limit)
			}
		}
	}
}

func TestDentryCacheBounded(t *testing.T) {
	const dirs, files, limit = 10, 30, 8
	e := newFakeEnv(t, dirs, files, limit)
	e.walkAll(dirs, files, limit)
	if e.fake.evicts.Load() == 0 {
		t.Fatal("nothing was evicted")
	}
	// What stays held is the cached leaves and their ancestors: far
	// fewer than the files walked.
	if h := e.fake.held.Load(); h > limit+dirs+1 {
		t.Errorf("%d inodes hold handles after walking %d files, limit %d", h, dirs*files, limit)
	}
	// Evicted files are found again, with the right identity.
	ino := e.statIno(e.root, "/d0/f0")
	e.fake.mu.Lock()
	want := e.fake.root.children["d0"].children["f0"].ino
	e.fake.mu.Unlock()
	if ino != want {
		t.Errorf("ino of /d0/f0 after eviction %d, want %d", ino, want)
	}
	// A second walk stays bounded too.
	e.walkAll(dirs, files, limit)
	if h := e.fake.held.Load(); h > limit+dirs+1 {
		t.Errorf("%d inodes hold handles after a second walk", h)
	}
}

func TestDentryCacheHeldDentry(t *testing.T) {
	ctx := context.Background()
	const dirs, files, limit = 6, 10, 4
	e := newFakeEnv(t, dirs, files, limit)
	// vd is a cwd: held outside the tree while everything under it and
	// it itself are evicted.
	vd := e.get(e.root, "/d3")
	e.get(vd, "f1")
	d3 := vd.Dentry.inode.(*fakeInode)
	e.walkAll(dirs, files, limit)
	e.walkAll(dirs, files, limit)
	if d3.evictions() == 0 {
		t.Fatal("the held directory was never evicted")
	}
	// Relative walks from it work, as does "..".
	if got, want := e.statIno(vd, "f5"), e.statIno(e.root, "/d3/f5"); got != want {
		t.Errorf("f5 from the held dentry: ino %d, want %d", got, want)
	}
	if got := e.get(vd, ".."); got.Dentry != e.root.Dentry {
		t.Errorf(".. of the held dentry is not the root")
	}
	if p, ok := e.vfs.PathnameWithin(e.root, vd); p != "/d3" || !ok {
		t.Errorf("path of the held dentry %q %v", p, ok)
	}
	// Looked up again, the name gives back the held dentry, not a twin,
	// so a rename reaches it.
	e.walkAll(dirs, files, limit)
	if again := e.get(e.root, "/d3"); again.Dentry != vd.Dentry {
		t.Fatal("lookup after eviction made a second dentry for a held one")
	}
	e.walkAll(dirs, files, limit)
	pop := func(p string) *PathOperation { return &PathOperation{Root: e.root, Start: e.root, Path: p} }
	if err := e.vfs.RenameAt(ctx, pop("/d3"), pop("/moved"), 0); err != nil {
		t.Fatal(err)
	}
	if p, ok := e.vfs.PathnameWithin(e.root, vd); p != "/moved" || !ok {
		t.Errorf("path of the held dentry after rename %q %v", p, ok)
	}
	e.walkAll(2, files, limit)
	if got, want := e.statIno(vd, "f7"), e.statIno(e.root, "/moved/f7"); got != want {
		t.Errorf("f7 after rename: ino %d, want %d", got, want)
	}
	if _, err := e.vfs.GetDentryAt(ctx, pop("/d3")); err != unix.ENOENT {
		t.Errorf("old name after rename: %v", err)
	}
	// Unlinking an evicted dentry still marks the held one dead.
	f9 := e.get(vd, "f9")
	e.walkAll(2, files, limit)
	if err := e.vfs.UnlinkAt(ctx, pop("/moved/f9")); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.vfs.PathnameWithin(e.root, f9); ok {
		t.Error("an unlinked held dentry is still reachable")
	}
}

func TestDentryCacheMountPointsStay(t *testing.T) {
	ctx := context.Background()
	const dirs, files, limit = 4, 10, 2
	e := newFakeEnv(t, dirs, files, limit)
	point := e.get(e.root, "/d1")
	other, err := e.vfs.NewFilesystem(ctx, newFakeFS())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.vfs.MountAt(ctx, other, point, 0); err != nil {
		t.Fatal(err)
	}
	e.walkAll(1, files, limit)
	e.walkAll(1, files, limit)
	if n := point.Dentry.inode.(*fakeInode).evictions(); n != 0 {
		t.Errorf("a mount point was evicted %d times", n)
	}
	// /d1 now shows the other filesystem's empty root.
	if _, err := e.vfs.GetDentryAt(ctx, &PathOperation{Root: e.root, Start: e.root, Path: "/d1/f0"}); err != unix.ENOENT {
		t.Errorf("walk under the mount: %v", err)
	}
}

func TestDentryCacheConcurrent(t *testing.T) {
	const dirs, files, limit = 8, 40, 16
	e := newFakeEnv(t, dirs, files, limit)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 3; round++ {
				for d := 0; d < dirs; d++ {
					dir, err := e.vfs.GetDentryAt(context.Background(), &PathOperation{Root: e.root, Start: e.root, Path: fmt.Sprintf("/d%d", (d+g)%dirs)})
					if err != nil {
						t.Error(err)
						return
					}
					for i := 0; i < files; i++ {
						if _, err := e.vfs.StatAt(context.Background(), &PathOperation{Root: e.root, Start: dir, Path: fmt.Sprintf("f%d", i)}); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := e.fs.CachedDentries(); n > limit {
		t.Errorf("%d evictable dentries cached, limit %d", n, limit)
	}
}
