package overlay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/gofer"
	"github.com/veil-sandbox/veil/fs/tmpfs"
	gofersrv "github.com/veil-sandbox/veil/gofer"
	"github.com/veil-sandbox/veil/sentry/memory"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

type env struct {
	t      testing.TB
	host   string // the lower layer's directory on the host
	vfs    *vfs.VirtualFilesystem
	root   vfs.VirtualDentry
	client *gofer.Client // the lower layer's
}

// newEnv stacks a tmpfs over a read-only gofer mount of a fresh host
// directory filled by fill.
func newEnv(t testing.TB, fill func(dir string)) *env {
	t.Helper()
	dir := t.TempDir()
	fill(dir)
	return newEnvAt(t, dir)
}

// newEnvAt stacks a tmpfs over a read-only gofer mount of dir.
func newEnvAt(t testing.TB, dir string) *env {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gofersrv.Serve(fds[1], dir, true) }()
	c, err := gofer.NewClient(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	mf, err := memory.NewSized(256 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Shutdown()
		<-done
		mf.Close()
	})
	ctx := context.Background()
	lower := gofer.NewFilesystem(c, mf)
	lower.SetExclusive() // as the root's, in boot
	ofs, err := New(ctx, tmpfs.New(mf, tmpfs.Options{InoBase: UpperInoBase}), lower)
	if err != nil {
		t.Fatal(err)
	}
	v := vfs.New()
	fs, err := v.NewFilesystem(ctx, ofs)
	if err != nil {
		t.Fatal(err)
	}
	root, err := v.MountRoot(ctx, fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, host: dir, vfs: v, root: root, client: c}
}

func (e *env) pop(path string) *vfs.PathOperation {
	return &vfs.PathOperation{Root: e.root, Start: e.root, Path: path}
}

func (e *env) read(path string) (string, error) {
	ctx := context.Background()
	fd, err := e.vfs.OpenAt(ctx, &vfs.PathOperation{Root: e.root, Start: e.root, Path: path, FollowFinalSymlink: true}, vfs.OpenOptions{Flags: unix.O_RDONLY})
	if err != nil {
		return "", err
	}
	defer fd.DecRef(ctx)
	buf := make([]byte, 1<<16)
	n, err := fd.PRead(ctx, usermem.BytesSequence(buf), 0)
	return string(buf[:n]), err
}

func (e *env) mustRead(path, want string) {
	e.t.Helper()
	got, err := e.read(path)
	if err != nil || got != want {
		e.t.Errorf("%s reads %q, %v; want %q", path, got, err, want)
	}
}

func (e *env) write(path string, flags uint32, data string) error {
	ctx := context.Background()
	fd, err := e.vfs.OpenAt(ctx, &vfs.PathOperation{Root: e.root, Start: e.root, Path: path, FollowFinalSymlink: true}, vfs.OpenOptions{Flags: unix.O_WRONLY | flags, Mode: 0o644})
	if err != nil {
		return err
	}
	defer fd.DecRef(ctx)
	_, err = fd.Write(ctx, usermem.BytesSequence([]byte(data)))
	return err
}

func (e *env) list(path string) []string {
	e.t.Helper()
	vd, err := e.vfs.GetDentryAt(context.Background(), e.pop(path))
	if err != nil {
		e.t.Fatalf("%s: %v", path, err)
	}
	ents, err := vd.Inode().ReadDir(context.Background())
	if err != nil {
		e.t.Fatalf("readdir %s: %v", path, err)
	}
	var names []string
	for _, d := range ents {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return names
}

func (e *env) stat(path string) (vfs.Statx, error) {
	vd, err := e.vfs.GetDentryAt(context.Background(), e.pop(path))
	if err != nil {
		return vfs.Statx{}, err
	}
	return vd.Inode().Stat(context.Background())
}

// hostUnchanged checks that the lower layer's file still holds want.
func (e *env) hostUnchanged(rel, want string) {
	e.t.Helper()
	got, err := os.ReadFile(filepath.Join(e.host, rel))
	if err != nil || string(got) != want {
		e.t.Errorf("host %s: %q, %v; want %q", rel, got, err, want)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func basicTree(dir string) {
	os.WriteFile(filepath.Join(dir, "file"), []byte("lower data"), 0o640)
	os.MkdirAll(filepath.Join(dir, "d", "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(dir, "d", "sub", "b"), []byte("b"), 0o644)
	os.Mkdir(filepath.Join(dir, "empty"), 0o700)
	os.Symlink("file", filepath.Join(dir, "link"))
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	os.Chtimes(filepath.Join(dir, "file"), old, old)
}

func TestCopyUpOnWrite(t *testing.T) {
	e := newEnv(t, basicTree)
	ctx := context.Background()
	before, err := e.stat("file")
	if err != nil {
		t.Fatal(err)
	}
	e.mustRead("file", "lower data")
	// chmod copies up with data, owner and times intact.
	vd, _ := e.vfs.GetDentryAt(ctx, e.pop("file"))
	if err := vd.Inode().SetStat(ctx, vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	after, _ := e.stat("file")
	if after.Mode&0o7777 != 0o600 || after.Mtime != before.Mtime || after.UID != before.UID || after.Size != before.Size {
		t.Errorf("after chmod: mode %o mtime %v uid %d size %d; before mtime %v uid %d", after.Mode, after.Mtime, after.UID, after.Size, before.Mtime, before.UID)
	}
	e.mustRead("file", "lower data")
	if err := e.write("file", unix.O_APPEND, " + upper"); err != nil {
		t.Fatal(err)
	}
	e.mustRead("file", "lower data + upper")
	e.mustRead("link", "lower data + upper")
	e.hostUnchanged("file", "lower data")
	if fi, _ := os.Stat(filepath.Join(e.host, "file")); fi.Mode().Perm() != 0o640 {
		t.Errorf("host mode changed to %v", fi.Mode())
	}
	// O_TRUNC of a lower file.
	if err := e.write("d/a", unix.O_TRUNC, "new"); err != nil {
		t.Fatal(err)
	}
	e.mustRead("d/a", "new")
	e.hostUnchanged("d/a", "a")
}

func TestWhiteoutsAndOpaque(t *testing.T) {
	e := newEnv(t, basicTree)
	ctx := context.Background()
	if err := e.vfs.UnlinkAt(ctx, e.pop("file")); err != nil {
		t.Fatal(err)
	}
	_, err := e.read("file")
	wantErr(t, "read unlinked", err, unix.ENOENT)
	if got := e.list("/"); !slices.Equal(got, []string{"d", "empty", "link"}) {
		t.Errorf("root lists %v", got)
	}
	_, err = e.read("link")
	wantErr(t, "dangling link", err, unix.ENOENT)
	e.hostUnchanged("file", "lower data")
	// Recreating the name gives a new file.
	if err := e.write("file", unix.O_CREAT|unix.O_EXCL, "fresh"); err != nil {
		t.Fatal(err)
	}
	e.mustRead("file", "fresh")

	wantErr(t, "rmdir non-empty lower dir", e.vfs.RmdirAt(ctx, e.pop("d")), unix.ENOTEMPTY)
	for _, p := range []string{"d/a", "d/sub/b"} {
		if err := e.vfs.UnlinkAt(ctx, e.pop(p)); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "rmdir d with sub", e.vfs.RmdirAt(ctx, e.pop("d")), unix.ENOTEMPTY)
	if err := e.vfs.RmdirAt(ctx, e.pop("d/sub")); err != nil {
		t.Fatal(err)
	}
	if got := e.list("d"); len(got) != 0 {
		t.Errorf("d lists %v after removing everything", got)
	}
	if err := e.vfs.RmdirAt(ctx, e.pop("d")); err != nil {
		t.Fatal(err)
	}
	// A directory made where a lower one was removed starts empty.
	if err := e.vfs.MkdirAt(ctx, e.pop("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := e.list("d"); len(got) != 0 {
		t.Errorf("new d lists %v", got)
	}
	_, err = e.read("d/a")
	wantErr(t, "lower file under an opaque dir", err, unix.ENOENT)
	if _, err := os.Stat(filepath.Join(e.host, "d", "sub", "b")); err != nil {
		t.Errorf("host tree touched: %v", err)
	}
}

func TestReaddirMerges(t *testing.T) {
	e := newEnv(t, basicTree)
	if err := e.write("d/new", unix.O_CREAT, "x"); err != nil {
		t.Fatal(err)
	}
	if err := e.write("d/a", 0, "A"); err != nil {
		t.Fatal(err)
	}
	if got := e.list("d"); !slices.Equal(got, []string{"a", "new", "sub"}) {
		t.Errorf("d lists %v", got)
	}
	// Inode numbers agree between readdir and stat.
	vd, _ := e.vfs.GetDentryAt(context.Background(), e.pop("d"))
	ents, _ := vd.Inode().ReadDir(context.Background())
	for _, d := range ents {
		st, err := e.stat("d/" + d.Name)
		if err != nil || st.Ino != d.Ino {
			t.Errorf("d/%s: readdir ino %d, stat ino %d (%v)", d.Name, d.Ino, st.Ino, err)
		}
	}
}

func TestRename(t *testing.T) {
	e := newEnv(t, basicTree)
	ctx := context.Background()
	if err := e.vfs.RenameAt(ctx, e.pop("file"), e.pop("d/moved"), 0); err != nil {
		t.Fatal(err)
	}
	e.mustRead("d/moved", "lower data")
	_, err := e.read("file")
	wantErr(t, "old name", err, unix.ENOENT)
	e.hostUnchanged("file", "lower data")
	// A lower directory does not move; an upper-only one does.
	wantErr(t, "rename lower dir", e.vfs.RenameAt(ctx, e.pop("d"), e.pop("d2"), 0), unix.EXDEV)
	if err := e.vfs.MkdirAt(ctx, e.pop("new"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := e.write("new/f", unix.O_CREAT, "f"); err != nil {
		t.Fatal(err)
	}
	// Over an empty lower directory: the result hides it.
	if err := e.vfs.RenameAt(ctx, e.pop("new"), e.pop("empty"), 0); err != nil {
		t.Fatal(err)
	}
	if got := e.list("empty"); !slices.Equal(got, []string{"f"}) {
		t.Errorf("empty lists %v", got)
	}
	// Over a lower file.
	if err := e.write("x", unix.O_CREAT, "x"); err != nil {
		t.Fatal(err)
	}
	if err := e.vfs.RenameAt(ctx, e.pop("x"), e.pop("d/a"), 0); err != nil {
		t.Fatal(err)
	}
	e.mustRead("d/a", "x")
	e.hostUnchanged("d/a", "a")
	if got := e.list("/"); !slices.Equal(got, []string{"d", "empty", "link"}) {
		t.Errorf("root lists %v", got)
	}
}

func TestHardLinks(t *testing.T) {
	e := newEnv(t, func(dir string) {
		basicTree(dir)
		os.Link(filepath.Join(dir, "d", "a"), filepath.Join(dir, "a2"))
	})
	ctx := context.Background()
	if err := e.write("d/a", unix.O_TRUNC, "changed"); err != nil {
		t.Fatal(err)
	}
	e.mustRead("a2", "changed") // the other lower name sees the copy
	if err := e.write("a2", unix.O_APPEND, "!"); err != nil {
		t.Fatal(err)
	}
	e.mustRead("d/a", "changed!")
	a, _ := e.stat("d/a")
	a2, _ := e.stat("a2")
	if a.Ino != a2.Ino || a.Nlink != 2 {
		t.Errorf("links: ino %d vs %d, nlink %d", a.Ino, a2.Ino, a.Nlink)
	}
	// Links made in the overlay are links.
	vd, _ := e.vfs.GetDentryAt(ctx, e.pop("file"))
	if err := e.vfs.LinkDentryAt(ctx, vd, e.pop("d/file2")); err != nil {
		t.Fatal(err)
	}
	if err := e.write("d/file2", unix.O_APPEND, "+"); err != nil {
		t.Fatal(err)
	}
	e.mustRead("file", "lower data+")
	e.hostUnchanged("d/a", "a")
}

func TestSymlinkAndSpecialCopyUp(t *testing.T) {
	e := newEnv(t, func(dir string) {
		basicTree(dir)
		unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	})
	ctx := context.Background()
	for _, p := range []string{"link", "fifo"} {
		vd, err := e.vfs.GetDentryAt(ctx, e.pop(p))
		if err != nil {
			t.Fatal(err)
		}
		if err := vd.Inode().SetStat(ctx, vfs.SetStatOptions{Mask: unix.STATX_UID, UID: 1234}); err != nil {
			t.Fatal(err)
		}
		st, _ := e.stat(p)
		if st.UID != 1234 {
			t.Errorf("%s: uid %d", p, st.UID)
		}
	}
	vd, _ := e.vfs.GetDentryAt(ctx, e.pop("link"))
	if tgt, err := vd.Inode().Readlink(ctx); err != nil || tgt != "file" {
		t.Errorf("copied symlink reads %q, %v", tgt, err)
	}
	if st, _ := e.stat("fifo"); st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo copied up as mode %o", st.Mode)
	}
}

func TestLargeSparseCopyUp(t *testing.T) {
	const size = 8 << 20
	e := newEnv(t, func(dir string) {
		f, _ := os.Create(filepath.Join(dir, "big"))
		f.WriteAt([]byte("head"), 0)
		f.WriteAt([]byte("tail"), size-4)
		f.Close()
	})
	if err := e.write("big", unix.O_APPEND, "!"); err != nil {
		t.Fatal(err)
	}
	st, _ := e.stat("big")
	if st.Size != size+1 {
		t.Errorf("size %d", st.Size)
	}
	if st.Blocks*512 >= size {
		t.Errorf("holes filled in: %d blocks", st.Blocks)
	}
	ctx := context.Background()
	fd, _ := e.vfs.OpenAt(ctx, &vfs.PathOperation{Root: e.root, Start: e.root, Path: "big"}, vfs.OpenOptions{Flags: unix.O_RDONLY})
	defer fd.DecRef(ctx)
	buf := make([]byte, 5)
	if n, _ := fd.PRead(ctx, usermem.BytesSequence(buf), size-4); string(buf[:n]) != "tail!" {
		t.Errorf("tail reads %q", buf[:n])
	}
	if n, _ := fd.PRead(ctx, usermem.BytesSequence(buf[:4]), 0); string(buf[:n]) != "head" {
		t.Errorf("head reads %q", buf[:n])
	}
}

func TestExchange(t *testing.T) {
	e := newEnv(t, basicTree)
	ctx := context.Background()
	if err := e.vfs.RenameAt(ctx, e.pop("file"), e.pop("d/a"), unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	e.mustRead("file", "a")
	e.mustRead("d/a", "lower data")
	e.hostUnchanged("file", "lower data")
	e.hostUnchanged("d/a", "a")
	wantErr(t, "exchange a lower directory", e.vfs.RenameAt(ctx, e.pop("file"), e.pop("empty"), unix.RENAME_EXCHANGE), unix.EXDEV)
	// An upper directory swapped with a lower file hides the lower
	// directory's place.
	if err := e.vfs.MkdirAt(ctx, e.pop("nd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := e.vfs.RenameAt(ctx, e.pop("nd"), e.pop("file"), unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	if got := e.list("file"); len(got) != 0 {
		t.Errorf("swapped directory lists %v", got)
	}
	e.mustRead("nd", "a")
}

func TestXattrCopyUp(t *testing.T) {
	e := newEnv(t, func(dir string) {
		basicTree(dir)
		if err := unix.Setxattr(filepath.Join(dir, "file"), "user.lower", []byte("lv"), 0); err != nil {
			t.Skipf("host file system has no user xattrs: %v", err)
		}
	})
	ctx := context.Background()
	vd, err := e.vfs.GetDentryAt(ctx, e.pop("file"))
	if err != nil {
		t.Fatal(err)
	}
	x := vd.Inode().(vfs.InodeXattrs)
	if v, err := x.GetXattr(ctx, "user.lower"); err != nil || v != "lv" {
		t.Errorf("lower xattr: %q, %v", v, err)
	}
	if err := x.SetXattr(ctx, "trusted.new", "tv", 0); err != nil {
		t.Fatal(err)
	}
	names, _ := x.ListXattr(ctx)
	slices.Sort(names)
	if !slices.Equal(names, []string{"trusted.new", "user.lower"}) {
		t.Errorf("after copy-up: %v", names)
	}
	e.mustRead("file", "lower data")
	buf := make([]byte, 16)
	if _, err := unix.Getxattr(filepath.Join(e.host, "file"), "user.veil.t.new", buf); err == nil {
		t.Error("an xattr set through the overlay reached the host")
	}
}

// A merged directory shows its lower attributes until changed, then a
// link count that follows its listing.
func TestMergedDirStat(t *testing.T) {
	e := newEnv(t, basicTree)
	ctx := context.Background()
	var want unix.Stat_t
	if err := unix.Stat(e.host, &want); err != nil {
		t.Fatal(err)
	}
	st, _ := e.stat("/")
	if uint64(st.Nlink) != uint64(want.Nlink) || int64(st.Blocks) != want.Blocks {
		t.Errorf("root: nlink %d blocks %d, host %d %d", st.Nlink, st.Blocks, want.Nlink, want.Blocks)
	}
	// d and empty are directories: 2 + 2; one more, then one whited out.
	if err := e.vfs.MkdirAt(ctx, e.pop("extra"), 0o755); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.stat("/"); st.Nlink != 5 {
		t.Errorf("after mkdir: nlink %d, want 5", st.Nlink)
	}
	if err := e.vfs.RmdirAt(ctx, e.pop("empty")); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.stat("/"); st.Nlink != 4 {
		t.Errorf("after rmdir of a lower directory: nlink %d, want 4", st.Nlink)
	}
}

// The lower layer is read-only and the sandbox's own, so the cache is
// the truth: once a file has been opened, opening, stat'ing and reading
// it again, and looking up names that are not there, cost no round trip
// to the gofer.
func TestCachedLowerCostsNoRoundTrip(t *testing.T) {
	e := newEnv(t, benchTree)
	ctx := context.Background()
	e.mustRead("usr/bin/env", "#!")
	// Second lookups in a directory fetch its listing.
	for _, p := range []string{"usr/bin/f1", "usr/nothing", "nothing"} {
		e.stat(p)
	}
	before := e.client.RoundTrips()
	for range 3 {
		e.mustRead("usr/bin/env", "#!")
		fd, err := e.vfs.OpenAt(ctx, &vfs.PathOperation{Root: e.root, Start: e.root, Path: "/usr/bin/env"}, vfs.OpenOptions{Flags: unix.O_RDONLY})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := fd.Stat(ctx); err != nil || st.Size != 2 {
			t.Errorf("fstat: size %d, %v", st.Size, err)
		}
		fd.DecRef(ctx)
		for _, p := range []string{"usr/bin/env", "usr/bin/f7", "usr/bin", "usr"} {
			if _, err := e.stat(p); err != nil {
				t.Errorf("stat %s: %v", p, err)
			}
		}
		for _, p := range []string{"usr/bin/missing", "usr/nothing", "nothing"} {
			if _, err := e.stat(p); !errors.Is(err, unix.ENOENT) {
				t.Errorf("stat %s: %v, want ENOENT", p, err)
			}
		}
	}
	if n := e.client.RoundTrips() - before; n != 0 {
		t.Errorf("cached opens, stats and misses made %d round trips, want 0", n)
	}
	// A write copies up; the lower file and the cache of it stay as they
	// were for the host, and the copy is what the sandbox sees.
	if err := e.write("usr/bin/env", unix.O_TRUNC, "new"); err != nil {
		t.Fatal(err)
	}
	e.mustRead("usr/bin/env", "new")
	e.hostUnchanged("usr/bin/env", "#!")
	if st, _ := e.stat("usr/bin/env"); st.Size != 3 {
		t.Errorf("after copy-up, size %d", st.Size)
	}
}
