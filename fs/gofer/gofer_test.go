package gofer

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	gofersrv "github.com/veil-sandbox/veil/gofer"
	"github.com/veil-sandbox/veil/gofer/proto"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/memory"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// connect serves dir with a real gofer server in a goroutine and returns a
// client, and a function that kills the server's end.
func connect(t *testing.T, dir string, readOnly bool) (*Client, func()) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The server gets a dup, so the test can cut the connection by
	// shutting the socket down under it.
	done := make(chan error, 1)
	go func() { done <- gofersrv.Serve(fds[1], dir, readOnly) }()
	c, err := NewClient(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { unix.Shutdown(fds[0], unix.SHUT_RDWR) }) }
	t.Cleanup(func() {
		c.Shutdown()
		<-done
	})
	return c, kill
}

func tree(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), []byte("hello, gofer"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "a"), nil, 0o644)
	os.Symlink("../../../etc/passwd", filepath.Join(dir, "esc"))
	return dir
}

func TestClientBasics(t *testing.T) {
	c, _ := connect(t, tree(t), true)
	if !c.ReadOnly || c.Version != proto.MaxVersion || c.RootAttr.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("handshake: ro %v v %d", c.ReadOnly, c.Version)
	}
	h, a, err := c.Walk(c.Root, "file")
	if err != nil || a.Size != 12 {
		t.Fatalf("walk: %v %v", err, a)
	}
	fd, _, err := c.Open(h, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, _, err := c.Walk(c.Root, ".."); err != unix.EINVAL {
		t.Errorf("walk ..: %v", err)
	}
	if _, _, err := c.Mkdir(c.Root, "x", 0o755, 0, 0); err != unix.EROFS {
		t.Errorf("mkdir on read-only: %v", err)
	}
	e, _, _ := c.Walk(c.Root, "esc")
	if tgt, err := c.Readlink(e); err != nil || tgt != "../../../etc/passwd" {
		t.Errorf("readlink: %q %v", tgt, err)
	}
	ents, err := c.ReaddirAll(c.Root, "", false)
	if err != nil || len(ents) != 3 {
		t.Errorf("readdir: %d entries, %v", len(ents), err)
	}
	if err := c.Close(h, e); err != nil {
		t.Error(err)
	}
	if _, err := c.Stat(h); err != unix.EBADF {
		t.Errorf("stat of closed handle: %v", err)
	}
}

func TestClientConcurrent(t *testing.T) {
	c, _ := connect(t, tree(t), true)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				h, a, err := c.Walk(c.Root, "file")
				if err != nil || a.Size != 12 {
					t.Errorf("walk: %v", err)
					return
				}
				c.Close(h)
			}
		}()
	}
	wg.Wait()
}

func TestDeadGoferGivesEIO(t *testing.T) {
	c, kill := connect(t, tree(t), true)
	kill()
	for i := 0; i < 3; i++ {
		if _, _, err := c.Walk(c.Root, "file"); err != unix.EIO {
			t.Fatalf("walk after gofer death: %v, want EIO", err)
		}
	}
	if _, err := c.Stat(c.Root); err != unix.EIO {
		t.Errorf("stat after gofer death: %v", err)
	}
}

func newFS(t *testing.T, dir string, readOnly bool) *Filesystem {
	c, _ := connect(t, dir, readOnly)
	mf, err := memory.NewSized(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	return NewFilesystem(c, mf)
}

func TestFilesystemReadOnly(t *testing.T) {
	ctx := context.Background()
	fs := newFS(t, tree(t), true)
	root, _ := fs.Root(ctx)
	f, err := root.Lookup(ctx, "file")
	if err != nil {
		t.Fatal(err)
	}
	if p := f.Perms(); !p.IsRegular() || p.Mode&0o777 != 0o644 {
		t.Errorf("perms %o", p.Mode)
	}
	st, err := f.Stat(ctx)
	if err != nil || st.Size != 12 {
		t.Errorf("stat: %v %d", err, st.Size)
	}
	ents, err := root.ReadDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	if len(names) != 3 || names[0] != "esc" || names[1] != "file" || names[2] != "sub" {
		t.Errorf("readdir %v", names)
	}
	esc, _ := root.Lookup(ctx, "esc")
	if tgt, _ := esc.Readlink(ctx); tgt != "../../../etc/passwd" {
		t.Errorf("readlink %q", tgt)
	}
	if _, err := f.Readlink(ctx); err != unix.EINVAL {
		t.Errorf("readlink of file: %v", err)
	}

	impl, err := f.Open(ctx, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer impl.Release(ctx)
	buf := make([]byte, 5)
	n, err := impl.Read(ctx, usermem.BytesSequence(buf), 7)
	if err != nil || string(buf[:n]) != "gofer" {
		t.Errorf("read %q %v", buf[:n], err)
	}
	if n, err := impl.Read(ctx, usermem.BytesSequence(buf), 100); n != 0 || err != nil {
		t.Errorf("read at EOF: %d %v", n, err)
	}
	if _, _, err := impl.Write(ctx, usermem.BytesSequence([]byte("x")), 0, false); err != unix.EBADF {
		t.Errorf("write on read-only description: %v", err)
	}
	if _, err := root.Mkdir(ctx, "d", vfs.CreateOptions{Mode: 0o755}); err != unix.EROFS {
		t.Errorf("mkdir: %v", err)
	}

	// mmap: the page cache serves the file's contents from the memory file.
	opts := memmap.MMapOpts{Length: hostarch.PageSize, Private: true, Perms: hostarch.Read, MaxPerms: hostarch.AnyAccess}
	if err := impl.ConfigureMMap(ctx, &opts); err != nil {
		t.Fatal(err)
	}
	m := opts.Mappable
	m.IncRef()
	defer m.DecRef()
	ts, err := m.Translate(0, 100, hostarch.Read)
	if err != nil || len(ts) != 1 || ts[0].Length != hostarch.PageSize || ts[0].Perms.Write {
		t.Fatalf("translate: %v %v", ts, err)
	}
	page, err := fs.mf.MapInternal(ts[0].FileOffset, hostarch.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if string(page[:12]) != "hello, gofer" || page[12] != 0 || page[hostarch.PageSize-1] != 0 {
		t.Errorf("cached page %q", page[:16])
	}
	if _, err := m.Translate(hostarch.PageSize, 1, hostarch.Read); err != unix.EFAULT {
		t.Errorf("translate past EOF: %v", err)
	}
	if _, err := m.Translate(0, 1, hostarch.Write); err != unix.EACCES {
		t.Errorf("writable translation: %v", err)
	}
	shared := memmap.MMapOpts{Length: hostarch.PageSize, Perms: hostarch.ReadWrite}
	if err := impl.ConfigureMMap(ctx, &shared); err != unix.EACCES {
		t.Errorf("shared writable mmap: %v", err)
	}
}

func TestFilesystemMutations(t *testing.T) {
	ctx := context.Background()
	dir := tree(t)
	fs := newFS(t, dir, false)
	root, _ := fs.Root(ctx)
	uid, gid := os.Getuid(), os.Getgid()
	opts := func(mode uint32) vfs.CreateOptions {
		o := vfs.CreateOptions{Mode: mode}
		o.UID, o.GID = 0, 0
		if uid != 0 {
			t.Skip("creating files as a given owner needs root")
		}
		_ = gid
		return o
	}
	n, err := root.Create(ctx, "new", opts(unix.S_IFREG|0o600))
	if err != nil {
		t.Fatal(err)
	}
	impl, err := n.Open(ctx, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer impl.Release(ctx)
	if w, end, err := impl.Write(ctx, usermem.BytesSequence([]byte("abc")), 0, false); w != 3 || end != 3 || err != nil {
		t.Fatalf("write: %d %d %v", w, end, err)
	}
	if w, end, err := impl.Write(ctx, usermem.BytesSequence([]byte("de")), 0, true); w != 2 || end != 5 || err != nil {
		t.Fatalf("append: %d %d %v", w, end, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "new")); string(got) != "abcde" {
		t.Errorf("host file %q", got)
	}
	// A mapped page follows later writes through the FD.
	mo := memmap.MMapOpts{Length: hostarch.PageSize, Private: true, Perms: hostarch.Read, MaxPerms: hostarch.AnyAccess}
	if err := impl.ConfigureMMap(ctx, &mo); err != nil {
		t.Fatal(err)
	}
	ts, err := mo.Mappable.Translate(0, 1, hostarch.Read)
	if err != nil {
		t.Fatal(err)
	}
	impl.Write(ctx, usermem.BytesSequence([]byte("X")), 1, false)
	page, _ := fs.mf.MapInternal(ts[0].FileOffset, hostarch.PageSize)
	if string(page[:5]) != "aXcde" {
		t.Errorf("page after write %q", page[:5])
	}
	if err := n.SetStat(ctx, vfs.SetStatOptions{Mask: unix.STATX_SIZE | unix.STATX_MODE, Size: 2, Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	if st, _ := n.Stat(ctx); st.Size != 2 || st.Mode&0o777 != 0o640 {
		t.Errorf("after setstat: size %d mode %o", st.Size, st.Mode)
	}
	if page[2] != 0 {
		t.Errorf("page past new EOF not zeroed")
	}

	d, err := root.Mkdir(ctx, "d", opts(0o755))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Symlink(ctx, "s", "/etc/shadow", opts(0o777)); err != nil {
		t.Fatal(err)
	}
	if err := d.Link(ctx, "hard", n); err != nil {
		t.Fatal(err)
	}
	if err := root.Rename(ctx, "new", n, d, "moved", nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s", "hard", "moved"} {
		if err := d.Unlink(ctx, name, nil); err != nil {
			t.Errorf("unlink %s: %v", name, err)
		}
	}
	if _, err := d.Create(ctx, "dev", opts(unix.S_IFCHR|0o600)); err != unix.EPERM {
		t.Errorf("mknod chr: %v", err)
	}
	if err := root.Rmdir(ctx, "d", d); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Errorf("%d entries left", len(ents))
	}
	if s, err := fs.StatFS(ctx); err != nil || s.BlockSize == 0 {
		t.Errorf("statfs: %v", err)
	}
	n.(*inode).Evict(ctx)
	// The open description outlives the eviction.
	buf := make([]byte, 2)
	if r, err := impl.Read(ctx, usermem.BytesSequence(buf), 0); r != 2 || err != nil || string(buf) != "aX" {
		t.Errorf("read after evict: %q %v", buf[:r], err)
	}
}
