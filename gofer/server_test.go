package gofer

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// testClient speaks the protocol directly, one request at a time.
type testClient struct {
	t    *testing.T
	c    *proto.Conn
	id   uint64
	root uint32
	done chan error
}

// startServer serves dir on one end of a socketpair and returns a client
// that has done the handshake.
func startServer(t *testing.T, dir string, readOnly bool) *testClient {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(fds[1], dir, readOnly) }()
	tc := &testClient{t: t, c: proto.NewConn(fds[0]), done: done}
	t.Cleanup(func() {
		tc.c.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	resp, fdsGot := tc.call(&proto.Request{Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: 7}}})
	if resp.Errno != 0 || len(fdsGot) != 0 {
		t.Fatalf("handshake: errno %d", resp.Errno)
	}
	v := resp.GetVersion()
	if v.Version != proto.MaxVersion || v.ReadOnly != readOnly || v.RootAttr.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("handshake: %v", v)
	}
	tc.root = v.Root
	return tc
}

func (tc *testClient) call(req *proto.Request) (*proto.Response, []int) {
	tc.t.Helper()
	tc.id++
	req.Id = tc.id
	if err := tc.c.Send(req, nil); err != nil {
		tc.t.Fatalf("send: %v", err)
	}
	b, fds, err := tc.c.RecvRaw()
	if err != nil {
		tc.t.Fatalf("recv: %v", err)
	}
	resp, err := proto.DecodeResponse(b)
	if err != nil {
		tc.t.Fatal(err)
	}
	if resp.Id != tc.id || int(resp.NumFds) != len(fds) {
		tc.t.Fatalf("response id %d fds %d/%d, want id %d", resp.Id, resp.NumFds, len(fds), tc.id)
	}
	tc.t.Cleanup(func() { proto.CloseFDs(fds) })
	return resp, fds
}

// errno runs req and returns its errno.
func (tc *testClient) errno(req *proto.Request) unix.Errno {
	tc.t.Helper()
	resp, _ := tc.call(req)
	return unix.Errno(resp.Errno)
}

func (tc *testClient) walk(dir uint32, name string) (uint32, *proto.Attr, unix.Errno) {
	tc.t.Helper()
	resp, _ := tc.call(&proto.Request{Op: &proto.Request_Walk{Walk: &proto.WalkReq{Dir: dir, Name: []byte(name)}}})
	if resp.Errno != 0 {
		return 0, nil, unix.Errno(resp.Errno)
	}
	return resp.GetHandle().Handle, resp.GetHandle().Attr, 0
}

func (tc *testClient) mustWalk(dir uint32, names ...string) uint32 {
	tc.t.Helper()
	h := dir
	for _, n := range names {
		var e unix.Errno
		h, _, e = tc.walk(h, n)
		if e != 0 {
			tc.t.Fatalf("walk %q: %v", n, e)
		}
	}
	return h
}

func (tc *testClient) open(h uint32, flags uint32) (int, unix.Errno) {
	tc.t.Helper()
	resp, fds := tc.call(&proto.Request{Op: &proto.Request_Open{Open: &proto.OpenReq{Handle: h, Flags: flags}}})
	if resp.Errno != 0 {
		return -1, unix.Errno(resp.Errno)
	}
	if len(fds) != 1 {
		tc.t.Fatalf("open donated %d fds", len(fds))
	}
	return fds[0], 0
}

// tree builds a test root:
//
//	file       "hello"
//	sub/inner  "inner"
//	link       -> file
//	escape     -> /etc/passwd
//	up         -> ../../..
func tree(t *testing.T) string {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "file"), []byte("hello"), 0o644))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "inner"), []byte("inner"), 0o600))
	must(os.Symlink("file", filepath.Join(dir, "link")))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "escape")))
	must(os.Symlink("../../..", filepath.Join(dir, "up")))
	return dir
}

func TestWalkOpenRead(t *testing.T) {
	dir := tree(t)
	tc := startServer(t, dir, true)
	h, attr, e := tc.walk(tc.root, "file")
	if e != 0 {
		t.Fatal(e)
	}
	if attr.Size != 5 || attr.Mode != unix.S_IFREG|0o644 {
		t.Errorf("attr %v", attr)
	}
	fd, e := tc.open(h, unix.O_RDONLY)
	if e != 0 {
		t.Fatal(e)
	}
	buf := make([]byte, 16)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || string(buf[:n]) != "hello" {
		t.Errorf("pread = %q, %v", buf[:n], err)
	}
	// The donated FD is read-only.
	if _, err := unix.Pwrite(fd, []byte("x"), 0); err != unix.EBADF {
		t.Errorf("pwrite on read-only donated fd: %v", err)
	}
	inner := tc.mustWalk(tc.root, "sub", "inner")
	fd2, e := tc.open(inner, unix.O_RDONLY)
	if e != 0 {
		t.Fatal(e)
	}
	n, _ = unix.Pread(fd2, buf, 0)
	if string(buf[:n]) != "inner" {
		t.Errorf("inner = %q", buf[:n])
	}
	if _, _, e := tc.walk(tc.root, "missing"); e != unix.ENOENT {
		t.Errorf("walk missing: %v", e)
	}
	if _, _, e := tc.walk(h, "x"); e != unix.ENOTDIR {
		t.Errorf("walk from file: %v", e)
	}
	if _, _, e := tc.walk(99999, "x"); e != unix.EBADF {
		t.Errorf("walk from bad handle: %v", e)
	}
}

func TestWalkRejectsBadNames(t *testing.T) {
	tc := startServer(t, tree(t), true)
	for _, name := range []string{"", ".", "..", "sub/inner", "a\x00b", "/", "../file"} {
		if _, _, e := tc.walk(tc.root, name); e != unix.EINVAL {
			t.Errorf("walk %q: %v, want EINVAL", name, e)
		}
	}
	long := string(bytes.Repeat([]byte("a"), 256))
	if _, _, e := tc.walk(tc.root, long); e != unix.ENAMETOOLONG {
		t.Errorf("walk long: %v", e)
	}
}

func TestSymlinksNeverFollowed(t *testing.T) {
	tc := startServer(t, tree(t), true)
	for name, target := range map[string]string{"link": "file", "escape": "/etc/passwd", "up": "../../.."} {
		h, attr, e := tc.walk(tc.root, name)
		if e != 0 {
			t.Fatalf("walk %s: %v", name, e)
		}
		if attr.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("%s: mode %o, want a symlink", name, attr.Mode)
		}
		resp, _ := tc.call(&proto.Request{Op: &proto.Request_Readlink{Readlink: &proto.ReadlinkReq{Handle: h}}})
		if resp.Errno != 0 || string(resp.GetReadlink().Target) != target {
			t.Errorf("readlink %s = %q, %d", name, resp.GetReadlink().GetTarget(), resp.Errno)
		}
		// Opening or walking through a symlink handle goes nowhere.
		if _, e := tc.open(h, unix.O_RDONLY); e != unix.ELOOP {
			t.Errorf("open %s: %v, want ELOOP", name, e)
		}
		if _, _, e := tc.walk(h, "passwd"); e != unix.ENOTDIR {
			t.Errorf("walk through %s: %v, want ENOTDIR", name, e)
		}
	}
	f := tc.mustWalk(tc.root, "file")
	resp, _ := tc.call(&proto.Request{Op: &proto.Request_Readlink{Readlink: &proto.ReadlinkReq{Handle: f}}})
	if unix.Errno(resp.Errno) != unix.EINVAL {
		t.Errorf("readlink of a file: %d", resp.Errno)
	}
}

func TestReaddir(t *testing.T) {
	dir := tree(t)
	// Enough long names to need several pages.
	for i := 0; i < 400; i++ {
		name := filepath.Join(dir, "sub", string(bytes.Repeat([]byte{'a' + byte(i%26)}, 200))+string(rune('A'+i/26))+string(rune('a'+i%26)))
		if err := os.WriteFile(name, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tc := startServer(t, dir, true)
	list := func(h uint32) []string {
		var names []string
		var cookie int64
		pages := 0
		for {
			resp, _ := tc.call(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: h, Cookie: cookie}}})
			if resp.Errno != 0 {
				t.Fatalf("readdir: %d", resp.Errno)
			}
			ents := resp.GetReaddir().Entries
			if len(ents) == 0 {
				break
			}
			pages++
			for _, e := range ents {
				names = append(names, string(e.Name))
				cookie = e.Cookie
			}
		}
		if h != tc.root && pages < 2 {
			t.Errorf("a big directory came in %d page(s)", pages)
		}
		sort.Strings(names)
		return names
	}
	got := list(tc.root)
	want := []string{"escape", "file", "link", "sub", "up"}
	if len(got) != len(want) {
		t.Fatalf("root entries %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("root entries %v, want %v", got, want)
		}
	}
	sub := list(tc.mustWalk(tc.root, "sub"))
	if len(sub) != 401 {
		t.Errorf("sub has %d entries, want 401", len(sub))
	}
	f := tc.mustWalk(tc.root, "file")
	if e := tc.errno(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: f}}}); e != unix.ENOTDIR {
		t.Errorf("readdir of file: %v", e)
	}
	// A donated directory FD reads the same directory.
	fd, e := tc.open(tc.mustWalk(tc.root, "sub"), unix.O_RDONLY)
	if e != 0 {
		t.Fatal(e)
	}
	if n, err := unix.Getdents(fd, make([]byte, 4096)); err != nil || n == 0 {
		t.Errorf("getdents on donated dir fd: %d, %v", n, err)
	}
}

func TestReadOnlyRefusesMutation(t *testing.T) {
	dir := tree(t)
	tc := startServer(t, dir, true)
	f := tc.mustWalk(tc.root, "file")
	reqs := map[string]*proto.Request{
		"create":      {Op: &proto.Request_Create{Create: &proto.CreateReq{Dir: tc.root, Name: []byte("new"), Flags: unix.O_RDWR, Mode: 0o644}}},
		"mkdir":       {Op: &proto.Request_Mkdir{Mkdir: &proto.MkdirReq{Dir: tc.root, Name: []byte("d"), Mode: 0o755}}},
		"mknod":       {Op: &proto.Request_Mknod{Mknod: &proto.MknodReq{Dir: tc.root, Name: []byte("p"), Mode: unix.S_IFIFO | 0o644}}},
		"symlink":     {Op: &proto.Request_Symlink{Symlink: &proto.SymlinkReq{Dir: tc.root, Name: []byte("s"), Target: []byte("x")}}},
		"link":        {Op: &proto.Request_Link{Link: &proto.LinkReq{Target: f, Dir: tc.root, Name: []byte("l")}}},
		"unlink":      {Op: &proto.Request_Unlink{Unlink: &proto.UnlinkReq{Dir: tc.root, Name: []byte("file")}}},
		"rmdir":       {Op: &proto.Request_Rmdir{Rmdir: &proto.RmdirReq{Dir: tc.root, Name: []byte("sub")}}},
		"rename":      {Op: &proto.Request_Rename{Rename: &proto.RenameReq{OldDir: tc.root, OldName: []byte("file"), NewDir: tc.root, NewName: []byte("f2")}}},
		"setstat":     {Op: &proto.Request_SetStat{SetStat: &proto.SetStatReq{Handle: f, Mask: proto.SetStatMode, Mode: 0o777}}},
		"truncate":    {Op: &proto.Request_SetStat{SetStat: &proto.SetStatReq{Handle: f, Mask: proto.SetStatSize}}},
		"setxattr":    {Op: &proto.Request_Setxattr{Setxattr: &proto.SetxattrReq{Handle: f, Name: []byte("user.a"), Value: []byte("v")}}},
		"removexattr": {Op: &proto.Request_Removexattr{Removexattr: &proto.RemovexattrReq{Handle: f, Name: []byte("user.a")}}},
		"open-rw":     {Op: &proto.Request_Open{Open: &proto.OpenReq{Handle: f, Flags: unix.O_RDWR}}},
		"open-trunc":  {Op: &proto.Request_Open{Open: &proto.OpenReq{Handle: f, Flags: unix.O_RDONLY | unix.O_TRUNC}}},
	}
	for name, req := range reqs {
		if e := tc.errno(req); e != unix.EROFS {
			t.Errorf("%s on read-only mount: %v, want EROFS", name, e)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "file"))
	if err != nil || string(got) != "hello" {
		t.Errorf("file changed: %q %v", got, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 5 {
		t.Errorf("root now has %d entries", len(ents))
	}
}

func TestMutations(t *testing.T) {
	dir := tree(t)
	tc := startServer(t, dir, false)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())

	// Create donates a writable FD and a handle.
	resp, fds := tc.call(&proto.Request{Op: &proto.Request_Create{Create: &proto.CreateReq{Dir: tc.root, Name: []byte("new"), Flags: unix.O_RDWR, Mode: 0o666, Uid: uid, Gid: gid}}})
	if resp.Errno != 0 || len(fds) != 1 {
		t.Fatalf("create: %d, %d fds", resp.Errno, len(fds))
	}
	newH := resp.GetHandle().Handle
	if m := resp.GetHandle().Attr.Mode; m != unix.S_IFREG|0o666 {
		t.Errorf("created mode %o (umask must not apply)", m)
	}
	if _, err := unix.Pwrite(fds[0], []byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "new")); string(got) != "data" {
		t.Errorf("new = %q", got)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Create{Create: &proto.CreateReq{Dir: tc.root, Name: []byte("new"), Flags: unix.O_RDWR, Uid: uid, Gid: gid}}}); e != unix.EEXIST {
		t.Errorf("create existing: %v", e)
	}
	// A create never follows a symlink planted at the name.
	if e := tc.errno(&proto.Request{Op: &proto.Request_Create{Create: &proto.CreateReq{Dir: tc.root, Name: []byte("escape"), Flags: unix.O_RDWR, Uid: uid, Gid: gid}}}); e != unix.EEXIST {
		t.Errorf("create over symlink: %v", e)
	}

	// Mkdir, Mknod, Symlink, Link.
	resp, _ = tc.call(&proto.Request{Op: &proto.Request_Mkdir{Mkdir: &proto.MkdirReq{Dir: tc.root, Name: []byte("d"), Mode: 0o750, Uid: uid, Gid: gid}}})
	if resp.Errno != 0 || resp.GetHandle().Attr.Mode != unix.S_IFDIR|0o750 {
		t.Fatalf("mkdir: %d %v", resp.Errno, resp.GetHandle())
	}
	d := resp.GetHandle().Handle
	resp, _ = tc.call(&proto.Request{Op: &proto.Request_Mknod{Mknod: &proto.MknodReq{Dir: d, Name: []byte("fifo"), Mode: unix.S_IFIFO | 0o600, Uid: uid, Gid: gid}}})
	if resp.Errno != 0 || resp.GetHandle().Attr.Mode != unix.S_IFIFO|0o600 {
		t.Errorf("mknod fifo: %d", resp.Errno)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Mknod{Mknod: &proto.MknodReq{Dir: d, Name: []byte("null"), Mode: unix.S_IFCHR | 0o666}}}); e != unix.EPERM {
		t.Errorf("mknod chr: %v, want EPERM", e)
	}
	if _, e := tc.open(resp.GetHandle().GetHandle(), unix.O_RDONLY); e != unix.ENXIO {
		t.Errorf("open fifo: %v, want ENXIO", e)
	}
	resp, _ = tc.call(&proto.Request{Op: &proto.Request_Symlink{Symlink: &proto.SymlinkReq{Dir: d, Name: []byte("sl"), Target: []byte("/etc/shadow"), Uid: uid, Gid: gid}}})
	if resp.Errno != 0 || resp.GetHandle().Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("symlink: %d", resp.Errno)
	}
	if tgt, _ := os.Readlink(filepath.Join(dir, "d", "sl")); tgt != "/etc/shadow" {
		t.Errorf("symlink target %q", tgt)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Link{Link: &proto.LinkReq{Target: newH, Dir: d, Name: []byte("hard")}}}); e != 0 {
		t.Errorf("link: %v", e)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "d", "hard")); string(got) != "data" {
		t.Errorf("hard link reads %q", got)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Link{Link: &proto.LinkReq{Target: d, Dir: tc.root, Name: []byte("dl")}}}); e != unix.EPERM {
		t.Errorf("link of a directory: %v", e)
	}

	// Rename, including RENAME_NOREPLACE.
	if e := tc.errno(&proto.Request{Op: &proto.Request_Rename{Rename: &proto.RenameReq{OldDir: d, OldName: []byte("hard"), NewDir: tc.root, NewName: []byte("file"), Flags: unix.RENAME_NOREPLACE}}}); e != unix.EEXIST {
		t.Errorf("rename noreplace: %v", e)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Rename{Rename: &proto.RenameReq{OldDir: d, OldName: []byte("hard"), NewDir: tc.root, NewName: []byte("moved")}}}); e != 0 {
		t.Errorf("rename: %v", e)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Rename{Rename: &proto.RenameReq{OldDir: tc.root, OldName: []byte("moved"), NewDir: tc.root, NewName: []byte("..")}}}); e != unix.EINVAL {
		t.Errorf("rename to ..: %v", e)
	}
	if _, err := os.Stat(filepath.Join(dir, "moved")); err != nil {
		t.Error(err)
	}

	// SetStat: mode, size, times with UTIME_OMIT.
	f := tc.mustWalk(tc.root, "file")
	if e := tc.errno(&proto.Request{Op: &proto.Request_SetStat{SetStat: &proto.SetStatReq{Handle: f, Mask: proto.SetStatMode | proto.SetStatSize | proto.SetStatAtime | proto.SetStatMtime,
		Mode: 0o600, Size: 2, Atime: &proto.Timespec{Sec: 1000, Nsec: 5}, Mtime: &proto.Timespec{Nsec: unix.UTIME_OMIT}}}}); e != 0 {
		t.Fatalf("setstat: %v", e)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "file"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != unix.S_IFREG|0o600 || st.Size != 2 || st.Atim.Sec != 1000 || st.Atim.Nsec != 5 || st.Mtim.Sec == 0 {
		t.Errorf("after setstat: mode %o size %d atime %v mtime %v", st.Mode, st.Size, st.Atim, st.Mtim)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_SetStat{SetStat: &proto.SetStatReq{Handle: f, Mask: proto.SetStatMtime, Mtime: &proto.Timespec{Nsec: 1e9}}}}); e != unix.EINVAL {
		t.Errorf("bad nsec: %v", e)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_SetStat{SetStat: &proto.SetStatReq{Handle: d, Mask: proto.SetStatSize}}}); e != unix.EISDIR {
		t.Errorf("truncate dir: %v", e)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_SetStat{SetStat: &proto.SetStatReq{Handle: f, Mask: proto.SetStatSize, Size: -1}}}); e != unix.EINVAL {
		t.Errorf("negative size: %v", e)
	}
	if os.Getuid() == 0 {
		if e := tc.errno(&proto.Request{Op: &proto.Request_SetStat{SetStat: &proto.SetStatReq{Handle: f, Mask: proto.SetStatUID | proto.SetStatGID, Uid: 1234, Gid: 5678}}}); e != 0 {
			t.Errorf("chown: %v", e)
		}
		unix.Stat(filepath.Join(dir, "file"), &st)
		if st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("owner %d:%d", st.Uid, st.Gid)
		}
		// Create as another user owns the file.
		resp, _ := tc.call(&proto.Request{Op: &proto.Request_Mkdir{Mkdir: &proto.MkdirReq{Dir: tc.root, Name: []byte("owned"), Mode: 0o2755, Uid: 42, Gid: 43}}})
		if a := resp.GetHandle().GetAttr(); resp.Errno != 0 || a.Uid != 42 || a.Gid != 43 || a.Mode != unix.S_IFDIR|0o2755 {
			t.Errorf("mkdir as 42:43: %d %v", resp.Errno, a)
		}
	}

	// Unlink and Rmdir.
	if e := tc.errno(&proto.Request{Op: &proto.Request_Rmdir{Rmdir: &proto.RmdirReq{Dir: tc.root, Name: []byte("d")}}}); e != unix.ENOTEMPTY {
		t.Errorf("rmdir non-empty: %v", e)
	}
	for _, n := range []string{"fifo", "sl"} {
		if e := tc.errno(&proto.Request{Op: &proto.Request_Unlink{Unlink: &proto.UnlinkReq{Dir: d, Name: []byte(n)}}}); e != 0 {
			t.Errorf("unlink %s: %v", n, e)
		}
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Rmdir{Rmdir: &proto.RmdirReq{Dir: tc.root, Name: []byte("d")}}}); e != 0 {
		t.Errorf("rmdir: %v", e)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Unlink{Unlink: &proto.UnlinkReq{Dir: tc.root, Name: []byte("sub")}}}); e != unix.EISDIR {
		t.Errorf("unlink dir: %v", e)
	}
	// A handle to a removed file still works on the file itself.
	if e := tc.errno(&proto.Request{Op: &proto.Request_Stat{Stat: &proto.StatReq{Handle: d}}}); e != 0 {
		t.Errorf("stat of removed dir handle: %v", e)
	}

	// Close drops handles.
	if e := tc.errno(&proto.Request{Op: &proto.Request_Close{Close: &proto.CloseReq{Handles: []uint32{d, f}}}}); e != 0 {
		t.Errorf("close: %v", e)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Stat{Stat: &proto.StatReq{Handle: f}}}); e != unix.EBADF {
		t.Errorf("stat of closed handle: %v", e)
	}
}

func TestXattrs(t *testing.T) {
	dir := tree(t)
	tc := startServer(t, dir, false)
	f := tc.mustWalk(tc.root, "file")
	e := tc.errno(&proto.Request{Op: &proto.Request_Setxattr{Setxattr: &proto.SetxattrReq{Handle: f, Name: []byte("user.k"), Value: []byte("v1")}}})
	if e == unix.EOPNOTSUPP || e == unix.ENOTSUP {
		t.Skip("host filesystem of t.TempDir() has no user xattrs")
	}
	if e != 0 {
		t.Fatalf("setxattr: %v", e)
	}
	resp, _ := tc.call(&proto.Request{Op: &proto.Request_Getxattr{Getxattr: &proto.GetxattrReq{Handle: f, Name: []byte("user.k")}}})
	if resp.Errno != 0 || string(resp.GetGetxattr().Value) != "v1" {
		t.Errorf("getxattr: %d %q", resp.Errno, resp.GetGetxattr().GetValue())
	}
	resp, _ = tc.call(&proto.Request{Op: &proto.Request_Listxattr{Listxattr: &proto.ListxattrReq{Handle: f}}})
	if resp.Errno != 0 || len(resp.GetListxattr().Names) != 1 || string(resp.GetListxattr().Names[0]) != "user.k" {
		t.Errorf("listxattr: %d %q", resp.Errno, resp.GetListxattr().GetNames())
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Setxattr{Setxattr: &proto.SetxattrReq{Handle: f, Name: []byte("user.k"), Value: []byte("v2"), Flags: unix.XATTR_CREATE}}}); e != unix.EEXIST {
		t.Errorf("XATTR_CREATE on existing: %v", e)
	}
	for _, name := range []string{"security.capability", "trusted.", "user.", "system.posix_acl_access"} {
		if e := tc.errno(&proto.Request{Op: &proto.Request_Setxattr{Setxattr: &proto.SetxattrReq{Handle: f, Name: []byte(name), Value: []byte("x")}}}); e != unix.EOPNOTSUPP {
			t.Errorf("setxattr %s: %v, want EOPNOTSUPP", name, e)
		}
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Setxattr{Setxattr: &proto.SetxattrReq{Handle: f, Name: []byte("user.big"), Value: make([]byte, 65537)}}}); e != unix.E2BIG {
		t.Errorf("oversized xattr: %v", e)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Removexattr{Removexattr: &proto.RemovexattrReq{Handle: f, Name: []byte("user.k")}}}); e != 0 {
		t.Errorf("removexattr: %v", e)
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Getxattr{Getxattr: &proto.GetxattrReq{Handle: f, Name: []byte("user.k")}}}); e != unix.ENODATA {
		t.Errorf("getxattr after remove: %v", e)
	}
}

func TestStatFSAndStat(t *testing.T) {
	tc := startServer(t, tree(t), true)
	resp, _ := tc.call(&proto.Request{Op: &proto.Request_StatFs{StatFs: &proto.StatFSReq{Handle: tc.root}}})
	if resp.Errno != 0 || resp.GetStatFs().Bsize == 0 || resp.GetStatFs().Namelen == 0 {
		t.Errorf("statfs: %d %v", resp.Errno, resp.GetStatFs())
	}
	resp, _ = tc.call(&proto.Request{Op: &proto.Request_Stat{Stat: &proto.StatReq{Handle: tc.mustWalk(tc.root, "sub", "inner")}}})
	if resp.Errno != 0 || resp.GetStat().Attr.Size != 5 || resp.GetStat().Attr.Mode != unix.S_IFREG|0o600 {
		t.Errorf("stat: %d %v", resp.Errno, resp.GetStat())
	}
}

func TestProtocolRules(t *testing.T) {
	dir := tree(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(fds[1], dir, true) }()
	c := proto.NewConn(fds[0])
	defer c.Close()
	rt := func(req *proto.Request) *proto.Response {
		if err := c.Send(req, nil); err != nil {
			t.Fatal(err)
		}
		b, _, err := c.RecvRaw()
		if err != nil {
			t.Fatal(err)
		}
		r, err := proto.DecodeResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Nothing before the handshake.
	if r := rt(&proto.Request{Id: 1, Op: &proto.Request_Stat{Stat: &proto.StatReq{Handle: 1}}}); unix.Errno(r.Errno) != unix.EPROTO {
		t.Errorf("op before handshake: %d", r.Errno)
	}
	if r := rt(&proto.Request{Id: 2, Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 5, MaxVersion: 9}}}); unix.Errno(r.Errno) != unix.EPROTONOSUPPORT {
		t.Errorf("unsupported version: %d", r.Errno)
	}
	if r := rt(&proto.Request{Id: 3, Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: 1}}}); r.Errno != 0 || r.Id != 3 {
		t.Errorf("handshake: %d", r.Errno)
	}
	if r := rt(&proto.Request{Id: 4, Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: 1}}}); unix.Errno(r.Errno) != unix.EPROTO {
		t.Errorf("second handshake: %d", r.Errno)
	}
	// Garbage ends the connection with an error; the server closes its end.
	if _, err := unix.Write(fds[0], []byte{0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Error("Serve accepted garbage")
	}
}

func TestEOFEndsServeCleanly(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(fds[1], t.TempDir(), false) }()
	unix.Close(fds[0])
	if err := <-done; err != nil {
		t.Errorf("Serve after EOF: %v", err)
	}
}

func TestServeAllSeveralMounts(t *testing.T) {
	var mounts []Mount
	var clients []*proto.Conn
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "which"), []byte{byte('0' + i)}, 0o644)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		rfd, err := OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, Mount{Conn: fds[1], RootFD: rfd})
		clients = append(clients, proto.NewConn(fds[0]))
	}
	done := make(chan error, 1)
	go func() { done <- ServeAll(mounts) }()
	for i, c := range clients {
		tc := &testClient{t: t, c: c}
		resp, _ := tc.call(&proto.Request{Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: 1}}})
		h, _, e := tc.walk(resp.GetVersion().Root, "which")
		if e != 0 {
			t.Fatal(e)
		}
		fd, e := tc.open(h, unix.O_RDONLY)
		if e != 0 {
			t.Fatal(e)
		}
		b := make([]byte, 1)
		unix.Pread(fd, b, 0)
		if b[0] != byte('0'+i) {
			t.Errorf("mount %d serves %q", i, b)
		}
	}
	for _, c := range clients {
		c.Close()
	}
	if err := <-done; err != nil {
		t.Errorf("ServeAll: %v", err)
	}
}
