package gofer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// bigTree makes dirs directories of files files each, every file holding
// its own path, a nested chain deep/a/b/c/leaf, and lone.
func bigTree(t *testing.T, dirs, files int) string {
	dir := t.TempDir()
	for d := 0; d < dirs; d++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", d))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < files; i++ {
			name := fmt.Sprintf("d%d/f%d", d, i)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "deep/a/b/c"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "deep/a/b/c/leaf"), []byte("deep/a/b/c/leaf"), 0o644)
	os.WriteFile(filepath.Join(dir, "lone"), []byte("lone"), 0o644)
	return dir
}

type vfsEnv struct {
	t    *testing.T
	vfs  *vfs.VirtualFilesystem
	fs   *vfs.Filesystem
	root vfs.VirtualDentry
}

func newVFSEnv(t *testing.T, dir string, readOnly bool, limit int) *vfsEnv {
	ctx := context.Background()
	v := vfs.New()
	fs, err := v.NewFilesystem(ctx, newFS(t, dir, readOnly))
	if err != nil {
		t.Fatal(err)
	}
	fs.SetMaxCachedDentries(limit)
	root, err := v.MountRoot(ctx, fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &vfsEnv{t: t, vfs: v, fs: fs, root: root}
}

func (e *vfsEnv) pop(start vfs.VirtualDentry, path string) *vfs.PathOperation {
	return &vfs.PathOperation{Root: e.root, Start: start, Path: path, FollowFinalSymlink: true}
}

func (e *vfsEnv) open(start vfs.VirtualDentry, path string) (*vfs.FileDescription, error) {
	return e.vfs.OpenAt(context.Background(), e.pop(start, path), vfs.OpenOptions{Flags: unix.O_RDONLY})
}

func readAll(t *testing.T, fd *vfs.FileDescription) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := fd.PRead(context.Background(), usermem.BytesSequence(buf), 0)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf[:n])
}

// readFile opens, reads and closes path, relative to start.
func (e *vfsEnv) readFile(start vfs.VirtualDentry, path string) string {
	e.t.Helper()
	fd, err := e.open(start, path)
	if err != nil {
		e.t.Fatalf("open %s: %v", path, err)
	}
	defer fd.DecRef(context.Background())
	return readAll(e.t, fd)
}

// walk reads every file of bigTree, checking contents and the cache bound.
func (e *vfsEnv) walk(dirs, files, limit int) {
	e.t.Helper()
	for d := 0; d < dirs; d++ {
		for i := 0; i < files; i++ {
			name := fmt.Sprintf("d%d/f%d", d, i)
			if got := e.readFile(e.root, name); got != name {
				e.t.Fatalf("%s holds %q", name, got)
			}
			if n := e.fs.CachedDentries(); n > limit {
				e.t.Fatalf("%d evictable dentries cached, limit %d", n, limit)
			}
		}
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestEvictionBoundsGoferHandles(t *testing.T) {
	const dirs, files, limit = 8, 50, 16
	e := newVFSEnv(t, bigTree(t, dirs, files), true, limit)
	before := openFDs(t)
	e.walk(dirs, files, limit)
	// The gofer server runs in this process: each handle is an FD here.
	// Without eviction the walk would leave dirs*files of them open.
	if grew := openFDs(t) - before; grew > limit+dirs+closeBatch+8 {
		t.Errorf("%d more FDs open after walking %d files with a cache of %d", grew, dirs*files, limit)
	}
	// Files whose dentries (and their directories') were evicted are
	// walked to again, from the root down.
	if got := e.readFile(e.root, "d0/f0"); got != "d0/f0" {
		t.Errorf("d0/f0 after eviction: %q", got)
	}
	if got := e.readFile(e.root, "deep/a/b/c/leaf"); got != "deep/a/b/c/leaf" {
		t.Errorf("leaf: %q", got)
	}
	e.walk(dirs, files, limit)
	if got := e.readFile(e.root, "deep/a/b/c/leaf"); got != "deep/a/b/c/leaf" {
		t.Errorf("leaf after eviction: %q", got)
	}
}

func TestEvictedInodesReacquire(t *testing.T) {
	ctx := context.Background()
	const dirs, files, limit = 4, 40, 8
	dir := bigTree(t, dirs, files)
	e := newVFSEnv(t, dir, false, limit)

	// A held directory (a cwd) and an open file outlive the eviction of
	// their dentries and the release of their handles.
	cwd, err := e.vfs.GetDentryAt(ctx, e.pop(e.root, "deep/a/b"))
	if err != nil {
		t.Fatal(err)
	}
	open, err := e.open(e.root, "lone")
	if err != nil {
		t.Fatal(err)
	}
	defer open.DecRef(ctx)
	e.walk(dirs, files, limit)
	e.walk(dirs, files, limit)
	b := cwd.Dentry.Inode().(*inode)
	e.fs.Impl().(*Filesystem).handleMu.RLock()
	released := !b.hold.held
	e.fs.Impl().(*Filesystem).handleMu.RUnlock()
	if !released {
		t.Fatal("the held directory kept its handle through the walk")
	}
	if got := e.readFile(cwd, "c/leaf"); got != "deep/a/b/c/leaf" {
		t.Errorf("relative to an evicted cwd: %q", got)
	}
	if st, err := e.vfs.StatDentry(ctx, cwd); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("stat of the evicted cwd: %v", err)
	}

	// Rename a directory whose children were evicted, then walk into it
	// by its new name, and from the held dentry below it.
	if err := e.vfs.RenameAt(ctx, e.pop(e.root, "deep/a"), e.pop(e.root, "moved"), 0); err != nil {
		t.Fatal(err)
	}
	e.walk(dirs, files, limit)
	if got := e.readFile(e.root, "moved/b/c/leaf"); got != "deep/a/b/c/leaf" {
		t.Errorf("after renaming the parent: %q", got)
	}
	e.walk(dirs, files, limit)
	if got := e.readFile(cwd, "c/leaf"); got != "deep/a/b/c/leaf" {
		t.Errorf("from the held dentry after renaming its parent: %q", got)
	}
	if p, ok := e.vfs.PathnameWithin(e.root, cwd); p != "/moved/b" || !ok {
		t.Errorf("path of the held dentry %q %v", p, ok)
	}
	// The inodes' names follow the rename too, for direct re-walks.
	e.walk(dirs, files, limit)
	if err := e.vfs.SetStatAt(ctx, e.pop(cwd, "c/leaf"), vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "moved/b/c/leaf")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("chmod through re-walked handle: %v %v", fi, err)
	}

	// An open file keeps working after its dentry is evicted and the file
	// is unlinked.
	if err := e.vfs.UnlinkAt(ctx, e.pop(e.root, "lone")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, open); got != "lone" {
		t.Errorf("read of an unlinked open file: %q", got)
	}
	if st, err := open.Stat(ctx); err != nil || st.Size != 4 {
		t.Errorf("fstat of an unlinked open file: %v %d", err, st.Size)
	}

	// A removed directory still held answers as Linux does: no entries,
	// no links, and ENOENT below it.
	if err := e.vfs.UnlinkAt(ctx, e.pop(cwd, "c/leaf")); err != nil {
		t.Fatal(err)
	}
	gone, err := e.vfs.GetDentryAt(ctx, e.pop(cwd, "c"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.vfs.RmdirAt(ctx, e.pop(cwd, "c")); err != nil {
		t.Fatal(err)
	}
	e.walk(dirs, files, limit)
	g := gone.Dentry.Inode()
	if ents, err := g.ReadDir(ctx); err != nil || len(ents) != 0 {
		t.Errorf("readdir of a removed directory: %v %v", ents, err)
	}
	if st, err := g.Stat(ctx); err != nil || st.Nlink != 0 {
		t.Errorf("stat of a removed directory: %v nlink %d", err, st.Nlink)
	}
	if _, err := g.Lookup(ctx, "x"); err != unix.ESTALE {
		t.Errorf("lookup in a removed directory: %v", err)
	}
	if _, err := e.vfs.GetDentryAt(ctx, e.pop(gone, "x")); err != unix.ENOENT {
		t.Errorf("walk in a removed directory: %v", err)
	}
}

func TestEvictionConcurrentWalks(t *testing.T) {
	const dirs, files, limit = 6, 30, 8
	e := newVFSEnv(t, bigTree(t, dirs, files), true, limit)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 2; round++ {
				for d := 0; d < dirs; d++ {
					dd := (d + g) % dirs
					dir, err := e.vfs.GetDentryAt(context.Background(), e.pop(e.root, fmt.Sprintf("d%d", dd)))
					if err != nil {
						t.Error(err)
						return
					}
					for i := 0; i < files; i++ {
						fd, err := e.open(dir, fmt.Sprintf("f%d", i))
						if err != nil {
							t.Error(err)
							return
						}
						buf := make([]byte, 64)
						n, err := fd.PRead(context.Background(), usermem.BytesSequence(buf), 0)
						fd.DecRef(context.Background())
						if want := fmt.Sprintf("d%d/f%d", dd, i); err != nil || string(buf[:n]) != want {
							t.Errorf("read %s: %q %v", want, buf[:n], err)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}
