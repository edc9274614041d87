package gofer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// newExclusiveEnv serves a writable dir as an exclusive mount.
func newExclusiveEnv(t *testing.T, dir string) (*vfsEnv, *Client) {
	ctx := context.Background()
	gfs := newFS(t, dir, false)
	gfs.SetExclusive()
	v := vfs.New()
	fs, err := v.NewFilesystem(ctx, gfs)
	if err != nil {
		t.Fatal(err)
	}
	root, err := v.MountRoot(ctx, fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &vfsEnv{t: t, vfs: v, fs: fs, root: root}, gfs.client
}

// On an exclusive mount, stats and misses are answered from the cache
// until the sandbox changes something, and every change shows at once.
func TestExclusiveCachesUntilChanged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "f"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "linked"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "d", "linked"), filepath.Join(dir, "d", "other")); err != nil {
		t.Fatal(err)
	}
	e, c := newExclusiveEnv(t, dir)
	stat := func(p string) (vfs.Statx, error) { return e.vfs.StatAt(ctx, e.pop(e.root, p)) }
	for _, p := range []string{"d", "d/f", "d/none"} {
		stat(p)
	}
	before := c.RoundTrips()
	for range 3 {
		if st, err := stat("d/f"); err != nil || st.Size != 3 {
			t.Fatalf("stat d/f: %d %v", st.Size, err)
		}
		if _, err := stat("d"); err != nil {
			t.Fatal(err)
		}
		if _, err := stat("d/none"); err != unix.ENOENT {
			t.Fatalf("stat d/none: %v", err)
		}
	}
	if n := c.RoundTrips() - before; n != 0 {
		t.Errorf("cached stats and misses made %d round trips", n)
	}

	// A write: the size and times are fetched again.
	fd, err := e.vfs.OpenAt(ctx, e.pop(e.root, "d/f"), vfs.OpenOptions{Flags: unix.O_WRONLY | unix.O_APPEND})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Write(ctx, usermem.BytesSequence([]byte("defg"))); err != nil {
		t.Fatal(err)
	}
	fd.DecRef(ctx)
	if st, err := stat("d/f"); err != nil || st.Size != 7 {
		t.Errorf("after a write: size %d %v", st.Size, err)
	}
	// chmod.
	if err := e.vfs.SetStatAt(ctx, e.pop(e.root, "d/f"), vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if st, _ := stat("d/f"); st.Mode&0o777 != 0o600 {
		t.Errorf("after chmod: mode %o", st.Mode)
	}
	// A name found missing, then created, then made a directory of.
	dst, _ := stat("d")
	if err := e.vfs.MkdirAt(ctx, e.pop(e.root, "d/none"), 0o755); err != nil {
		t.Fatal(err)
	}
	if st, err := stat("d/none"); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("created after a miss: %v", err)
	}
	if st, _ := stat("d"); st.Nlink != dst.Nlink+1 {
		t.Errorf("parent's links %d after mkdir, were %d", st.Nlink, dst.Nlink)
	}
	// Unlink: the name is missing again and the file is gone.
	if err := e.vfs.RmdirAt(ctx, e.pop(e.root, "d/none")); err != nil {
		t.Fatal(err)
	}
	if _, err := stat("d/none"); err != unix.ENOENT {
		t.Errorf("after rmdir: %v", err)
	}
	// Rename over a missing name.
	if err := e.vfs.RenameAt(ctx, e.pop(e.root, "d/f"), e.pop(e.root, "d/g"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := stat("d/f"); err != unix.ENOENT {
		t.Errorf("old name after rename: %v", err)
	}
	if st, err := stat("d/g"); err != nil || st.Size != 7 {
		t.Errorf("new name after rename: %d %v", st.Size, err)
	}
	// A file with two links is fetched every time: a write through one
	// name shows through the other's inode.
	stat("d/other")
	fd, err = e.vfs.OpenAt(ctx, e.pop(e.root, "d/linked"), vfs.OpenOptions{Flags: unix.O_WRONLY})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Write(ctx, usermem.BytesSequence([]byte("xy"))); err != nil {
		t.Fatal(err)
	}
	fd.DecRef(ctx)
	if st, err := stat("d/other"); err != nil || st.Size != 2 {
		t.Errorf("other link after a write through the first: size %d %v", st.Size, err)
	}
}
