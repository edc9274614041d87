package tmpfs

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/memory"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

type env struct {
	t    *testing.T
	vfs  *vfs.VirtualFilesystem
	root vfs.VirtualDentry
	mf   *memory.File
	fs   *Filesystem
}

func newEnv(t *testing.T) *env {
	mf, err := memory.NewSized(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	v := vfs.New()
	tfs := New(mf, Options{Mode: 0755})
	fs, err := v.NewFilesystem(context.Background(), tfs)
	if err != nil {
		t.Fatal(err)
	}
	root, err := v.MountRoot(context.Background(), fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, vfs: v, root: root, mf: mf, fs: tfs}
}

func rootCtx() context.Context { return context.Background() }

func userCtx(uid, gid uint32, extra ...auth.KGID) context.Context {
	return context.WithValue(context.Background(), auth.CtxCredentials, auth.NewUser(auth.KUID(uid), auth.KGID(gid), extra))
}

func (e *env) pop(path string, follow bool) *vfs.PathOperation {
	return &vfs.PathOperation{Root: e.root, Start: e.root, Path: path, FollowFinalSymlink: follow}
}

func (e *env) mkdir(ctx context.Context, path string, mode uint32) {
	e.t.Helper()
	if err := e.vfs.MkdirAt(ctx, e.pop(path, false), mode); err != nil {
		e.t.Fatalf("mkdir %s: %v", path, err)
	}
}

func (e *env) open(ctx context.Context, path string, flags, mode uint32) (*vfs.FileDescription, error) {
	return e.vfs.OpenAt(ctx, e.pop(path, true), vfs.OpenOptions{Flags: flags, Mode: mode})
}

func (e *env) writeFile(ctx context.Context, path string, data []byte) {
	e.t.Helper()
	fd, err := e.open(ctx, path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0644)
	if err != nil {
		e.t.Fatalf("open %s: %v", path, err)
	}
	defer fd.DecRef(ctx)
	if n, err := fd.Write(ctx, usermem.BytesSequence(data)); err != nil || n != int64(len(data)) {
		e.t.Fatalf("write %s: %d, %v", path, n, err)
	}
}

func (e *env) readFile(ctx context.Context, path string) []byte {
	e.t.Helper()
	fd, err := e.open(ctx, path, unix.O_RDONLY, 0)
	if err != nil {
		e.t.Fatalf("open %s: %v", path, err)
	}
	defer fd.DecRef(ctx)
	var out []byte
	buf := make([]byte, 1000)
	for {
		n, err := fd.Read(ctx, usermem.BytesSequence(buf))
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func TestReadWriteAcrossPages(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes, 4 pages
	e.writeFile(ctx, "/f", data)
	if got := e.readFile(ctx, "/f"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, mismatch", len(got))
	}
	st, err := e.vfs.StatAt(ctx, e.pop("/f", true))
	if err != nil || st.Size != 16000 || st.Mode != unix.S_IFREG|0644 || st.Nlink != 1 {
		t.Fatalf("stat: %+v %v", st, err)
	}
	// Sparse write: the hole reads as zeros.
	fd, _ := e.open(ctx, "/f", unix.O_RDWR, 0)
	defer fd.DecRef(ctx)
	if _, err := fd.PWrite(ctx, usermem.BytesSequence([]byte("X")), 100000); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := fd.PRead(ctx, usermem.BytesSequence(buf), 50000); err != nil || n != 10 || !bytes.Equal(buf, make([]byte, 10)) {
		t.Fatalf("hole read: %d %v %v", n, err, buf)
	}
	if n, _ := fd.PRead(ctx, usermem.BytesSequence(buf), 100001); n != 0 {
		t.Fatalf("read at EOF returned %d", n)
	}
	// Seek.
	if off, err := fd.Seek(ctx, 0, unix.SEEK_END); err != nil || off != 100001 {
		t.Fatalf("SEEK_END: %d %v", off, err)
	}
	if _, err := fd.Seek(ctx, -1, unix.SEEK_SET); err != unix.EINVAL {
		t.Fatalf("negative seek: %v", err)
	}
	if _, err := fd.Seek(ctx, 200000, unix.SEEK_DATA); err != unix.ENXIO {
		t.Fatalf("SEEK_DATA past EOF: %v", err)
	}
}

func TestAppendAndTruncate(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	e.writeFile(ctx, "/a", []byte("hello"))
	fd, err := e.open(ctx, "/a", unix.O_WRONLY|unix.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd.Write(ctx, usermem.BytesSequence([]byte(" world")))
	fd.DecRef(ctx)
	if got := string(e.readFile(ctx, "/a")); got != "hello world" {
		t.Fatalf("append: %q", got)
	}
	if err := e.vfs.SetStatAt(ctx, e.pop("/a", true), vfs.SetStatOptions{Mask: unix.STATX_SIZE, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if err := e.vfs.SetStatAt(ctx, e.pop("/a", true), vfs.SetStatOptions{Mask: unix.STATX_SIZE, Size: 6}); err != nil {
		t.Fatal(err)
	}
	if got := e.readFile(ctx, "/a"); !bytes.Equal(got, []byte("he\x00\x00\x00\x00")) {
		t.Fatalf("truncate/extend: %q", got)
	}
	// O_TRUNC empties.
	fd, _ = e.open(ctx, "/a", unix.O_WRONLY|unix.O_TRUNC, 0)
	fd.DecRef(ctx)
	if got := e.readFile(ctx, "/a"); len(got) != 0 {
		t.Fatalf("O_TRUNC left %q", got)
	}
}

func TestPagesFreedAfterUnlinkAndClose(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	before := e.mf.TotalUsage()
	e.writeFile(ctx, "/big", make([]byte, 5*hostarch.PageSize))
	fd, _ := e.open(ctx, "/big", unix.O_RDONLY, 0)
	if err := e.vfs.UnlinkAt(ctx, e.pop("/big", false)); err != nil {
		t.Fatal(err)
	}
	if got := e.mf.TotalUsage() - before; got != 5*hostarch.PageSize {
		t.Fatalf("after unlink with open fd: %d bytes in use", got)
	}
	// Still readable while open.
	buf := make([]byte, 10)
	if n, err := fd.Read(ctx, usermem.BytesSequence(buf)); n != 10 || err != nil {
		t.Fatalf("read unlinked: %d %v", n, err)
	}
	fd.DecRef(ctx)
	if got := e.mf.TotalUsage(); got != before {
		t.Fatalf("after close: %d bytes in use, want %d", got, before)
	}
}

type fakeSpace struct{ inval []hostarch.AddrRange }

func (f *fakeSpace) Invalidate(ar hostarch.AddrRange) { f.inval = append(f.inval, ar) }

func TestMappableCoherentWithWrite(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	e.writeFile(ctx, "/m", bytes.Repeat([]byte{'a'}, 3*hostarch.PageSize))
	fd, _ := e.open(ctx, "/m", unix.O_RDWR, 0)
	defer fd.DecRef(ctx)
	opts := memmap.MMapOpts{Length: 3 * hostarch.PageSize, Perms: hostarch.ReadWrite, MaxPerms: hostarch.AnyAccess}
	if err := fd.ConfigureMMap(ctx, &opts); err != nil || opts.Mappable == nil {
		t.Fatalf("ConfigureMMap: %v", err)
	}
	m := opts.Mappable
	ts, err := m.Translate(hostarch.PageSize, hostarch.PageSize, hostarch.Read)
	if err != nil || len(ts) != 1 || ts[0].Offset != hostarch.PageSize {
		t.Fatalf("Translate: %+v %v", ts, err)
	}
	// A write through the "mapping" is seen by read(2), and vice versa.
	b, _ := e.mf.MapInternal(ts[0].FileOffset, hostarch.PageSize)
	b[0] = 'Z'
	buf := make([]byte, 1)
	fd.PRead(ctx, usermem.BytesSequence(buf), hostarch.PageSize)
	if buf[0] != 'Z' {
		t.Fatalf("read after mapped write: %q", buf)
	}
	fd.PWrite(ctx, usermem.BytesSequence([]byte("Q")), hostarch.PageSize+1)
	if b[1] != 'Q' {
		t.Fatalf("mapped view after write: %q", b[:2])
	}
	// Truncation invalidates mappings past the new EOF and Translate
	// refuses beyond it.
	sp := &fakeSpace{}
	ar := hostarch.AddrRange{Start: 0x10000, End: 0x10000 + 3*hostarch.PageSize}
	m.AddMapping(sp, ar, 0, true)
	if err := fd.Truncate(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if len(sp.inval) != 1 || sp.inval[0] != (hostarch.AddrRange{Start: 0x11000, End: ar.End}) {
		t.Fatalf("invalidations %v", sp.inval)
	}
	if _, err := m.Translate(hostarch.PageSize, hostarch.PageSize, hostarch.Read); err != unix.EFAULT {
		t.Fatalf("Translate past EOF: %v", err)
	}
	m.RemoveMapping(sp, ar, 0, true)
}

func TestPathResolution(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	e.mkdir(ctx, "/a", 0755)
	e.mkdir(ctx, "/a/b", 0755)
	e.writeFile(ctx, "/a/b/f", []byte("x"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.vfs.SymlinkAt(ctx, e.pop("/a/abs", false), "/a/b"))
	must(e.vfs.SymlinkAt(ctx, e.pop("/a/rel", false), "b/f"))
	must(e.vfs.SymlinkAt(ctx, e.pop("/loop", false), "/loop"))
	must(e.vfs.SymlinkAt(ctx, e.pop("/dangling", false), "nowhere"))

	for _, c := range []struct {
		path   string
		follow bool
		want   error
	}{
		{"/a/b/f", true, nil},
		{"/a/abs/f", true, nil},
		{"/a/rel", true, nil},
		{"/../../a/b/../b/./f", true, nil},
		{"/a/b/f/", true, unix.ENOTDIR},
		{"/a/b/f/x", true, unix.ENOTDIR},
		{"/a/abs/", false, nil}, // trailing slash follows
		{"/loop", true, unix.ELOOP},
		{"/loop", false, nil},
		{"/loop/x", false, unix.ELOOP},
		{"/dangling", true, unix.ENOENT},
		{"/nope", true, unix.ENOENT},
		{"", true, unix.ENOENT},
		{"/" + string(bytes.Repeat([]byte("n"), 256)), true, unix.ENAMETOOLONG},
		{string(bytes.Repeat([]byte("/a"), 2048)), true, unix.ENAMETOOLONG},
	} {
		_, err := e.vfs.GetDentryAt(ctx, e.pop(c.path, c.follow))
		if c.want == nil && err != nil || c.want != nil && err != c.want {
			t.Errorf("resolve %.40q follow=%v: %v, want %v", c.path, c.follow, err, c.want)
		}
	}
	// A chain of 40 symlinks resolves; 41 is ELOOP.
	must(e.vfs.SymlinkAt(ctx, e.pop("/l0", false), "/a/b/f"))
	for i := 1; i <= 41; i++ {
		must(e.vfs.SymlinkAt(ctx, e.pop("/l"+itoa(i), false), "/l"+itoa(i-1)))
	}
	if _, err := e.vfs.GetDentryAt(ctx, e.pop("/l39", true)); err != nil {
		t.Errorf("40 links: %v", err)
	}
	if _, err := e.vfs.GetDentryAt(ctx, e.pop("/l40", true)); err != unix.ELOOP {
		t.Errorf("41 links: %v", err)
	}
	// Relative to a start directory, ".." stops at the root.
	start, _ := e.vfs.GetDentryAt(ctx, e.pop("/a/b", true))
	chroot, _ := e.vfs.GetDentryAt(ctx, e.pop("/a", true))
	vd, err := e.vfs.GetDentryAt(ctx, &vfs.PathOperation{Root: chroot, Start: start, Path: "../../../b/f"})
	if err != nil {
		t.Fatalf("chrooted dotdot: %v", err)
	}
	if p, ok := e.vfs.PathnameWithin(chroot, vd); p != "/b/f" || !ok {
		t.Errorf("PathnameWithin = %q %v", p, ok)
	}
	// Absolute symlinks resolve against the chroot.
	if _, err := e.vfs.GetDentryAt(ctx, &vfs.PathOperation{Root: chroot, Start: chroot, Path: "abs/f", FollowFinalSymlink: true}); err != unix.ENOENT {
		t.Errorf("absolute symlink in chroot: %v (want ENOENT: /a/b is /b there)", err)
	}
	// O_NOFOLLOW on a symlink is ELOOP; O_PATH|O_NOFOLLOW opens the link.
	if _, err := e.open(ctx, "/a/rel", unix.O_RDONLY|unix.O_NOFOLLOW, 0); err != unix.ELOOP {
		t.Errorf("O_NOFOLLOW: %v", err)
	}
	fd, err := e.vfs.OpenAt(ctx, e.pop("/a/rel", false), vfs.OpenOptions{Flags: unix.O_PATH | unix.O_NOFOLLOW})
	if err != nil {
		t.Fatalf("O_PATH|O_NOFOLLOW: %v", err)
	}
	if st, _ := fd.Stat(ctx); st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("O_PATH fd stat mode %o", st.Mode)
	}
	if _, err := fd.Read(ctx, usermem.BytesSequence(make([]byte, 1))); err != unix.EBADF {
		t.Errorf("read O_PATH: %v", err)
	}
	fd.DecRef(ctx)
	// O_CREAT through a dangling symlink creates the target.
	fd, err = e.open(ctx, "/dangling", unix.O_CREAT|unix.O_WRONLY, 0600)
	if err != nil {
		t.Fatalf("create via dangling link: %v", err)
	}
	fd.DecRef(ctx)
	if _, err := e.vfs.GetDentryAt(ctx, e.pop("/nowhere", false)); err != nil {
		t.Errorf("dangling target not created: %v", err)
	}
	if _, err := e.open(ctx, "/dangling", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0600); err != unix.EEXIST {
		t.Errorf("O_EXCL on symlink: %v", err)
	}
	if _, err := e.open(ctx, "/newfile/", unix.O_CREAT|unix.O_WRONLY, 0600); err != unix.EISDIR {
		t.Errorf("O_CREAT with trailing slash: %v", err)
	}
	if _, err := e.open(ctx, "/a", unix.O_WRONLY, 0); err != unix.EISDIR {
		t.Errorf("open dir for write: %v", err)
	}
	if _, err := e.open(ctx, "/a/b/f", unix.O_RDONLY|unix.O_DIRECTORY, 0); err != unix.ENOTDIR {
		t.Errorf("O_DIRECTORY on file: %v", err)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestMounts(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	e.mkdir(ctx, "/tmp", 0777)
	e.mkdir(ctx, "/ro", 0755)
	e.mkdir(ctx, "/bind", 0755)
	e.writeFile(ctx, "/tmp/under", []byte("hidden"))

	tmpfs2 := New(e.mf, Options{Mode: 01777})
	fs2, _ := e.vfs.NewFilesystem(ctx, tmpfs2)
	tmpVD, _ := e.vfs.GetDentryAt(ctx, e.pop("/tmp", true))
	if _, err := e.vfs.MountAt(ctx, fs2, tmpVD, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.vfs.GetDentryAt(ctx, e.pop("/tmp/under", true)); err != unix.ENOENT {
		t.Errorf("mounted-over file visible: %v", err)
	}
	e.writeFile(ctx, "/tmp/new", []byte("on tmpfs2"))
	st, _ := e.vfs.StatAt(ctx, e.pop("/tmp", true))
	if st.Mode != unix.S_IFDIR|01777 {
		t.Errorf("mount root mode %o", st.Mode)
	}
	rootSt, _ := e.vfs.StatAt(ctx, e.pop("/", true))
	if st.DevMinor == rootSt.DevMinor {
		t.Errorf("mounted fs shares st_dev with root")
	}
	// ".." from the mount root crosses back to the parent filesystem.
	vd, err := e.vfs.GetDentryAt(ctx, e.pop("/tmp/../ro", true))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := e.vfs.PathnameWithin(e.root, vd); p != "/ro" {
		t.Errorf("path %q", p)
	}
	newVD, _ := e.vfs.GetDentryAt(ctx, e.pop("/tmp/new", true))
	if p, _ := e.vfs.PathnameWithin(e.root, newVD); p != "/tmp/new" {
		t.Errorf("path across mount %q", p)
	}
	// Cross-mount rename and link are EXDEV; the mount point is EBUSY.
	wantErr(t, "rename across mounts", e.vfs.RenameAt(ctx, e.pop("/tmp/new", false), e.pop("/x", false), 0), unix.EXDEV)
	wantErr(t, "link across mounts", e.vfs.LinkAt(ctx, e.pop("/tmp/new", false), e.pop("/x", false)), unix.EXDEV)
	wantErr(t, "rmdir mountpoint", e.vfs.RmdirAt(ctx, e.pop("/tmp", false)), unix.EBUSY)

	// Read-only bind mount of /tmp at /ro.
	src, _ := e.vfs.GetDentryAt(ctx, e.pop("/tmp", true))
	if _, err := e.vfs.BindMount(ctx, src, vd, vfs.MountReadOnly); err != nil {
		t.Fatal(err)
	}
	if got := string(e.readFile(ctx, "/ro/new")); got != "on tmpfs2" {
		t.Errorf("bind mount content %q", got)
	}
	_, err = e.open(ctx, "/ro/new", unix.O_WRONLY, 0)
	wantErr(t, "write open on ro", err, unix.EROFS)
	wantErr(t, "mkdir on ro", e.vfs.MkdirAt(ctx, e.pop("/ro/d", false), 0755), unix.EROFS)
	wantErr(t, "mkdir existing on ro", e.vfs.MkdirAt(ctx, e.pop("/ro/new", false), 0755), unix.EEXIST)
	wantErr(t, "unlink on ro", e.vfs.UnlinkAt(ctx, e.pop("/ro/new", false)), unix.EROFS)
	wantErr(t, "chmod on ro", e.vfs.SetStatAt(ctx, e.pop("/ro/new", true), vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: 0}), unix.EROFS)
	// Umount.
	roVD, _ := e.vfs.GetDentryAt(ctx, e.pop("/ro", true))
	if err := e.vfs.Umount(ctx, roVD); err != nil {
		t.Fatal(err)
	}
	if _, err := e.vfs.GetDentryAt(ctx, e.pop("/ro/new", true)); err != unix.ENOENT {
		t.Errorf("after umount: %v", err)
	}
}

func TestPermissions(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	alice := userCtx(1000, 1000)
	bob := userCtx(1001, 1001, 1000)
	e.mkdir(ctx, "/home", 0755)
	e.mkdir(ctx, "/pub", 01777)
	e.mkdir(ctx, "/secret", 0700)
	e.writeFile(ctx, "/secret/f", []byte("x"))
	e.writeFile(ctx, "/home/ro", []byte("x"))
	e.vfs.SetStatAt(ctx, e.pop("/home/ro", true), vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: 0444})

	_, err := e.open(alice, "/secret/f", unix.O_RDONLY, 0)
	wantErr(t, "search denied", err, unix.EACCES)
	_, err = e.open(alice, "/home/ro", unix.O_WRONLY, 0)
	wantErr(t, "write 0444", err, unix.EACCES)
	if fd, err := e.open(ctx, "/home/ro", unix.O_WRONLY, 0); err != nil {
		t.Errorf("root CAP_DAC_OVERRIDE write: %v", err)
	} else {
		fd.DecRef(ctx)
	}
	wantErr(t, "create in 0755 dir", e.vfs.MkdirAt(alice, e.pop("/home/x", false), 0755), unix.EACCES)
	wantErr(t, "exec 0444 as root", e.vfs.AccessAt(ctx, e.pop("/home/ro", true), vfs.MayExec), unix.EACCES)

	// Group and supplementary groups.
	e.writeFile(alice, "/pub/a", []byte("alice"))
	if err := e.vfs.SetStatAt(alice, e.pop("/pub/a", true), vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: 0640}); err != nil {
		t.Fatal(err)
	}
	if err := e.vfs.AccessAt(bob, e.pop("/pub/a", true), vfs.MayRead); err != nil {
		t.Errorf("supplementary group read: %v", err)
	}
	wantErr(t, "group write", e.vfs.AccessAt(bob, e.pop("/pub/a", true), vfs.MayWrite), unix.EACCES)
	wantErr(t, "chmod by non-owner", e.vfs.SetStatAt(bob, e.pop("/pub/a", true), vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: 0777}), unix.EPERM)
	wantErr(t, "chown by non-root", e.vfs.SetStatAt(alice, e.pop("/pub/a", true), vfs.SetStatOptions{Mask: unix.STATX_UID, UID: 1001}), unix.EPERM)
	// Sticky directory: bob may not remove or rename alice's file.
	wantErr(t, "sticky unlink", e.vfs.UnlinkAt(bob, e.pop("/pub/a", false)), unix.EPERM)
	wantErr(t, "sticky rename", e.vfs.RenameAt(bob, e.pop("/pub/a", false), e.pop("/pub/b", false), 0), unix.EPERM)
	if err := e.vfs.UnlinkAt(alice, e.pop("/pub/a", false)); err != nil {
		t.Errorf("owner unlink in sticky dir: %v", err)
	}
	// New files get the creator's fsuid/fsgid.
	e.writeFile(bob, "/pub/bobs", nil)
	st, _ := e.vfs.StatAt(ctx, e.pop("/pub/bobs", true))
	if st.UID != 1001 || st.GID != 1001 {
		t.Errorf("owner %d:%d", st.UID, st.GID)
	}
	// chown clears set-user-ID.
	e.vfs.SetStatAt(ctx, e.pop("/pub/bobs", true), vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: 04755})
	e.vfs.SetStatAt(ctx, e.pop("/pub/bobs", true), vfs.SetStatOptions{Mask: unix.STATX_UID, UID: 0})
	st, _ = e.vfs.StatAt(ctx, e.pop("/pub/bobs", true))
	if st.Mode&07777 != 0755 {
		t.Errorf("suid after chown: %o", st.Mode)
	}
	// utimensat(NULL) by a non-owner with write permission succeeds;
	// explicit times need ownership.
	e.vfs.SetStatAt(ctx, e.pop("/pub/bobs", true), vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: 0666})
	now := vfs.Now()
	if err := e.vfs.SetStatAt(alice, e.pop("/pub/bobs", true), vfs.SetStatOptions{Mask: unix.STATX_ATIME | unix.STATX_MTIME, Atime: now, Mtime: now, TouchNow: true}); err != nil {
		t.Errorf("touch by writer: %v", err)
	}
	wantErr(t, "explicit times by non-owner", e.vfs.SetStatAt(alice, e.pop("/pub/bobs", true), vfs.SetStatOptions{Mask: unix.STATX_MTIME, Mtime: vfs.StatxTimestamp{Sec: 5}}), unix.EPERM)
}

func TestLinkUnlinkRename(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	e.mkdir(ctx, "/d", 0755)
	e.mkdir(ctx, "/d/sub", 0755)
	e.mkdir(ctx, "/e", 0755)
	e.writeFile(ctx, "/f", []byte("data"))
	if err := e.vfs.LinkAt(ctx, e.pop("/f", false), e.pop("/d/g", false)); err != nil {
		t.Fatal(err)
	}
	st, _ := e.vfs.StatAt(ctx, e.pop("/f", true))
	if st.Nlink != 2 {
		t.Errorf("nlink after link %d", st.Nlink)
	}
	wantErr(t, "link dir", e.vfs.LinkAt(ctx, e.pop("/d", false), e.pop("/d2", false)), unix.EPERM)
	wantErr(t, "link existing", e.vfs.LinkAt(ctx, e.pop("/f", false), e.pop("/d/g", false)), unix.EEXIST)
	dst, _ := e.vfs.StatAt(ctx, e.pop("/d", true))
	if dst.Nlink != 3 {
		t.Errorf("dir nlink %d, want 3", dst.Nlink)
	}
	wantErr(t, "unlink dir", e.vfs.UnlinkAt(ctx, e.pop("/d", false)), unix.EISDIR)
	wantErr(t, "unlink file/", e.vfs.UnlinkAt(ctx, e.pop("/f/", false)), unix.ENOTDIR)
	wantErr(t, "rmdir file", e.vfs.RmdirAt(ctx, e.pop("/f", false)), unix.ENOTDIR)
	wantErr(t, "rmdir nonempty", e.vfs.RmdirAt(ctx, e.pop("/d", false)), unix.ENOTEMPTY)
	wantErr(t, "rmdir .", e.vfs.RmdirAt(ctx, e.pop("/d/.", false)), unix.EINVAL)
	wantErr(t, "rmdir ..", e.vfs.RmdirAt(ctx, e.pop("/d/sub/..", false)), unix.ENOTEMPTY)
	wantErr(t, "mkdir existing", e.vfs.MkdirAt(ctx, e.pop("/d/", false), 0755), unix.EEXIST)
	wantErr(t, "symlink with slash", e.vfs.SymlinkAt(ctx, e.pop("/newlink/", false), "x"), unix.ENOENT)

	// Rename rules.
	wantErr(t, "dir into itself", e.vfs.RenameAt(ctx, e.pop("/d", false), e.pop("/d/sub/x", false), 0), unix.EINVAL)
	wantErr(t, "dir over file", e.vfs.RenameAt(ctx, e.pop("/e", false), e.pop("/f", false), 0), unix.ENOTDIR)
	wantErr(t, "file over dir", e.vfs.RenameAt(ctx, e.pop("/f", false), e.pop("/e", false), 0), unix.EISDIR)
	wantErr(t, "dir over nonempty", e.vfs.RenameAt(ctx, e.pop("/e", false), e.pop("/d", false), 0), unix.ENOTEMPTY)
	wantErr(t, "noreplace", e.vfs.RenameAt(ctx, e.pop("/f", false), e.pop("/d/g", false), unix.RENAME_NOREPLACE), unix.EEXIST)
	wantErr(t, "rename .", e.vfs.RenameAt(ctx, e.pop("/d/.", false), e.pop("/z", false), 0), unix.EBUSY)
	wantErr(t, "exchange with a missing name", e.vfs.RenameAt(ctx, e.pop("/f", false), e.pop("/z", false), unix.RENAME_EXCHANGE), unix.ENOENT)
	wantErr(t, "whiteout", e.vfs.RenameAt(ctx, e.pop("/f", false), e.pop("/z", false), unix.RENAME_WHITEOUT), unix.EINVAL)
	wantErr(t, "exchange with a descendant", e.vfs.RenameAt(ctx, e.pop("/d", false), e.pop("/d/sub", false), unix.RENAME_EXCHANGE), unix.EINVAL)
	// Hard links of one file: nothing happens.
	if err := e.vfs.RenameAt(ctx, e.pop("/f", false), e.pop("/d/g", false), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.vfs.GetDentryAt(ctx, e.pop("/f", false)); err != nil {
		t.Errorf("rename between links removed source: %v", err)
	}
	// Replace a file: the replaced one loses a link.
	e.writeFile(ctx, "/other", []byte("other"))
	if err := e.vfs.RenameAt(ctx, e.pop("/other", false), e.pop("/f", false), 0); err != nil {
		t.Fatal(err)
	}
	if got := string(e.readFile(ctx, "/f")); got != "other" {
		t.Errorf("after replace /f = %q", got)
	}
	if got := string(e.readFile(ctx, "/d/g")); got != "data" {
		t.Errorf("/d/g = %q", got)
	}
	st, _ = e.vfs.StatAt(ctx, e.pop("/d/g", true))
	if st.Nlink != 1 {
		t.Errorf("replaced file nlink %d", st.Nlink)
	}
	// Move a directory over an empty one; nlinks of parents follow.
	if err := e.vfs.RenameAt(ctx, e.pop("/d/sub", false), e.pop("/e", false), 0); err != nil {
		t.Fatal("dir over empty dir: ", err)
	}
	dst, _ = e.vfs.StatAt(ctx, e.pop("/d", true))
	rst, _ := e.vfs.StatAt(ctx, e.pop("/", true))
	if dst.Nlink != 2 || rst.Nlink != 4 {
		t.Errorf("nlinks after dir rename: /d %d, / %d", dst.Nlink, rst.Nlink)
	}
	// A cwd inside a moved directory follows it.
	e.mkdir(ctx, "/e/deep", 0755)
	cwd, _ := e.vfs.GetDentryAt(ctx, e.pop("/e/deep", true))
	if err := e.vfs.RenameAt(ctx, e.pop("/e", false), e.pop("/d/moved", false), 0); err != nil {
		t.Fatal(err)
	}
	if p, ok := e.vfs.PathnameWithin(e.root, cwd); p != "/d/moved/deep" || !ok {
		t.Errorf("cwd after rename %q %v", p, ok)
	}
	e.vfs.RmdirAt(ctx, e.pop("/d/moved/deep", false))
	if _, ok := e.vfs.PathnameWithin(e.root, cwd); ok {
		t.Errorf("removed cwd still reachable")
	}
	// Creating in a removed directory fails.
	wantErr(t, "create in removed dir", e.vfs.MkdirAt(ctx, &vfs.PathOperation{Root: e.root, Start: cwd, Path: "x"}, 0755), unix.ENOENT)
}

func TestTimestamps(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	old := vfs.StatxTimestamp{Sec: 1000}
	e.mkdir(ctx, "/d", 0755)
	e.writeFile(ctx, "/d/f", []byte("x"))
	set := vfs.SetStatOptions{Mask: unix.STATX_ATIME | unix.STATX_MTIME, Atime: old, Mtime: old}
	e.vfs.SetStatAt(ctx, e.pop("/d/f", true), set)
	e.vfs.SetStatAt(ctx, e.pop("/d", true), set)
	st, _ := e.vfs.StatAt(ctx, e.pop("/d/f", true))
	if st.Mtime != old || st.Atime != old || st.Ctime.Sec < 1000000 {
		t.Fatalf("utimes: %+v", st)
	}
	e.readFile(ctx, "/d/f")
	st, _ = e.vfs.StatAt(ctx, e.pop("/d/f", true))
	if st.Atime == old || st.Mtime != old {
		t.Errorf("read: atime %v mtime %v", st.Atime, st.Mtime)
	}
	e.writeFile(ctx, "/d/g", nil)
	dst, _ := e.vfs.StatAt(ctx, e.pop("/d", true))
	if dst.Mtime == old {
		t.Errorf("create did not update dir mtime")
	}
}

func TestGetdentsCookies(t *testing.T) {
	e := newEnv(t)
	ctx := rootCtx()
	e.mkdir(ctx, "/d", 0755)
	want := map[string]bool{".": true, "..": true}
	for i := 0; i < 50; i++ {
		name := "file" + itoa(i)
		e.writeFile(ctx, "/d/"+name, nil)
		want[name] = true
	}
	fd, err := e.open(ctx, "/d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.DecRef(ctx)
	got := map[string]bool{}
	for {
		n := 0
		err := fd.IterDirents(ctx, func(d vfs.Dirent, next int64) bool {
			if n == 7 {
				return false
			}
			if got[d.Name] {
				t.Errorf("repeated %s", d.Name)
			}
			got[d.Name] = true
			n++
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		// Removing an entry mid-listing neither repeats nor skips others.
		if len(got) == 14 {
			e.vfs.UnlinkAt(ctx, e.pop("/d/file49", false))
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d", len(got), len(want))
	}
	if _, err := fd.Seek(ctx, 0, unix.SEEK_SET); err != nil {
		t.Fatal(err)
	}
	count := 0
	fd.IterDirents(ctx, func(vfs.Dirent, int64) bool { count++; return true })
	if count != 51 {
		t.Errorf("after rewind %d entries, want 51", count)
	}
	if _, err := fd.Read(ctx, usermem.BytesSequence(make([]byte, 1))); err != unix.EISDIR {
		t.Errorf("read dir: %v", err)
	}
}

func TestStatFS(t *testing.T) {
	e := newEnv(t)
	sf, err := e.vfs.StatFSAt(rootCtx(), e.pop("/", true))
	if err != nil || sf.Type != TMPFS_MAGIC || sf.NameLength != 255 {
		t.Fatalf("statfs %+v %v", sf, err)
	}
}
